"""Runs simulated cameras on real sockets: one threaded HTTP/1.1 server and port per camera.

Real cameras are distinct host:port pairs with keep-alive connections, so
each simulated one gets its own listening socket. Stopping is clean: idle
keep-alive connections are shut down, waits (latency, streams) are woken by
one event, and every handler thread is joined, so tests leak nothing.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from capture.simulator.camera import SimulatedCamera, SimulatorConfigError
from capture.simulator.device import Device
from capture.simulator.faults import Faults
from capture.simulator.protocol import Answer, Drop, Reply, Request, StreamControl, StreamReply

logger = logging.getLogger(__name__)

KEEPALIVE_TIMEOUT_S = 60
"""Idle keep-alive connections are closed after this long, like Hikvision's `timeout=60`."""


GOAHEAD_LINES = ("Pragma no-cache", "X-Frame-Options : SAMEORIGIN")
"""Header lines as GoAhead-based cameras write them: no colon, a space before the colon."""


class SimulatorError(RuntimeError):
    """The simulator could not start (port taken) or was asked about an unknown camera."""


class _Handler(BaseHTTPRequestHandler):
    """Parses requests and writes answers; what to answer is the device's business."""

    protocol_version = "HTTP/1.1"
    timeout = KEEPALIVE_TIMEOUT_S
    server: _CameraServer

    def setup(self) -> None:
        super().setup()
        # One write per response plus no Nagle: no 40 ms delayed-ACK stalls on keep-alive.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        query: dict[str, str] = {}
        for key, value in parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(key, value)
        request = Request(
            method=self.command,
            target=self.path,
            path=unquote(split.path),
            query=query,
            headers={key.lower(): value for key, value in self.headers.items()},
        )
        device = self.server.device
        device.request_started()
        answering = True
        try:
            answer = device.handle(request)
            if not isinstance(answer, StreamReply):
                # Done before the answer leaves: a client that asks again as soon as it has
                # it must not be counted as a second request in flight.
                device.request_finished()
                answering = False
            self._answer(answer)
        finally:
            if answering:  # a stream is in flight until it ends
                device.request_finished()

    def _answer(self, answer: Answer) -> None:
        try:
            if isinstance(answer, Reply):
                self._write_reply(answer)
            elif isinstance(answer, StreamReply):
                self.close_connection = True
                answer.write(self.wfile, StreamControl(self.server.stopping, self._peer_closed))
            elif isinstance(answer, Drop):
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write_reply(self, reply: Reply) -> None:
        close = reply.close or reply.declared_length is not None or self.close_connection
        length = len(reply.body) if reply.declared_length is None else reply.declared_length
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            f"Server: {self.server.device.personality.server_header}",
            f"Date: {_http_date()}",
        ]
        if reply.content_type is not None:
            lines.append(f"Content-Type: {reply.content_type}")
        lines.append(f"Content-Length: {length}")
        lines.extend(f"{name}: {value}" for name, value in reply.headers)
        if reply.sloppy_headers:
            lines.extend(GOAHEAD_LINES)
        lines.append("Connection: close" if close else "Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + reply.body)
        self.close_connection = close

    def _peer_closed(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("camera=%s %s", self.server.device.camera.name, format % args)


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header value, formatted once per second."""
    global _date_cache  # noqa: PLW0603 - a tiny cache shared by all handler threads
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class _CameraServer(ThreadingHTTPServer):
    """The listening socket of one simulated camera."""

    daemon_threads = False  # joined on close, so nothing outlives stop()
    block_on_close = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, host: str, port: int, device: Device, stopping: threading.Event) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.device = device
        self.stopping = stopping
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection so idle keep-alive handlers return at once."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception(
            "request failed camera=%s client=%s", self.device.camera.name, client_address
        )


class Simulator:
    """Simulated cameras on real sockets, started and stopped together.

    Use as a context manager, or call `start()` and `stop()`. Each camera gets
    its own port: `base_port + index` when `base_port` is given, else a free
    port chosen by the OS.
    """

    def __init__(
        self,
        cameras: list[SimulatedCamera] | tuple[SimulatedCamera, ...],
        host: str = "127.0.0.1",
        base_port: int | None = None,
    ) -> None:
        names = [camera.name for camera in cameras]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise SimulatorConfigError(f"duplicate simulated camera names: {', '.join(duplicates)}")
        if not cameras:
            raise SimulatorConfigError("the simulator needs at least one camera")
        self.host = host
        self.base_port = base_port
        self._stopping = threading.Event()
        self._devices = {camera.name: Device(camera, self._stopping) for camera in cameras}
        self._servers: dict[str, _CameraServer] = {}
        self._threads: list[threading.Thread] = []

    @property
    def cameras(self) -> list[SimulatedCamera]:
        """The simulated cameras, in the order given."""
        return [device.camera for device in self._devices.values()]

    def start(self) -> None:
        """Bind every camera's port, then serve; nothing is left bound if one port fails."""
        if self._servers:
            raise SimulatorError("simulator already started")
        self._stopping.clear()
        try:
            for index, (name, device) in enumerate(self._devices.items()):
                port = 0 if self.base_port is None else self.base_port + index
                try:
                    self._servers[name] = _CameraServer(self.host, port, device, self._stopping)
                except OSError as error:
                    raise SimulatorError(
                        f"simulated camera {name}: cannot listen on {self.host}:{port}: "
                        f"{error.strerror or error}; choose another --base-port"
                    ) from error
        except BaseException:
            for server in self._servers.values():
                server.server_close()
            self._servers.clear()
            raise
        for name, server in self._servers.items():
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"simulator-{name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
            logger.info(
                "simulated camera started camera=%s vendor=%s url=%s",
                name,
                self._devices[name].camera.vendor,
                self.url_of(name),
            )

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread."""
        self._stopping.set()
        for server in self._servers.values():
            server.shutdown()
        for server in self._servers.values():
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join()
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ queries

    def _device(self, name: str) -> Device:
        try:
            return self._devices[name]
        except KeyError:
            raise SimulatorError(
                f"no simulated camera {name!r}; known: {', '.join(self._devices)}"
            ) from None

    def drop_connections(self, name: str) -> None:
        """Cut every open connection of camera `name` (a network drop: its streams end)."""
        self._device(name)
        server = self._servers.get(name)
        if server is None:
            raise SimulatorError("simulator not started")
        server.close_connections()

    def port_of(self, name: str) -> int:
        """The TCP port camera `name` listens on (the simulator must be started)."""
        self._device(name)
        server = self._servers.get(name)
        if server is None:
            raise SimulatorError("simulator not started")
        return int(server.server_address[1])

    def url_of(self, name: str) -> str:
        """Base URL of camera `name`, e.g. http://127.0.0.1:41234 (no path)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port_of(name)}"

    def example_url_of(self, name: str) -> str:
        """A URL of camera `name`'s main endpoint, for people to paste into a browser."""
        device = self._device(name)
        url = self.url_of(name) + (device.camera.path or device.personality.example_path)
        if device.camera.effective_auth == "query":
            user_param, password_param = device.personality.query_params
            credentials = {user_param: device.camera.user, password_param: device.camera.password}
            url += ("&" if "?" in url else "?") + urlencode(credentials)
        return url

    def faults(self, name: str) -> Faults:
        """The live fault switches of camera `name`."""
        return self._device(name).faults

    def reset_faults(self, name: str) -> None:
        """Faults off and account unlocked for camera `name`; counters are kept."""
        self._device(name).reset()

    def request_count(self, name: str) -> int:
        """HTTP requests camera `name` has received."""
        return self._device(name).request_count

    def bad_login_count(self, name: str) -> int:
        """Requests camera `name` rejected for wrong credentials."""
        return self._device(name).bad_login_count

    def peak_in_flight(self, name: str) -> int:
        """The most requests camera `name` handled at once (since start or its last reset)."""
        return self._device(name).peak_in_flight

    def is_locked(self, name: str) -> bool:
        """Whether camera `name`'s account is locked by the lockout fault."""
        return self._device(name).locked
