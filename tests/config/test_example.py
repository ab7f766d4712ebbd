"""rules.example.toml documents every option of every section, vendor and trigger kind."""

from __future__ import annotations

import re
from collections import defaultdict

from pydantic import BaseModel

from capture.config import schema
from tests.config.conftest import EXAMPLE

HEADER = re.compile(r"^\s*(?:#\s*)?\[\[?([A-Za-z0-9_.\"' -]+)\]\]?")
OPTION = re.compile(r"^\s*(?:#\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
TAG = re.compile(r'^\s*(?:#\s*)?(?:vendor|type)\s*=\s*"([a-z]+)"')


def documented_options() -> dict[str, set[str]]:
    """Option names, active or commented, per section kind (e.g. 'mqtt', 'camera:hikvision')."""
    options: dict[str, set[str]] = defaultdict(set)
    section = ""
    pending: set[str] = set()
    for line in EXAMPLE.read_text().splitlines():
        header = HEADER.match(line)
        if header and "=" not in line:
            options[section] |= pending
            pending = set()
            section = header.group(1).split(".")[0]
            continue
        tag = TAG.match(line)
        if tag and section in ("cameras", "triggers"):
            section = f"{section}:{tag.group(1)}"
        option = OPTION.match(line)
        if option:
            pending.add(option.group(1))
    options[section] |= pending
    return options


def fields(model: type[BaseModel]) -> set[str]:
    names = set(model.model_fields)
    if issubclass(model, schema.SecretRef):
        for secret in model.secret_fields:
            names |= {f"{secret}_env", f"{secret}_file"}
    return names


def test_example_documents_every_service_level_option() -> None:
    options = documented_options()
    sections = [*schema.top_sections(), ("rules", schema.RuleConfig)]
    assert {"service", "storage", "mqtt", "web"} <= {name for name, _ in sections}
    for section, model in sections:
        assert fields(model) <= options[section], (section, fields(model) - options[section])


def test_example_documents_every_camera_option() -> None:
    options = documented_options()
    every_camera = set().union(*(v for k, v in options.items() if k.startswith("cameras:")))
    common = fields(schema.CameraBase)
    assert common <= every_camera, common - every_camera
    for member in schema.union_members(schema.CameraConfig):
        vendor = schema.tag_of(member, "vendor")
        own = fields(member) - common
        assert own <= options[f"cameras:{vendor}"], (vendor, own - options[f"cameras:{vendor}"])


def test_example_documents_every_trigger_option() -> None:
    options = documented_options()
    every_trigger = set().union(*(v for k, v in options.items() if k.startswith("triggers:")))
    assert {"description", "fields"} <= every_trigger
    line_parsing = options["triggers:file"] | options["triggers:serial"]
    assert fields(schema.LineParser) - {"description", "fields"} <= line_parsing
    for member in schema.union_members(schema.TriggerConfig):
        kind = schema.tag_of(member, "type")
        own = fields(member) - {"description", "fields"}
        if issubclass(
            member, schema.LineParser
        ):  # parser options are shown once, for file or serial
            own -= set(schema.LineParser.model_fields)
        assert own <= options[f"triggers:{kind}"], (kind, own - options[f"triggers:{kind}"])


def test_camera_path_descriptions_list_every_path_template_field() -> None:
    from capture.cameras.paths import FIELDS  # noqa: PLC0415 - the list the drivers fill in

    for model in (schema.GenericCamera, schema.MjpegCamera):
        description = model.model_fields["path"].description or ""
        missing = [name for name in FIELDS if "{" + name + "}" not in description]
        assert missing == [], (model.__name__, missing)
