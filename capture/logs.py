"""Logging for the service: one readable line per record on stderr, secrets scrubbed.

Modules never log secrets by design; this is the second line of defence. A
filter on the output handler replaces every configured password and token
(and its URL-encoded form) with `***` in every record, whichever library
wrote it, because one `logger.debug(request)` in a dependency is enough to
put a camera password in journald.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from capture.cameras.redact import scrub

_NOISY = ("httpx", "httpcore", "watchdog")


class SecretScrubber(logging.Filter):
    """Masks known secret values in the formatted message of every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Replace the set of secrets to mask (after a reload)."""
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record if it holds a secret; never drop it."""
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = scrub(message, self.secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


SCRUBBER = SecretScrubber()
"""The filter on the service's log handler; `Service` tells it the secrets."""


def configure_logging(level: str) -> None:
    """Log to stderr (journald keeps it) at `level`, with secrets scrubbed."""
    under_journald = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald:  # journald stamps lines itself
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(SCRUBBER)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
