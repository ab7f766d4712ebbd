"""`CAPTURE_<SECTION>__<OPTION>` variables: overrides of the rule file's service-level sections.

Read with pydantic-settings and merged into the parsed file before it is
validated. A variable that cannot be used becomes a `Problem` naming it; its
value is never shown, since it may hold a password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from capture.config.problems import Problem

#: Service-level sections that `CAPTURE_<SECTION>__<OPTION>` variables override.
ENV_SECTIONS = ("service", "storage", "mqtt", "web", "upload")
_SECRETS = ("password", "token", "access_key", "secret_key")


def apply_env_overrides(
    data: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[tuple[str, str], str], list[Problem]]:
    """Merge CAPTURE_* variables into the parsed file.

    Returns which (section, option) came from which variable, and the
    variables that could not be read.
    """
    relevant = {key: value for key, value in environ.items() if key.upper().startswith("CAPTURE_")}
    if not relevant:
        return {}, []
    problems = _unreadable_sections(relevant)
    for problem in problems:
        del relevant[problem.source.removeprefix("environment ")]
    try:
        overrides = _read_overrides(relevant)
    except ValueError:
        # Whatever else pydantic-settings (SettingsError, ValidationError) or os.environ
        # (a NUL byte) refuse: their messages may quote the value, so only names are shown.
        names = ", ".join(sorted(relevant))
        return {}, [
            *problems,
            Problem(
                f"environment {names}",
                None,
                "",
                "cannot be read, none of them applied (values are not shown: they may hold a password)",
            ),
        ]
    origin: dict[tuple[str, str], str] = {}
    for section in ENV_SECTIONS:
        values: dict[str, Any] = getattr(overrides, section)
        target = data.setdefault(section, {})
        if not values or not isinstance(target, dict):
            continue
        for key, value in values.items():
            base = key.removesuffix("_env").removesuffix("_file")
            if base in _SECRETS:
                # An override replaces the file's secret, whichever way the file gave it.
                for variant in (base, f"{base}_env", f"{base}_file"):
                    target.pop(variant, None)
            target[key] = value
            origin[(section, key)] = _variable_of(section, key, relevant)
    return origin, problems


def _unreadable_sections(environ: Mapping[str, str]) -> list[Problem]:
    """`CAPTURE_MQTT='{...'`: a whole section as JSON that is not a JSON object."""
    problems = []
    for name, value in environ.items():
        section = name.upper().removeprefix("CAPTURE_").lower()
        if section not in ENV_SECTIONS:
            continue
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            reason = f"not valid JSON ({exc.msg} at column {exc.colno})"
        else:
            if isinstance(parsed, dict):
                continue
            reason = f"a JSON {_json_kind(parsed)}, not an object"
        problems.append(
            Problem(
                f"environment {name}",
                None,
                section,
                f"{reason}; write an object such as "
                f'{{"host": "broker"}}, or set CAPTURE_{section.upper()}__<OPTION> '
                "variables (the value is not shown: it may hold a password)",
            )
        )
    return problems


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return "literal"
    return "number"


def _variable_of(section: str, key: str, environ: Mapping[str, str]) -> str:
    """The variable an override came from: CAPTURE_MQTT__HOST, else the section's JSON."""
    option = f"CAPTURE_{section.upper()}__{key.upper()}"
    whole = f"CAPTURE_{section.upper()}"
    names = sorted(environ, key=lambda name: name.upper() == whole)  # options first
    for name in names:
        upper = name.upper()
        if upper in (option, whole) or upper.startswith(f"{option}__"):
            return name
    return whole


def _read_overrides(environ: Mapping[str, str]) -> Any:
    """`CAPTURE_MQTT__HOST=broker` and friends, read by pydantic-settings.

    Imported here, not at the top: pydantic-settings costs ~100 ms of start-up
    that `capture check` should only pay when such variables are set.
    """
    from pydantic_settings import BaseSettings, SettingsConfigDict  # noqa: PLC0415

    class EnvOverrides(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix="CAPTURE_", env_nested_delimiter="__", extra="ignore", case_sensitive=False
        )

        service: dict[str, Any] = {}
        storage: dict[str, Any] = {}
        mqtt: dict[str, Any] = {}
        web: dict[str, Any] = {}
        upload: dict[str, Any] = {}

    saved = dict(os.environ)
    try:
        # pydantic-settings reads os.environ; scope it to the environment we were given.
        os.environ.clear()
        os.environ.update(environ)
        return EnvOverrides()
    finally:
        os.environ.clear()
        os.environ.update(saved)
