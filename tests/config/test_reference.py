"""docs/rules-reference.md is generated from the schema and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from capture.config import schema
from capture.config.reference import generate

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "rules-reference.md"


def test_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == generate(), (
        "run: python -m capture.config.reference > docs/rules-reference.md"
    )


def test_every_option_has_a_description() -> None:
    models = [
        schema.ServiceConfig,
        schema.StorageConfig,
        schema.MqttConfig,
        schema.WebConfig,
        schema.RuleConfig,
    ]
    models += schema.union_members(schema.CameraConfig)
    models += schema.union_members(schema.TriggerConfig)
    for model in models:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
