"""The server's limits over raw sockets: idle connections close, too many get 503, stop is clean."""

from __future__ import annotations

import socket
import time

import pytest

from capture.web import server as server_module
from tests.web.conftest import Running, WebFactory


def closed_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection (recv gives b"") within `seconds`."""
    connection.settimeout(seconds)
    try:
        while connection.recv(4096):
            pass
    except TimeoutError:
        return False
    return True


def test_a_connection_that_sends_nothing_or_half_a_request_is_closed_when_idle(
    start_web: WebFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT_S", 1)
    web = start_web()
    port = web.service.web.port  # type: ignore[union-attr]
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as silent,
        socket.create_connection(("127.0.0.1", port), timeout=5) as halting,
    ):
        halting.sendall(b"GET /api/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert closed_within(silent, 10), "a connection that never sent a request"
        assert closed_within(halting, 10), "a connection that stopped in the middle of its head"
        assert time.monotonic() - started < 8
    assert web.client.get("/api/cameras").status_code == 200, "the server itself carries on"


def test_requests_beyond_the_connection_limit_are_answered_503(
    start_web: WebFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 4)
    web = start_web()
    web.client.close()  # its keep-alive connection would count too
    port = web.service.web.port  # type: ignore[union-attr]
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            extra.sendall(
                b"GET /api/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            assert extra.recv(4096).startswith(b"HTTP/1.1 503")
    finally:
        for connection in held:
            connection.close()


def test_a_taken_port_is_a_web_error_naming_the_address(start_web: WebFactory) -> None:
    web = start_web()
    taken = web.service.web.port  # type: ignore[union-attr]
    other = server_module.WebServer(web.service)
    other.config = other.config.model_copy(update={"port": taken})
    with pytest.raises(server_module.WebError, match=rf"cannot listen on 127.0.0.1:{taken}"):
        other.start()


def test_answers_are_not_held_back_by_nagle(web: Running) -> None:
    """Without TCP_NODELAY an answer's body waits ~40 ms for the ACK of its head."""
    assert web.client.get("/api/cameras").status_code == 200
    server = web.service.web._server  # type: ignore[union-attr]
    assert server is not None
    connections = list(server.server_state.connections)
    assert connections, "the client's keep-alive connection is open"
    for connection in connections:
        sock = connection.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_body_announced_but_not_sent_is_refused_after_the_timeout(
    web: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capture.web import app as app_module  # noqa: PLC0415

    monkeypatch.setattr(app_module, "BODY_TIMEOUT_S", 1.0)
    port = web.service.web.port  # type: ignore[union-attr]
    cookie = web.client.cookies.get("capture_session")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            b"POST /api/snap HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Cookie: capture_session={cookie}\r\n".encode()
            + b'Content-Length: 40\r\n\r\n{"camera"'
        )
        assert connection.recv(4096).startswith(b"HTTP/1.1 408")
    assert web.service.journal.query() == []
