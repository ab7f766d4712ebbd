"""Secrets in a rule file: read from the environment or files, and kept out of every message.

Camera, MQTT, web and OPC UA trigger passwords are given as `password_env` / `password_file`
(or written in clear, with a warning); `resolve_secrets` reads them into
SecretStr fields. Whatever a file writes in clear is found in its *text*
(`clear_secrets`), so no message, summary or log quoting a value can show it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from pydantic import SecretStr

from capture.config.locate import Where
from capture.config.problems import Problem
from capture.config.schema import RuleFile, SecretRef

#: `password = "..."` (or token, session) anywhere in the text, even inside another value.
_CLEAR_SECRET = re.compile(
    r"""(?:^|[\s{,])(?:password|token|session|access_key|secret_key)\s*=\s*(?:"((?:[^"\\\n]|\\.)*)"|'([^'\n]*)')""",
    re.MULTILINE,
)


def clear_secrets(text: str) -> frozenset[str]:
    """Every secret the text writes in clear, as written and as a message may quote it.

    Read from the text, not the parsed file: a string left open with triple
    quotes swallows the lines after it, password lines included, and a message
    or summary quoting that string would show them.
    """
    secrets = set()
    for match in _CLEAR_SECRET.finditer(text):
        written = match.group(1) if match.group(1) is not None else match.group(2)
        if written:
            literal = match.group(0).partition("=")[2].strip()
            try:
                parsed = str(tomllib.loads(f"v = {literal}")["v"])
            except tomllib.TOMLDecodeError:
                parsed = written
            secrets |= {written, parsed, repr(parsed)[1:-1]}
    return frozenset(secrets)


def mask_secrets(text: str, secrets: frozenset[str]) -> str:
    """`text` with each of `secrets` replaced by `***`."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def without_secrets(problems: list[Problem], secrets: frozenset[str]) -> list[Problem]:
    """`problems` with every secret of the file masked, wherever a message quoted it."""
    return [
        replace(problem, message=mask_secrets(problem.message, secrets)) for problem in problems
    ]


def resolve_secrets(
    rules: RuleFile, where: Where, environ: Mapping[str, str]
) -> tuple[RuleFile, list[Problem]]:
    """Read `*_env` and `*_file` secret references into their SecretStr fields."""
    problems: list[Problem] = []

    def resolve(model: SecretRef, path: tuple[str | int, ...]) -> SecretRef:
        update: dict[str, SecretStr] = {}
        for name in model.secret_fields:
            env_name = getattr(model, f"{name}_env")
            file_name = getattr(model, f"{name}_file")
            key_path = (*path, f"{name}_env" if env_name else f"{name}_file")
            if env_name:
                value = environ.get(env_name)
                if value is None:
                    problems.append(
                        where.problem(key_path, f"environment variable {env_name!r} is not set")
                    )
                elif not value:
                    problems.append(
                        where.problem(key_path, f"environment variable {env_name!r} is empty")
                    )
                else:
                    update[name] = SecretStr(value)
            elif file_name:
                try:
                    value = Path(file_name).read_text(encoding="utf-8-sig").rstrip("\r\n")
                except (OSError, UnicodeDecodeError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                    problems.append(
                        where.problem(
                            key_path, f"cannot read secret file {str(file_name)!r}: {reason}"
                        )
                    )
                    continue
                if not value:
                    problems.append(
                        where.problem(key_path, f"secret file {str(file_name)!r} is empty")
                    )
                else:
                    update[name] = SecretStr(value)
        return model.model_copy(update=update) if update else model

    resolved = rules.model_copy(
        update={
            "mqtt": resolve(rules.mqtt, ("mqtt",)),
            "web": resolve(rules.web, ("web",)),
            "upload": resolve(rules.upload, ("upload",)),
            "cameras": {
                name: resolve(camera, ("cameras", name)) for name, camera in rules.cameras.items()
            },
            # Trigger kinds that log in (opcua) hold their password like cameras do.
            "triggers": {
                name: resolve(trigger, ("triggers", name))
                if isinstance(trigger, SecretRef)
                else trigger
                for name, trigger in rules.triggers.items()
            },
        }
    )
    return resolved, problems
