"""The server itself: ports, keep-alive, errors, and a clean stop that leaves nothing behind."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from capture.simulator import SimulatedCamera, Simulator, SimulatorConfigError, SimulatorError
from tests.broker import free_port
from tests.conftest import wait_for
from tests.simulator.helpers import camera, raw_get


def test_each_camera_has_its_own_port(start_simulator):
    sim = start_simulator(camera("a", "generic"), camera("b", "generic"))
    assert sim.port_of("a") != sim.port_of("b")
    assert sim.url_of("a") == f"http://127.0.0.1:{sim.port_of('a')}"


def test_base_port_numbers_cameras_in_order(start_simulator):
    # Another process may take base + 1 between our look and the bind (CI caught
    # it): that is a clear SimulatorError, tested below, so try another base.
    for _ in range(20):
        base = free_port()
        try:
            sim = start_simulator(camera("a", "generic"), camera("b", "generic"), base_port=base)
        except SimulatorError:
            continue
        assert (sim.port_of("a"), sim.port_of("b")) == (base, base + 1)
        return
    pytest.skip("no two neighbouring free ports found")  # pragma: no cover


def test_a_taken_port_is_a_clear_error_and_nothing_stays_bound():
    for _ in range(5):  # other processes on this machine may hold the port below ours
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            taken = blocker.getsockname()[1]
            simulator = Simulator(
                [camera("a", "generic"), camera("b", "generic")], base_port=taken - 1
            )
            with pytest.raises(SimulatorError, match=r"cannot listen .*--base-port") as caught:
                simulator.start()
        if "simulated camera b:" in str(caught.value):
            break
    else:
        pytest.skip("no free port next to a taken one")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", taken - 1))  # camera a's port was released


def test_bad_setups_are_refused_with_the_camera_named():
    with pytest.raises(SimulatorConfigError, match="duplicate simulated camera names: a"):
        Simulator([camera("a", "generic"), camera("a", "edimax")])
    with pytest.raises(SimulatorConfigError, match=r"'cam9'.*vendor must be one of"):
        SimulatedCamera("cam9", "sony")  # type: ignore[arg-type]
    with pytest.raises(SimulatorConfigError, match="digest_algorithms"):
        SimulatedCamera("c", "hikvision", digest_algorithms=("SHA-512-256",))


def test_unknown_camera_names_list_the_known_ones(start_simulator):
    sim = start_simulator(camera("a", "generic"))
    with pytest.raises(SimulatorError, match="no simulated camera 'z'; known: a"):
        sim.faults("z")


def test_vendor_defaults():
    assert SimulatedCamera("h", "hikvision").effective_auth == "digest"
    assert SimulatedCamera("x", "xrc").effective_auth == "query"
    assert SimulatedCamera("e", "edimax").path == "/snapshot.jpg"
    assert SimulatedCamera("m", "mjpeg").effective_auth == "basic"
    assert SimulatedCamera("g", "generic", password="pw").effective_auth == "none"
    assert "pw" not in repr(SimulatedCamera("g", "generic", password="pw"))


def test_keep_alive_serves_many_requests_on_one_connection(start_simulator):
    sim = start_simulator(camera("g", "generic"))
    with socket.create_connection(("127.0.0.1", sim.port_of("g")), timeout=5) as sock:
        stream = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(b"GET /snap.jpg HTTP/1.1\r\nHost: cam\r\n\r\n")
            status = stream.readline()
            assert status == b"HTTP/1.1 200 OK\r\n"
            headers = {}
            while (line := stream.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            assert headers["connection"] == "keep-alive"
            assert stream.read(int(headers["content-length"]))[:2] == b"\xff\xd8"
        stream.close()
    assert sim.request_count("g") == 3


def test_connection_close_is_honoured(start_simulator):
    sim = start_simulator(camera("g", "generic"))
    answer = raw_get(sim.port_of("g"), "/snap.jpg")  # reads until the server closes
    assert b"\r\nConnection: close\r\n\r\n" in answer


def test_stop_ends_idle_connections_streams_and_waits_promptly():
    sim = Simulator(
        [camera("g", "generic"), camera("m", "mjpeg", auth="none"), camera("slow", "generic")]
    )
    sim.start()
    sim.faults("slow").latency_s = 60
    idle = socket.create_connection(("127.0.0.1", sim.port_of("g")))
    idle.sendall(b"GET /snap.jpg HTTP/1.1\r\nHost: cam\r\n\r\n")
    idle.recv(65536)
    streaming = socket.create_connection(("127.0.0.1", sim.port_of("m")))
    streaming.sendall(b"GET /mjpg/video.mjpg HTTP/1.1\r\nHost: cam\r\n\r\n")
    streaming.recv(65536)
    waiting = socket.create_connection(("127.0.0.1", sim.port_of("slow")))
    waiting.sendall(b"GET /snap.jpg HTTP/1.1\r\nHost: cam\r\n\r\n")
    wait_for(lambda: sim.request_count("slow") == 1)
    port = sim.port_of("g")
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 3
    assert [t for t in threading.enumerate() if t.name.startswith("simulator")] == []
    for sock in (idle, streaming, waiting):
        sock.settimeout(5)
        while sock.recv(65536):  # drains to EOF: the server closed its end
            pass
        sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_stopped_simulator_can_start_again():
    sim = Simulator([camera("g", "generic")])
    with sim:
        first_port = sim.port_of("g")
    with pytest.raises(SimulatorError, match="not started"):
        sim.port_of("g")
    with sim:
        assert httpx.get(sim.url_of("g") + "/snap.jpg").status_code == 200
    assert first_port > 0


def test_peak_in_flight_counts_requests_answered_at_the_same_time(start_simulator):
    sim = start_simulator(camera("g", "generic"))
    sim.faults("g").latency_s = 60  # each request is held until the simulator stops
    sockets = [socket.create_connection(("127.0.0.1", sim.port_of("g"))) for _ in range(3)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /snap.jpg HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n")
        wait_for(lambda: sim.request_count("g") == 3)
        assert sim.peak_in_flight("g") == 3
        sim.stop()  # wakes the held requests, which end without an answer
    finally:
        for sock in sockets:
            sock.close()
    sim.reset_faults("g")  # the peak starts again from what is in flight now: nothing
    assert sim.peak_in_flight("g") == 0
    sim.start()
    assert httpx.get(sim.url_of("g") + "/snap.jpg").status_code == 200
    assert sim.peak_in_flight("g") == 1
