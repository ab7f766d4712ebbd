"""Narrows a camera error's password hint to the key the camera's section really uses.

The drivers know a login failed, not how the rule file gave the password, so
their hints say `password_env/password_file`; a technician whose section
says `password = "..."` should be sent to that line, not to two keys it does
not have. Applied where an error is shown: the journal, the log, the CLI.
"""

from __future__ import annotations

from typing import Any

#: The drivers' generic wording for "the password, however it is given".
GENERIC = "password_env/password_file"


def password_source(config: Any) -> str:
    """The rule-file key that gives this camera's password, as a person would look for it."""
    if getattr(config, "password_env", None):
        return f"password_env ({config.password_env})"
    if getattr(config, "password_file", None):
        return f"password_file ({config.password_file})"
    if getattr(config, "password", None) is not None:
        return "password (in the rule file)"
    return "password (none is set)"


def with_password_source(message: str, config: Any) -> str:
    """`message` with the generic password hint naming the key this camera uses."""
    if config is None or GENERIC not in message:
        return message
    return message.replace(GENERIC, password_source(config))
