"""Keeps camera secrets out of URLs, excerpts and log lines.

Query-string vendors (XRC, Foscam HD, Reolink) put the password in the URL,
and devices sometimes echo the URL back in an error page; every URL and body
excerpt that reaches a log, an error message or a `Snapshot.source` passes
through here first.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Collection, Iterable
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

#: Query parameters whose values are always secret, whatever the vendor.
SECRET_PARAMS = frozenset({"pwd", "password", "passwd", "pass", "session", "token", "auth", "key"})
MASK = "***"
EXCERPT_LIMIT = 160
#: Bytes of a body looked at for an excerpt: secrets are masked in all of them before the
#: text is tidied and cut, so neither tidying nor cutting can leave part of one.
EXCERPT_WINDOW = 64 * 1024

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
_SPACES = re.compile(r"\s+")


def redact_url(
    url: object, secret_params: Collection[str] = (), secrets: Iterable[str] = ()
) -> str:
    """`http://h/snapshot.cgi?user=admin&pwd=x` -> `http://h/snapshot.cgi?user=admin&pwd=***`.

    Values of `SECRET_PARAMS`, of `secret_params`, and any value equal to one
    of `secrets` are masked; user info (`user:pass@`) is dropped entirely.
    """
    parts = urlsplit(str(url))
    netloc = parts.netloc.rpartition("@")[2]
    names = {name.lower() for name in (*SECRET_PARAMS, *secret_params)}
    known = {secret for secret in secrets if secret}
    query = "&".join(
        f"{quote(name, safe='')}={_masked(name, value, names, known)}"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _masked(name: str, value: str, names: Collection[str], secrets: Collection[str]) -> str:
    if name.lower() in names or value in secrets:
        return MASK
    return quote(value, safe="")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret, as it is, URL-encoded or HTML-escaped (a
    device's error page echoing the request), with `***`."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        forms = {secret, quote(secret, safe=""), html.escape(secret), html.escape(secret, False)}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, MASK)
    return text


def excerpt(body: bytes, secrets: Iterable[str] = (), limit: int = EXCERPT_LIMIT) -> str:
    """A short, printable, secret-free excerpt of what a device sent, for error messages.

    Secrets are masked first, in the text as the device sent it: after the
    tidying (non-ASCII to spaces, runs of blanks to one) a password with an
    umlaut would no longer match, and a cut could leave the start of one.
    """
    known = [secret for secret in secrets if secret]
    text = scrub(body[:EXCERPT_WINDOW].decode("utf-8", errors="replace"), known)
    if len(body) > EXCERPT_WINDOW:
        text = _without_secret_start(text, known)
    text = _SPACES.sub(" ", _UNPRINTABLE.sub(" ", text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _without_secret_start(text: str, secrets: Iterable[str]) -> str:
    """`text`, cut from a longer body, without a secret's first characters at its end."""
    for secret in secrets:
        for length in range(len(secret) - 1, 1, -1):  # one character tells nothing
            if text.endswith(secret[:length]):
                return text[:-length] + MASK
    return text


class RedactingFilter(logging.Filter):
    """Masks secret query values in log records of libraries that log request URLs (httpx)."""

    def __init__(self) -> None:
        super().__init__()
        self._params: set[str] = set(SECRET_PARAMS)
        self._pattern = self._compile()

    def add_params(self, names: Iterable[str]) -> None:
        """Also mask these parameter names (a generic camera's `password_param`)."""
        new = {name.lower() for name in names} - self._params
        if new:
            self._params |= new
            self._pattern = self._compile()

    def _compile(self) -> re.Pattern[str]:
        alternatives = "|".join(re.escape(name) for name in sorted(self._params))
        return re.compile(rf"(?i)([?&](?:{alternatives})=)[^&\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with secrets masked; never drop the record."""
        message = record.getMessage()
        cleaned = self._pattern.sub(lambda match: match.group(1) + MASK, message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_filter(
    extra_params: Iterable[str] = (), logger_names: Iterable[str] = ("httpx", "httpcore")
) -> None:
    """Attach a `RedactingFilter` to each named logger once, masking `extra_params` too."""
    extra = tuple(extra_params)
    for name in logger_names:
        logger = logging.getLogger(name)
        found = [f for f in logger.filters if isinstance(f, RedactingFilter)]
        log_filter = found[0] if found else RedactingFilter()
        if not found:
            logger.addFilter(log_filter)
        log_filter.add_params(extra)
