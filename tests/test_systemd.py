"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it, and `capture run` under it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from capture.systemd import Watchdog, notify, watchdog_interval

RULES = """
[service]
site = "plant-a"
shutdown_grace_s = 2

[storage]
root = "{root}"

[mqtt]
enabled = false

[web]
enabled = false

[cameras.cam]
vendor = "generic"
host = "127.0.0.1"
path = "/snap.jpg"

[triggers.tick]
type = "interval"
every_s = 3600

[[rules]]
name = "hourly"
when = "tick"
cameras = ["cam"]
enabled = false
"""


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound where systemd would listen, and its $NOTIFY_SOCKET value."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield sock, str(path)
    sock.close()


def receive(sock: socket.socket, until: str, timeout: float = 20.0) -> list[str]:
    """Messages received until one containing the line `until`; fails the test on timeout."""
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no {until!r} from the service within {timeout} s; got {messages}")
        sock.settimeout(remaining)
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        messages.append(message)
        if until in message.splitlines():
            return messages


def test_notify_sends_the_message_to_a_path_socket(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, address = notify_socket
    assert notify("READY=1\nSTATUS=up", {"NOTIFY_SOCKET": address})
    assert receive(sock, "READY=1") == ["READY=1\nSTATUS=up"]


def test_notify_reaches_an_abstract_namespace_socket() -> None:
    name = f"event-capture-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": f"@{name}"})
        assert receive(sock, "WATCHDOG=1") == ["WATCHDOG=1"]


def test_notify_outside_systemd_is_a_no_op() -> None:
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_notify_to_a_vanished_socket_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
    assert "systemd notification failed message=READY" in caplog.text


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert (
        watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    )
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert Watchdog.from_environment(environ={}) is None


def test_watchdog_withholds_pings_while_unhealthy_and_sends_status_only_on_change(
    notify_socket: tuple[socket.socket, str], caplog: pytest.LogCaptureFixture
) -> None:
    sock, address = notify_socket
    state = {"healthy": True, "status": "capturing"}
    watchdog = Watchdog(
        60,
        healthy=lambda: state["healthy"],
        status=lambda: str(state["status"]),
        environ={"NOTIFY_SOCKET": address},
    )
    watchdog.tick()
    watchdog.tick()
    state["healthy"] = False
    watchdog.tick()
    state["status"] = "capturing; failed triggers: gate"
    watchdog.tick()
    sock.setblocking(False)
    sent = []
    while True:
        try:
            sent.append(sock.recv(4096).decode())
        except BlockingIOError:
            break
    assert sent == [
        "STATUS=capturing",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "STATUS=capturing; failed triggers: gate",
    ]
    assert watchdog.pings == 2
    assert "watchdog ping withheld" in caplog.text


def test_watchdog_thread_pings_until_stopped(notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    watchdog = Watchdog(0.01, environ={"NOTIFY_SOCKET": address})
    watchdog.start()
    try:
        for _ in range(3):
            assert receive(sock, "WATCHDOG=1", timeout=5) == ["WATCHDOG=1"]
    finally:
        watchdog.stop()
    assert watchdog.pings >= 3


@contextmanager
def capture_run(rules: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`capture run` as its own process; killed at the end if the test left it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "capture", "run", "-c", str(rules)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_capture_run_says_ready_pings_the_watchdog_and_stops_cleanly_on_sigterm(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.format(root=tmp_path / "data"))
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}  # pings every 0.1 s
    with capture_run(rules, env) as process:
        ready = receive(sock, "READY=1")[-1]
        assert "STATUS=capturing: 1 camera(s), 1/1 trigger(s) running, 1 rule(s)" in ready
        for _ in range(3):
            receive(sock, "WATCHDOG=1")
        process.send_signal(signal.SIGTERM)
        receive(sock, "STOPPING=1")
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "stopped" in stderr


def test_capture_run_outside_systemd_needs_no_notify_socket(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.format(root=tmp_path / "data"))
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    with capture_run(rules, env) as process:
        assert process.stderr is not None
        while "started site=plant-a" not in (line := process.stderr.readline()):
            assert line, "capture run ended before it started"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "systemd" not in stderr
