"""Which rule-file key gives a camera's password, as an error's hint names it.

A technician whose section says `password = "..."` is sent to that line, one
with `password_env = "LINE3_PW"` to that variable: never to two keys the
section does not have. The errors are built with it (capture.cameras.failures
and the drivers' classifiers), so the journal, the log, MQTT and the CLI all
say the same.
"""

from __future__ import annotations

from typing import Any


def password_source(config: Any) -> str:
    """The rule-file key that gives this camera's password, as a person would look for it."""
    if getattr(config, "password_env", None):
        return f"password_env ({config.password_env})"
    if getattr(config, "password_file", None):
        return f"password_file ({config.password_file})"
    if getattr(config, "password", None) is not None:
        return "password (in the rule file)"
    return "password (none is set)"
