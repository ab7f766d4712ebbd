"""The engine's thread machinery on its own: due times, and one camera's queue."""

from __future__ import annotations

import threading
import time
from typing import Any

from capture.workers import CameraWorkers, Scheduler
from tests.conftest import wait_for


def test_the_scheduler_runs_callbacks_at_their_due_times_in_due_order() -> None:
    scheduler = Scheduler()
    ran: list[tuple[str, float]] = []
    start = time.monotonic()
    try:
        for name, delay in (("late", 0.30), ("soon", 0.05), ("middle", 0.15)):
            scheduler.at(start + delay, lambda name=name: ran.append((name, time.monotonic())))
        wait_for(lambda: len(ran) == 3)
    finally:
        scheduler.stop()
    assert [name for name, _ in ran] == ["soon", "middle", "late"]
    assert all(at >= start + delay for (_, at), delay in zip(ran, (0.05, 0.15, 0.30), strict=True))


def test_a_stopped_scheduler_drops_what_is_not_due_and_leaves_no_thread() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    scheduler.at(time.monotonic() + 30, lambda: ran.append("never"))
    scheduler.stop()
    assert ran == []
    assert not any(t.name == "capture-scheduler" for t in threading.enumerate())


class _Camera:
    """What CameraWorkers needs of a camera: its options and close()."""

    def __init__(self, max_concurrent: int) -> None:
        self.config: Any = type("Config", (), {"max_concurrent": max_concurrent})()
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


def test_one_worker_takes_a_cameras_jobs_one_at_a_time_in_order() -> None:
    camera = _Camera(max_concurrent=1)
    running, most, done = 0, 0, []
    lock = threading.Lock()

    def run(_: Any, job: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
            done.append(job)

    workers = CameraWorkers[int]("cam", camera, run)  # type: ignore[arg-type]
    for job in range(6):
        workers.queue.put(job)
    workers.retire()  # finishes the queued jobs, then closes the camera
    assert camera.closed.wait(5)
    assert done == list(range(6)) and most == 1
