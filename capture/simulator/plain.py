"""Cameras with one endpoint at a fixed path: EDIMAX and generic snapshots, plain MJPEG streams."""

from __future__ import annotations

from typing import ClassVar

from capture.simulator.faults import Faults
from capture.simulator.personality import Personality
from capture.simulator.protocol import Answer, Request


class SnapshotAtPath(Personality):
    """Serves a JPEG at `camera.path` (EDIMAX `/snapshot.jpg`, generic `/snap.jpg`)."""

    @property
    def path(self) -> str:
        """The one path this device serves."""
        assert self.camera.path is not None  # vendors of this kind always get a default
        return self.camera.path

    def route(self, request: Request, faults: Faults) -> Answer:
        if request.path != self.path.split("?", 1)[0]:
            return self.not_found(request)
        return self.device.image(faults, 1, self.camera.width, self.camera.height)


class Edimax(SnapshotAtPath):
    """An EDIMAX IC-series camera: Basic auth, `/snapshot.jpg`."""

    server_header: ClassVar[str] = "Boa/0.94.14rc21"
    example_path: ClassVar[str] = "/snapshot.jpg"


class Generic(SnapshotAtPath):
    """Any camera with a snapshot URL; query auth uses `user` and `password`."""

    server_header: ClassVar[str] = "lighttpd/1.4.59"
    example_path: ClassVar[str] = "/snap.jpg"


class Mjpeg(SnapshotAtPath):
    """A camera streaming multipart/x-mixed-replace at `camera.path` (`/mjpg/video.mjpg`)."""

    server_header: ClassVar[str] = "mjpg-streamer"
    example_path: ClassVar[str] = "/mjpg/video.mjpg"

    def route(self, request: Request, faults: Faults) -> Answer:
        if request.path != self.path.split("?", 1)[0]:
            return self.not_found(request)
        return self.device.stream(faults, 1, self.camera.width, self.camera.height)
