"""Runs the dashboard's ASGI app with uvicorn on a thread of the service, and stops it cleanly.

uvicorn's own event loop on one thread ("web-server") serves every
connection; routes that read the journal or make thumbnails run on its
worker threads. The socket is bound here, before the thread starts, so a
taken port is a `WebError` at start (the service then captures without the
dashboard). Limits: at most MAX_CONNECTIONS connections and running
requests together (uvicorn's `limit_concurrency`: beyond it a request is
answered 503), and a connection that sends nothing for IDLE_TIMEOUT_S is
closed (uvicorn's `timeout_keep_alive` between requests; `_IdleClosingH11`
applies it before the first request too). Stopping ends the event streams,
then uvicorn closes every connection and the thread is joined.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from capture.errors import CaptureError
from capture.events import FiringReport
from capture.journal import JournalError
from capture.web.api import Api
from capture.web.app import WebParts, create_app, load_static
from capture.web.auth import AccessPolicy
from capture.web.media import Media
from capture.web.queries import EventQueries
from capture.web.throttle import GuessThrottle
from capture.web.thumbnails import Thumbnails
from capture.web.view import ServiceView

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
"""Connections and running requests at once; beyond, requests are answered 503."""
IDLE_TIMEOUT_S = 30
"""A connection that sends nothing for this long is closed."""
STOP_TIMEOUT_S = 5
"""How long stopping waits for running requests before cancelling them."""
START_TIMEOUT_S = 10.0


class WebError(CaptureError):
    """The web server cannot start; the message says which address and what to change."""


class _IdleClosingH11(H11Protocol):
    """uvicorn's h11 protocol, with the idle timeout also before a request's head is complete.

    uvicorn arms its keep-alive timer only after an answer, so a connection
    that never sends a whole request would hold one of MAX_CONNECTIONS forever.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn declares BaseTransport, and hands an asyncio.Transport
        super().connection_made(transport)
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # disarms the timer
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and not self.transport.is_closing():
            self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )


class WebServer:
    """Serves the dashboard, the JSON API and `http` triggers for a running service."""

    def __init__(self, service: ServiceView) -> None:
        self.service = service
        self.config = service.rules.web
        self.policy = AccessPolicy(self.config)
        self.throttle = GuessThrottle()
        self.media = Media(Path(service.rules.storage.root))
        self.thumbnails = Thumbnails()
        self.queries = EventQueries(service.journal.path)
        self.api = Api(service, self.media, self.queries)
        self.app = create_app(
            WebParts(
                view=service,
                api=self.api,
                media=self.media,
                thumbnails=self.thumbnails,
                policy=self.policy,
                throttle=self.throttle,
                static=load_static(),
            )
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The bound TCP port (the chosen one when the config says 0)."""
        if self._server is None:
            raise RuntimeError("web server not started")
        return self._port

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
        """Bind, then serve on a background thread; `WebError` if the address is unusable."""
        sock = self._bind()
        # uvicorn's start-up lines are not ours to log; its warnings and errors are.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                http=_IdleClosingH11,
                ws="none",
                lifespan="off",
                log_config=None,
                access_log=False,  # our middleware logs each request, without its query
                proxy_headers=False,  # the throttle counts the real peer, not a header
                server_header=False,
                limit_concurrency=MAX_CONNECTIONS,
                timeout_keep_alive=IDLE_TIMEOUT_S,
                timeout_graceful_shutdown=STOP_TIMEOUT_S,
            )
        )
        # Built now rather than by the first request, which a person is waiting for.
        self.app.middleware_stack = self.app.build_middleware_stack()
        self._port = int(sock.getsockname()[1])
        self.service.engine.add_listener(self.api.feed.on_result)
        self.service.engine.add_report_listener(self._fired)
        if self.service.detection is not None:
            self.service.detection.add_listener(self._analysed)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="web-server", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        if not _wait(lambda: server.started or not thread.is_alive(), START_TIMEOUT_S):
            log.warning("web server still starting after %.0f s", START_TIMEOUT_S)
        log.info(
            "web dashboard listening url=%s token=%s",
            self.url,
            "required" if not self.policy.loopback else
            ("for changes" if self.policy.token_configured
             else "none configured (changes only from the dashboard's pages)"),
        )  # fmt: skip

    def _fired(self, report: FiringReport) -> None:
        """Tell open pages of a firing once its rows are committed: a page reloading at the
        message must find the event with all its frames (a slow SD card commits late)."""
        self._once_committed(lambda: self.api.feed.on_firing(report), "firing")

    def _analysed(self, report: FiringReport, _analyses: object) -> None:
        """Tell open pages an event's pictures were analysed, once they can read the rows.

        Never waits: detection calls this on a capture thread when its queue
        is full (the pictures it skips are reported too).
        """
        event_id, rule = report.event.id, report.rule
        self._once_committed(lambda: self.api.feed.on_detections(event_id, rule), "detections")

    def _once_committed(self, announce: Callable[[], None], what: str) -> None:
        """Run `announce` on the journal's writer thread after what is queued now is
        committed; nothing when no page listens. Never waits."""
        if not self.api.feed.watched:
            return
        try:
            self.service.journal.when_committed(announce)
        except JournalError as exc:  # closed: the service is stopping, and the pages with it
            log.debug("web: %s not announced: %s", what, exc)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.config.bind else socket.AF_INET
        # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it each answer's body waits ~40 ms for the client's delayed ACK of its head.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.bind, self.config.port))
        except OSError as exc:
            sock.close()
            self.queries.close()
            raise WebError(
                f"web: cannot listen on {self.config.bind}:{self.config.port}: "
                f"{exc.strerror or exc}; choose another [web].port or stop what uses it"
            ) from exc
        return sock

    def stop(self) -> None:
        """End event streams, close every connection, join the thread; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self.api.feed.close()
        server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S + 5)
        self.queries.close()
        log.info("web dashboard stopped")


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
