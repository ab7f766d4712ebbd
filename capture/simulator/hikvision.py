"""Hikvision ISAPI as cameras and NVRs answer it: picture paths, ResponseStatus XML, userCheck 401s.

Shapes follow recorded devices (camera-apis.md §2.1, §4): `<ResponseStatus>`
with statusCode 6 badXmlContent for NVR channels that only StreamingProxy
serves, statusCode 4 invalidOperation (HTTP 403) for a channel the device
does not have, an HTML "Document Error" page for unknown paths, and a
`<userCheck>` body on 401 with lock fields once the account is locked.
"""

from __future__ import annotations

import re
from typing import ClassVar

from capture.simulator.auth import ChallengeStyle
from capture.simulator.faults import Faults
from capture.simulator.personality import Personality, escape
from capture.simulator.protocol import Answer, Reply, Request

_PICTURE = re.compile(r"^/ISAPI/Streaming/channels/(\d+)/picture$")
_PROXY_PICTURE = re.compile(r"^/ISAPI/ContentMgmt/StreamingProxy/channels/(\d+)/picture$")
_MAX_SIDE = 4096


def response_status(url: str, code: int, text: str, sub_code: str, http_status: int) -> Reply:
    """An ISAPI `<ResponseStatus>` error as the device sends it."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ResponseStatus version="1.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">\n'
        f"<requestURL>{escape(url)}</requestURL>\n"
        f"<statusCode>{code}</statusCode>\n"
        f"<statusString>{text}</statusString>\n"
        f"<subStatusCode>{sub_code}</subStatusCode>\n"
        "</ResponseStatus>\n"
    )
    return Reply(http_status, body.encode(), 'application/xml; charset="UTF-8"')


def user_check(locked: bool) -> bytes:
    """The XML body of a Hikvision 401, with lock fields when the account is locked."""
    lock = (
        "<lockStatus>lock</lockStatus>\n<unlockTime>1800</unlockTime>\n<retryLoginTime>0</retryLoginTime>\n"
        if locked
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<userCheck>\n'
        "<statusValue>401</statusValue>\n<statusString>Unauthorized</statusString>\n"
        f"{lock}</userCheck>\n"
    ).encode()


class Hikvision(Personality):
    """A Hikvision camera (channels = 1) or NVR (channels > 1)."""

    server_header: ClassVar[str] = "App-webs/"
    example_path: ClassVar[str] = "/ISAPI/Streaming/channels/101/picture"

    def challenge_style(self) -> ChallengeStyle:
        realm = "DS-7608NI-K2" if self.camera.channels > 1 else "DS-2CD2143G0-I"
        return ChallengeStyle(
            realm=realm, uppercase_stale=True, empty_opaque=True, colon_nonce=True
        )

    def route(self, request: Request, faults: Faults) -> Answer:
        for pattern, proxied in ((_PICTURE, False), (_PROXY_PICTURE, True)):
            match = pattern.match(request.path)
            if match:
                return self._picture(request, faults, int(match.group(1)), proxied)
        return self.not_found(request)

    def _picture(self, request: Request, faults: Faults, channel_id: int, proxied: bool) -> Answer:
        if proxied and self.camera.channels == 1 and not faults.hikvision_nvr_proxy_only:
            return self.not_found(request)  # a plain camera has no ContentMgmt
        if not proxied and faults.hikvision_nvr_proxy_only:
            return response_status(request.path, 6, "Invalid XML Content", "badXmlContent", 400)
        channel, stream = divmod(channel_id, 100)
        if not 1 <= channel <= self.camera.channels or stream not in (1, 2):
            return response_status(request.path, 4, "Invalid Operation", "invalidOperation", 403)
        size = self._size(request, stream)
        if size is None:
            return response_status(request.path, 6, "Invalid Content", "badParameters", 400)
        return self.device.image(faults, channel, *size)

    def _size(self, request: Request, stream: int) -> tuple[int, int] | None:
        width, height = self.camera.width, self.camera.height
        if stream == 2:  # sub stream: a quarter of the pixels
            width, height = width // 2, height // 2
        asked_w = request.query.get("videoResolutionWidth")
        asked_h = request.query.get("videoResolutionHeight")
        if asked_w is None and asked_h is None:
            return width, height
        try:
            # One side given: the other keeps the aspect ratio.
            new_w = (
                int(asked_w) if asked_w is not None else round(width * int(asked_h or 0) / height)
            )
            new_h = int(asked_h) if asked_h is not None else round(height * new_w / width)
        except ValueError:
            return None
        if not (16 <= new_w <= _MAX_SIDE and 16 <= new_h <= _MAX_SIDE):
            return None
        return new_w, new_h

    def unauthorized(self, request: Request, challenges: list[str]) -> Reply:
        return Reply(
            401,
            user_check(locked=False),
            "application/xml",
            headers=tuple(("WWW-Authenticate", value) for value in challenges),
        )

    def locked(self, request: Request, challenges: list[str]) -> Reply:
        return Reply(
            401,
            user_check(locked=True),
            "application/xml",
            headers=tuple(("WWW-Authenticate", value) for value in challenges),
        )

    def not_found(self, request: Request) -> Reply:
        body = (
            "<!DOCTYPE html>\n<html><head><title>Document Error: Not Found</title></head>\n"
            "<body><h2>Access Error: 404 -- Not Found</h2>\n"
            f"<p>Can't locate document: {escape(request.path)}</p>\n</body>\n</html>\n"
        )
        return Reply(404, body.encode(), "text/html")
