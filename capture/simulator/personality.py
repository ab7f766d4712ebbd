"""The base of a vendor personality: how a device words its challenges, errors and pages.

Each vendor module subclasses `Personality` and overrides what its devices
do differently; the device pipeline (`capture.simulator.device`) calls these
hooks and never branches on a vendor name.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, ClassVar

from capture.simulator.auth import ChallengeStyle
from capture.simulator.protocol import Answer, Html, Reply, Request

if TYPE_CHECKING:
    from capture.simulator.camera import SimulatedCamera
    from capture.simulator.device import Device
    from capture.simulator.faults import Faults


def serial_of(camera: SimulatedCamera) -> str:
    """A stable, device-like serial number derived from the camera name."""
    return f"{zlib.crc32(camera.name.encode()):08X}"


class Personality:
    """Default behaviour of a simple HTTP camera; vendors override the hooks."""

    server_header: ClassVar[str] = "Camera-Webs"
    query_params: ClassVar[tuple[str, str]] = ("user", "password")
    example_path: ClassVar[str] = "/"

    def __init__(self, device: Device) -> None:
        self.device = device
        self.camera = device.camera

    def challenge_style(self) -> ChallengeStyle:
        """Realm and wording of this device's challenges."""
        return ChallengeStyle(realm=f"Simulated Camera {serial_of(self.camera)}")

    def route(self, request: Request, faults: Faults) -> Answer:
        """Answer an authenticated request."""
        raise NotImplementedError

    def accepts_token(self, request: Request) -> bool:
        """Whether the request carries a vendor token (session id...) that replaces credentials."""
        return False

    def unauthorized(self, request: Request, challenges: list[str]) -> Reply:
        """The 401 for missing, stale or wrong credentials."""
        return Reply(
            401,
            Html("401 Unauthorized", "Authentication required.").render(),
            "text/html",
            headers=tuple(("WWW-Authenticate", value) for value in challenges),
        )

    def locked(self, request: Request, challenges: list[str]) -> Reply:
        """The answer of a locked account (too many bad logins)."""
        return Reply(
            403,
            Html("403 Forbidden", "Account locked: too many failed logins.").render(),
            "text/html",
        )

    def not_found(self, request: Request) -> Reply:
        """The answer for a path the device does not serve."""
        return Reply(
            404,
            Html("404 Not Found", f"Can't locate document: {escape(request.path)}").render(),
            "text/html",
        )

    def bad_request(self, request: Request) -> Reply:
        """The answer for a request the device cannot make sense of."""
        return Reply(400, Html("400 Bad Request").render(), "text/html")


def escape(text: str) -> str:
    """Escape text for HTML or XML bodies."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
