"""MJPEG streams read off raw sockets, so each framing quirk is checked exactly as it is on the wire."""

from __future__ import annotations

import base64
import socket

import pytest

from tests.simulator.helpers import PASSWORD, camera, decoded

AUTH = "Authorization: Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode() + "\r\n"


def read_stream(port: int, until: int, path: str = "/mjpg/video.mjpg") -> bytes:
    """Open the stream and read until `until` bytes arrived (the stream never ends by itself)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: cam\r\n{AUTH}\r\n".encode())
        data = b""
        while len(data) < until:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.fixture
def mjpeg(start_simulator):
    sim = start_simulator(camera("m", "mjpeg", fps=50))
    return sim, sim.port_of("m")


def test_standard_stream_framing(mjpeg):
    _, port = mjpeg
    data = read_stream(port, 150_000)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: multipart/x-mixed-replace; boundary=myboundary" in head
    parts = body.split(b"--myboundary\r\n")
    assert parts[0] == b""
    part_head, part_body = parts[1].split(b"\r\n\r\n", 1)
    length = int(part_head.split(b"Content-Length: ")[1])
    assert part_body[length:] == b"\r\n"
    decoded(part_body[:length])
    assert parts[1] != parts[2]  # frames differ


def test_stream_requires_credentials(mjpeg):
    _, port = mjpeg
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /mjpg/video.mjpg HTTP/1.1\r\nHost: cam\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 401 ")


def test_boundary_declared_with_dashes_is_written_verbatim(mjpeg):
    sim, port = mjpeg
    sim.faults("m").boundary_dashes = True
    head, body = read_stream(port, 2000).split(b"\r\n\r\n", 1)
    assert b"boundary=--myboundary\r\n" in head
    assert body.startswith(b"--myboundary\r\n")
    assert not body.startswith(b"----")


def test_no_first_delimiter(mjpeg):
    sim, port = mjpeg
    sim.faults("m").no_first_delimiter = True
    data = read_stream(port, 100_000)
    body = data.split(b"\r\n\r\n", 1)[1]
    assert body.startswith(b"Content-Type: image/jpeg\r\n")
    assert b"\r\n--myboundary\r\nContent-Type: image/jpeg" in body


def test_no_part_length(mjpeg):
    sim, port = mjpeg
    sim.faults("m").no_part_length = True
    body = read_stream(port, 100_000).split(b"\r\n\r\n", 1)[1]
    first = body.split(b"--myboundary\r\n")[1]
    assert b"Content-Length" not in first.split(b"\r\n\r\n", 1)[0]
    decoded(first.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n"))


def test_wrong_part_length_is_48_bytes_short(mjpeg):
    sim, port = mjpeg
    sim.faults("m").wrong_part_length = True
    body = read_stream(port, 100_000).split(b"\r\n\r\n", 1)[1]
    part_head, part_body = body.split(b"--myboundary\r\n")[1].split(b"\r\n\r\n", 1)
    announced = int(part_head.split(b"Content-Length: ")[1])
    assert len(part_body) - len(b"\r\n") == announced + 48


def test_lf_only_lines(mjpeg):
    sim, port = mjpeg
    sim.faults("m").lf_only = True
    data = read_stream(port, 2000)
    head, body = data.split(b"\n\n", 1)
    assert b"\r" not in head
    assert body.startswith(b"--myboundary\nContent-Type: image/jpeg\nContent-Length: ")


def test_chunked_transfer_encoding_wraps_the_parts(mjpeg):
    sim, port = mjpeg
    sim.faults("m").chunked = True
    head, body = read_stream(port, 100_000).split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in head
    size_line, rest = body.split(b"\r\n", 1)
    size = int(size_line, 16)
    assert rest[:size].startswith(b"--myboundary\r\n")
    assert rest[size : size + 2] == b"\r\n"


def test_no_content_type(mjpeg):
    sim, port = mjpeg
    sim.faults("m").no_content_type = True
    head = read_stream(port, 2000).split(b"\r\n\r\n", 1)[0]
    assert b"Content-Type" not in head


def test_stalled_stream_sends_headers_then_nothing(mjpeg):
    sim, port = mjpeg
    sim.faults("m").stall_stream = True
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET /mjpg/video.mjpg HTTP/1.1\r\nHost: cam\r\n{AUTH}\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        assert data.endswith(b"\r\n\r\n")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing follows the headers
