"""Who may use the dashboard and API: the token, its session cookie and the loopback rule.

Reads are open on a loopback bind (only this machine reaches it); off
loopback every request needs the token. State-changing requests (POST)
always need it. Without a configured token (loopback only) the service makes
a random one per process that nobody is ever shown: the dashboard's pages
hand the browser its session cookie, so a person can still snap from the
page while a bare `curl -X POST` is refused. The browser never stores the
token itself: the session cookie holds an HMAC derived from it, so a copied
cookie does not reveal the token and changing the token (or restarting, for
a generated one) ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from starlette.requests import cookie_parser

from capture.config.schema import WebConfig

COOKIE_NAME = "capture_session"
COOKIE_MAX_AGE_S = 30 * 86400
"""Wall screens stay logged in for a month; changing the token ends every session earlier."""
_SESSION_LABEL = b"event-capture web session v1"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The host part of a Host header value (`name:port`, `[v6]:port`)."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class AccessPolicy:
    """Decides, per request, whether it may proceed; never logs or returns the token."""

    def __init__(self, config: WebConfig) -> None:
        secret = config.token.get_secret_value() if config.token else ""
        self._token = secret.encode()
        self.token_configured = bool(secret)
        self.loopback = is_loopback(config.bind)
        # Without a configured token, sessions hang off a secret of this process alone:
        # nobody can present it, and a restart ends the sessions it backed.
        session_key = self._token or secrets.token_bytes(32)
        self._session = hmac.new(session_key, _SESSION_LABEL, hashlib.sha256).hexdigest()

    @property
    def pages_open_sessions(self) -> bool:
        """Whether serving a page logs the browser in: loopback without a configured token.

        Only this machine reaches such a service, and the host-name check keeps
        other sites' pages (DNS rebinding) from being served at all, so a page
        opened here stands for a person at this machine.
        """
        return self.loopback and not self.token_configured

    def needs_token(self, method: str) -> bool:
        """Whether a request with this method must carry the token (or a session)."""
        if not self.loopback:
            return True  # fails closed even if the config somehow lacks a token
        return method not in ("GET", "HEAD")

    def token_matches(self, candidate: str) -> bool:
        """Constant-time comparison with the configured token."""
        return self.token_configured and hmac.compare_digest(candidate.encode(), self._token)

    def authenticated(self, authorization: str | None, cookie_header: str | None) -> bool:
        """True for `Authorization: Bearer <token>` or a valid session cookie."""
        if authorization and self.token_configured:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
                return True
        session = self._cookie(cookie_header)
        return session is not None and hmac.compare_digest(session.encode(), self._session.encode())

    def allows(
        self,
        method: str,
        authorization: str | None,
        cookie_header: str | None,
        *,
        local_host: bool = True,
    ) -> bool:
        """Whether a request may proceed; one naming a foreign host (see `host_allowed`) needs the token."""
        needed = self.needs_token(method) or not local_host
        return not needed or self.authenticated(authorization, cookie_header)

    def host_allowed(self, host_header: str | None) -> bool:
        """Loopback host names only: a DNS-rebinding page cannot reach us without the token."""
        if not self.loopback:
            return True  # every request off loopback carries the token anyway
        return host_header is not None and is_loopback(_host_name(host_header.strip()))

    def session_cookie(self) -> str:
        """A Set-Cookie value logging the browser in: HttpOnly, SameSite=Strict."""
        return (
            f"{COOKIE_NAME}={self._session}; Path=/; HttpOnly; SameSite=Strict; "
            f"Max-Age={COOKIE_MAX_AGE_S}"
        )

    @staticmethod
    def logout_cookie() -> str:
        """A Set-Cookie value ending the browser's session."""
        return f"{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"

    @staticmethod
    def _cookie(header: str | None) -> str | None:
        # Starlette's parser, as browsers read cookies: a malformed pair is skipped, not fatal.
        return cookie_parser(header).get(COOKIE_NAME) if header else None
