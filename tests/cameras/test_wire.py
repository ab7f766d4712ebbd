"""The lean HTTP/1.1 transport, byte for byte, against a scripted server on a real socket.

Every answer here is written out by hand the way a device sends it, so each
framing rule, each tolerated sloppiness and each refusal is pinned down at
the wire, below anything httpx could smooth over.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from capture.cameras.wire import WireTransport

#: One scripted answer: bytes to send, or a callable given the socket for anything stranger.
Answer = bytes | Callable[[socket.socket], None]


class ScriptedServer:
    """Accepts connections; answers each request with the next scripted answer, in order."""

    def __init__(self, answers: list[Answer], *, tls: ssl.SSLContext | None = None) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
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


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(transport=WireTransport(max_connections=1), timeout=2.0) as client:
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


def test_sloppy_device_heads_are_tolerated(serve, client) -> None:
    answer = (
        b"HTTP/1.1 200\n"  # LF-only lines, no reason phrase
        b"Content-Type: image/jpeg\n"
        b"this line has no colon\n"  # skipped, not fatal (h11 refuses it)
        b"X-Folded: first\n  second\n"  # obsolete folding
        b"Content-Length: 4, 4\n"  # repeated identical lengths
        b"Content-Length: 4\n\nbody"
    )
    response = client.get(serve(answer).url())
    assert response.content == b"body"
    assert response.headers["x-folded"] == "first second"
    assert response.reason_phrase == ""


def test_goahead_and_other_field_quirks_that_h11_refuses(serve, client) -> None:
    """Heads of GoAhead-based clones and others (shared/reference/camera-apis.md 3.7)."""
    answer = (
        b"HTTP/1.0 200 OK\r\n"
        b"Tue, 12 Jun 2012 01:56:34 GMT\r\n"  # a header line with no name
        b"Content-Type:image/jpeg\r\n"  # no space after the colon
        b"X-Frame-Options : SAMEORIGIN\r\n"  # space before the colon
        b"Server:\r\n"  # empty value
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"4 \r\nbody\r\n0\r\n\r\n"  # chunk size with a trailing space
    )
    response = client.get(serve(answer).url())
    assert response.content == b"body"
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["server"] == ""


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
    ("answer", "message"),
    [
        (lambda conn: None, "Server disconnected without sending a response."),
        (
            lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"),
            "without sending complete message body (received 5 bytes, expected 100)",
        ),
        (
            lambda conn: conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc"
            ),
            "incomplete chunked read",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "illegal chunk size"),
        (b"<html>not http</html>\r\n\r\n", "illegal status line"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "invalid Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (
            lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Le"),
            "middle of the response headers",
        ),
    ],
    ids=[
        "no-answer",
        "short-body",
        "short-chunk",
        "bad-chunk",
        "not-http",
        "two-lengths",
        "negative",
        "cut-head",
    ],
)
def test_broken_answers_raise_protocol_errors(serve, client, answer: Answer, message: str) -> None:
    server = serve(answer)
    with pytest.raises(
        httpx.RemoteProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        client.get(server.url())


def test_oversized_head_is_refused(serve, client) -> None:
    server = serve(b"HTTP/1.1 200 OK\r\n" + b"X-Junk: " + b"a" * 70_000 + b"\r\n\r\n")
    with pytest.raises(httpx.RemoteProtocolError, match="headers larger than 64 KB"):
        client.get(server.url())


def test_read_timeout_and_refused_connection(serve) -> None:
    server = serve(lambda conn: time.sleep(1))
    with httpx.Client(transport=WireTransport(), timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(server.url())
        port = socket.create_server(("127.0.0.1", 0))
        closed_port = port.getsockname()[1]
        port.close()
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{closed_port}/")


def test_idle_connection_closed_by_the_device_is_replaced(serve, client) -> None:
    def answer_then_close(conn: socket.socket) -> None:
        conn.sendall(ok(b"first"))

    server = serve(answer_then_close, ok(b"second"))
    assert client.get(server.url()).content == b"first"
    time.sleep(0.1)  # the device has closed the kept-alive socket meanwhile
    assert client.get(server.url()).content == b"second"
    assert server.connections == 2


def test_expired_idle_connection_is_not_reused(serve) -> None:
    server = serve(ok(b"a"), ok(b"b"), ok(b"c"))
    with httpx.Client(transport=WireTransport(keepalive_expiry=0.05)) as client:
        client.get(server.url())
        time.sleep(0.1)
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
    server = serve(lambda conn: time.sleep(0.5))
    transport = WireTransport(max_connections=1)
    outcomes: list[BaseException] = []

    def occupy(client: httpx.Client) -> None:
        try:
            client.get(server.url())
        except httpx.HTTPError as exc:
            outcomes.append(exc)

    with httpx.Client(transport=transport, timeout=httpx.Timeout(2.0, pool=0.1)) as client:
        busy = threading.Thread(target=occupy, args=(client,))
        busy.start()
        time.sleep(0.1)
        with pytest.raises(httpx.PoolTimeout):
            client.get(server.url())
        busy.join()
    assert [type(exc) for exc in outcomes] == [httpx.RemoteProtocolError]  # the slow one's own fate


def test_trace_says_whether_a_connection_was_new(serve, client) -> None:
    server = serve(ok(b"1"), ok(b"2"))
    events: list[str] = []
    for _ in range(2):
        client.get(server.url(), extensions={"trace": lambda name, info: events.append(name)})
    assert events == [
        "connection.connect_tcp.started",
        "http11.send_request_headers.started",
        "http11.send_request_headers.started",
    ]


def test_https_verifies_against_the_given_ca_and_can_be_unverified(serve, certificate) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server = serve(ok(JPEG), ok(JPEG), tls=server_context)
    trusting = WireTransport(ssl_context=ssl.create_default_context(cafile=str(cert)))
    with httpx.Client(transport=trusting) as client:
        assert client.get(server.url(scheme="https")).content == JPEG
    with httpx.Client(transport=WireTransport()) as client:  # verify = false
        assert client.get(server.url(scheme="https")).content == JPEG
    stranger = serve(ok(JPEG), tls=server_context)
    with (
        httpx.Client(transport=WireTransport(ssl_context=ssl.create_default_context())) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(stranger.url(scheme="https"))
