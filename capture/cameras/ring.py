"""The live buffer of one camera: the last seconds of its stream, each frame with its arrival time.

Bounded twice, by age (`buffer_s`) and by bytes (`buffer_mb`), so a camera
that suddenly sends 4K frames cannot fill the Pi's memory. Frames are stored
as they arrived (a JPEG for MJPEG, an undecoded packet for H.264), and the
rule engine asks for the frame nearest a moment: a moment in the past is
answered from the buffer at once, a moment still to come waits for the
stream, bounded by a timeout.

A coded frame decodes only from its group's keyframe, so the buffer always
starts with a keyframe and frames go in whole groups: by age once the last
frame of the oldest group is older than `buffer_s` (the buffer may hold up to
one keyframe interval more, however long the camera's interval), by bytes
the oldest group first. A frame with no keyframe before it (a new connection
joining mid-group, or a group larger than `buffer_mb`) is not kept: it could
never be decoded. For MJPEG every frame is its own group.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BufferedFrame:
    """One frame as it arrived: its payload and when its last byte came in.

    `keyframe` is True for every MJPEG frame; for a coded stream, only for
    the frames a decoder can start from.
    """

    arrived: float  # monotonic
    arrived_wall: datetime
    data: bytes
    keyframe: bool = True
    width: int = 0
    height: int = 0


class FrameRing:
    """Frames in arrival order, dropped by age and total size; thread-safe."""

    def __init__(
        self, seconds: float, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._clock = clock
        self._frames: deque[BufferedFrame] = deque()
        self._bytes = 0
        #: The frames arriving now continue a group whose keyframe is held.
        self._decodable = False
        self._arrived = threading.Condition()
        self.total_frames = 0
        self.total_bytes = 0

    def add(self, frame: BufferedFrame) -> None:
        """Append a frame and drop what is now too old or too much; wakes waiting readers."""
        with self._arrived:
            self.total_frames += 1
            self.total_bytes += len(frame.data)
            if frame.keyframe:
                self._decodable = True
            elif not self._decodable:
                return  # nothing to decode it from: not a frame anyone can be given
            self._frames.append(frame)
            self._bytes += len(frame.data)
            horizon = frame.arrived - self.seconds
            while len(self._frames) > 1 and self._oldest_group_before(horizon):
                self._drop_oldest_group()
            while len(self._frames) > 1 and self._bytes > self.max_bytes:
                self._drop_oldest_group()
            self._arrived.notify_all()

    def new_connection(self) -> None:
        """The stream reconnected: its next frames continue no group held here."""
        with self._arrived:
            self._decodable = False

    def _oldest_group_before(self, horizon: float) -> bool:
        """Whether every frame of the oldest group arrived before `horizon` (and a newer group
        follows it)."""
        if self._frames[0].arrived >= horizon:
            return False
        for frame in itertools.islice(self._frames, 1, None):
            if frame.keyframe:
                return True
            if frame.arrived >= horizon:
                return False
        return False

    def _drop_oldest_group(self) -> None:
        """Drop the oldest keyframe and the frames decoded from it; all of them if one group."""
        frames = self._frames
        self._bytes -= len(frames.popleft().data)
        while frames and not frames[0].keyframe:
            self._bytes -= len(frames.popleft().data)
        if not frames:
            self._decodable = False  # the group that was arriving went: wait for a keyframe

    @property
    def size_bytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)

    def span_s(self) -> float:
        """Seconds between the oldest and the newest frame held."""
        with self._arrived:
            if not self._frames:
                return 0.0
            return self._frames[-1].arrived - self._frames[0].arrived

    def interval_s(self) -> float:
        """The mean time between frames held (0 with fewer than two)."""
        with self._arrived:
            count = len(self._frames)
            if count < 2:
                return 0.0
            return (self._frames[-1].arrived - self._frames[0].arrived) / (count - 1)

    def nearest(self, moment: float, wait_s: float) -> list[BufferedFrame] | None:
        """The frame nearest `moment` (monotonic), with the frames back to its keyframe.

        Waits up to `wait_s` for a frame arriving at or after `moment`, so that
        "nearest" can compare both sides; when none comes the last frame
        before it is the answer. None when the buffer holds nothing at all.
        The list ends with the chosen frame and starts with its keyframe.
        """
        deadline = self._clock() + wait_s
        with self._arrived:
            while not self._frames or self._frames[-1].arrived < moment:
                left = deadline - self._clock()
                if left <= 0:
                    break
                self._arrived.wait(left)
            if not self._frames:
                return None
            frames = list(self._frames)
        times = [frame.arrived for frame in frames]
        after = bisect.bisect_left(times, moment)
        if after == len(frames):
            index = after - 1
        elif after == 0:
            index = 0
        else:
            index = after if times[after] - moment < moment - times[after - 1] else after - 1
        start = index
        while start > 0 and not frames[start].keyframe:
            start -= 1
        return frames[start : index + 1]
