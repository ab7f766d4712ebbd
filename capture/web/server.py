"""The HTTP side of the dashboard: routing, access control, caching headers, the event stream.

A standard-library `ThreadingHTTPServer`: one thread per connection is what
a Pi serving a few browsers, a wall screen and some PLCs needs, and it adds
no dependency. Connections are capped and idle ones time out, so a stuck or
hostile client cannot exhaust threads; stopping shuts every connection and
joins every thread.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import re
import shutil
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from capture.errors import CaptureError
from capture.storage import LATEST_DIR
from capture.web.api import Api, ApiError
from capture.web.auth import AccessPolicy
from capture.web.media import IMAGE_PREFIX, THUMB_PREFIX, Media, MediaFile
from capture.web.queries import EventQueries
from capture.web.throttle import GuessThrottle
from capture.web.thumbnails import ThumbnailError, Thumbnails

if TYPE_CHECKING:
    from capture.service import Service

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
"""Open connections beyond this are closed at once (each holds a thread)."""
IDLE_TIMEOUT_S = 30
"""A connection that sends nothing (or reads nothing) for this long is closed."""
MAX_JSON_BODY = 64 * 1024
MAX_FORM_BODY = 4 * 1024
STREAM_KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies and the browser from dropping a quiet stream."""
IMMUTABLE_MAX_AGE_S = 7 * 86400
"""A snapshot at a URL naming its version (`?v=`) never changes, so browsers may keep it."""

_PAGES = {"/": "dashboard.html", "/events": "events.html", "/login": "login.html"}
_EVENT_PAGE = re.compile(r"^/events/([A-Za-z0-9.:_-]{1,64})$")
_EVENT_API = re.compile(r"^/api/events/([A-Za-z0-9.:_-]{1,64})$")
_LATEST_IMAGE = re.compile(r"^/latest/([^/]{1,128})\.jpg$")
"""A stable URL of a camera's newest picture, for wall screens and Node-RED flows."""
_TRIGGER_API = re.compile(r"^/api/trigger/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_QUERY_IN_TEXT = re.compile(r"\?[^\s'\"]*")


class WebError(CaptureError):
    """The web server cannot start; the message says which address and what to change."""


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Every file shipped in capture/web/static, read once: pages, styles, scripts."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("capture.web").joinpath("static").iterdir():
        suffix = Path(entry.name).suffix
        if entry.is_file() and suffix in _STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), _STATIC_TYPES[suffix])
    return files


class _Server(ThreadingHTTPServer):
    """The listening socket; tracks connections so stop can close idle keep-alive ones."""

    daemon_threads = False  # joined by server_close, so nothing outlives stop()
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], web: WebServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.web = web
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            full = len(self.connections) >= MAX_CONNECTIONS
            if not full:
                self.connections.add(request)
        if full:
            log.warning("web connection refused: %d connections open", MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open connection so handlers waiting for a next request return."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("web request failed client=%s", client_address[0])


class WebServer:
    """Serves the dashboard, the JSON API and `http` triggers for a running Service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.config = service.rules.web
        self.policy = AccessPolicy(self.config)
        self.throttle = GuessThrottle()
        self.media = Media(Path(service.rules.storage.root))
        self.thumbnails = Thumbnails()
        self.queries = EventQueries(service.journal.path)
        self.api = Api(service, self.media, self.queries)
        self.static = _load_static()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (the chosen one when the config says 0)."""
        if self._server is None:
            raise RuntimeError("web server not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The dashboard's address, as a person would type it."""
        host = self.config.bind
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve in a background thread; `WebError` if the address is unusable."""
        address = (self.config.bind, self.config.port)
        try:
            self._server = _Server(address, self)
        except OSError as exc:
            self.queries.close()
            raise WebError(
                f"web: cannot listen on {self.config.bind}:{self.config.port}: "
                f"{exc.strerror or exc}; choose another [web].port or stop what uses it"
            ) from exc
        self.service.engine.add_listener(self.api.feed.on_result)
        self.service.engine.add_report_listener(self.api.feed.on_firing)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="web-server",
            daemon=True,
        )
        self._thread.start()
        log.info(
            "web dashboard listening url=%s token=%s",
            self.url,
            "required" if not self.policy.loopback else
            ("for changes" if self.policy.token_configured
             else "none configured (changes only from the dashboard's pages)"),
        )  # fmt: skip

    def stop(self) -> None:
        """End event streams, close every connection, join every thread; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self.api.feed.close()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.queries.close()
        log.info("web dashboard stopped")


class _Handler(BaseHTTPRequestHandler):
    """One connection: parses, checks access, routes, answers."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server: _Server

    def version_string(self) -> str:
        return "event-capture"

    # ------------------------------------------------------------------ entry points

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_HEAD(self) -> None:
        """GET's answer without its body, for monitoring probes and `curl -I`."""
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        self._status = 0
        # An answer sent before the body was read must close the connection, or the
        # unread body would be parsed as the next request.
        self._unread_body = method == "POST"
        self._head_only = method == "HEAD"
        split = urlsplit(self.path)
        try:
            self.url_path = unquote(split.path, errors="strict")
        except UnicodeDecodeError:
            self.url_path = ""  # refused below as a bad path
        self.query = dict(parse_qsl(split.query, keep_blank_values=True, max_num_fields=20))
        try:
            self._route("GET" if self._head_only else method)
        except ApiError as exc:
            self._json(exc.status, {"error": str(exc)})
        except ValueError as exc:  # too many query fields
            self._json(400, {"error": str(exc)[:200]})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log.exception("web request failed method=%s path=%s", method, split.path[:200])
            if not self._status:
                self._json(500, {"error": "internal error; the service log has the details"})
            self.close_connection = True
        log.debug(
            "web request method=%s path=%s status=%d client=%s ms=%.1f",
            method, split.path[:200], self._status, self.client_address[0],
            (time.monotonic() - started) * 1000,
        )  # fmt: skip

    @property
    def web(self) -> WebServer:
        return self.server.web

    # ------------------------------------------------------------------ access

    def _route(self, method: str) -> None:
        path = self.url_path
        policy = self.web.policy
        if not path.startswith("/"):
            raise ApiError(400, "bad request path")
        # Reads are open on loopback, so a page on another site could reach them by DNS
        # rebinding: a foreign host name needs the token (421 when none is configured).
        local_host = policy.host_allowed(self.headers.get("Host"))
        if not local_host and not policy.token_configured:
            raise ApiError(421, "use http://127.0.0.1 or http://localhost to reach this service")
        token_query = method == "GET" and "token" in self.query
        authorization = self.headers.get("Authorization")
        if token_query or authorization or (path == "/login" and method == "POST"):
            wait = self.web.throttle.retry_after(self.client_address[0])
            if wait:
                self._too_many_guesses(wait)
                return
        if token_query:
            self._login_with_query_token()
            return
        if path == "/login":
            self._login(method)
            return
        if method == "GET" and path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
            return
        if not policy.allows(
            method, authorization, self.headers.get("Cookie"), local_host=local_host
        ):
            if authorization:
                self.web.throttle.failed(self.client_address[0])
            self._refuse(method)
            return
        if method == "GET":
            self._get(path)
        else:
            self._post(path)

    def _refuse(self, method: str) -> None:
        log.info(
            "web request refused: no valid token method=%s path=%s client=%s",
            method, self.url_path[:200], self.client_address[0],
        )  # fmt: skip
        if method == "GET" and self._wants_html():
            self._redirect("/login?" + urlencode({"next": self.url_path}))
            return
        if self.web.policy.token_configured:
            message = "a valid token is required: Authorization: Bearer <token>, or log in"
        else:
            message = (
                "changes need a token, and none is configured: set token_env or token_file "
                "in the rule file's [web] section, restart, and send Authorization: Bearer "
                "<token>; the dashboard's own buttons work without one (reload its page)"
            )
        self._json(401, {"error": message}, {"WWW-Authenticate": 'Bearer realm="event-capture"'})

    def _too_many_guesses(self, wait: float) -> None:
        log.warning(
            "web token attempts refused: too many wrong tokens client=%s retry_after_s=%.0f",
            self.client_address[0], wait,
        )  # fmt: skip
        retry = {"Retry-After": str(max(1, round(wait)))}
        message = "Too many wrong tokens from this address; try again in a minute."
        if self.url_path == "/login" or (self.command == "GET" and self._wants_html()):
            page, _ = self.web.static["login.html"]
            text = page.decode().replace("{{message}}", message).replace("{{next}}", "/")
            self._html(429, text.encode(), retry)
            return
        self._json(429, {"error": message}, retry)

    def _wants_html(self) -> bool:
        return self.url_path in _PAGES or bool(_EVENT_PAGE.match(self.url_path))

    def _login_with_query_token(self) -> None:
        """`?token=` once (a bookmark on a wall screen): set the cookie, drop the token from the URL."""
        token = self.query.pop("token")
        if not self.web.policy.token_matches(token):
            self.web.throttle.failed(self.client_address[0])
            log.info("web login refused: wrong token client=%s", self.client_address[0])
            self._login_page(401, "That token is not valid.", self.url_path)
            return
        rest = urlencode(self.query)
        # Re-quoted: the decoded path may hold CR/LF or non-Latin-1 text, unfit for a header.
        target = _local_target(quote(self.url_path, safe="/") + (f"?{rest}" if rest else ""))
        self._redirect(target, {"Set-Cookie": self.web.policy.session_cookie()})

    def _login(self, method: str) -> None:
        policy = self.web.policy
        if method == "GET" and policy.pages_open_sessions:
            # No token to type in: opening the page itself is what logs a browser in.
            self._redirect(_local_target(self.query.get("next", "/")))
            return
        if method == "GET":
            self._login_page(200, "", self.query.get("next", "/"))
            return
        form = dict(parse_qsl(self._body(MAX_FORM_BODY).decode("utf-8", "replace")))
        target = _local_target(form.get("next", "/"))
        if form.get("logout"):
            self._redirect("/login", {"Set-Cookie": policy.logout_cookie()})
        elif policy.token_matches(form.get("token", "")):
            log.info("web login client=%s", self.client_address[0])
            self._redirect(target, {"Set-Cookie": policy.session_cookie()})
        else:
            self.web.throttle.failed(self.client_address[0])
            log.info("web login refused: wrong token client=%s", self.client_address[0])
            self._login_page(401, "That token is not valid.", target)

    def _login_page(self, status: int, message: str, target: str) -> None:
        page, _ = self.web.static["login.html"]
        text = (
            page.decode()
            .replace("{{message}}", html.escape(message))
            .replace("{{next}}", html.escape(_local_target(target), quote=True))
        )
        self._html(status, text.encode())

    # ------------------------------------------------------------------ GET

    def _get(self, path: str) -> None:
        api = self.web.api
        if path in _PAGES:
            self._page(_PAGES[path])
        elif _EVENT_PAGE.match(path):
            self._page("event.html")
        elif path == "/api/cameras":
            self._json(200, api.cameras())
        elif path == "/api/events":
            self._json(200, api.events(self.query))
        elif match := _EVENT_API.match(path):
            self._json(200, api.event(match.group(1)))
        elif path == "/api/stream":
            self._stream()
        elif path.startswith(IMAGE_PREFIX):
            self._image(path.removeprefix(IMAGE_PREFIX), thumbnail=False)
        elif match := _LATEST_IMAGE.match(path):
            self._image(f"{LATEST_DIR}/{match.group(1)}.jpg", thumbnail=False)
        elif path.startswith(THUMB_PREFIX):
            self._image(path.removeprefix(THUMB_PREFIX), thumbnail=True)
        else:
            self._json(404, {"error": "not found"})

    def _page(self, name: str) -> None:
        body, _ = self.web.static[name]
        policy = self.web.policy
        session = None
        if policy.pages_open_sessions and not policy.authenticated(
            None, self.headers.get("Cookie")
        ):
            # The page's own buttons post with this cookie; a bare POST has none.
            session = {"Set-Cookie": policy.session_cookie()}
        self._html(200, body, session)

    def _static(self, name: str) -> None:
        entry = self.web.static.get(name) if not name.endswith(".html") else None
        if entry is None:
            self._json(404, {"error": "not found"})
            return
        body, content_type = entry
        self._send(200, body, content_type, {"Cache-Control": "no-cache"})

    def _image(self, relative: str, *, thumbnail: bool) -> None:
        media = self.web.media.find(relative)
        if media is None:
            # The same answer for refused and missing paths: nothing to learn by probing.
            self._json(404, {"error": "no such picture"})
            return
        etag = media.etag[:-1] + ('-t"' if thumbnail else '"')
        # Only a URL naming this very file may be kept unasked: retention deletes
        # snapshots and a later one may take the same name; latest/ is replaced in place.
        versioned = self.query.get("v") == media.version and not media.is_latest
        cache = (
            f"private, max-age={IMMUTABLE_MAX_AGE_S}, immutable"
            if versioned
            else "private, no-cache"
        )
        headers = {"ETag": etag, "Last-Modified": media.last_modified, "Cache-Control": cache}
        if self._not_modified(etag, media):
            self._send(304, b"", None, headers)
            return
        if thumbnail:
            try:
                body = self.web.thumbnails.get(media)
            except ThumbnailError as exc:
                log.warning("thumbnail failed: %s", exc)
                self._json(422, {"error": "this picture cannot be decoded"})
                return
            self._send(200, body, "image/jpeg", headers)
        else:
            self._send_file(media, headers)

    def _not_modified(self, etag: str, media: MediaFile) -> bool:
        match = self.headers.get("If-None-Match")
        if match is not None:
            return etag in (tag.strip() for tag in match.split(",")) or match.strip() == "*"
        since = self.headers.get("If-Modified-Since")
        if since is None:
            return False
        try:
            return int(media.mtime_ns // 1e9) <= int(parsedate_to_datetime(since).timestamp())
        except (TypeError, ValueError):
            return False

    def _send_file(self, media: MediaFile, headers: dict[str, str]) -> None:
        try:
            file = media.path.open("rb")
        except OSError:
            self._json(404, {"error": "no such picture"})  # deleted by retention meanwhile
            return
        with file:
            self._head(200, "image/jpeg", media.size, headers)
            if not self._head_only:
                shutil.copyfileobj(file, self.wfile, 256 * 1024)

    def _stream(self) -> None:
        if self._head_only:
            self._send(200, b"", "text/event-stream; charset=utf-8", {"Cache-Control": "no-store"})
            return
        subscription = self.web.api.feed.subscribe()
        if subscription is None:
            self._json(503, {"error": "too many event-stream clients; try again later"})
            return
        self.close_connection = True  # the stream ends with the connection
        try:
            self._status = 200
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.wfile.write(b"retry: 3000\n: connected\n\n")
            self.wfile.flush()
            while (message := subscription.next(STREAM_KEEPALIVE_S)) is not None:
                self.wfile.write(message or b": keepalive\n\n")
                self.wfile.flush()
        except OSError:
            pass  # the client went away
        finally:
            self.web.api.feed.unsubscribe(subscription)

    # ------------------------------------------------------------------ POST

    def _post(self, path: str) -> None:
        api = self.web.api
        if path == "/api/snap":
            self._json(202, api.snap(self._json_body()))
        elif match := _TRIGGER_API.match(path):
            name = match.group(1)
            if name not in self.web.service.triggers:
                raise ApiError(404, f"no running http trigger {name!r}")
            self._json(202, api.trigger(name, self._json_body(), self.client_address[0]))
        else:
            self._json(404, {"error": "not found"})

    def _json_body(self) -> object:
        content_type = self.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            # Also keeps cross-site HTML forms out: they cannot send this type.
            raise ApiError(415, "send the body as Content-Type: application/json")
        raw = self._body(MAX_JSON_BODY)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"the body is not valid JSON ({str(exc)[:120]})") from None

    def _body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "send a Content-Length (chunked bodies are not accepted)")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise ApiError(411, "a Content-Length header is required") from None
        if length < 0 or length > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes")
        self._unread_body = False
        return self.rfile.read(length)

    # ------------------------------------------------------------------ answers

    def _json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        self._send(
            status, body, "application/json", {"Cache-Control": "no-store", **(headers or {})}
        )

    def _html(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        headers = {"Cache-Control": "no-cache", "Content-Security-Policy": _CSP, **(extra or {})}
        self._send(status, body, "text/html; charset=utf-8", headers)

    def _redirect(self, target: str, headers: dict[str, str] | None = None) -> None:
        self._send(
            303, b"", None, {"Location": target, "Cache-Control": "no-store", **(headers or {})}
        )

    def _send(
        self, status: int, body: bytes, content_type: str | None, headers: dict[str, str]
    ) -> None:
        self._head(status, content_type, len(body), headers)
        if body and not self._head_only:
            self.wfile.write(body)

    def _head(
        self, status: int, content_type: str | None, length: int, headers: dict[str, str]
    ) -> None:
        self._status = status
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        for name, value in headers.items():
            self.send_header(name, value)
        if self._unread_body:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Access lines come from `_handle` (without query strings, which may hold a token)."""

    def log_message(self, format: str, *args: Any) -> None:
        # Malformed requests end here; their request line could carry ?token=.
        log.info(
            "web: %s client=%s",
            _QUERY_IN_TEXT.sub("?...", format % args)[:300],
            self.client_address[0],
        )


def _local_target(target: str) -> str:
    """A redirect target on this server only: a path, never `//host` or a scheme."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
