"""Every `docs/X.md#anchor` the schema, the example file and the reference point to exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.test_guides import anchors

ROOT = Path(__file__).resolve().parents[2]
DOC_REFERENCE = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")
SOURCES = ["capture/config/schema.py", "rules.example.toml", "docs/rules-reference.md"]


@pytest.mark.parametrize("source", SOURCES)
def test_every_docs_reference_leads_to_an_existing_section(source: str) -> None:
    text = (ROOT / source).read_text(encoding="utf-8")
    references = DOC_REFERENCE.findall(text)
    assert references, f"{source} names no docs/ page: is the pattern still right?"
    broken = [
        f"docs/{page}#{anchor}" if anchor else f"docs/{page}"
        for page, anchor in references
        if not (ROOT / "docs" / page).exists()
        or (anchor and anchor not in anchors(ROOT / "docs" / page))
    ]
    assert broken == []
