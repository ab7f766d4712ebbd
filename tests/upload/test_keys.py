"""Object keys and the [upload] section: checked when the rule file is read, file:line:key."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capture.config.loader import parse_rules
from capture.config.problems import ConfigError
from capture.upload.keys import DEFAULT_KEY, KeyFields, key_template_problem, render_key
from tests.config.conftest import line_of
from tests.config.test_loader import MINIMAL

BASE = (
    MINIMAL
    + """
[upload]
enabled = true
endpoint = "https://s3.plant.example:9000"
bucket = "pictures"
access_key_env = "S3_ID"
secret_key_env = "S3_KEY"
"""
)
ENVIRON = {"S3_ID": "PIACCESS01", "S3_KEY": "Upload-Key-Secret-77"}
FIELDS = KeyFields("plant", "Line 3", "cam1", "ng", "Line 3/2026-12-03/ng_cam1_1.jpg", "ev1", 2)


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "rules.toml", ENVIRON if environ is None else environ)
    return [str(problem) for problem in caught.value.problems]


def test_the_default_key_is_site_line_path() -> None:
    assert render_key(DEFAULT_KEY, FIELDS) == "plant/Line 3/Line 3/2026-12-03/ng_cam1_1.jpg"


def test_every_field_renders_and_empty_segments_and_slashes_at_the_ends_go() -> None:
    template = "/{site}//{camera}/{rule}/{event_id}-{seq}/"
    assert render_key(template, FIELDS) == "plant/cam1/ng/ev1-2"


def test_dot_segments_go_so_no_key_climbs_out_of_its_prefix() -> None:
    fields = dataclasses.replace(FIELDS, site=".", line="..")
    assert render_key(DEFAULT_KEY, fields) == "Line 3/2026-12-03/ng_cam1_1.jpg"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{site}/{lines}/{path}", "unknown field {lines}; a key may use {site}, {line}"),
        ("{site}/{path:>10}", "field {path} takes no format or conversion"),
        ("{site}/{camera}.jpg", "the key must contain {path} (or {event_id}, {rule}, {camera}"),
        # Two cameras (or two rules) of one event would write the same object.
        ("{site}/{event_id}_{seq}.jpg", "or pictures overwrite each other"),
        ("{site}/{event_id}/{camera}_{seq}.jpg", "or pictures overwrite each other"),
        ("{site}/{path", "not a valid template"),
    ],
)
def test_a_template_that_cannot_name_pictures_is_refused(template: str, problem: str) -> None:
    assert problem in (key_template_problem(template) or "")


def test_a_key_without_path_names_each_picture_by_event_rule_camera_and_frame() -> None:
    assert key_template_problem("{site}/{event_id}/{rule}/{camera}_{seq}.jpg") is None


@given(st.text(max_size=40))
def test_any_accepted_template_renders(template: str) -> None:
    if key_template_problem(template) is None:
        assert "//" not in render_key(template, FIELDS)


def test_the_section_loads_with_keys_from_the_environment() -> None:
    upload = parse_rules(BASE, "rules.toml", ENVIRON).rules.upload
    assert (
        upload.secret_key is not None and upload.secret_key.get_secret_value() == ENVIRON["S3_KEY"]
    )
    assert upload.base_url == "https://s3.plant.example:9000/pictures"


ENDPOINT = 'endpoint = "https://s3.plant.example:9000"'


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ('bucket = "pictures"', 'bucket = "Pictures_Bad"', "upload.bucket", "should match pattern"),
        ("[upload]", '[upload]\nkey = "{site}/{cam}/{path}"', "upload.key", "unknown field {cam}"),
        (ENDPOINT, 'endpoint = "s3.plant.example"', "upload.endpoint", "give a URL such as"),
        (ENDPOINT, 'endpoint = "https://id:pw@s3.x"', "upload.endpoint", "no user in the URL"),
        (ENDPOINT, 'endpoint = "https://s3.x/pictures"', "upload", "the bucket goes in bucket"),
        (
            ENDPOINT,
            'endpoint = "http://s3.x"\nca_file = "/ca.pem"',
            "upload",
            "only used with an https",
        ),
    ],
)
def test_a_bad_option_is_named_with_its_line(old: str, new: str, key: str, message: str) -> None:
    text = BASE.replace(old, new)
    problems = problems_of(text)
    where = "[upload]" if key == "upload" else f"{key.removeprefix('upload.')} ="
    line = line_of(text, where)
    assert any(p.startswith(f"rules.toml:{line}: {key}: ") and message in p for p in problems), (
        problems
    )


def test_enabled_without_endpoint_or_bucket_is_an_error() -> None:
    text = "[upload]\nenabled = true\n" + BASE.split("[upload]\n", maxsplit=1)[0]
    assert any("upload: enabled = true needs endpoint and bucket" in p for p in problems_of(text))


def test_one_key_without_the_other_is_an_error_and_no_key_is_shown() -> None:
    text = BASE.replace('access_key_env = "S3_ID"\n', "").replace(
        'secret_key_env = "S3_KEY"', 'secret_key = "Clear-Upload-Secret-9"'
    )
    problems = problems_of(text)
    assert any("give both access_key and secret_key" in p for p in problems)
    assert not any("Clear-Upload-Secret-9" in p for p in problems)


def test_a_missing_key_variable_is_named_never_its_value() -> None:
    problems = problems_of(BASE, {"S3_ID": "PIACCESS01"})
    line = line_of(BASE, "secret_key_env")
    assert (
        f"rules.toml:{line}: upload.secret_key_env: environment variable 'S3_KEY' is not set"
        in problems
    )
