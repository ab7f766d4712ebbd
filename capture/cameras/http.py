"""One long-lived HTTP client per camera, through which every driver fetches.

`CameraHttp` owns the keep-alive connection (a client per request costs
~45 ms) on the camera's transport (httpx's own, guarded by the snapshot's
deadline, with a lenient fallback for sloppy devices:
capture.cameras.transport), retries exactly once when a pooled keep-alive
connection turns out to be dead, and raises every failure (transport, HTTP
status, error body, broken JPEG) as the typed `CameraError` its `failures`
(capture.cameras.failures) make of it, free of secrets.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from capture import __version__
from capture.cameras.auth import BEFORE_RESEND, CameraAuth, describe_challenge, is_stale
from capture.cameras.errors import (
    CameraError,
    DeviceError,
    InvalidImage,
)
from capture.cameras.exchange import (
    Deadline,
    Dropped,
    Exchange,
    active,
)
from capture.cameras.failures import Failures
from capture.cameras.jpeg import JpegError, JpegInfo, validate_jpeg
from capture.cameras.multipart import FirstFrameReader, MjpegError
from capture.cameras.redact import (
    SECRET_PARAMS,
    install_log_filter,
    redact_url,
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
        self.failures = Failures(camera, config, auth, self.secrets, self.redact)
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
            try:
                url = self.client.build_request("GET", path, params=params).url
            except httpx.InvalidURL:  # a URL a device handed us (ONVIF's GetSnapshotUri)
                # Not the library's text: it may quote the URL, query secrets included.
                raise DeviceError(
                    self.camera, f"the address {self.redact(path)} is not a valid URL"
                ) from None
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
                    raise self.failures.transport(exc, source, deadline) from exc
                except httpx.HTTPError as exc:
                    raise self.failures.transport(exc, source, deadline) from exc
                break
            try:
                yield response
            except httpx.HTTPError as exc:
                raise self.failures.transport(exc, source, deadline) from exc
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
            raise self.failures.deadline_spent(deadline, source)

    def iter_chunks(self, response: httpx.Response, deadline: Deadline) -> Iterator[bytes]:
        """The body as it arrives; `Timeout` once the snapshot deadline has passed."""
        for chunk in response.iter_bytes():
            yield chunk
            if deadline.expired:
                raise self.failures.deadline_spent(
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
            raise self.failures.answer(result, classify)
        try:
            return validate_jpeg(result.body)
        except JpegError as exc:
            raise self.failures.answer(result, classify, jpeg_error=exc) from None

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
                raise self.failures.answer(self.reply(response, body), classify)
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
        error = self.failures.answer(result, classify, jpeg_error=problem)
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
            excerpt=self.failures.excerpt(bytes(head))
            if not head.startswith(b"\xff\xd8")
            else None,
        )


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def _password(config: CameraBase) -> str | None:
    return config.password.get_secret_value() if config.password is not None else None
