"""The rule engine: events in, capture jobs out, one result message per rule firing.

Threads and why:
- none for rules: a trigger's callback thread (paho's, gpiozero's,
  watchdog's) evaluates the compiled rules itself - microseconds - and
  queues the frames, which saves a thread hand-over per event;
- one scheduler releases delayed and burst frames at their due time,
  measured from the trigger's monotonic timestamp, so burst spacing does not
  drift with capture time;
- per camera, `max_concurrent` workers take its frames in order: a camera is
  photographed serially (cheap devices break otherwise) while a slow or dead
  camera never delays another. Synchronous httpx clients in worker threads
  measured ~720 fetches/s here against ~280/s for AsyncClient, hence threads;
- when more frames wait for a camera, a small pool writes the JPEGs, so its
  next request goes out while the last picture is fsynced, and concurrent
  fsyncs share journal commits; a lone frame is written by the camera's own
  thread, one hand-over less (p50 trigger -> event ~0.5 ms lower at 20/s),
  and so is a frame that finds `MAX_PENDING_WRITES` already waiting: a disk
  slower than the cameras slows the fetching, instead of filling memory.

A frame that waited longer than its camera's deadline in the queue is failed
as `Overloaded` rather than taken late: a picture seconds after the moment is
worse than an honest error, and it bounds the backlog of a dead camera. A
frame still untaken when a stop gives up on its grace period is journaled as
`Abandoned`; every frame of a firing gets exactly one outcome.

A firing is journaled with its planned frames (and their file names) when it
is accepted, and no picture of it is stored before that row is committed; the
row ends when the firing's event message is committed to the outbox. So after
a kill or a power cut the next start (capture.recovery) knows every firing
that was not announced and whose files are on disk.

Why one module of ~600 lines: the path of a frame (queue, fetch, hand-over to
a writer, store, journal, the firing's end) and the rule that every frame of
a firing gets exactly one outcome, also on overload, reload and stop, share
the firing's state and locks; rule planning (capture.rules) and the plain
thread machinery (capture.workers) live elsewhere.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Protocol

from capture.cameras import BufferedCamera, Camera, Snapshot
from capture.cameras.errors import CameraError
from capture.config.schema import RuleConfig, RuleFile
from capture.events import CaptureResult, Event, FiringReport, PlannedFrame, firing_line
from capture.rules import CompiledRule, Cooldowns, RuleDisabled, RuleSet
from capture.workers import CameraWorkers, Scheduler

log = logging.getLogger(__name__)

#: Frames queued per camera beyond which new ones fail at once as Overloaded
#: (queued frames also fail when they waited longer than the camera's deadline).
MAX_QUEUED_FRAMES = 10_000
#: Threads writing JPEGs; several let the file system group their fsyncs.
WRITER_THREADS = 4
#: Frames that may wait for a writer; beyond, a camera's thread writes its own
#: frame, so a disk slower than the cameras bounds memory (~30-300 KB a frame).
MAX_PENDING_WRITES = 4 * WRITER_THREADS
#: Longest wait, before storing a picture, for its firing's journal row to be committed.
#: A commit takes about a millisecond; only a journal that refuses writes gets near this.
FIRING_COMMIT_WAIT_S = 5.0


class Store(Protocol):
    """Where JPEGs go (capture.storage.Storage)."""

    def save(self, relative: PurePosixPath, jpeg: bytes, camera: str) -> Any: ...


class Recorder(Protocol):
    """Where events and outcomes are journaled (capture.journal.Journal)."""

    def record_event(self, event: Event, rules: Any) -> None: ...

    def record_result(self, result: CaptureResult) -> None: ...

    def open_firing(
        self, event_id: str, rule: str, manual: bool, frames: Sequence[PlannedFrame]
    ) -> threading.Event: ...

    def close_firing(self, event_id: str, rule: str) -> None: ...


class Announcer(Protocol):
    """Where a finished rule firing is announced (capture.publish.Publisher).

    It ends the firing's journal row (`close_firing`) when it has made the
    announcement durable, in the same commit.
    """

    def publish_firing(self, firing: FiringReport) -> None: ...


class Overloaded(CameraError):
    """The camera's queue is so long that a frame could not be taken in time."""


class CameraRemoved(CameraError):
    """A reload removed the camera before a (delayed or burst) frame of it was due."""


class Abandoned(CameraError):
    """The service stopped, after its grace period, before the frame was taken."""


class FailureLog:
    """Lets one log line per camera and error type through per period, counting the rest.

    A dead camera behind a busy trigger fails many times a second; every
    failure is journaled and published, but a log line for each would flood
    journald (and wear the Pi's SD card) without telling anyone more.
    """

    PERIOD_S = 10.0

    def __init__(self) -> None:
        self._state: dict[tuple[str, str | None], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def admit(self, result: CaptureResult) -> int | None:
        """None to stay quiet; otherwise how many were held back since the last line."""
        key = (result.camera, result.error_type)
        now = time.monotonic()
        with self._lock:
            last, held = self._state.get(key, (-self.PERIOD_S, 0))
            if now - last < self.PERIOD_S:
                self._state[key] = (last, held + 1)
                return None
            self._state[key] = (now, 0)
            return held


@dataclass(eq=False)
class _Firing:
    """Collects the results of one rule firing and reports once, when complete.

    Each frame is claimed once, by whoever gives its outcome: the camera
    thread (a file or a failure) or a stop that gave up (Abandoned).
    """

    event: Event
    rule: CompiledRule
    expected: int
    on_done: Callable[[_Firing], None]
    manual: bool = False
    cameras: tuple[str, ...] = ()
    #: Set once the firing's journal row is committed; no picture is stored before.
    durable: threading.Event | None = None
    results: list[CaptureResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    claimed: set[tuple[str, int]] = field(default_factory=set)

    def claim(self, frame: _Frame) -> bool:
        """True if the caller is the one to give this frame's outcome."""
        key = (frame.camera, frame.seq)
        with self.lock:
            if key in self.claimed:
                return False
            self.claimed.add(key)
            return True

    def claim_rest(self) -> list[tuple[str, int]]:
        """Claim every frame nobody has claimed yet; returns their (camera, seq)."""
        with self.lock:
            rest = [
                (camera, seq)
                for seq in range(1, self.rule.config.frame_count + 1)
                for camera in self.cameras
                if (camera, seq) not in self.claimed
            ]
            self.claimed.update(rest)
        return rest

    def add(self, result: CaptureResult) -> None:
        with self.lock:
            self.results.append(result)
            done = len(self.results) == self.expected
        if done:
            self.on_done(self)


@dataclass(frozen=True, slots=True)
class _Frame:
    firing: _Firing
    camera: str
    seq: int
    due: float
    path: PurePosixPath  # planned; the storage may add `_2`...


class Engine:
    """Turns events into named snapshots, journal rows and one message per firing."""

    def __init__(
        self,
        rules: RuleFile,
        cameras: Mapping[str, Camera],
        store: Store,
        recorder: Recorder,
        announcer: Announcer | None = None,
    ) -> None:
        self._ruleset = RuleSet(rules)
        self._store = store
        self._recorder = recorder
        self._announcer = announcer
        self._cooldowns = Cooldowns()
        self._failure_log = FailureLog()
        self._listeners: list[Callable[[CaptureResult], None]] = []
        self._report_listeners: list[Callable[[FiringReport], None]] = []
        self._scheduler = Scheduler()
        self._writers = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="capture-write")
        # Frames handed to the writers and not yet written, each holding its JPEG.
        self._write_slots = threading.Semaphore(MAX_PENDING_WRITES)
        self._workers: dict[str, CameraWorkers[_Frame]] = {
            name: CameraWorkers[_Frame](name, camera, self._capture)
            for name, camera in cameras.items()
        }
        self._in_flight = 0
        self._idle = threading.Condition()
        self._firings: set[_Firing] = set()  # started, not yet reported (under _idle)
        self._accepting = True
        self._abandoned = False

    # ------------------------------------------------------------------ input

    def submit(self, event: Event) -> None:
        """Evaluate an event's rules and queue its frames; thread-safe, never blocks.

        Runs on the trigger's own thread: matching compiled rules takes
        microseconds and everything after it is queued, so a separate
        dispatcher thread would only add a hand-over to every trigger.
        """
        if not self._accepting:
            return
        with self._idle:
            self._in_flight += 1
        try:
            self._dispatch(event)
        except Exception:
            log.exception("event dispatch failed event=%s trigger=%s", event.id, event.trigger)
        finally:
            self._release()

    def fire_rule(self, rule_name: str, event: Event) -> bool:
        """Run a rule now for an explicit request, ignoring its condition and cooldown.

        False for an unknown rule or while stopping; raises `RuleDisabled`
        (a ValueError, so the MQTT command path logs it and the web API
        answers 400) for a rule with `enabled = false`.
        """
        rule = self._ruleset.by_name.get(rule_name)
        if rule is None or not self._accepting:
            return False
        if not rule.config.enabled:
            raise RuleDisabled(rule.name)
        self._recorder.record_event(event, [rule.name])
        self._start_firing(event, rule, rule.cameras, manual=True)
        return True

    def snap_camera(self, camera: str, event: Event) -> bool:
        """Take one picture of one camera now (the dashboard's and MQTT's snap command)."""
        if camera not in self._workers or not self._accepting:
            return False
        ruleset = self._ruleset
        rule = CompiledRule(
            config=RuleConfig(name="snap", when=[event.trigger or "manual"], cameras=[camera]),
            condition=None,
            template=ruleset.default_template,
            cameras=(camera,),
        )
        self._recorder.record_event(event, ["snap"])
        self._start_firing(event, rule, (camera,), manual=True)
        return True

    def queued(self, camera: str) -> int:
        """Frames waiting in the camera's queue (not counting one being taken); 0 if unknown."""
        workers = self._workers.get(camera)
        return workers.queue.qsize() if workers is not None else 0

    def add_listener(self, listener: Callable[[CaptureResult], None]) -> None:
        """Call `listener` with every capture result (the dashboard's live updates)."""
        self._listeners.append(listener)

    def add_report_listener(self, listener: Callable[[FiringReport], None]) -> None:
        """Call `listener` with every completed rule firing."""
        self._report_listeners.append(listener)

    def announce_recovered(self, report: FiringReport) -> None:
        """Announce a firing that start-up recovery finished, like one this engine ran.

        The publisher's message ends its journal row (without MQTT the row is
        ended here), then the report listeners see it: an adopted picture of an
        interrupted firing is analysed like any other (capture.recovery).
        """
        if self._announcer is not None:
            self._announcer.publish_firing(report)
        else:
            self._recorder.close_firing(report.event.id, report.rule)
        for listener in self._report_listeners:
            try:
                listener(report)
            except Exception:  # one listener's bug must not stop the service's start
                log.exception("a report listener failed on recovered event=%s", report.event.id)

    @property
    def ruleset(self) -> RuleSet:
        """The compiled rules currently applied."""
        return self._ruleset

    # ------------------------------------------------------------------ reload and stop

    def reload(self, rules: RuleFile, cameras: Mapping[str, Camera]) -> None:
        """Apply a new rule file; frames already queued finish on the cameras they had."""
        new_workers: dict[str, CameraWorkers[_Frame]] = {}
        retired: list[CameraWorkers[_Frame]] = []
        for name, camera in cameras.items():
            current = self._workers.get(name)
            if current is not None and current.camera is camera:
                new_workers[name] = current
            else:
                new_workers[name] = CameraWorkers[_Frame](name, camera, self._capture)
                if current is not None:
                    retired.append(current)
        retired += [workers for name, workers in self._workers.items() if name not in cameras]
        self._ruleset = RuleSet(rules)
        self._workers = new_workers
        for workers in retired:
            workers.retire()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no event is queued and no frame is pending; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining if remaining is not None else 0.5)
        return True

    def stop(self, grace_s: float) -> bool:
        """Stop taking events, let in-flight captures finish for up to `grace_s`.

        Frames not taken after the grace period are abandoned: a stop must be
        bounded, and a picture taken that late would not show the moment
        anyway. Each is journaled as an `Abandoned` failure (the journal is
        still open: the service closes it after this) and its firing is
        announced. Returns whether everything finished in time.
        """
        self._accepting = False
        finished = self.wait_idle(grace_s)
        self._scheduler.stop()  # delayed and burst frames not yet due are never taken now
        if not finished:
            self._abandoned = True
            abandoned = self._abandon_firings()
            with self._idle:
                writing = self._in_flight
            log.warning(
                "stopping after the %.1f s grace period: %d frame(s) not taken, journaled as "
                "Abandoned%s",
                grace_s, abandoned, f"; {writing} still finishing" if writing else "",
            )  # fmt: skip
        for workers in self._workers.values():
            workers.stop()
        self._writers.shutdown(wait=finished, cancel_futures=True)
        if finished:
            for workers in self._workers.values():
                for thread in workers.threads:
                    thread.join(timeout=5)
        return finished

    def _abandon_firings(self) -> int:
        """Give every unclaimed frame of every unfinished firing its Abandoned outcome."""
        with self._idle:
            firings = list(self._firings)
        count = 0
        for firing in firings:
            for camera, seq in firing.claim_rest():
                frame = _Frame(firing, camera, seq, firing.event.monotonic, PurePosixPath())
                error = Abandoned(
                    camera, "the service stopped before this frame was taken (shutdown_grace_s)"
                )
                self._complete(frame, self._failure(frame, error, 0.0))
                count += 1
        return count

    # ------------------------------------------------------------------ internals

    def _dispatch(self, event: Event) -> None:
        ruleset = self._ruleset
        admitted = [
            rule for rule in ruleset.matching(event) if self._cooldowns.admit(rule.config, event)
        ]
        self._recorder.record_event(event, [rule.name for rule in admitted])
        if not admitted:
            log.debug("event=%s trigger=%s matched no rule", event.id, event.trigger)
        for rule in admitted:
            self._start_firing(event, rule, rule.cameras)

    def _start_firing(
        self, event: Event, rule: CompiledRule, cameras: Iterable[str], *, manual: bool = False
    ) -> None:
        cameras = [camera for camera in cameras if camera in self._workers]
        burst = rule.config.frame_count
        log.debug(
            "event=%s trigger=%s rule=%s cameras=%s frames=%d",
            event.id, event.trigger, rule.name, ",".join(cameras), burst * len(cameras),
        )  # fmt: skip
        if not cameras:
            self._announce(_Firing(event, rule, 0, self._finish, manual))
            return
        firing = _Firing(event, rule, burst * len(cameras), self._finish, manual, tuple(cameras))
        ruleset = self._ruleset
        paths = {
            (camera, seq): rule.template.render(ruleset.fields(event, rule, camera, seq))
            for seq in range(1, burst + 1)
            for camera in cameras
        }
        planned = [
            PlannedFrame(c, n, str(path), rule.config.offset_ms(n))
            for (c, n), path in paths.items()
        ]
        firing.durable = self._recorder.open_firing(event.id, rule.name, manual, planned)
        with self._idle:
            self._in_flight += firing.expected
            self._firings.add(firing)
        for seq in range(1, burst + 1):
            # A frame before the trigger is due at once: a stream-backed camera has it buffered,
            # a snapshot camera can only take it now (and its result says how late it is).
            due = event.monotonic + rule.config.offset_ms(seq) / 1000
            for camera in cameras:
                frame = _Frame(firing, camera, seq, due, paths[camera, seq])
                if due <= time.monotonic():
                    self._enqueue(frame)
                else:
                    self._scheduler.at(due, functools.partial(self._enqueue, frame))

    def _enqueue(self, frame: _Frame) -> None:
        tried: CameraWorkers[_Frame] | None = None
        while True:
            workers = self._workers.get(frame.camera)
            if workers is None:
                removed = CameraRemoved(
                    frame.camera, "removed from the rule file by a reload before this frame was due"
                )
                self._fail(frame, removed, 0.0)
            elif workers is tried:  # stopped, not replaced: the engine is stopping
                stopped = Abandoned(frame.camera, "the service stopped before this frame was taken")
                self._fail(frame, stopped, 0.0)
            elif workers.queue.qsize() >= MAX_QUEUED_FRAMES:
                overloaded = Overloaded(
                    frame.camera,
                    f"{MAX_QUEUED_FRAMES} frames already queued; camera too slow for this "
                    "trigger rate",
                )
                self._fail(frame, overloaded, 0.0)
            elif not workers.submit(frame):
                tried = workers  # a reload retired them meanwhile: its new workers take it
                continue
            return

    def _capture(self, camera: Camera, frame: _Frame) -> None:
        """Camera worker: fetch one frame, hand it to a writer; never raises."""
        if self._abandoned:
            return
        try:
            snapshot = self._fetch(camera, frame)
        except CameraError as exc:
            self._fail(frame, exc, self._since_trigger_ms(frame))
            return
        except Exception as exc:  # a bug must not kill the camera's worker
            log.exception("capture failed camera=%s event=%s", frame.camera, frame.firing.event.id)
            self._fail(frame, exc, 0.0)
            return
        if not self._abandoned:  # not stopped after the grace period meanwhile
            self._store_or_hand_over(frame, snapshot)

    def _store_or_hand_over(self, frame: _Frame, snapshot: Snapshot) -> None:
        """Write a fetched frame here, or let a writer fsync it while the next is fetched."""
        workers = self._workers.get(frame.camera)
        # Nothing else waits for this camera: writing here spares the frame a hand-over
        # to a writer thread (and the CPU of two thread switches). The writers are
        # behind (a slow disk): writing here slows this camera's fetching to the disk's
        # pace instead of piling JPEGs up in memory.
        if (workers is not None and workers.queue.empty()) or not self._write_slots.acquire(
            blocking=False
        ):
            self._write(frame, snapshot)
            return
        try:
            self._writers.submit(self._write_queued, frame, snapshot)
        except RuntimeError:  # stopped after the grace period: the frame is abandoned
            self._write_slots.release()

    def _write_queued(self, frame: _Frame, snapshot: Snapshot) -> None:
        try:
            self._write(frame, snapshot)
        finally:
            self._write_slots.release()

    def _fetch(self, camera: Camera, frame: _Frame) -> Snapshot:
        late = time.monotonic() - max(frame.due, frame.firing.event.monotonic)
        if late > camera.config.deadline_s:
            raise Overloaded(
                frame.camera,
                f"frame waited {late:.1f} s in the queue; camera too slow for this trigger rate",
            )
        if isinstance(camera, BufferedCamera):
            return camera.frame_at(frame.due)  # the frame of that moment, past or coming
        return camera.snapshot()

    def _write(self, frame: _Frame, snapshot: Snapshot) -> None:
        """Name and store one JPEG (on a writer, or the camera's thread); never raises.

        Writing off the camera's worker, when frames wait, lets the next
        request go out while this file is fsynced, and lets the file system
        group the fsyncs of several writers into one journal commit.
        """
        if not frame.firing.claim(frame):  # a stop gave up on it meanwhile: no file
            return
        self._await_firing_row(frame.firing)
        try:
            result = self._store_frame(frame, snapshot)
        except Exception as exc:
            log.exception("storing failed camera=%s event=%s", frame.camera, frame.firing.event.id)
            result = self._failure(frame, exc, self._delay_ms(frame, snapshot))
        self._complete(frame, result)

    @staticmethod
    def _await_firing_row(firing: _Firing) -> None:
        """A file on disk must belong to a journaled firing, or a crash would orphan it.

        The fetch took longer than the commit, so this is almost never a wait.
        """
        durable = firing.durable
        if durable is not None and not durable.wait(FIRING_COMMIT_WAIT_S):
            log.warning(
                "event=%s rule=%s: journal did not commit the firing within %.0f s; storing anyway",
                firing.event.id, firing.rule.name, FIRING_COMMIT_WAIT_S,
            )  # fmt: skip

    def _store_frame(self, frame: _Frame, snapshot: Snapshot) -> CaptureResult:
        try:
            stored = self._store.save(frame.path, snapshot.jpeg, frame.camera)
        except OSError as exc:
            return self._failure(frame, exc, self._delay_ms(frame, snapshot))
        return CaptureResult(
            event_id=frame.firing.event.id,
            event_time=frame.firing.event.wall_time,
            rule=frame.firing.rule.name,
            camera=frame.camera,
            seq=frame.seq,
            path=str(stored.relative),
            bytes=len(snapshot.jpeg),
            latency_ms=snapshot.latency_ms,
            trigger_to_image_ms=self._delay_ms(frame, snapshot),
            image_time=self._image_time(snapshot),
            width=snapshot.width,
            height=snapshot.height,
            stale=snapshot.stale,
            missing_fields=frame.firing.rule.missing_values(frame.firing.event),
            offset_ms=frame.firing.rule.config.offset_ms(frame.seq),
            via=snapshot.via,
        )

    @staticmethod
    def _since_trigger_ms(frame: _Frame) -> float:
        return (time.monotonic() - frame.firing.event.monotonic) * 1000

    def _image_time(self, snapshot: Snapshot) -> datetime:
        """The device's own timestamp when it gives one, else when the image arrived.

        Devices without a zone (XRC file names) report local time: the
        service's time zone is the best guess for a camera on the same line.
        """
        stamp = snapshot.image_time
        if stamp is None:
            return snapshot.received_wall
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=self._ruleset.zone)

    @staticmethod
    def _delay_ms(frame: _Frame, snapshot: Snapshot) -> float:
        return round((snapshot.received_monotonic - frame.firing.event.monotonic) * 1000, 3)

    def _fail(self, frame: _Frame, error: BaseException, delay_ms: float) -> None:
        """Give a frame its failure, unless a stop already gave it Abandoned."""
        if frame.firing.claim(frame):
            self._complete(frame, self._failure(frame, error, delay_ms))

    def _failure(self, frame: _Frame, error: BaseException, delay_ms: float) -> CaptureResult:
        kind = getattr(error, "kind", None) or type(error).__name__
        return CaptureResult(
            event_id=frame.firing.event.id,
            event_time=frame.firing.event.wall_time,
            rule=frame.firing.rule.name,
            camera=frame.camera,
            seq=frame.seq,
            trigger_to_image_ms=round(delay_ms, 3),
            error_type=kind,
            error_message=str(error),
            offset_ms=frame.firing.rule.config.offset_ms(frame.seq),
        )

    def _complete(self, frame: _Frame, result: CaptureResult) -> None:
        if result.ok:
            log.debug("saved camera=%s path=%s", result.camera, result.path)
        elif (suppressed := self._failure_log.admit(result)) is not None:
            more = f" ({suppressed} similar failures not logged)" if suppressed else ""
            log.warning(
                "capture failed event=%s rule=%s camera=%s frame=%d error=%s: %s%s",
                result.event_id, result.rule, result.camera, result.seq,
                result.error_type, result.error_message, more,
            )  # fmt: skip
        try:
            self._recorder.record_result(result)
            for listener in self._listeners:
                listener(result)
        except Exception:
            log.exception("recording a capture result failed event=%s", result.event_id)
        frame.firing.add(result)
        self._release()

    def _finish(self, firing: _Firing) -> None:
        with self._idle:
            self._firings.discard(firing)
        self._announce(firing)

    def _announce(self, firing: _Firing) -> None:
        order = {name: index for index, name in enumerate(firing.rule.cameras)}
        results = sorted(firing.results, key=lambda r: (order.get(r.camera, 0), r.seq))
        report = FiringReport(
            event=firing.event,
            rule=firing.rule.name,
            site=self._ruleset.file.service.site,
            results=results,
            manual=firing.manual,
        )
        try:
            if self._announcer is not None:
                self._announcer.publish_firing(report)
            elif firing.expected:
                self._recorder.close_firing(firing.event.id, firing.rule.name)
            for listener in self._report_listeners:
                listener(report)
        except Exception:
            log.exception("announcing event=%s rule=%s failed", firing.event.id, firing.rule.name)
        if log.isEnabledFor(logging.INFO):
            log.info("%s", firing_line(report))

    def _release(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()
