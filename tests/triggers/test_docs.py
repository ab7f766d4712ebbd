"""docs/triggers.md keeps up with the trigger models: every kind, every option, its description."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from capture.config import schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "triggers.md"
KINDS = typing.get_args(typing.get_args(schema.TriggerConfig)[0])


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/triggers.md has no section '## {title}'"
    return match.group(1)


def _row(name: str, description: str) -> str:
    return f"| `{name}` |", description.replace("|", "\\|")


@pytest.mark.parametrize("model", KINDS, ids=lambda model: model.__name__)
def test_every_option_of_every_kind_is_documented_with_its_description(model: type) -> None:
    text = DOC.read_text(encoding="utf-8")
    kind = typing.get_args(model.model_fields["type"].annotation)[0]
    section = _section(text, kind)
    for name, info in model.model_fields.items():
        if name == "type" or name in schema.TriggerBase.model_fields:
            continue
        shared = issubclass(model, schema.LineParser) and name in schema.LineParser.model_fields
        where = _section(text, "Line parsers") if shared else section
        start, description = _row(name, info.description or "")
        row = next((line for line in where.splitlines() if line.startswith(start)), None)
        assert row is not None, f"{kind}: option {name} is not documented"
        assert description in row, f"{kind}: option {name}: description differs from the schema"


def test_common_options_are_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, info in schema.TriggerBase.model_fields.items():
        assert f"| `{name}` |" in text and (info.description or "") in text
