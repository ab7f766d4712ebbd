"""The engine's threads: a scheduler for due times, and one camera's queue and workers.

Plain thread machinery with no knowledge of rules or firings (capture.engine
decides what runs on them and why, see its docstring).
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from capture.cameras import Camera

#: What a camera's workers take from its queue (the engine's frame).
Job = TypeVar("Job")


class Scheduler:
    """Releases callbacks at monotonic due times from one thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="capture-scheduler", daemon=True)
        self._thread.start()

    def at(self, due: float, callback: Callable[[], None]) -> None:
        """Run `callback` on the scheduler's thread once `time.monotonic()` reaches `due`."""
        with self._wake:
            heapq.heappush(self._heap, (due, next(self._counter), callback))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            callback()

    def stop(self) -> None:
        """End the thread; callbacks not yet due are dropped (the engine fails their frames)."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join()


class CameraWorkers(Generic[Job]):
    """The queue and threads that photograph one camera."""

    def __init__(self, name: str, camera: Camera, run: Callable[[Camera, Job], None]) -> None:
        self.name = name
        self.camera = camera
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self._run = run
        self._lock = threading.Lock()
        self._stopping = False
        count = camera.config.max_concurrent
        self.threads = [
            threading.Thread(target=self._loop, name=f"camera-{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _loop(self) -> None:
        while (frame := self.queue.get()) is not None:
            self._run(self.camera, frame)

    def submit(self, job: Job) -> bool:
        """Queue `job`; False once `stop` was called, so that no job lands behind the threads'
        end markers (a reload retiring these workers while the engine queued a frame)."""
        with self._lock:
            if self._stopping:
                return False
            self.queue.put(job)
            return True

    def stop(self) -> None:
        """Let queued frames finish, then end the threads (called after draining)."""
        with self._lock:
            self._stopping = True
            for _ in self.threads:
                self.queue.put(None)

    def retire(self) -> None:
        """After a reload: finish the queued frames, then close the camera's connections."""
        self.stop()

        def close_when_done() -> None:
            for thread in self.threads:
                thread.join()
            self.camera.close()

        threading.Thread(target=close_when_done, name=f"retire-{self.name}", daemon=True).start()
