"""The HTTP transport of a camera: httpx's own (httpcore/h11), guarded, with a lenient fallback.

Every camera speaks HTTP through httpcore and h11, well-kept parsers that
refuse what RFC 9112 refuses (negative or odd chunk sizes, a missing CRLF
after a chunk, conflicting Content-Length). Two things are added around them,
never inside:

- a socket guard (`_GuardedStream`): each read and write is cut to what is
  left of the snapshot's deadline and the head's bytes are counted against
  `max_header_kb` (see `capture.cameras.exchange`), so no device can hold a
  capture thread past its deadline, however it sends;
- a per-device fallback: cheap GoAhead-style cameras send header lines that
  h11 refuses by design (no name, a space before the colon; camera-apis.md
  §3.7). When h11 refuses an answer's head *and* the head has such a line,
  the request is sent once more through `LenientTransport` (the standard
  library's http.client); if that gives an answer, the device is remembered
  as lenient for good and the log says so once. Any other refusal (bad
  framing, conflicting lengths, not HTTP at all) stands as a `DeviceError`,
  and a device h11 accepts never pays for the fallback.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from capture.cameras import exchange as exchanges
from capture.cameras.exchange import Exchange, Malformed
from capture.cameras.lenient import LenientTransport, has_sloppy_header_line

logger = logging.getLogger(__name__)


class _GuardedStream(httpcore.NetworkStream):
    """A socket stream whose every read and write obeys the current exchange's budget."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        exchange = exchanges.current()
        if exchange is None:
            return self._inner.read(max_bytes, timeout)
        data = self._inner.read(max_bytes, exchange.read_timeout(timeout))
        exchange.received(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        exchange = exchanges.current()
        if exchange is not None:
            timeout = exchange.write_timeout(timeout)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        exchange = exchanges.current()
        if exchange is not None:
            timeout = exchange.write_timeout(timeout)
        return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


#: Name lookups in flight at most: getaddrinfo has no timeout of its own, so each runs on a
#: thread of its own that the capture stops waiting for at the deadline (the lookup ends by
#: itself, after the resolver's own timeout); with the name server gone, no more pile up.
_LOOKUPS = threading.BoundedSemaphore(8)


def _resolved(host: str, port: int, timeout: float) -> str:
    """`host` as an address to connect to, looked up within `timeout` unless it is one.

    Cameras are usually configured by address (nothing to do); one named by host
    name must not hold its capture thread past deadline_s when a Pi's name server
    is gone.
    """
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return host
    if not _LOOKUPS.acquire(blocking=False):
        raise httpcore.ConnectError(
            TimeoutError(f"the name server does not answer (looking up {host!r})")
        )
    answers: list[Any] = []
    failures: list[OSError] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            answers.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:  # socket.gaierror: no such name
            failures.append(exc)
        finally:
            _LOOKUPS.release()
            done.set()

    threading.Thread(target=look_up, name=f"camera-dns-{host}", daemon=True).start()
    if not done.wait(timeout):
        raise httpcore.ConnectError(
            TimeoutError(f"no answer from the name server for {host!r} within {timeout:.2f} s")
        )
    if failures:
        raise httpcore.ConnectError(failures[0]) from failures[0]
    return str(answers[0][4][0])


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's own socket backend, its streams wrapped in the guard."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        exchange = exchanges.current()
        if exchange is not None:
            host = _resolved(host, port, exchange.write_timeout(timeout))
            timeout = exchange.write_timeout(timeout)  # what the lookup left
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _GuardedStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class StrictTransport(httpx.HTTPTransport):
    """httpx's transport (httpcore + h11) on the guarded backend.

    httpx.HTTPTransport takes no network backend, so its pool is replaced by
    one built the same way with the guarded backend (pinned httpx < 1).
    """

    def __init__(
        self, ssl_context: ssl.SSLContext | None, max_connections: int, keepalive_expiry: float
    ) -> None:
        # verify=False: no CA bundle is loaded here; the pool below gets the camera's context.
        super().__init__(verify=False, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or _unverified_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            network_backend=_GuardedBackend(),
        )


class DeviceTransport(httpx.BaseTransport):
    """Strict first; for a device whose heads h11 refuses, the lenient transport, remembered.

    `lenient` is shared by the camera sections of one device (a `LenientFlag`),
    so four NVR channels learn it once between them.
    """

    def __init__(
        self,
        camera: str,
        *,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        keepalive_expiry: float,
        lenient: LenientFlag | None = None,
    ) -> None:
        self.camera = camera
        self.lenient = lenient if lenient is not None else LenientFlag()
        self._strict = StrictTransport(ssl_context, max_connections, keepalive_expiry)
        self._fallback = LenientTransport(
            ssl_context=ssl_context or _unverified_context(),
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; failures come out typed (`capture.cameras.exchange`)."""
        exchange = exchanges.current()
        if self.lenient.on:
            return self._typed(self._fallback, request, exchange)
        try:
            return self._typed(self._strict, request, exchange)
        except Malformed as exc:
            if (
                exchange is None
                or not exc.in_head
                or not has_sloppy_header_line(exchange.head_sample)
            ):
                raise  # not the known quirk: h11's refusal stands (bad framing is not tolerated)
            try:
                response = self._typed(self._fallback, request, exchange)
            except httpx.HTTPError:
                raise exc from None  # h11's reason is the one worth reporting
            if self.lenient.learn():
                logger.warning(
                    "camera=%s event=lenient_http reason=%r: the device sends HTTP heads that "
                    "h11 refuses; its requests go through the lenient http.client parser from "
                    "now on",
                    self.camera,
                    str(exc)[:120],
                )
            return response

    @staticmethod
    def _typed(
        transport: httpx.BaseTransport, request: httpx.Request, exchange: Exchange | None
    ) -> httpx.Response:
        if exchange is None:
            return transport.handle_request(request)
        try:
            response = transport.handle_request(request)
        except Exception as exc:
            typed = exchange.classify(exc, request)
            if typed is exc:
                raise
            raise typed from exc
        response.stream = _TypedBody(response.stream, exchange, request)
        return response

    def close(self) -> None:
        self._strict.close()
        self._fallback.close()


class LenientFlag:
    """Whether a device needs the lenient parser; set once, never cleared (thread-safe)."""

    def __init__(self) -> None:
        self.on = False
        self._lock = threading.Lock()

    def learn(self) -> bool:
        """Set the flag; True for the caller that set it (the one that logs it)."""
        with self._lock:
            first, self.on = not self.on, True
        return first


class _TypedBody(httpx.SyncByteStream):
    """A response body whose read failures come out typed, like the head's."""

    def __init__(self, inner: Any, exchange: Exchange, request: httpx.Request) -> None:
        self._inner = inner
        self._exchange = exchange
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except Exception as exc:
            typed = self._exchange.classify(exc, self._request)
            if typed is exc:
                raise
            raise typed from exc

    def close(self) -> None:
        self._inner.close()


_UNVERIFIED: list[ssl.SSLContext] = []


def _unverified_context() -> ssl.SSLContext:
    """A context that encrypts without checking the certificate (verify = false), shared.

    Also given to plain-http cameras' pools, which never use it: building one
    costs nothing, where httpx's default would load the whole CA bundle.
    """
    if not _UNVERIFIED:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _UNVERIFIED.append(context)
    return _UNVERIFIED[0]
