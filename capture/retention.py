"""Which snapshots retention deletes next: an in-memory index, oldest first, per-camera newest kept.

The storage (capture.storage) owns the files and deletes them; this module
only decides. The index is a heap ordered by modification time beside a map
of path -> entry and each camera's newest path, so a pass with nothing to
delete costs under 0.1 ms with 100,000 files indexed, and one that deletes
takes files off in chunks that keep the storage's lock short.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from capture.config.schema import StorageConfig

MIB = 1024 * 1024
#: Most files one chunk takes off the index: a first pass after a long outage may
#: delete tens of thousands, and save() waits for the same lock meanwhile.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one retention pass deleted and why, and what is left.

    `by_reason` counts deletions per rule that asked for them: `age`
    (keep_days), `size` (max_total_mb) and `free_space` (min_free_mb, or room
    for a write that found the disk full). `kept_newest` counts files that were
    due but kept because they are the newest picture of their camera,
    `kept_for_upload` those kept because the object store does not have them
    yet ([upload]).
    """

    deleted_files: int
    freed_bytes: int
    by_reason: Mapping[str, int]
    kept_newest: int
    failed: int
    remaining_files: int
    remaining_bytes: int
    free_bytes: int
    kept_for_upload: int = 0

    def __str__(self) -> str:
        """`key=value` pairs, as every log line has them (never a Python repr)."""
        reasons = ",".join(f"{reason}:{count}" for reason, count in sorted(self.by_reason.items()))
        return (
            f"deleted={self.deleted_files} freed_mib={self.freed_bytes / 2**20:.1f} "
            f"reasons={reasons or 'none'} kept_newest={self.kept_newest} "
            f"kept_for_upload={self.kept_for_upload} failed={self.failed} "
            f"remaining={self.remaining_files} remaining_mib={self.remaining_bytes / 2**20:.1f} "
            f"free_mib={self.free_bytes / 2**20:.1f}"
        )


@dataclass(slots=True)
class RetentionPass:
    """The running totals of one retention pass, carried across its chunks."""

    free: int
    selected_bytes: int = 0
    freed: int = 0
    deleted: int = 0
    failed: int = 0
    done: bool = False
    reasons: Counter[str] = field(default_factory=Counter)
    kept: set[str] = field(default_factory=set)


@dataclass(slots=True)
class IndexEntry:
    """One snapshot as retention sees it; `camera` None: nobody knows whose it is."""

    relative: str
    camera: str | None
    size: int
    mtime_ns: int
    order: int


@dataclass(slots=True)
class RetentionIndex:
    """Snapshots by path, a heap oldest first, each camera's newest file, the ones held.

    `held` are pictures the object store does not have yet ([upload]): never due.
    A held picture that comes due is `parked` off the heap until released, so
    a long store outage (thousands held) costs each pass nothing, and the lock
    `save()` needs is never held to sift them again.
    """

    entries: dict[str, IndexEntry] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    parked: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    heap: list[tuple[int, int, str]] = field(default_factory=list)
    newest: dict[str, str] = field(default_factory=dict)
    total_bytes: int = 0

    def add(self, entry: IndexEntry) -> None:
        """Index a saved (or found) file; a later save of the same name supersedes the older."""
        old = self.entries.get(entry.relative)
        if old is not None:
            self.total_bytes -= old.size
        self.entries[entry.relative] = entry
        self.total_bytes += entry.size
        heapq.heappush(self.heap, (entry.mtime_ns, entry.order, entry.relative))
        if entry.camera is not None:
            self.newest[entry.camera] = entry.relative

    def hold(self, relatives: Iterable[str]) -> None:
        """Keep these from retention (not in the object store yet)."""
        self.held.update(relatives)

    def release(self, relatives: Iterable[str]) -> None:
        """Let retention have these again; a parked one is due at its next pass."""
        for relative in relatives:
            self.held.discard(relative)
            item = self.parked.pop(relative, None)
            if item is not None:
                heapq.heappush(self.heap, item)

    def remove(self, relative: str) -> IndexEntry:
        """Forget a file (its heap item is skipped when it comes up)."""
        entry = self.entries.pop(relative)
        self.total_bytes -= entry.size
        return entry

    def take_due(
        self, config: StorageConfig, pass_: RetentionPass, now_ns: int, extra_free: int
    ) -> list[IndexEntry]:
        """Take up to CHUNK due files off the index, oldest first, each camera's newest kept.

        Sets `pass_.done` when nothing more is due; the caller deletes the files.
        """
        cutoff = now_ns - int(config.keep_days * 86400e9) if config.keep_days else None
        max_total = int(config.max_total_mb * MIB) if config.max_total_mb else None
        min_free = int(config.min_free_mb * MIB) + extra_free
        protected = set(self.newest.values())
        victims: list[IndexEntry] = []
        kept: list[tuple[int, int, str]] = []
        parked = 0
        pass_.done = True
        while self.heap:
            mtime_ns, order, relative = self.heap[0]
            entry = self.entries.get(relative)
            if entry is None or entry.order != order:
                heapq.heappop(self.heap)  # superseded by a later save of the same name
                continue
            if cutoff is not None and mtime_ns < cutoff:
                reason = "age"
            elif max_total is not None and self.total_bytes > max_total:
                reason = "size"
            elif pass_.free + pass_.selected_bytes < min_free:
                reason = "free_space"
            else:
                break
            if len(victims) + parked >= CHUNK:
                pass_.done = False
                break
            item = heapq.heappop(self.heap)
            if relative in protected:
                kept.append(item)
                pass_.kept.add(relative)
                continue
            if relative in self.held:
                self.parked[relative] = item
                parked += 1
                continue
            victims.append(self.remove(relative))
            pass_.selected_bytes += entry.size
            pass_.reasons[reason] += 1
        for item in kept:
            heapq.heappush(self.heap, item)
        return victims
