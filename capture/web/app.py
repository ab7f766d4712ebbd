"""The dashboard's ASGI app: pages, JSON API, pictures and the event stream as FastAPI routes.

Access is not decided here: `AccessMiddleware` (capture.web.access) has
passed every request that reaches a route. Routes answer errors as
`{"error": ...}` by raising `ApiError`. The OpenAPI description at
/openapi.json is FastAPI's, completed with the payload models of
capture.web.models and one path per running `http` trigger (capture.web.openapi), whose body
schema lists that trigger's `fields`; /docs renders it without any CDN.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from capture import __version__
from capture.sanitize import LATEST_DIR
from capture.triggers.values import PayloadFormatError, parse_json
from capture.web import models, openapi
from capture.web.access import (
    EVENT_PAGE,
    HEAD_KEY,
    AccessMiddleware,
    client_address,
    error,
    local_target,
    login_page,
    redirect,
)
from capture.web.api import DEFAULT_PAGE, MAX_OFFSET, MAX_PAGE, Api, ApiError
from capture.web.auth import AccessPolicy
from capture.web.live import LiveFeed, Subscription
from capture.web.media import Media, MediaFile
from capture.web.throttle import GuessThrottle
from capture.web.thumbnails import ThumbnailError, Thumbnails
from capture.web.view import ServiceView, http_trigger

log = logging.getLogger(__name__)

MAX_JSON_BODY = 64 * 1024
MAX_FORM_BODY = 4 * 1024
BODY_TIMEOUT_S = 30.0
"""A body announced but not sent within this long is refused (uvicorn has no such limit)."""
STREAM_KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies and the browser from dropping a quiet stream."""
IMMUTABLE_MAX_AGE_S = 7 * 86400
"""A snapshot at a URL naming its version (`?v=`) never changes, so browsers may keep it."""
_TRIGGER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}
_NO_TELEMETRY = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
"""FastAPI's OpenTelemetry hooks stay off: nothing here exports traces."""


@dataclass
class WebParts:
    """What the routes and the access middleware work with, built once by the WebServer."""

    view: ServiceView
    api: Api
    media: Media
    thumbnails: Thumbnails
    policy: AccessPolicy
    throttle: GuessThrottle
    static: dict[str, tuple[bytes, str]]

    @property
    def login_template(self) -> str:
        """The login page with its {{message}} and {{next}} placeholders."""
        return self.static["login.html"][0].decode()


def load_static() -> dict[str, tuple[bytes, str]]:
    """Every file shipped in capture/web/static, read once: pages, styles, scripts."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("capture.web").joinpath("static").iterdir():
        suffix = Path(entry.name).suffix
        if entry.is_file() and suffix in _STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), _STATIC_TYPES[suffix])
    return files


class DashboardApp(FastAPI):
    """FastAPI with an OpenAPI description that follows the running http triggers."""

    def __init__(self, parts: WebParts, **options: Any) -> None:
        super().__init__(**options)
        self.parts = parts
        self._base_schema: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        """The description: routes and payload models, plus one path per running http trigger."""
        if self._base_schema is None:
            self._base_schema = openapi.with_payload_models(super().openapi())
        return openapi.describe(self._base_schema, self.parts.view)


def create_app(parts: WebParts) -> DashboardApp:
    """The app with every route, the error answers and the access middleware."""
    app = DashboardApp(
        parts,
        title="event-capture",
        version=__version__,
        description=openapi.DESCRIPTION,
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: /docs is ours
        redoc_url=None,
        openapi_url="/openapi.json",
        telemetry=_NO_TELEMETRY,
    )
    # Starlette types every handler as taking any Exception; each of ours takes the one
    # exception class it is registered for, which is what Starlette calls it with.
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_middleware(
        AccessMiddleware,
        policy=parts.policy,
        throttle=parts.throttle,
        login_template=parts.login_template,
    )
    _page_routes(app, parts)
    _api_routes(app, parts)
    _picture_routes(app, parts)
    return app


# ---------------------------------------------------------------------- errors


async def _api_error(request: Request, exc: ApiError) -> Response:
    return error(exc.status, str(exc))


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code in (404, 405):
        return error(404, "not found")  # also a known path with another method
    return error(exc.status_code, str(exc.detail))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = [
        f"{'.'.join(str(part) for part in problem['loc'][1:])}: {problem['msg']}"
        for problem in exc.errors()
    ]
    return error(400, "; ".join(problems)[:300] or "bad request")


# ---------------------------------------------------------------------- bodies and answers


def api_json(document: Any, status: int = 200) -> JSONResponse:
    """An API document, never cached."""
    return JSONResponse(document, status, {"Cache-Control": "no-store"})


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body: a Content-Length is required and at most `limit` bytes."""
    if request.headers.get("transfer-encoding"):
        raise ApiError(411, "send a Content-Length (chunked bodies are not accepted)")
    try:
        length = int(request.headers.get("content-length", ""))
    except ValueError:
        raise ApiError(411, "a Content-Length header is required") from None
    if length < 0 or length > limit:
        raise ApiError(413, f"the body is larger than {limit} bytes")
    try:
        return await asyncio.wait_for(request.body(), BODY_TIMEOUT_S)
    except TimeoutError:
        raise ApiError(408, f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s") from None


async def json_body(request: Request) -> object:
    """The JSON body; only `application/json`, which cross-site HTML forms cannot send."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "send the body as Content-Type: application/json")
    raw = await read_body(request, MAX_JSON_BODY)
    try:
        # The triggers' parser: NaN and Infinity are refused, as from MQTT.
        return parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, PayloadFormatError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({str(exc)[:120]})") from None


# ---------------------------------------------------------------------- pages


def _page_routes(app: FastAPI, parts: WebParts) -> None:
    # Pages and static files are in memory: served on the event loop, no worker thread.
    def page(name: str) -> Response:
        body, content_type = parts.static[name]
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-cache"})

    html: dict[str, Any] = {"response_class": HTMLResponse, "tags": ["pages"]}

    @app.get("/", summary="The dashboard: cameras by line, live", **html)
    async def dashboard() -> Response:
        return page("dashboard.html")

    @app.get("/events", summary="Events, newest first, with filters", **html)
    async def events_page() -> Response:
        return page("events.html")

    @app.get("/events/{event_id}", summary="One event with every frame", **html)
    async def event_page(event_id: str) -> Response:
        if not EVENT_PAGE.match(f"/events/{event_id}"):
            raise ApiError(404, "not found")
        return page("event.html")

    @app.get("/docs", summary="This API description, readable", **html)
    async def api_page() -> Response:
        return page("api.html")

    @app.get("/login", summary="The token form", **html)
    async def login_form(
        target: Annotated[str, Query(alias="next", description="Where to go after.")] = "/",
    ) -> Response:
        if parts.policy.pages_open_sessions:
            # No token to type in: opening the page itself is what logs a browser in.
            return redirect(local_target(target))
        return login_page(parts.login_template, 200, "", target)

    @app.post("/login", summary="Log in (form: token, next) or out (form: logout=1)", **html)
    async def login(request: Request) -> Response:
        raw = await read_body(request, MAX_FORM_BODY)
        form = dict(parse_qsl(raw.decode("utf-8", "replace")))
        target = local_target(form.get("next", "/"))
        client = client_address(request.scope)
        if form.get("logout"):
            return redirect("/login", {"Set-Cookie": parts.policy.logout_cookie()})
        if parts.policy.token_matches(form.get("token", "")):
            log.info("web login client=%s", client)
            return redirect(target, {"Set-Cookie": parts.policy.session_cookie()})
        parts.throttle.failed(client)
        log.info("web login refused: wrong token client=%s", client)
        return login_page(parts.login_template, 401, "That token is not valid.", target)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        entry = parts.static.get(name) if not name.endswith(".html") else None
        if entry is None:
            raise ApiError(404, "not found")
        body, content_type = entry
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-cache"})


# ---------------------------------------------------------------------- API


def _api_routes(app: FastAPI, parts: WebParts) -> None:
    api = parts.api
    tags: list[str | Enum] = ["api"]

    @app.get(
        "/api/cameras",
        tags=tags,
        summary="Every camera by line: latest picture, status, last hour's figures",
        responses={200: {"model": models.CamerasDocument}, **openapi.error_responses(401)},
    )
    def cameras() -> JSONResponse:
        return api_json(api.cameras())

    @app.get(
        "/api/events",
        tags=tags,
        summary="Events newest first, with every frame; an event is listed when a frame matches",
        responses={200: {"model": models.EventsPage}, **openapi.error_responses(400, 401)},
    )
    def events(
        *,
        line: Annotated[str | None, Query(description="Production line.")] = None,
        camera: Annotated[str | None, Query(description="Camera name.")] = None,
        rule: Annotated[str | None, Query(description="Rule name; `snap` for snaps.")] = None,
        failed: Annotated[bool, Query(description="Only events with a failed frame.")] = False,
        detected: Annotated[
            str | None,
            Query(
                alias="class",
                max_length=64,
                description="Only events where object detection found this class.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> JSONResponse:
        page = api.events(
            line=line,
            camera=camera,
            rule=rule,
            failed=failed,
            detected=detected,
            limit=limit,
            offset=offset,
        )
        return api_json(page)

    @app.get(
        "/api/events/{event_id}",
        tags=tags,
        summary="One event with every frame of every rule",
        responses={200: {"model": models.EventDocument}, **openapi.error_responses(401, 404)},
    )
    def event(event_id: str) -> JSONResponse:
        return api_json(api.event(event_id))

    @app.post(
        "/api/snap",
        tags=tags,
        status_code=202,
        summary="Take a picture of a camera, or fire a rule, now",
        responses={
            202: {"model": models.SnapAccepted},
            **openapi.error_responses(400, 401, 404, 415, 503),
        },
        openapi_extra={"requestBody": openapi.json_model(models.SnapRequest, "camera or rule")},
    )
    async def snap(request: Request) -> JSONResponse:
        return api_json(api.snap(await json_body(request)), 202)

    @app.post("/api/trigger/{name}", include_in_schema=False)  # one path per trigger: openapi()
    async def fire(name: str, request: Request) -> JSONResponse:
        if not _TRIGGER_NAME.match(name) or http_trigger(parts.view, name) is None:
            raise ApiError(404, f"no running http trigger {name[:64]!r}")
        body = await json_body(request)
        return api_json(api.trigger(name, body, client_address(request.scope)), 202)

    stream_schema = {
        "oneOf": [
            {"$ref": "#/components/schemas/CaptureMessage"},
            {"$ref": "#/components/schemas/FiringMessage"},
            {"$ref": "#/components/schemas/DetectionsMessage"},
        ]
    }

    @app.get(
        "/api/stream",
        tags=tags,
        summary="Server-Sent Events: `capture`, `firing` and `detections` messages as they happen",
        description="Each message's `data` is one JSON document: `event: capture` a "
        "CaptureMessage, `event: firing` a FiringMessage, `event: detections` (with "
        "[detection]) a DetectionsMessage. A comment line every 15 s keeps the connection "
        "open; at most 32 clients. Messages sent while a client was away are not replayed: "
        "reload what you show when the stream (re)opens.",
        responses={
            200: {
                "description": "The stream.",
                "content": {"text/event-stream": {"schema": stream_schema}},
            },
            **openapi.error_responses(401, 503),
        },
    )
    async def stream(request: Request) -> Response:
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        media_type = "text/event-stream; charset=utf-8"
        if request.scope.get(HEAD_KEY):
            return Response(b"", media_type=media_type, headers=headers)
        subscription = api.feed.subscribe(asyncio.get_running_loop())
        if subscription is None:
            raise ApiError(503, "too many event-stream clients; try again later")
        return StreamingResponse(
            _stream_messages(api.feed, subscription), media_type=media_type, headers=headers
        )


async def _stream_messages(feed: LiveFeed, subscription: Subscription) -> AsyncIterator[bytes]:
    try:
        yield b"retry: 3000\n: connected\n\n"
        while (message := await subscription.next(STREAM_KEEPALIVE_S)) is not None:
            yield message or b": keepalive\n\n"
    finally:
        feed.unsubscribe(subscription)


# ---------------------------------------------------------------------- pictures


PictureVersion = Annotated[
    str | None,
    Query(description="The file's version, as in the API's URLs: makes the answer immutable."),
]


def _picture_routes(app: FastAPI, parts: WebParts) -> None:
    jpeg: dict[str, Any] = {
        "tags": ["pictures"],
        "response_class": Response,
        "responses": {
            200: {"content": {"image/jpeg": {}}, "description": "The JPEG."},
            304: {"description": "Not modified (If-None-Match, If-Modified-Since)."},
            **openapi.error_responses(401, 404),
        },
    }

    @app.get("/media/{path:path}", summary="A picture under the storage root", **jpeg)
    def picture(path: str, request: Request, v: PictureVersion = None) -> Response:
        return _picture(parts, path, v, request, thumbnail=False)

    @app.get("/thumbs/{path:path}", summary="A picture's thumbnail (at most 480x360)", **jpeg)
    def thumbnail(path: str, request: Request, v: PictureVersion = None) -> Response:
        return _picture(parts, path, v, request, thumbnail=True)

    @app.get("/latest/{camera}.jpg", summary="A camera's newest picture, at a stable URL", **jpeg)
    def latest(camera: str, request: Request) -> Response:
        if len(camera) > 128:
            raise ApiError(404, "no such picture")
        return _picture(parts, f"{LATEST_DIR}/{camera}.jpg", None, request, thumbnail=False)


def _picture(
    parts: WebParts, relative: str, version: str | None, request: Request, *, thumbnail: bool
) -> Response:
    media = parts.media.find(relative)
    if media is None:
        # The same answer for refused and missing paths: nothing to learn by probing.
        return error(404, "no such picture")
    etag = media.etag[:-1] + ('-t"' if thumbnail else '"')
    # Only a URL naming this very file may be kept unasked: retention deletes
    # snapshots and a later one may take the same name; latest/ is replaced in place.
    versioned = version == media.version and not media.is_latest
    cache = (
        f"private, max-age={IMMUTABLE_MAX_AGE_S}, immutable" if versioned else "private, no-cache"
    )
    headers = {"ETag": etag, "Last-Modified": media.last_modified, "Cache-Control": cache}
    if _not_modified(request, etag, media):
        return Response(status_code=304, headers=headers)
    try:
        body = parts.thumbnails.get(media) if thumbnail else media.path.read_bytes()
    except ThumbnailError as exc:
        log.warning("thumbnail failed: %s", exc)
        return error(422, "this picture cannot be decoded")
    except OSError:
        return error(404, "no such picture")  # deleted by retention meanwhile
    return Response(body, media_type="image/jpeg", headers=headers)


def _not_modified(request: Request, etag: str, media: MediaFile) -> bool:
    match = request.headers.get("if-none-match")
    if match is not None:
        return etag in (tag.strip() for tag in match.split(",")) or match.strip() == "*"
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        return int(media.mtime_ns // 1e9) <= int(parsedate_to_datetime(since).timestamp())
    except (TypeError, ValueError):
        return False
