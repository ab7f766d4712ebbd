"""Dahua `snapshot.cgi` (also Amcrest, Lorex, IMOU): 1-based channels and plain-text errors.

Dahua firmware answers in short text: HTTP 200 with `Error` where a JPEG
should be, 403 `Authority:check failure.`, and 400 with `Error` / `Bad
Request!` for a channel it does not have (camera-apis.md §2.2, §3.3).
"""

from __future__ import annotations

from typing import ClassVar

from capture.simulator.auth import ChallengeStyle
from capture.simulator.faults import Faults
from capture.simulator.personality import Personality, serial_of
from capture.simulator.protocol import Answer, Reply, Request

SNAPSHOT_PATH = "/cgi-bin/snapshot.cgi"


class Dahua(Personality):
    """A Dahua camera (channels = 1) or NVR/XVR (channels > 1)."""

    server_header: ClassVar[str] = "Webs"
    example_path: ClassVar[str] = "/cgi-bin/snapshot.cgi?channel=1"

    def challenge_style(self) -> ChallengeStyle:
        return ChallengeStyle(
            realm=f"Login to {serial_of(self.camera)}", empty_opaque=True, always_algorithm=False
        )

    def route(self, request: Request, faults: Faults) -> Answer:
        if request.path != SNAPSHOT_PATH:
            return self.not_found(request)
        if faults.dahua_403:
            return Reply(403, b"Authority:check failure.\r\n")
        if faults.dahua_error_body:
            return Reply(200, b"Error\r\n")
        try:
            channel = int(request.query.get("channel", "1"))
            subtype = int(request.query.get("subtype", "0"))
        except ValueError:
            return self.bad_request(request)
        if not 1 <= channel <= self.camera.channels or subtype not in (0, 1, 2):
            return self.bad_request(request)
        width, height = self.camera.width, self.camera.height
        if subtype:
            width, height = width // 2, height // 2
        return self.device.image(faults, channel, width, height)

    def unauthorized(self, request: Request, challenges: list[str]) -> Reply:
        return Reply(
            401,
            b"Error\r\nInvalid Authority!\r\n",
            headers=tuple(("WWW-Authenticate", value) for value in challenges),
        )

    def bad_request(self, request: Request) -> Reply:
        return Reply(400, b"Error\r\nBad Request!\r\n")

    def not_found(self, request: Request) -> Reply:
        return Reply(404, b"Error\r\nNot Found!\r\n")
