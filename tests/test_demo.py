"""`capture demo`: its rule file works as it is with every other command while it runs."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import wait_for


def closed_port() -> int:
    """A local port nothing listens on, so the demo runs without MQTT."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def capture(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CAPTURE_", "DEMO_"))}
    return subprocess.run(
        [sys.executable, "-m", "capture", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def test_the_demos_rule_file_works_with_cameras_and_snap_and_says_how(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    process = subprocess.Popen(
        [sys.executable, "-m", "capture", "demo", "--data", str(data), "--period", "60",
         "--mqtt", f"127.0.0.1:{closed_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: "demo: Ctrl-C stops\n" in lines, timeout=60)
        rules = data / "rules.toml"
        secret = data / "camera-password"
        start = lines.index(f"demo: while it runs, every command works on its rule file "
                            f"(camera password in {secret}, mode 0600), e.g.:\n")  # fmt: skip
        assert lines[start + 1 : start + 6] == [
            f"  capture cameras -c {rules}\n",
            f"  capture snap line1_dahua -c {rules}\n",
            f"  capture fire refresh -c {rules} --dry-run\n",
            f"  capture events -c {rules} --since 10m\n",
            "demo: Ctrl-C stops\n",
        ]
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert secret.read_text().strip() not in rules.read_text()
        cameras = capture("cameras", "-c", str(rules))
        assert cameras.returncode == 0, cameras.stderr
        assert cameras.stdout.count(" OK\n") == 7 and cameras.stdout.endswith(" OK\n")
        snap = capture("snap", "line1_dahua", "-c", str(rules), "-o", str(tmp_path / "one.jpg"))
        assert snap.returncode == 0, snap.stderr
        assert (tmp_path / "one.jpg").stat().st_size > 0
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        process.wait()
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
