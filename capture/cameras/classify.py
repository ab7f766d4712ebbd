"""Recognizes error bodies that several camera families send where the JPEG should be.

Used for every driver after its own vendor hook, so a generic camera pointed
at a Foscam HD (`<CGI_Result>`) or a Reolink (`{"error": ...}`) still reports
"bad password" instead of "not a JPEG". Vendor-specific shapes (Hikvision
ResponseStatus, Dahua `Error`, XRC `var result`) live in their drivers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from capture.cameras.errors import AuthFailed, CameraError, DeviceError, LockedOut
from capture.cameras.redact import excerpt

if TYPE_CHECKING:
    from capture.cameras.http import Reply

_CGI_RESULT = re.compile(rb"<CGI_Result>\s*<result>\s*(-?\d+)\s*</result>", re.IGNORECASE)
#: Foscam HD CGI result codes (Foscam CGI guide).
_FOSCAM_RESULTS = {
    -1: "CGI format error",
    -2: "user name or password error",
    -3: "access denied",
    -4: "CGI execution failed",
    -5: "timeout",
    -7: "unknown error",
}
_LOCKED = re.compile(rb"\blocked\b", re.IGNORECASE)
_REOLINK_AUTH = ("please login first", "invalid user", "login failed", "password wrong")


def classify_common(
    camera: str, reply: Reply, secrets: Iterable[str], password: str
) -> CameraError | None:
    """A typed error for a lockout page, a Foscam HD or a Reolink error body, else None.

    `password` names the rule-file key that gives this camera's password (the hints say it).
    """
    return (
        _lockout_page(camera, reply, secrets, password)
        or _foscam_result(camera, reply, secrets, password)
        or _reolink_error(camera, reply, secrets, password)
    )


def _lockout_page(
    camera: str, reply: Reply, secrets: Iterable[str], password: str
) -> CameraError | None:
    if reply.status not in (401, 403) or not _LOCKED.search(reply.body[:4096]):
        return None
    text = excerpt(reply.body, secrets)
    return LockedOut(
        camera,
        f"the camera locked the account (HTTP {reply.status}: {text!r}); wait for it to "
        f"unlock (or restart it), and fix {password} first",
        retry_after_s=None,
        status=reply.status,
        excerpt=text,
    )


def _foscam_result(
    camera: str, reply: Reply, secrets: Iterable[str], password: str
) -> CameraError | None:
    match = _CGI_RESULT.search(reply.body[:4096])
    if match is None:
        return None
    code = int(match.group(1))
    meaning = _FOSCAM_RESULTS.get(code, "error")
    text = excerpt(reply.body, secrets)
    if code == -2:
        return AuthFailed(
            camera,
            f"authentication failed (CGI_Result {code}: {meaning}); check user and {password}",
            status=reply.status,
            excerpt=text,
            credentials_rejected=True,
        )
    if code == -3:
        return AuthFailed(
            camera,
            f"access denied (CGI_Result {code}); check the user's rights, and that the "
            "password has no characters the camera mishandles",
            status=reply.status,
            excerpt=text,
        )
    return DeviceError(
        camera,
        f"device error (CGI_Result {code}: {meaning}) for {reply.source}",
        status=reply.status,
        excerpt=text,
    )


def _reolink_error(
    camera: str, reply: Reply, secrets: Iterable[str], password: str
) -> CameraError | None:
    body = reply.body.lstrip()
    if not body.startswith((b"{", b"[")) or len(body) > 8192:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    entry = document[0] if isinstance(document, list) and document else document
    error = entry.get("error") if isinstance(entry, dict) else None
    if not isinstance(error, dict):
        return None
    detail = str(error.get("detail", ""))
    code = error.get("rspCode")
    text = excerpt(reply.body, secrets)
    if "locked" in detail.lower():
        return LockedOut(
            camera,
            f"the camera locked the login ({detail!r}); wait, then fix user and password",
            retry_after_s=None,
            status=reply.status,
            excerpt=text,
        )
    if any(marker in detail.lower() for marker in _REOLINK_AUTH):
        return AuthFailed(
            camera,
            f"authentication failed ({detail!r}, code {code}); check user and {password}",
            status=reply.status,
            excerpt=text,
            credentials_rejected=True,
        )
    return DeviceError(
        camera,
        f"device error ({detail!r}, code {code}) for {reply.source}",
        status=reply.status,
        excerpt=text,
    )
