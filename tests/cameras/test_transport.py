"""The camera transport that ships, byte for byte, against a scripted server on a real socket.

Every answer here is written out by hand the way a device sends it, so each
framing rule, the GoAhead-style heads that go to the lenient fallback, each
refusal and its type, and the deadline guard are pinned down at the wire,
below anything httpx could smooth over.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from capture.cameras import Camera, build_camera
from capture.cameras.errors import CameraError
from capture.cameras.exchange import (
    CutInHead,
    Deadline,
    DeadlinePassed,
    Dropped,
    Exchange,
    HeadTooLarge,
    Malformed,
    Truncated,
    active,
)
from capture.cameras.failures import root_cause
from capture.cameras.transport import DeviceTransport
from tests.cameras.helpers import camera_config, make_jpeg

#: One scripted answer: bytes to send, or a callable given the socket for anything stranger.
Answer = bytes | Callable[[socket.socket], None]


class ScriptedServer:
    """Accepts connections; answers each request with the next scripted answer, in order."""

    def __init__(self, answers: list[Answer], *, tls: ssl.SSLContext | None = None) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = 0
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._handlers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str = "/snap.jpg", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            handler = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._handlers.append(handler)
            handler.start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            buffer = b""
            while self.answers:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                request, _, buffer = buffer.partition(b"\r\n\r\n")
                self.requests.append(request)
                answer = self.answers.pop(0)
                if callable(answer):
                    answer(conn)
                    return
                conn.sendall(answer)
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()
            self.closed += 1

    def close(self) -> None:
        """Stop accepting, end every connection, and wait for the server's threads."""
        for sock in (self._listener, *self._open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() or recv()
        self._listener.close()
        for thread in (self._thread, *self._handlers):
            thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(*answers: Answer, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        server = ScriptedServer(list(answers), tls=tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def transport(**options: object) -> DeviceTransport:
    settings: dict[str, object] = {
        "ssl_context": None,
        "max_connections": 1,
        "keepalive_expiry": 5.0,
    }
    settings.update(options)
    return DeviceTransport("cam", **settings)  # type: ignore[arg-type]


class Client(httpx.Client):
    """An httpx client on the camera transport; each request in an exchange, as CameraHttp does."""

    def __init__(self, deadline_s: float = 2.0, max_head_bytes: int = 64 * 1024, **options: object):
        super().__init__(transport=transport(**options), timeout=2.0)
        self.deadline_s = deadline_s
        self.max_head_bytes = max_head_bytes
        self.last: Exchange | None = None

    def send(self, request: httpx.Request, **kwargs: object) -> httpx.Response:  # type: ignore[override]
        self.last = exchange = Exchange(Deadline(self.deadline_s), self.max_head_bytes)
        request.extensions["trace"] = exchange
        with active(exchange):
            response = super().send(request, **kwargs)  # type: ignore[arg-type]
            if not kwargs.get("stream"):
                return response
        return response


@pytest.fixture
def client() -> Iterator[Client]:
    with Client() as client:
        yield client


def ok(body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Type: image/jpeg", b"Content-Length: %d" % len(body)]
    return b"\r\n".join([*head, *extra]) + b"\r\n\r\n" + body


JPEG = b"\xff\xd8" + bytes(range(256)) * 40 + b"\xff\xd9"


def test_sized_body_and_keepalive_reuses_one_connection(serve, client) -> None:
    server = serve(ok(JPEG), ok(b"second"))
    first = client.get(server.url())
    second = client.get(server.url("/other?x=1&y=%20"))
    assert (first.status_code, first.content) == (200, JPEG)
    assert second.content == b"second"
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /snap.jpg HTTP/1.1\r\n")
    assert server.requests[1].startswith(b"GET /other?x=1&y=%20 HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:%d" % server.port in server.requests[0]


def test_chunked_body_with_extensions_and_trailers(serve, client) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    server = serve(answer, ok(b"next"))
    assert client.get(server.url()).content == b"abcdefg"
    assert client.get(server.url()).content == b"next"
    assert server.connections == 1


def test_body_without_length_runs_to_close_and_is_not_reused(serve, client) -> None:
    def close_delimited(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n" + JPEG)

    server = serve(close_delimited, ok(b"again"))
    assert client.get(server.url()).content == JPEG
    assert client.get(server.url()).content == b"again"
    assert server.connections == 2


def test_a_401_with_connection_close_is_answered_on_a_new_connection(serve, client) -> None:
    """A Dahua-family NVR closes after its digest challenge (reference 3.7, rroller/dahua#631)."""
    challenge = (
        b"HTTP/1.1 401 Unauthorized\r\n"
        b'WWW-Authenticate: Digest realm="NVR", qop="auth", nonce="abc123"\r\n'
        b"Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    server = serve(challenge, ok(JPEG))
    response = client.get(server.url(), auth=httpx.DigestAuth("admin", "pw"))
    assert (response.status_code, response.content) == (200, JPEG)
    assert server.connections == 2
    assert b"authorization: digest" in server.requests[1].lower()


def test_lf_only_heads_without_reason_phrase_are_read_by_h11(serve, client) -> None:
    answer = (
        b"HTTP/1.1 200\n"  # LF-only lines, no reason phrase
        b"Content-Type:image/jpeg\n"  # no space after the colon
        b"X-Folded: first\n  second\n"  # obsolete folding
        b"Content-Length: 4\n"
        b"Content-Length: 4\n\nbody"  # repeated identical lengths
    )
    response = client.get(serve(answer).url())
    assert response.content == b"body"
    assert response.headers["x-folded"] == "first second"
    assert response.reason_phrase == ""
    assert not client._transport.lenient.on  # type: ignore[attr-defined]


GOAHEAD = (
    b"HTTP/1.0 200 OK\r\n"
    b"Tue, 12 Jun 2012 01:56:34 GMT\r\n"  # a header line with no name
    b"Content-Type:image/jpeg\r\n"  # no space after the colon
    b"X-Frame-Options : SAMEORIGIN\r\n"  # space before the colon
    b"Server:\r\n"  # empty value
    b"Transfer-Encoding: chunked\r\n\r\n"
    b"4 \r\nbody\r\n0\r\n\r\n"  # chunk size with a trailing space
)


def test_goahead_heads_go_to_the_lenient_parser_once_and_for_good(
    serve, client, caplog: pytest.LogCaptureFixture
) -> None:
    """Heads of GoAhead-based clones (shared/reference/camera-apis.md 3.7): h11 refuses them."""
    server = serve(GOAHEAD, GOAHEAD, GOAHEAD, ok(b"after"))
    with caplog.at_level(logging.WARNING, logger="capture.cameras.transport"):
        response = client.get(server.url())
        assert response.content == b"body"
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["x-frame-options"] == "SAMEORIGIN"
        assert response.headers["server"] == ""
        assert client.get(server.url()).content == b"body"
        assert client.get(server.url()).content == b"after"
    # The first answer was asked twice (h11, then http.client); from then on only http.client.
    assert len(server.requests) == 4
    learned = [r for r in caplog.records if "event=lenient_http" in r.getMessage()]
    assert len(learned) == 1


def test_a_lenient_device_keeps_its_connection_alive(serve, client) -> None:
    sloppy = b"HTTP/1.1 200 OK\r\nX-Frame-Options : DENY\r\nContent-Length: 4\r\n\r\n"
    server = serve(sloppy + b"body", sloppy + b"body", sloppy + b"next", sloppy + b"last")
    assert [client.get(server.url()).content for _ in range(3)] == [b"body", b"next", b"last"]
    assert server.connections == 2  # the refused first answer's connection, then one for all


def test_close_delimited_answers_stay_readable_and_close_when_dropped(serve, client) -> None:
    """http.client gives a close-delimited answer's socket to the response (an MJPEG stream):
    the body must stay readable to its end, and the socket close when it is dropped early."""
    sloppy = b"HTTP/1.0 200 OK\r\nX-Frame-Options : DENY\r\nConnection: close\r\n\r\n"
    dropped = threading.Event()

    def whole(conn: socket.socket) -> None:
        conn.sendall(sloppy + b"the whole body")

    def endless(conn: socket.socket) -> None:
        conn.sendall(sloppy)
        try:
            while not dropped.wait(0.01):
                conn.sendall(b"frame" * 1000)
        except OSError:
            dropped.set()

    server = serve(whole, whole, endless)
    assert client.get(server.url()).content == b"the whole body"
    with client.stream("GET", server.url()) as response:
        assert next(response.iter_raw())[:5] == b"frame"
    assert dropped.wait(5), "the client kept the dropped stream's socket open"


def test_unusual_status_codes_pass_through(serve, client) -> None:
    server = serve(b"HTTP/1.1 600 Vendor\r\nContent-Length: 2\r\n\r\nno")
    response = client.get(server.url())
    assert (response.status_code, response.content) == (600, b"no")


def test_interim_100_continue_is_skipped(serve, client) -> None:
    server = serve(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"real"))
    assert client.get(server.url()).content == b"real"


def test_no_body_for_head_204_and_304(serve, client) -> None:
    server = serve(
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        ok(b"last"),
    )
    assert client.get(server.url()).content == b""
    assert client.get(server.url()).content == b""
    assert client.head(server.url()).content == b""
    assert client.get(server.url()).content == b"last"
    assert server.connections == 1


def test_connection_close_header_is_honoured(serve, client) -> None:
    server = serve(ok(b"one", b"Connection: close"), ok(b"two"))
    assert client.get(server.url()).content == b"one"
    assert client.get(server.url()).content == b"two"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (lambda conn: None, Dropped),
        (
            lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"),
            Truncated,
        ),
        (
            lambda conn: conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc"
            ),
            Truncated,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", Malformed),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n", Malformed),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x4\r\nabcd\r\n", Malformed),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", Malformed),
        (  # the CRLF after a chunk's data is checked
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdXX0\r\n\r\n",
            Malformed,
        ),
        (b"<html>not http</html>\r\n\r\n", Malformed),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", Malformed),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", Malformed),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", Malformed),
        (  # Content-Length never wins over a Transfer-Encoding it cannot frame
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
            Malformed,
        ),
        (lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Le"), CutInHead),
    ],
    ids=[
        "no-answer",
        "short-body",
        "short-chunk",
        "bad-chunk",
        "negative-chunk",
        "0x-chunk",
        "underscore-chunk",
        "no-crlf-after-chunk",
        "not-http",
        "four-digit-status",
        "two-lengths",
        "negative-length",
        "gzip-te-with-length",
        "cut-head",
    ],
)
def test_broken_answers_fail_typed_and_never_go_lenient(
    serve, client, answer: Answer, kind
) -> None:
    server = serve(answer, ok(b"must not be asked for"))
    with pytest.raises(kind):
        client.get(server.url())
    assert len(server.requests) == 1
    assert not client._transport.lenient.on  # type: ignore[attr-defined]


def reset(conn: socket.socket, *sent: bytes) -> None:
    """Send `sent`, then abort the connection (RST), as a rebooting camera does."""
    for data in sent:
        conn.sendall(data)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@pytest.mark.parametrize(
    ("sent", "kind"),
    [
        ((), Dropped),
        ((b"HTTP/1.1 200 OK\r\nContent-Le",), CutInHead),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", JPEG[:1000]), Truncated),
    ],
    ids=["before-answer", "in-head", "in-body"],
)
def test_a_reset_connection_is_typed_by_where_the_answer_stood(serve, client, sent, kind) -> None:
    server = serve(lambda conn: reset(conn, *sent))
    with pytest.raises(kind):
        client.get(server.url())


def test_a_malformed_answer_says_where_it_broke(serve, client) -> None:
    server = serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n")
    with pytest.raises(Malformed) as caught:
        client.get(server.url())
    assert caught.value.in_head is False
    server = serve(b"HTTX/1.1 200 OK\r\n\r\n")
    with pytest.raises(Malformed) as caught:
        client.get(server.url())
    assert caught.value.in_head is True


def test_a_head_longer_than_the_cap_is_refused(serve) -> None:
    server = serve(b"HTTP/1.1 200 OK\r\n" + b"X-Junk: " + b"a" * 70_000 + b"\r\n\r\n")
    with Client(max_head_bytes=16 * 1024) as client, pytest.raises(HeadTooLarge):
        client.get(server.url())


def test_a_flood_of_interim_answers_counts_as_one_head(serve) -> None:
    def flood(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for _ in range(100_000):
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * 100)

    server = serve(flood)
    with Client(max_head_bytes=16 * 1024) as client, pytest.raises(HeadTooLarge):
        client.get(server.url())


def test_a_head_sent_a_byte_at_a_time_is_cut_at_the_deadline(serve) -> None:
    def dribble(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100:
                conn.sendall(bytes([byte]))
                time.sleep(0.05)

    server = serve(dribble)
    with Client(deadline_s=0.6) as client:
        started = time.monotonic()
        with pytest.raises(DeadlinePassed, match="while reading the status line and headers"):
            client.get(server.url())
    assert time.monotonic() - started < 1.6  # the deadline, not the per-read timeout (2 s)


def test_a_body_sent_slowly_is_cut_at_the_deadline(serve) -> None:
    def dribble(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                conn.sendall(b"x")
                time.sleep(0.05)

    server = serve(dribble)
    with Client(deadline_s=0.6) as client, pytest.raises(DeadlinePassed, match="body"):
        client.get(server.url())


def test_read_timeout_and_refused_connection(serve) -> None:
    server = serve(lambda conn: time.sleep(1))
    with Client(deadline_s=5) as client:
        with pytest.raises(httpx.ReadTimeout) as caught:
            client.get(server.url(), timeout=0.2)
        assert not isinstance(caught.value, DeadlinePassed)  # the read timeout, not the deadline
        port = socket.create_server(("127.0.0.1", 0))
        closed_port = port.getsockname()[1]
        port.close()
        with pytest.raises(httpx.ConnectError) as refused:
            client.get(f"http://127.0.0.1:{closed_port}/")
    assert isinstance(root_cause(refused.value), ConnectionRefusedError)


def test_idle_connection_closed_by_the_device_is_replaced(serve, client) -> None:
    def answer_then_close(conn: socket.socket) -> None:
        conn.sendall(ok(b"first"))

    server = serve(answer_then_close, ok(b"second"))
    assert client.get(server.url()).content == b"first"
    deadline = time.monotonic() + 5
    while server.closed < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the device has closed the kept-alive socket
    assert client.get(server.url()).content == b"second"
    assert server.connections == 2


def test_expired_idle_connection_is_not_reused(serve) -> None:
    server = serve(ok(b"a"), ok(b"b"), ok(b"c"))
    with Client(keepalive_expiry=0.05) as client:
        client.get(server.url())
        time.sleep(0.1)  # the expiry itself is what is tested
        client.get(server.url())
    assert server.connections == 2


def test_stream_closed_early_drops_the_connection(serve, client) -> None:
    """An MJPEG reader takes one frame and closes: the rest of the stream must not be reused."""

    def endless(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=f\r\n\r\n"
        )
        try:
            for _ in range(200):
                conn.sendall(b"--f\r\nContent-Type: image/jpeg\r\n\r\n" + JPEG + b"\r\n")
                time.sleep(0.01)
        except OSError:
            pass

    server = serve(endless, ok(b"after"))
    with client.stream("GET", server.url()) as response:
        first = next(response.iter_bytes())
    assert first.startswith(b"--f")
    assert client.get(server.url()).content == b"after"
    assert server.connections == 2


def test_pool_limit_waits_then_times_out(serve) -> None:
    release = threading.Event()
    server = serve(lambda conn: release.wait(5))
    outcomes: list[BaseException] = []
    entered = threading.Event()

    with Client(deadline_s=10) as client:

        def occupy() -> None:
            try:
                client.get(server.url())
            except httpx.HTTPError as exc:
                outcomes.append(exc)

        busy = threading.Thread(target=occupy)
        busy.start()
        deadline = time.monotonic() + 5
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        entered.set()
        with pytest.raises(httpx.PoolTimeout):
            client.get(server.url(), timeout=httpx.Timeout(2.0, pool=0.1))
        release.set()
        busy.join()
    assert [type(exc) for exc in outcomes] == [Dropped]  # the slow one's own fate


def test_the_exchange_knows_whether_a_connection_was_reused(serve, client) -> None:
    server = serve(ok(b"1"), ok(b"2"))
    client.get(server.url())
    assert client.last is not None and client.last.reused is False
    client.get(server.url())
    assert client.last.reused is True


def test_https_verifies_against_the_given_ca_and_can_be_unverified(serve, certificate) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server = serve(ok(JPEG), ok(JPEG), tls=server_context)
    trusting = ssl.create_default_context(cafile=str(cert))
    with Client(ssl_context=trusting) as client:
        assert client.get(server.url(scheme="https")).content == JPEG
    with Client() as client:  # verify = false
        assert client.get(server.url(scheme="https")).content == JPEG
    stranger = serve(ok(JPEG), tls=server_context)
    with (
        Client(ssl_context=ssl.create_default_context()) as client,
        pytest.raises(httpx.ConnectError) as caught,
    ):
        client.get(stranger.url(scheme="https"))
    assert isinstance(root_cause(caught.value), ssl.SSLCertVerificationError)


def test_the_sections_of_one_device_learn_the_lenient_parser_once(serve) -> None:
    """Two NVR channels are one device: the second does not pay for the refused first answer."""
    picture = make_jpeg()
    sloppy = (
        b"HTTP/1.1 200 OK\r\nTue, 12 Jun 2012 01:56:34 GMT\r\nContent-Type:image/jpeg\r\n"
        b"Content-Length: %d\r\n\r\n" % len(picture)
    ) + picture
    server = serve(sloppy, sloppy, sloppy)
    cameras = [
        build_camera(name, camera_config("generic", port=server.port, path=f"/ch{n}.jpg"))
        for n, name in enumerate(("ch1", "ch2"), start=1)
    ]
    try:
        assert [camera.snapshot().jpeg for camera in cameras] == [picture, picture]
    finally:
        for camera in cameras:
            camera.close()
    paths = [request.split(b" ")[1] for request in server.requests]
    assert paths == [b"/ch1.jpg", b"/ch1.jpg", b"/ch2.jpg"]


def named_camera(
    monkeypatch: pytest.MonkeyPatch, name_server: Callable[[], None], **options: object
) -> Camera:
    """A camera given by host name, its look-up answered by `name_server` (then the real)."""
    lookup = socket.getaddrinfo

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> object:
        if host == "press-cam.plant.example":
            name_server()
        return lookup(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    config = camera_config("generic", host="press-cam.plant.example", path="/snap.jpg", **options)
    return build_camera("press", config)


def test_a_name_server_that_does_not_answer_is_cut_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """getaddrinfo has no timeout: a Pi whose DNS is gone must not hold a capture thread."""
    camera = named_camera(monkeypatch, lambda: time.sleep(3), deadline_s=1, timeout_s=1)
    try:
        started = time.monotonic()
        with pytest.raises(CameraError, match="no answer from the name server"):
            camera.snapshot()
        assert time.monotonic() - started < 2  # the deadline, not the lookup's 3 s
    finally:
        camera.close()


def test_a_camera_named_by_host_name_is_reached(serve) -> None:
    server = serve(ok(make_jpeg(), b"Content-Type: image/jpeg"))
    config = camera_config("generic", host="localhost", port=server.port, path="/snap.jpg")
    camera = build_camera("by_name", config)
    try:
        assert camera.snapshot().jpeg.startswith(b"\xff\xd8")
    finally:
        camera.close()


def test_a_host_name_the_name_server_does_not_know_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_such_name() -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    camera = named_camera(monkeypatch, no_such_name)
    try:
        with pytest.raises(CameraError, match=r"host name 'press-cam\.plant\.example' not found"):
            camera.snapshot()
    finally:
        camera.close()
