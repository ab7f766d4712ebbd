"""A private mosquitto broker for tests: real protocol, own port, stoppable.

Tests must be able to stop and restart the broker (to prove nothing is lost
while it is away), so they never use the machine's shared broker on 1883.
"""

from __future__ import annotations

import getpass
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port that was free a moment ago on loopback, outside the kernel's ephemeral range.

    A port the kernel hands out (bind to 0) is one it also gives every outgoing
    connection: the suite makes thousands, and one of them holding the port when
    the server starts a moment later made mosquitto fail with "Address already in
    use". Below that range only another test's choice can collide, one in many.
    """
    low, _ = _ephemeral_range()
    while True:
        port = random.randrange(10_000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def mosquitto_binary() -> str:
    """Path of the mosquitto executable (Debian installs it in /usr/sbin)."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        raise RuntimeError("mosquitto not found: run ./dev test, which installs it")
    return found


class Broker:
    """One mosquitto process with persistence, restartable on the same port."""

    def __init__(self, workdir: Path, tls: tuple[Path, Path] | None = None) -> None:
        """`tls` (certificate, key) adds a TLS listener on `tls_port` beside the plain one."""
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "mosquitto.conf"
        run_as = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
        tls_listener = (
            f"listener {self.tls_port} 127.0.0.1\ncertfile {tls[0]}\nkeyfile {tls[1]}\n"
            if tls
            else ""
        )
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{tls_listener}"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            "log_dest stderr\n"
            "log_type error\n"
            # Run as root, mosquitto switches to user 'mosquitto', which cannot
            # write the persistence file here: sessions would not survive a restart.
            f"{run_as}"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start mosquitto and wait until it accepts connections."""
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                self.stop()  # closes its pipe too
                if "Address already in use" in err and time.monotonic() + 1 < deadline:
                    # Another socket holds the port for a moment; the port must stay the
                    # same (tests wrote it into configs and clients), so wait and retry.
                    time.sleep(0.5)
                    self.process = subprocess.Popen(
                        [mosquitto_binary(), "-c", str(self.config)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
                    continue
                raise RuntimeError(f"mosquitto exited: {err}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start within 10 s")

    def stop(self) -> None:
        """Stop mosquitto (SIGTERM, so it saves its persistence file)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port, keeping persisted sessions."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None
