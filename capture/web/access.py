"""Every request's access rules in one ASGI middleware; routes never check access themselves.

In order: HEAD is served as GET without a body; a host name other than
loopback's needs the token on a loopback bind (421 without a configured
token: DNS rebinding); an address that sent too many wrong tokens waits
(429); `?token=` logs a browser in and leaves the address bar; the login
page and static files are open; anything else passes `AccessPolicy.allows`
or is refused (401, or a redirect to the login page for a page). Every
answer gets the security headers, HTML the Content-Security-Policy, and a
page on a loopback bind without a token the session its buttons post with.
One debug line per request, never with its query string (it may hold the
token).
"""

from __future__ import annotations

import html
import logging
import re
import time
from typing import Any
from urllib.parse import quote, urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from capture.web.auth import AccessPolicy
from capture.web.throttle import GuessThrottle

log = logging.getLogger(__name__)

HEAD_KEY = "capture.head"
"""Set in the scope of a HEAD request served as GET (the event stream answers at once)."""
PAGES = frozenset({"/", "/events", "/login", "/docs"})
EVENT_PAGE = re.compile(r"^/events/([A-Za-z0-9.:_-]{1,64})$")
STATIC_PREFIX = "/static/"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="event-capture"'}


#: The API call every dashboard page polls: answering it renews the browser's session.
SESSION_RENEWING_API = "/api/cameras"


def wants_html(path: str) -> bool:
    """Whether `path` is one of the pages (a refusal redirects to the login page)."""
    return path in PAGES or bool(EVENT_PAGE.match(path))


def local_target(target: str) -> str:
    """A redirect target on this server only: a path, never `//host` or a scheme.

    Browsers drop tabs and line breaks from a URL before reading it, so
    `/<TAB>/evil.example` would go to `//evil.example`; a control character,
    a space or a backslash anywhere makes the target the dashboard instead
    (and a line break could not be sent in a header anyway).
    """
    if (
        not target.startswith("/")
        or target.startswith("//")
        or any(char <= " " or char in "\\\x7f" for char in target)
    ):
        return "/"
    return target


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's error answer: `{"error": ...}`, never cached."""
    return JSONResponse(
        {"error": message}, status, {"Cache-Control": "no-store", **(headers or {})}
    )


def redirect(target: str, headers: dict[str, str] | None = None) -> Response:
    """303 to a local target."""
    return Response(
        status_code=303,
        headers={"Location": target, "Cache-Control": "no-store", **(headers or {})},
    )


def login_page(
    template: str, status: int, message: str, target: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The login form with a message and where to go after it; both escaped."""
    text = template.replace("{{message}}", html.escape(message)).replace(
        "{{next}}", html.escape(local_target(target), quote=True)
    )
    return HTMLResponse(text, status, {"Cache-Control": "no-cache", **(headers or {})})


def client_address(scope: Scope) -> str:
    """The peer's address (no proxy headers are trusted: the throttle counts per address)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class AccessMiddleware:
    """Wraps the app: decides whether each request may reach its route, and answers if not."""

    def __init__(
        self, app: ASGIApp, policy: AccessPolicy, throttle: GuessThrottle, login_template: str
    ) -> None:
        self.app = app
        self.policy = policy
        self.throttle = throttle
        self.login_template = login_template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        method = scope["method"]
        if method == "HEAD":
            # GET's answer; uvicorn sends HEAD answers without their body.
            scope = {**scope, "method": "GET", HEAD_KEY: True}
        request = Request(scope)
        status = 0
        session = self._page_session(request)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS:
                    headers.append(name, value)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.append("Content-Security-Policy", CSP)
                if session and status == 200:
                    # The page's own buttons post with this cookie; a bare POST has none.
                    headers.append("Set-Cookie", session)
            await send(message)

        try:
            refusal = self._check(request)
            if refusal is not None:
                await refusal(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        except OSError:
            pass  # the client went away
        except Exception:
            log.exception("web request failed method=%s path=%s", method, _logged_path(scope))
            if not status:
                answer = error(500, "internal error; the service log has the details")
                await answer(scope, receive, send_with_headers)
        log.debug(
            "web request method=%s path=%s status=%d client=%s ms=%.1f",
            method, _logged_path(scope), status, client_address(scope),
            (time.monotonic() - started) * 1000,
        )  # fmt: skip

    def _page_session(self, request: Request) -> str | None:
        """Set-Cookie for a page that logs the browser in (loopback, no token), or that
        renews a logged-in browser's session; else None.

        The renewal (on pages and on the dashboard's 15-second `/api/cameras`) makes
        the 30 days count from the last use: a wall screen logged in once with the
        token keeps working for good, instead of failing on its 31st day.
        """
        path = request.scope["path"]
        if path == "/login" or not (wants_html(path) or path == SESSION_RENEWING_API):
            return None
        if self.policy.authenticated(None, request.headers.get("cookie")):
            return self.policy.session_cookie()
        if self.policy.pages_open_sessions and wants_html(path):
            return self.policy.session_cookie()
        return None

    def _check(self, request: Request) -> Response | None:
        """The answer refusing (or redirecting) the request, or None to let it through."""
        policy = self.policy
        path = request.scope["path"]
        method = request.method
        if not path.startswith("/"):
            return error(400, "bad request path")
        # Reads are open on loopback, so a page on another site could reach them by DNS
        # rebinding: a foreign host name needs the token (421 when none is configured).
        local_host = policy.host_allowed(request.headers.get("host"))
        if not local_host and not policy.token_configured:
            return error(421, "use http://127.0.0.1 or http://localhost to reach this service")
        client = client_address(request.scope)
        answer = self._token_attempt(request, client)
        if answer is not None or path == "/login":
            return answer
        if method == "GET" and path.startswith(STATIC_PREFIX):
            return None
        authorization = request.headers.get("authorization")
        if policy.allows(
            method, authorization, request.headers.get("cookie"), local_host=local_host
        ):
            return None
        if authorization:
            self.throttle.failed(client)
        return self._refuse(method, path, client)

    def _token_attempt(self, request: Request, client: str) -> Response | None:
        """A request offering a token: 429 while its address waits, `?token=` logs in."""
        method, path = request.method, request.scope["path"]
        token_query = method == "GET" and "token" in request.query_params
        offers = request.headers.get("authorization") or (path == "/login" and method == "POST")
        if token_query or offers:
            wait = self.throttle.retry_after(client)
            if wait:
                return self._too_many_guesses(request, client, wait)
        if token_query:
            return self._login_with_query_token(request, client)
        return None

    def _refuse(self, method: str, path: str, client: str) -> Response:
        log.info(
            "web request refused: no valid token method=%s path=%s client=%s",
            method, quote(path[:200], safe="/"), client,
        )  # fmt: skip
        if method == "GET" and wants_html(path):
            return redirect("/login?" + urlencode({"next": path}))
        if self.policy.token_configured:
            message = "a valid token is required: Authorization: Bearer <token>, or log in"
        else:
            message = (
                "changes need a token, and none is configured: set token_env or token_file "
                "in the rule file's [web] section, restart, and send Authorization: Bearer "
                "<token>; the dashboard's own buttons work without one (reload its page)"
            )
        return error(401, message, _BEARER_CHALLENGE)

    def _too_many_guesses(self, request: Request, client: str, wait: float) -> Response:
        log.warning(
            "web token attempts refused: too many wrong tokens client=%s retry_after_s=%.0f",
            client, wait,
        )  # fmt: skip
        retry = {"Retry-After": str(max(1, round(wait)))}
        message = "Too many wrong tokens from this address; try again in a minute."
        path = request.scope["path"]
        if path == "/login" or (request.method == "GET" and wants_html(path)):
            return login_page(self.login_template, 429, message, "/", retry)
        return error(429, message, retry)

    def _login_with_query_token(self, request: Request, client: str) -> Response:
        """`?token=` once (a wall screen's bookmark): set the cookie, drop the token from the URL."""
        path = request.scope["path"]
        if not self.policy.token_matches(request.query_params["token"]):
            self.throttle.failed(client)
            log.info("web login refused: wrong token client=%s", client)
            return login_page(self.login_template, 401, "That token is not valid.", path)
        rest = urlencode(
            [item for item in request.query_params.multi_items() if item[0] != "token"]
        )
        # Re-quoted: the decoded path may hold CR/LF or non-Latin-1 text, unfit for a header.
        target = local_target(quote(path, safe="/") + (f"?{rest}" if rest else ""))
        return redirect(target, {"Set-Cookie": self.policy.session_cookie()})


def _logged_path(scope: Scope) -> str:
    """The path as the client sent it (still percent-encoded, so one line), without the query."""
    raw: Any = scope.get("raw_path")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else quote(scope.get("path", ""))
    return text[:200]
