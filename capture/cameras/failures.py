"""The typed camera error for every way a request can fail, free of secrets.

Two sources: an answer that is not a snapshot (`answer`: HTTP status, error
page, broken JPEG, refused login; a driver's classifier speaks first for
its vendor's error documents) and a transport failure (`transport`: by the
exception's type, never by searching a library's message). Each error names
the camera, says what the device did and what to check, and carries an
excerpt of what it said with every secret masked.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from capture.cameras.auth import CameraAuth
from capture.cameras.classify import classify_common
from capture.cameras.errors import (
    AuthFailed,
    CameraError,
    DeviceError,
    InvalidImage,
    Timeout,
    Unreachable,
)
from capture.cameras.exchange import (
    CutInHead,
    Deadline,
    DeadlinePassed,
    Dropped,
    HeadTooLarge,
    Malformed,
    Truncated,
)
from capture.cameras.hints import password_source
from capture.cameras.jpeg import JpegError
from capture.cameras.redact import excerpt, scrub
from capture.config.schema import CameraBase

if TYPE_CHECKING:
    from capture.cameras.http import Classifier, Reply


class Failures:
    """The errors of one camera: its name, options, auth and secrets, and how to redact a URL."""

    def __init__(
        self,
        camera: str,
        config: CameraBase,
        auth: CameraAuth,
        secrets: tuple[str, ...],
        redact: Callable[[object], str],
    ) -> None:
        self.camera = camera
        self.config = config
        self.auth = auth
        self.secrets = secrets
        self.redact = redact
        #: The rule-file key that gives the password, as the hints name it.
        self.password = password_source(config)

    def deadline_spent(self, deadline: Deadline, source: str, doing: str = "") -> Timeout:
        """The snapshot's deadline passed: every request of it counts, the login included."""
        while_ = f" while {doing}" if doing else ""
        return Timeout(
            self.camera,
            f"no complete answer within deadline_s = {deadline.seconds:g} s from {source} "
            f"(gave up after {deadline.elapsed():.2f} s{while_}; every request of the snapshot "
            "counts, the login handshake included); the device may be overloaded or "
            "sending too slowly: raise deadline_s",
        )

    def answer(  # noqa: PLR0911 - one branch per kind of answer
        self,
        result: Reply,
        classify: Classifier | None = None,
        jpeg_error: JpegError | None = None,
    ) -> CameraError:
        """The typed error for an answer that is not a snapshot."""
        if classify is not None:
            specific = classify(result)
            if specific is not None:
                return specific
        common = classify_common(self.camera, result, self.secrets, self.password)
        if common is not None:
            return common
        status, text = result.status, self.excerpt(result.body)
        if status == 200:
            return self._not_a_jpeg(result, jpeg_error, text)
        if status == 401:
            return self._unauthorized(result, text)
        if status == 403:
            user = f" {self.auth.credentials.user!r}" if self.auth.credentials else ""
            return AuthFailed(
                self.camera,
                f"access denied (HTTP 403{_quoted(text)}) for {result.source}; check that "
                f"user{user} may take snapshots on the device",
                status=status,
                excerpt=text,
            )
        if status == 404:
            return DeviceError(
                self.camera,
                f"not found (HTTP 404) at {result.source}; check the path and channel",
                status=status,
                excerpt=text,
            )
        if 300 <= status < 400:
            location = self.redact(result.headers.get("location", "?"))
            return DeviceError(
                self.camera,
                f"redirected (HTTP {status}) to {location}; check scheme (http/https), "
                "port and path",
                status=status,
                excerpt=text,
            )
        return DeviceError(
            self.camera,
            f"device answered HTTP {status}{_quoted(text)} for {result.source}",
            status=status,
            excerpt=text,
        )

    def excerpt(self, body: bytes) -> str:
        """A printable, secret-free excerpt of a body."""
        return excerpt(body, self.secrets)

    def _not_a_jpeg(self, result: Reply, jpeg_error: JpegError | None, text: str) -> CameraError:
        body = result.body
        if body.startswith(b"\xff\xd8"):
            reason = str(jpeg_error) if jpeg_error else "invalid"
            return InvalidImage(
                self.camera,
                f"broken JPEG from {result.source}: {reason}",
                status=result.status,
                excerpt=None,
            )
        what = describe_body(body, result.content_type)
        return InvalidImage(
            self.camera,
            f"answered HTTP 200 with {what} instead of a JPEG{_quoted(text)} "
            f"at {result.source}; check the path and that the user may take snapshots",
            status=result.status,
            excerpt=text or None,
        )

    def _unauthorized(self, result: Reply, text: str) -> AuthFailed:
        offered = result.challenge or "no challenge"
        scheme = self.auth.scheme
        if self.auth.credentials is None and not self.auth.query_params:
            return AuthFailed(
                self.camera,
                f"the camera requires authentication (HTTP 401, {offered}); "
                "set user and password_env",
                status=401,
                excerpt=text,
            )
        if result.stale_nonce:
            return AuthFailed(
                self.camera,
                f"the camera declared even a fresh nonce expired (HTTP 401, {offered}, "
                "stale=true); check the camera's clock and firmware",
                status=401,
                excerpt=text,
            )
        if not result.credentials_sent:
            return AuthFailed(
                self.camera,
                f"the camera asks for {offered} but auth = {self.auth.mode!r}; "
                "set auth = 'auto' or the scheme the camera asks for",
                status=401,
                excerpt=text,
            )
        hint = f"check user and {self.password}"
        mismatch = result.challenge and not result.challenge.startswith(scheme)
        if scheme in ("basic", "digest") and mismatch:
            hint = f"the camera expects {offered}, not {scheme}: set auth = 'auto'; or {hint}"
        return AuthFailed(
            self.camera,
            f"authentication failed (HTTP 401, {offered}); {hint}",
            status=401,
            excerpt=text,
            credentials_rejected=True,
        )

    def transport(  # noqa: PLR0911 - one branch per kind of transport failure
        self, exc: httpx.HTTPError, source: str, deadline: Deadline
    ) -> CameraError:
        """The one mapping from transport failures to camera errors, by exception type.

        The transport's typed failures (capture.cameras.exchange) say where the
        device stopped; library messages are only quoted, never searched.
        """
        address = f"{self.config.host}:{self.config.effective_port}"
        detail = scrub(str(exc), self.secrets) or type(exc).__name__
        if isinstance(exc, DeadlinePassed):
            return self.deadline_spent(deadline, source, _while(detail))
        if isinstance(exc, httpx.ConnectTimeout):
            return Unreachable(
                self.camera,
                f"no answer from {address} within connect_timeout_s = "
                f"{self.config.connect_timeout_s:g} s; check the camera is powered and on "
                "the network",
            )
        if isinstance(exc, httpx.PoolTimeout):
            return Timeout(
                self.camera,
                f"all {self.config.max_concurrent} connection(s) stayed busy until the "
                "deadline; raise max_concurrent only if the device copes with it",
            )
        if isinstance(exc, httpx.TimeoutException):
            if deadline.expired:
                return self.deadline_spent(deadline, source)
            limit = min(self.config.timeout_s, deadline.seconds)
            return Timeout(
                self.camera,
                f"no answer within {limit:g} s from {source}; the device may be "
                "overloaded (NVRs can be slow: raise timeout_s)",
            )
        if isinstance(exc, httpx.ConnectError):
            return Unreachable(self.camera, _connect_failure(address, exc, detail, self.config))
        if isinstance(exc, Truncated):
            return InvalidImage(
                self.camera,
                f"truncated answer from {source}: the connection closed before the "
                f"body was complete ({detail})",
            )
        if isinstance(exc, Dropped | CutInHead):
            return Unreachable(self.camera, f"{detail} from {address} (asked {source})")
        if isinstance(exc, HeadTooLarge):
            return DeviceError(
                self.camera,
                f"malformed HTTP from {address}: {detail} for {source} "
                "(max_header_kb sets the limit)",
            )
        if isinstance(exc, Malformed):
            part = "head" if exc.in_head else "body framing"
            return DeviceError(
                self.camera, f"malformed HTTP {part} from {address} ({detail}) for {source}"
            )
        if isinstance(exc, httpx.DecodingError):
            return InvalidImage(self.camera, f"undecodable body from {source} ({detail})")
        if isinstance(exc, httpx.TransportError):
            return Unreachable(self.camera, f"connection to {address} failed ({detail})")
        return DeviceError(self.camera, f"request to {source} failed ({detail})")


def _while(detail: str) -> str:
    """'reading the body' out of DeadlinePassed's 'deadline passed after 2.01 s while reading...'."""
    return detail.partition(" while ")[2]


def _connect_failure(address: str, exc: Exception, detail: str, config: CameraBase) -> str:
    """What a failed connection means, from the OS or TLS error behind it."""
    cause = root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate of {address} not trusted ({detail}); set ca_file to the "
            "camera's certificate, or verify = false for a self-signed device"
        )
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with {address} failed ({detail}); check scheme and port"
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused by {address}; check host, port and scheme ({config.scheme})"
    if isinstance(cause, socket.gaierror):
        return f"host name {config.host!r} not found; check host"
    return f"cannot connect to {address} ({detail}); check host, port and network"


def root_cause(exc: BaseException) -> BaseException:
    """The OS or TLS error a transport failure goes back to (or the failure itself).

    httpx wraps httpcore's exception, which carries the original one as its
    argument (httpcore's pool re-raises it `from None`, cutting `__cause__`).
    """
    seen = exc
    for _ in range(8):  # a chain is short; never loop on a cycle
        inner = seen.__cause__ or seen.__context__
        if inner is None and seen.args and isinstance(seen.args[0], BaseException):
            inner = seen.args[0]
        if inner is None:
            break
        seen = inner
    return seen


def describe_body(body: bytes, content_type: str) -> str:
    """What a non-JPEG body looks like, for messages: 'an HTML page', 'an empty body'..."""
    head = body.lstrip()[:64].lower()
    if not body.strip():
        return "an empty body"
    if head.startswith((b"<!doctype html", b"<html")) or "html" in content_type:
        return "an HTML page"
    if head.startswith(b"<") or "xml" in content_type:
        return "an XML document"
    if head.startswith((b"{", b"[")) or "json" in content_type:
        return "a JSON document"
    if all(32 <= byte < 127 or byte in b"\r\n\t" for byte in body[:256]):
        return "a text message"
    return "data that is not a JPEG"


def _quoted(text: str) -> str:
    return f": {text!r}" if text else ""
