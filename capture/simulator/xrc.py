"""The Shenzhen-style CGI cameras (old Foscam, ReeCam, XRC): snapshot.cgi, sessions, request_av/videostream.

These answer their CGIs with JavaScript-variable bodies (`var result = 0;`),
take credentials as `user`/`pwd` query parameters (or Basic), accept a
`session` from `create_session.cgi` instead, and open a video stream only
with a short-lived one-off `id` from `request_av.cgi` (camera-apis.md §2.3-2.4).
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from capture.simulator.faults import Faults
from capture.simulator.personality import Personality
from capture.simulator.protocol import Answer, Reply, Request

if TYPE_CHECKING:
    from capture.simulator.device import Device

SESSION_TTL_S = 600.0
"""A session lives 10 minutes, extended by each use (ReeCam session CGI)."""
STREAM_ID_TTL_S = 30.0
"""How long a request_av.cgi id may wait before videostream.cgi uses it."""

RESOLUTIONS: dict[int, tuple[int, int]] = {
    2: (160, 120),
    4: (320, 240),  # ReeCam stream1_resolution code
    8: (320, 240),  # Foscam FI89xx code
    32: (640, 480),
}
"""`resolution` codes understood; any other code serves the camera's own size."""

_JS = "text/plain"


def js_vars(**values: int) -> bytes:
    """A JavaScript-variable body as these cameras write it."""
    return "".join(f"var {name} = {value};\r\n" for name, value in values.items()).encode()


class _Tokens:
    """Issued numeric tokens with expiry; thread-safe."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> int:
        token = 100_000_000 + secrets.randbelow(1_900_000_000)
        with self._lock:
            now = time.monotonic()
            self._expiry = {t: e for t, e in self._expiry.items() if e > now}
            self._expiry[str(token)] = now + self.ttl_s
        return token

    def valid(self, token: str, consume: bool = False, extend: bool = False) -> bool:
        with self._lock:
            expiry = self._expiry.get(token)
            if expiry is None or expiry <= time.monotonic():
                return False
            if consume:
                del self._expiry[token]
            elif extend:
                self._expiry[token] = time.monotonic() + self.ttl_s
            return True


class Xrc(Personality):
    """An XRC/ReeCam/old-Foscam CGI camera."""

    server_header: ClassVar[str] = "Netwave IP Camera"
    query_params: ClassVar[tuple[str, str]] = ("user", "pwd")
    example_path: ClassVar[str] = "/snapshot.cgi"

    def __init__(self, device: Device) -> None:
        super().__init__(device)
        self.sessions = _Tokens(SESSION_TTL_S)
        self.stream_ids = _Tokens(STREAM_ID_TTL_S)

    def accepts_token(self, request: Request) -> bool:
        if request.path == "/videostream.cgi" and "id" in request.query:
            return True  # route answers a bad id the XRC way, not with a 401
        session = request.query.get("session")
        return session is not None and self.sessions.valid(session, extend=True)

    def route(self, request: Request, faults: Faults) -> Answer:
        if request.path == "/snapshot.cgi":
            return self._snapshot(request, faults)
        if request.path == "/create_session.cgi":
            return Reply(200, js_vars(session=self.sessions.issue(), group=65475), _JS)
        if request.path == "/request_av.cgi":
            if faults.xrc_too_many_viewers:
                return Reply(200, js_vars(result=-2), _JS)
            return Reply(200, js_vars(result=0, id=self.stream_ids.issue()), _JS)
        if request.path == "/videostream.cgi":
            return self._videostream(request, faults)
        return self.not_found(request)

    def _size(self, request: Request) -> tuple[int, int]:
        try:
            code = int(request.query.get("resolution", ""))
        except ValueError:
            return self.camera.width, self.camera.height
        return RESOLUTIONS.get(code, (self.camera.width, self.camera.height))

    def _snapshot(self, request: Request, faults: Faults) -> Answer:
        name = request.query.get("filename") or request.query.get("next_url")
        if not name:
            name = datetime.now().strftime("snapshot_%Y%m%d%H%M%S")
        if not name.lower().endswith(".jpg"):
            name += ".jpg"
        disposition = ("Content-Disposition", f'inline; filename="{name}"')
        return self.device.image(faults, 1, *self._size(request), headers=(disposition,))

    def _videostream(self, request: Request, faults: Faults) -> Answer:
        stream_id = request.query.get("id")
        if stream_id is not None and not self.stream_ids.valid(stream_id, consume=True):
            return Reply(200, js_vars(result=-1), _JS)
        width, height = self._size(request)
        if request.query.get("stream", "0") not in ("0", ""):
            width, height = width // 2, height // 2
        return self.device.stream(faults, 1, width, height)

    def unauthorized(self, request: Request, challenges: list[str]) -> Reply:
        headers = tuple(("WWW-Authenticate", value) for value in challenges)
        if request.path == "/snapshot.cgi":
            return Reply(401, b"401 Unauthorized\r\n", "text/html", headers)
        return Reply(401, js_vars(result=-1), _JS, headers)

    def locked(self, request: Request, challenges: list[str]) -> Reply:
        return Reply(403, js_vars(result=-3), _JS)
