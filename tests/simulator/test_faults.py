"""Each fault as a client sees it over a real socket, and the fault switches themselves."""

from __future__ import annotations

import io
import socket
import threading
import time

import httpx
import pytest
from PIL import Image

from capture.simulator import Faults
from capture.simulator.device import HTML_ERROR_PAGE
from tests.conftest import wait_for
from tests.simulator.helpers import PASSWORD, camera, decoded

EDIMAX_AUTH = ("admin", PASSWORD)


@pytest.fixture
def edimax(start_simulator):
    sim = start_simulator(camera("ed", "edimax"), camera("other", "edimax"))
    with httpx.Client(auth=EDIMAX_AUTH) as client:
        yield sim, client, sim.url_of("ed") + "/snapshot.jpg"


def test_latency_delays_the_answer(edimax):
    sim, client, url = edimax
    sim.faults("ed").latency_s = 0.3
    started = time.monotonic()
    assert client.get(url).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_always_401_refuses_good_credentials_without_counting_them(edimax):
    sim, client, url = edimax
    sim.faults("ed").always_401 = True
    assert client.get(url).status_code == 401
    assert sim.bad_login_count("ed") == 0


def test_html_200(edimax):
    sim, client, url = edimax
    sim.faults("ed").html_200 = True
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html"
    assert response.text.startswith("<!DOCTYPE html>")


def test_truncated_jpeg_is_half_a_picture_with_a_matching_length(edimax):
    sim, client, url = edimax
    sim.faults("ed").truncated = True
    response = client.get(url)
    body = response.content
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(body)
    assert body[:2] == b"\xff\xd8"
    assert b"\xff\xd9" not in body[-2:]
    with pytest.raises(OSError, match="truncated"):
        Image.open(io.BytesIO(body)).load()


def test_short_body_breaks_the_http_framing(edimax):
    sim, client, url = edimax
    sim.faults("ed").short_body = True
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)


def test_empty_body(edimax):
    sim, client, url = edimax
    sim.faults("ed").empty_body = True
    response = client.get(url)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-type"] == "image/jpeg"


def test_dropped_connection_gets_no_response(edimax):
    sim, client, url = edimax
    sim.faults("ed").drop_connection = True
    with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        client.get(url)
    assert sim.request_count("ed") >= 1


def test_sloppy_headers_are_written_on_every_answer_and_h11_refuses_them(edimax):
    sim, client, url = edimax
    sim.faults("ed").sloppy_headers = True
    with pytest.raises(httpx.RemoteProtocolError, match="illegal header line"):
        client.get(url)
    port = sim.port_of("ed")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # no credentials: 401
        raw.sendall(b"GET /snapshot.jpg HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"HTTP/1.1 401 Unauthorized"
    assert b"Pragma no-cache" in head
    assert b"X-Frame-Options : SAMEORIGIN" in head


def test_freeze_serves_identical_bytes_until_lifted(edimax):
    sim, client, url = edimax
    sim.faults("ed").freeze = True
    frozen = {client.get(url).content for _ in range(3)}
    assert len(frozen) == 1
    decoded(frozen.pop())
    sim.reset_faults("ed")
    assert len({client.get(url).content for _ in range(3)}) == 3


def test_faults_are_per_camera(edimax):
    sim, client, url = edimax
    sim.faults("ed").html_200 = True
    faulted = client.get(url)
    assert faulted.headers["content-type"] == "text/html"
    assert faulted.content == HTML_ERROR_PAGE
    other = client.get(sim.url_of("other") + "/snapshot.jpg")
    assert other.headers["content-type"] == "image/jpeg"
    decoded(other.content)


def test_unknown_fault_names_are_refused():
    faults = Faults()
    with pytest.raises(AttributeError, match="unknown fault 'trunctaed'"):
        faults.trunctaed = True  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        faults.update(latency=1)


def test_update_is_atomic_and_reset_clears_everything():
    faults = Faults()
    seen: list[tuple[bool, bool]] = []

    def reader() -> None:
        for _ in range(2000):
            copy = faults.snapshot()
            seen.append((copy.truncated, copy.empty_body))

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(200):
        faults.update(truncated=True, empty_body=True)
        faults.update(truncated=False, empty_body=False)
    thread.join()
    assert all(a == b for a, b in seen)
    faults.update(latency_s=1.5, lf_only=True)
    assert faults.active() == {"latency_s": 1.5, "lf_only": True}
    faults.reset()
    assert faults.active() == {}


def test_pictures_change_over_time(edimax):
    _, client, url = edimax
    first = decoded(client.get(url).content).tobytes()

    def changed() -> bool:
        image = decoded(client.get(url).content)
        return image.tobytes() != first

    wait_for(changed, timeout=5)
