"""One long-lived HTTP client per camera, and the one place httpx errors become camera errors.

Every driver fetches through `CameraHttp`: it owns the keep-alive connection
(a client per request costs ~45 ms) on the camera's transport (httpx's own,
guarded by the snapshot's deadline, with a lenient fallback for sloppy
devices: capture.cameras.transport), retries exactly once when a pooled
keep-alive connection turns out to be dead, and turns every failure
(transport, HTTP status, error body, broken JPEG) into a typed `CameraError`
whose message and excerpt are free of secrets.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from capture import __version__
from capture.cameras.auth import BEFORE_RESEND, CameraAuth, describe_challenge, is_stale
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
    Exchange,
    HeadTooLarge,
    Malformed,
    Truncated,
    active,
)
from capture.cameras.jpeg import JpegError, JpegInfo, validate_jpeg
from capture.cameras.multipart import FirstFrameReader, MjpegError
from capture.cameras.redact import (
    SECRET_PARAMS,
    excerpt,
    install_log_filter,
    redact_url,
    scrub,
)
from capture.cameras.transport import DeviceTransport, LenientFlag
from capture.config.schema import CameraBase

logger = logging.getLogger(__name__)

#: Largest error body read for an excerpt.
MAX_ERROR_BYTES = 64 * 1024
KEEPALIVE_EXPIRY_S = 5.0
#: Parsed request URLs kept per camera (a camera asks for one or two URLs).
MAX_CACHED_URLS = 32


@dataclass(frozen=True)
class Reply:
    """A complete answer from the device (status, headers, body) and the redacted URL asked."""

    status: int
    headers: httpx.Headers
    body: bytes
    source: str
    credentials_sent: bool
    challenge: str | None = None
    stale_nonce: bool = False

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case ('' when absent)."""
        return str(self.headers.get("content-type", "")).split(";")[0].strip().lower()


#: A vendor's hook: a typed error for a reply it recognizes, else None.
Classifier = Callable[[Reply], CameraError | None]


@functools.cache
def _shared_context(cafile: str | None) -> ssl.SSLContext:
    """One verifying context per CA file, shared by every camera.

    Each default context loads the whole CA bundle: ~1 MB of memory and
    ~20 ms per client, which 16 cameras would pay 16 times over.
    """
    return ssl.create_default_context(cafile=cafile) if cafile else httpx.create_ssl_context()


def _ssl_context(config: CameraBase) -> ssl.SSLContext | None:
    """The verifying context of an https camera; None for http, or for verify = false."""
    if config.scheme != "https" or not config.verify:
        return None  # no TLS, or TLS unverified: do not load a CA bundle for nothing
    return _shared_context(str(config.ca_file) if config.ca_file else None)


class _NoCookies(httpx.Cookies):
    """A cookie jar that stays empty: no camera API this service uses sets or needs one."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Ignore Set-Cookie (httpx parses every response's headers for it otherwise)."""

    def set_cookie_header(self, request: httpx.Request) -> None:
        """Send no Cookie header."""


class _CameraClient(httpx.Client):
    """httpx.Client without cookies.

    httpx builds a urllib request and response wrapper around every answer to
    look for Set-Cookie: ~10% of a snapshot's CPU, for headers no snapshot
    API sends. The jar is fixed empty, so a camera cannot plant cookies either.
    """

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        """Always empty."""
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        """Ignored (httpx.Client.__init__ sets the jar)."""


class CameraHttp:
    """HTTP access to one camera: a pooled client, its auth, timeouts and error translation."""

    def __init__(
        self,
        camera: str,
        config: CameraBase,
        auth: CameraAuth,
        *,
        secret_params: Collection[str] = (),
        transport: httpx.BaseTransport | None = None,
        lenient: LenientFlag | None = None,
    ) -> None:
        self.camera = camera
        self.config = config
        self.auth = auth
        self.secret_params = tuple(secret_params)
        secret_names = {name.lower() for name in (*SECRET_PARAMS, *self.secret_params)}
        query_secrets = [v for k, v in auth.query_params.items() if k.lower() in secret_names]
        self.secrets = tuple(secret for secret in (*query_secrets, _password(config)) if secret)
        install_log_filter(self.secret_params)
        self.base_url = httpx.URL(
            scheme=config.scheme, host=config.host, port=config.effective_port
        )
        self._targets: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[httpx.URL, str]] = {}
        self.max_image_bytes = config.max_image_mb * 1024 * 1024
        self.max_head_bytes = config.max_header_kb * 1024
        if transport is None:
            transport = DeviceTransport(
                camera,
                ssl_context=_ssl_context(config),
                max_connections=config.max_concurrent,
                keepalive_expiry=KEEPALIVE_EXPIRY_S,
                lenient=lenient,
            )
        self.client = _CameraClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            follow_redirects=False,
            # No proxies or .netrc credentials from the environment: cameras sit on the plant LAN.
            trust_env=False,
            headers={"User-Agent": f"event-capture/{__version__}"},
            transport=transport,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self.client.close()

    def redact(self, url: object) -> str:
        """A URL safe to log and show: secret query values masked, no user info."""
        return redact_url(url, self.secret_params, self.secrets)

    def source(self, path: str, params: dict[str, str] | None = None) -> str:
        """The redacted URL a request for `path` goes to, as recorded in `Snapshot.source`."""
        return self._target(path, params)[1]

    def _redacted(self, url: httpx.URL) -> str:
        """`redact(url)`, from the cache when the URL is one this camera asks for."""
        for cached_url, text in self._targets.values():
            if cached_url == url:
                return text
        return self.redact(url)

    def _target(self, path: str, params: dict[str, str] | None) -> tuple[httpx.URL, str]:
        """The full URL of a request and its redacted text, parsed once per path.

        httpx parses and re-quotes a URL several times per request; for a
        camera asked for the same picture URL hundreds of times a second that
        was the largest CPU cost of a snapshot, so the parsed URL is kept.
        """
        key = (path, tuple(sorted(params.items())) if params else ())
        cached = self._targets.get(key)
        if cached is None:
            url = self.client.build_request("GET", path, params=params).url
            cached = (url, self.redact(url))
            if len(self._targets) < MAX_CACHED_URLS:  # random query values would never repeat
                self._targets[key] = cached
        return cached

    # ------------------------------------------------------------------ requests

    @contextmanager
    def stream(
        self, path: str, params: dict[str, str] | None, deadline: Deadline
    ) -> Iterator[httpx.Response]:
        """Send a GET and yield the open response, whatever its status.

        A request that fails on a reused keep-alive connection before any
        answer (the device dropped the idle socket) is sent once more on a new
        connection; nothing else is retried here.
        """
        url, source = self._target(path, params)
        exchange = Exchange(deadline, self.max_head_bytes)
        with active(exchange):
            for attempt in (1, 2):
                self.check_deadline(deadline, source)
                request = self.client.build_request(
                    "GET",
                    url,
                    timeout=self.timeouts(deadline),
                    extensions={
                        "trace": exchange,
                        BEFORE_RESEND: functools.partial(self._before_resend, deadline, source),
                    },
                )
                try:
                    response = self.client.send(request, auth=self.auth, stream=True)
                except (Dropped, httpx.WriteError) as exc:
                    if attempt == 1 and exchange.reused:
                        logger.info(
                            "camera=%s event=keepalive_dropped url=%s retry=1 error=%s",
                            self.camera,
                            source,
                            type(exc).__name__,
                        )
                        continue
                    raise self.translate(exc, source, deadline) from exc
                except httpx.HTTPError as exc:
                    raise self.translate(exc, source, deadline) from exc
                break
            try:
                yield response
            except httpx.HTTPError as exc:
                raise self.translate(exc, source, deadline) from exc
            finally:
                response.close()

    def timeouts(self, deadline: Deadline) -> httpx.Timeout:
        """The configured connect and read timeouts, cut to what is left of the deadline."""
        return deadline.timeout(self.config.connect_timeout_s, self.config.timeout_s)

    def _before_resend(self, deadline: Deadline, source: str, request: httpx.Request) -> None:
        """Before the auth flow sends a request again (a 401 answered, a 403 retried).

        The request gets the time left, not the time the first one was given;
        `Timeout` once none is left, so a handshake never starts what it cannot finish.
        """
        self.check_deadline(deadline, source)
        request.extensions["timeout"] = self.timeouts(deadline).as_dict()

    def check_deadline(self, deadline: Deadline, source: str) -> None:
        """Raise `Timeout` when the snapshot's deadline is spent (checked before each request)."""
        if deadline.expired:
            raise self._deadline_spent(deadline, source)

    def _deadline_spent(self, deadline: Deadline, source: str, doing: str = "") -> Timeout:
        while_ = f" while {doing}" if doing else ""
        return Timeout(
            self.camera,
            f"no complete answer within deadline_s = {deadline.seconds:g} s from {source} "
            f"(gave up after {deadline.elapsed():.2f} s{while_}; every request of the snapshot "
            "counts, the login handshake included); the device may be overloaded or "
            "sending too slowly: raise deadline_s",
        )

    def iter_chunks(self, response: httpx.Response, deadline: Deadline) -> Iterator[bytes]:
        """The body as it arrives; `Timeout` once the snapshot deadline has passed."""
        for chunk in response.iter_bytes():
            yield chunk
            if deadline.expired:
                raise self._deadline_spent(
                    deadline, self.redact(response.request.url), "reading the body"
                )

    def read_body(self, response: httpx.Response, deadline: Deadline, limit: int) -> bytes:
        """Read the whole body, bounded in size and by the deadline."""
        buffer = bytearray()
        for chunk in self.iter_chunks(response, deadline):
            buffer += chunk
            if len(buffer) > limit:
                raise InvalidImage(
                    self.camera,
                    f"answer larger than {_size(limit)} from {self.redact(response.request.url)}; "
                    "is this a snapshot URL? (max_image_mb sets the limit)",
                    status=response.status_code,
                )
        return bytes(buffer)

    def reply(self, response: httpx.Response, body: bytes) -> Reply:
        """Wrap a finished response for classification."""
        challenge = describe_challenge(response) if response.status_code == 401 else None
        return Reply(
            status=response.status_code,
            headers=response.headers,
            body=body,
            source=self._redacted(response.request.url),
            credentials_sent=self.auth.sends_credentials(response.request),
            challenge=challenge,
            stale_nonce=response.status_code == 401 and is_stale(response),
        )

    def get(
        self,
        path: str,
        params: dict[str, str] | None,
        deadline: Deadline,
        limit: int | None = None,
    ) -> Reply:
        """GET `path` and read the whole answer (at most `limit` bytes), any status."""
        started = time.monotonic()
        with self.stream(path, params, deadline) as response:
            ok_limit = self.max_image_bytes if limit is None else limit
            size_limit = ok_limit if response.status_code == 200 else MAX_ERROR_BYTES
            body = self.read_body(response, deadline, size_limit)
            result = self.reply(response, body)
        logger.debug(
            "camera=%s url=%s status=%d bytes=%d ms=%.1f",
            self.camera,
            result.source,
            result.status,
            len(body),
            (time.monotonic() - started) * 1000,
        )
        return result

    def get_jpeg(
        self,
        path: str,
        params: dict[str, str] | None,
        deadline: Deadline,
        classify: Classifier | None = None,
    ) -> tuple[JpegInfo, Reply]:
        """GET a snapshot: HTTP 200 and a structurally valid JPEG, or a typed error."""
        result = self.get(path, params, deadline)
        return self.expect_jpeg(result, classify), result

    def expect_jpeg(self, result: Reply, classify: Classifier | None = None) -> JpegInfo:
        """The JPEG of a reply; the typed error when it is not HTTP 200 with a valid JPEG."""
        if result.status != 200:
            raise self.failure(result, classify)
        try:
            return validate_jpeg(result.body)
        except JpegError as exc:
            raise self.failure(result, classify, jpeg_error=exc) from None

    def get_stream_frame(
        self,
        path: str,
        params: dict[str, str] | None,
        deadline: Deadline,
        classify: Classifier | None = None,
    ) -> tuple[JpegInfo, str]:
        """The first complete frame of an MJPEG stream (then the stream is closed) and its source."""
        with self.stream(path, params, deadline) as response:
            if response.status_code != 200:
                body = self.read_body(response, deadline, MAX_ERROR_BYTES)
                raise self.failure(self.reply(response, body), classify)
            content_type = response.headers.get("content-type")
            reader = FirstFrameReader(content_type)
            head = bytearray()
            try:
                for chunk in self.iter_chunks(response, deadline):
                    if len(head) < MAX_ERROR_BYTES:
                        head += chunk[: MAX_ERROR_BYTES - len(head)]
                    frame = reader.feed(chunk)
                    if frame is not None:
                        return frame, self.redact(response.request.url)
                problem: JpegError = reader.finish()
            except MjpegError as exc:
                problem = exc
            result = self.reply(response, bytes(head))
        error = self.failure(result, classify, jpeg_error=problem)
        if not isinstance(error, InvalidImage) or bytes(head.lstrip()[:1]) in (
            b"",
            b"<",
            b"{",
            b"[",
        ):
            raise error  # an error document, not a broken stream
        raise InvalidImage(
            self.camera,
            f"no valid frame in the MJPEG stream {result.source}: {problem}",
            status=200,
            excerpt=self.excerpt(bytes(head)) if not head.startswith(b"\xff\xd8") else None,
        )

    # ------------------------------------------------------------------ errors

    def failure(  # noqa: PLR0911 - one branch per kind of answer
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
        common = classify_common(self.camera, result, self.secrets)
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
        hint = "check user and password_env/password_file"
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

    def translate(  # noqa: PLR0911 - one branch per kind of transport failure
        self, exc: httpx.HTTPError, source: str, deadline: Deadline
    ) -> CameraError:
        """The one mapping from transport failures to camera errors, by exception type.

        The transport's typed failures (capture.cameras.exchange) say where the
        device stopped; library messages are only quoted, never searched.
        """
        address = f"{self.config.host}:{self.config.effective_port}"
        detail = scrub(str(exc), self.secrets) or type(exc).__name__
        if isinstance(exc, DeadlinePassed):
            return self._deadline_spent(deadline, source, _while(detail))
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
                return self._deadline_spent(deadline, source)
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


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


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


def _password(config: CameraBase) -> str | None:
    return config.password.get_secret_value() if config.password is not None else None
