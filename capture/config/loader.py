"""Reads a rule file: TOML with line numbers, env overrides, secrets, checks.

The one way every command gets its configuration, so `capture check`, `capture
run` and a hot reload accept and refuse exactly the same files.

Why ~470 lines: "every problem at once, each with its line" means running
each phase on what the phases before it accepted, which keeps the phases and
the bookkeeping of what was dropped together; secrets (capture.config.secrets),
wording (wording.py) and locating keys (locate.py) live apart.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from capture.config.environment import apply_env_overrides
from capture.config.locate import KeyLocator, Where
from capture.config.problems import (
    ConfigError,
    Problem,
    RuleFileMissing,
    Skipped,
    did_you_mean,
    format_path,
)
from capture.config.schema import (
    CameraConfig,
    RuleFile,
    SecretRef,
    TriggerConfig,
    tag_of,
    union_members,
)
from capture.config.secrets import clear_secrets, without_secrets
from capture.config.secrets import resolve_secrets as read_secrets
from capture.config.wording import is_type_error, toml_hint, type_message

DEFAULT_PATHS = (Path("/etc/event-capture/rules.toml"), Path("rules.toml"))
#: A file without rules would capture nothing: `check` refuses it as the service does,
#: since an editor that truncates before writing leaves such a file for a moment.
NO_RULES = (
    "no [[rules]] in the file (empty or half-written?): it would capture nothing; "
    "add a [[rules]] section (see rules.example.toml), or stop the service to stop capturing"
)


@dataclass
class LoadedRules:
    """A valid rule file and the warnings it raised."""

    rules: RuleFile
    source: str
    warnings: list[Problem] = field(default_factory=list)
    #: Every secret the file's text writes in clear, to mask in anything printed about it.
    clear_secrets: frozenset[str] = frozenset()


def default_config_path() -> Path:
    """$CAPTURE_CONFIG, else the first of /etc/event-capture/rules.toml, ./rules.toml that exists."""
    env = os.environ.get("CAPTURE_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate
    return DEFAULT_PATHS[-1]


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Add the `-c/--config FILE` option every command shares."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="rule file (default: $CAPTURE_CONFIG, /etc/event-capture/rules.toml, ./rules.toml)",
    )


def load_rule_file(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    resolve_secrets: bool = True,
) -> RuleFile:
    """Load and fully check a rule file for a tool; raise `ConfigError` listing every problem.

    The tools (`capture cameras`, `snap`, `events`) need its cameras or its
    storage root, not its rules: a file being written camera by camera can be
    tried before it has any, which `check` and the service refuse.
    `resolve_secrets=False` is for commands that only read (`capture events`):
    they need the storage root, not the cameras' passwords, so an unset
    `password_env` there is no error and the secret fields stay unresolved.
    """
    return load_rules(path, environ, resolve_secrets=resolve_secrets, require_rules=False).rules


def load_rules(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    resolve_secrets: bool = True,
    require_rules: bool = True,
) -> LoadedRules:
    """The rule file as `capture check` and the service accept it, with its warnings.

    `path` is what `-c` gave; None searches the default places.
    """
    given = path is not None
    path = path or default_config_path()
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Notepad) is not part of the TOML
    except FileNotFoundError:
        environ_or_os = os.environ if environ is None else environ
        raise RuleFileMissing([_not_found(path, environ_or_os, given=given)]) from None
    except OSError as exc:
        raise ConfigError(
            [Problem(str(path), None, "", f"cannot read rule file: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), None, "", f"not UTF-8 text: {exc.reason}")]) from None
    return parse_rules(
        text, str(path), environ, resolve_secrets=resolve_secrets, require_rules=require_rules
    )


def _not_found(path: Path, environ: Mapping[str, str], *, given: bool) -> Problem:
    """A missing rule file: where it was looked for, and how to get a first one."""
    variable = environ.get("CAPTURE_CONFIG")
    if given:
        places = "no such file (given with -c)"
    elif variable:
        places = f"$CAPTURE_CONFIG names {path}, which does not exist"
    else:
        places = "looked for -c FILE (not given), $CAPTURE_CONFIG (not set), " + ", ".join(
            f"{'./' if not candidate.is_absolute() else ''}{candidate} (missing)"
            for candidate in DEFAULT_PATHS
        )
    return Problem(
        str(path),
        None,
        "",
        f"no rule file: {places}. To start: `capture demo` runs simulated cameras on a rule "
        "file of its own (demo-data/rules.toml); or copy the example, "
        "`cp rules.example.toml rules.toml`, edit it and run `capture check`",
    )


def parse_rules(
    text: str,
    source: str,
    environ: Mapping[str, str] | None = None,
    *,
    resolve_secrets: bool = True,
    require_rules: bool = True,
) -> LoadedRules:
    """Parse rule-file text; `source` names it in messages.

    Every phase runs on what the phases before it accepted: environment
    overrides, the schema, secrets and cross-references of the parts that
    validated. So one `ConfigError` lists every problem, in file order.
    """
    environ = os.environ if environ is None else environ
    data = _parse_toml(text, source)
    locator = KeyLocator(text)
    from_env, problems = apply_env_overrides(data, environ)
    where = Where(source, locator, from_env)
    rules, skipped, schema_problems = _validate(data, where, from_env)
    problems += schema_problems
    if rules is not None:
        if resolve_secrets:
            rules, secret_problems = read_secrets(rules, where, environ)
            problems += secret_problems

        from capture.config.check import cross_check  # noqa: PLC0415 - keeps `capture --help` light

        problems += cross_check(rules, where, skipped)
        if require_rules and not rules.rules and not skipped.rules_incomplete:
            # Located on the last line, where the section would go, so every error has a line.
            problems.append(Problem(source, max(1, len(text.splitlines())), "", NO_RULES))
    secrets_in_clear = clear_secrets(text)
    problems = sorted(
        without_secrets(problems, secrets_in_clear),
        key=lambda problem: (problem.line or 0, problem.path),
    )
    if rules is None or any(problem.severity == "error" for problem in problems):
        raise ConfigError(problems)
    return LoadedRules(rules, source, problems, secrets_in_clear)


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.14 exposes lineno/colno; 3.11 only has them in the message.
        line = getattr(exc, "lineno", None)
        column = getattr(exc, "colno", None)
        message = getattr(exc, "msg", str(exc))
        if line is None:
            message, line, column = _split_toml_position(str(exc))
        if line is None and message.endswith(" (at end of document)"):
            # An unclosed string or table header runs to the end: name the file's last line.
            message = message.removesuffix(" (at end of document)") + " at the end of the file"
            line = max(1, len(text.splitlines()))
        lines = text.splitlines()
        line_text = lines[line - 1] if line is not None and 0 < line <= len(lines) else ""
        message += toml_hint(message, line_text)
        raise ConfigError(
            [Problem(source, line, "", f"TOML syntax error: {message}", column=column)]
        ) from None


def _split_toml_position(message: str) -> tuple[str, int | None, int | None]:
    """`Invalid value (at line 5, column 12)` -> ('Invalid value', 5, 12)."""
    marker = " (at line "
    if marker not in message:
        return message, None, None
    head, _, tail = message.partition(marker)
    try:
        line_text, column_text = tail.rstrip(")").split(", column ")
        return head, int(line_text), int(column_text)
    except ValueError:
        return message, None, None


def _validate(
    data: dict[str, Any], where: Where, from_env: Mapping[tuple[str, str], str]
) -> tuple[RuleFile | None, Skipped, list[Problem]]:
    """The file's model, its schema problems, and which parts were left out for them.

    A camera, trigger or rule that fails is left out (a service-level section
    as a whole), so the rest can still be checked; None if even that fails.
    An unknown option, or a number written as text, is dropped alone, not its
    whole part: no cross-check reads it, and the rest of that part may hold
    mistakes of its own (`burst = "3"` must not hide the rule's file name).
    """
    errors = _schema_errors(data, from_env)
    if not errors:
        return RuleFile.model_validate(data), Skipped(), []
    problems = [_problem_from_error(error, data, where) for error in errors]
    paths = [_strip_tags(tuple(error["loc"]), data) for error in errors]
    # Only an option the error's path reaches in the file can be dropped alone; a path
    # through a union member's name (`pin = [[[]]]`: ...pin.list[...].0.int) fails its part.
    droppable = {
        index
        for index, error in enumerate(errors)
        if _droppable(error) and _is_option(data, paths[index])
    }
    failed = {
        _failed_part(tuple(error["loc"]))
        for index, error in enumerate(errors)
        if index not in droppable
    }
    if () in failed:
        return None, Skipped(), problems
    dropped = _without_options(data, [paths[index] for index in sorted(droppable)])
    kept, skipped = _without(dropped, failed)
    try:
        return RuleFile.model_validate(kept), skipped, problems
    except ValidationError as exc:
        # A dropped option was required (`every_s = "10"`): leave its part out after all.
        failed |= {_failed_part(tuple(error["loc"])) for error in exc.errors()}
    if () in failed:
        return None, skipped, problems
    kept, skipped = _without(dropped, failed)
    try:
        return RuleFile.model_validate(kept), skipped, problems
    except ValidationError:
        return None, skipped, problems


def _droppable(error: Any) -> bool:
    """An unknown option, or a number of the wrong kind: left out, its part still checked.

    Booleans are not: `enabled` and `verify` decide what the cross-checks look at.
    """
    kind = str(error["type"])
    loc = error["loc"]
    if kind == "extra_forbidden":
        return True
    number = is_type_error(kind) and not kind.startswith("bool")
    return number and len(loc) >= 2 and isinstance(loc[-1], str)


def _schema_errors(data: dict[str, Any], from_env: Mapping[tuple[str, str], str]) -> list[Any]:
    """pydantic's errors, plus a number or boolean written as text in the file (`burst = "3"`).

    pydantic's lax mode would read `"3"` as 3; the file is held to its types
    (quotes around a number are a mistake as often as not), while a
    CAPTURE_* variable, which is always text, is read leniently.
    """
    try:
        RuleFile.model_validate(data)
        errors: list[Any] = []
    except ValidationError as exc:
        errors = exc.errors()
    written = {
        key: (
            {option: value for option, value in section.items() if (key, option) not in from_env}
            if isinstance(section, dict)
            else section
        )
        for key, section in data.items()
    }
    seen = {tuple(error["loc"]) for error in errors}
    try:
        RuleFile.model_validate(written, strict=True)
    except ValidationError as exc:
        errors += [
            error
            for error in exc.errors()
            if is_type_error(error["type"]) and tuple(error["loc"]) not in seen
        ]
    return errors


def _is_option(data: Mapping[str, Any], path: tuple[str | int, ...]) -> bool:
    """Whether `path` names an option in a table of the file (every part a key that is there)."""
    parent: Any = data
    for part in path[:-1]:
        if isinstance(parent, list) and isinstance(part, int):
            if not -len(parent) <= part < len(parent):
                return False
            parent = parent[part]
        elif isinstance(parent, dict) and part in parent:
            parent = parent[part]
        else:
            return False
    return isinstance(parent, dict) and path[-1] in parent


def _without_options(data: Mapping[str, Any], paths: list[tuple[str | int, ...]]) -> dict[str, Any]:
    """A copy of `data` without the (unknown) options at `paths`."""
    kept: dict[str, Any] = copy.deepcopy(dict(data))
    for path in paths:
        parent: Any = kept
        for part in path[:-1]:
            parent = parent[part]
        parent.pop(path[-1], None)  # two errors may name one option
    return kept


_ENTRIES = ("cameras", "triggers", "rules")


def _failed_part(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The part an error spoils: `cameras.x`, `triggers.x`, `rules[i]`, or a whole section."""
    if loc and loc[0] in _ENTRIES and len(loc) >= 2:
        return loc[:2]
    return loc[:1]


def _without(
    data: Mapping[str, Any], failed: set[tuple[str | int, ...]]
) -> tuple[dict[str, Any], Skipped]:
    """`data` without the failed parts."""
    sections = {str(part[0]) for part in failed if len(part) == 1}
    kept = {key: value for key, value in data.items() if key not in sections}
    left_out: dict[str, set[Any]] = {name: set() for name in _ENTRIES}
    for part in failed:
        if len(part) == 2:
            left_out[str(part[0])].add(part[1])
    for name in ("cameras", "triggers"):
        if isinstance(kept.get(name), dict):
            kept[name] = {k: v for k, v in kept[name].items() if k not in left_out[name]}
    if isinstance(kept.get("rules"), list):
        kept["rules"] = [r for i, r in enumerate(kept["rules"]) if i not in left_out["rules"]]
    skipped = Skipped(
        sections=frozenset(sections),
        cameras=frozenset(left_out["cameras"]),
        triggers=frozenset(left_out["triggers"]),
        rules=frozenset(left_out["rules"]),
    )
    return kept, skipped


_TAGGED_SECTIONS = {"cameras": "vendor", "triggers": "type"}


def _strip_tags(loc: tuple[str | int, ...], data: Mapping[str, Any]) -> tuple[str | int, ...]:
    """Drop the discriminator value pydantic inserts: cameras.x.hikvision.port -> cameras.x.port."""
    if len(loc) >= 3 and loc[0] in _TAGGED_SECTIONS:
        entry = (
            data.get(str(loc[0]), {}).get(loc[1])
            if isinstance(data.get(str(loc[0])), dict)
            else None
        )
        tag = entry.get(_TAGGED_SECTIONS[str(loc[0])]) if isinstance(entry, dict) else None
        if tag is not None and loc[2] == tag:
            return (*loc[:2], *loc[3:])
    return loc


def _problem_from_error(error: Any, data: Mapping[str, Any], where: Where) -> Problem:
    loc = _strip_tags(tuple(error["loc"]), data)
    # "Value error, x" -> "x": our validators' messages are already for people.
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    path = loc
    if kind == "extra_forbidden":
        message = (
            f"unknown option {loc[-1]!r}{did_you_mean(str(loc[-1]), _known_options(loc, data))}"
        )
    elif kind == "missing":
        message = f"missing required option {loc[-1]!r}"
    elif is_type_error(kind) and isinstance(loc[-1], str):
        message = type_message(kind, loc[-1], error.get("input"))
    elif kind == "union_tag_invalid":
        tag_name = error["ctx"]["discriminator"].strip("'")
        expected = [tag.strip().strip("'") for tag in error["ctx"]["expected_tags"].split(",")]
        given = str(error["ctx"]["tag"])
        # A string left open swallows the lines after it; only a name is worth quoting back.
        shown = f" {given!r}" if re.fullmatch(r"[\w.-]{1,40}", given) else ""
        message = f"unknown {tag_name}{shown}{did_you_mean(given, expected)}; known: {', '.join(expected)}"
        path = (*loc, tag_name)
    elif kind == "union_tag_not_found":
        tag_name = error["ctx"]["discriminator"].strip("'")
        message = f"missing {tag_name} (what kind of {'camera' if loc[0] == 'cameras' else 'trigger'} is this?)"
    display = format_path(path)
    rule_name = _rule_name(loc, data)
    if rule_name:
        display = display.replace(f"rules[{loc[1]}]", f"rules[{loc[1]}] ({rule_name})", 1)
    return where.problem(path, message, display=display)


def _rule_name(loc: tuple[str | int, ...], data: Mapping[str, Any]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            name = rules[loc[1]].get("name")
            return name if isinstance(name, str) else None
    return None


def _known_options(loc: tuple[str | int, ...], data: Mapping[str, Any]) -> list[str]:
    """Option names valid where an unknown one was found, for 'did you mean'."""
    model = _model_at(loc[:-1], data)
    if model is None:
        return []
    names = list(model.model_fields)
    if issubclass(model, SecretRef):
        for secret in model.secret_fields:
            names += [f"{secret}_env", f"{secret}_file"]
    return names


def _model_at(loc: tuple[str | int, ...], data: Mapping[str, Any]) -> type[BaseModel] | None:
    from capture.config import schema  # noqa: PLC0415

    if not loc:
        return RuleFile
    section = loc[0]
    if section == "rules":
        return schema.RuleConfig
    if section in _TAGGED_SECTIONS and len(loc) >= 2:
        union = CameraConfig if section == "cameras" else TriggerConfig
        entry = data.get(str(section), {}).get(loc[1], {})
        tag = entry.get(_TAGGED_SECTIONS[str(section)]) if isinstance(entry, dict) else None
        for member in union_members(union):
            if tag == tag_of(member, _TAGGED_SECTIONS[str(section)]):
                return member
        return None
    field_info = RuleFile.model_fields.get(str(section))
    annotation = field_info.annotation if field_info else None
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )
