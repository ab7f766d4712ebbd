"""A lenient HTTP/1.1 transport on the standard library's http.client, for devices h11 refuses.

GoAhead-style cameras send header lines h11 rejects by design: a line with
no name (`Tue, 12 Jun 2012 01:56:34 GMT`) or a space before the colon
(`X-Frame-Options : SAMEORIGIN`), camera-apis.md §3.7. http.client reads
such a head to its end and frames the body itself (Content-Length, chunked,
or to the close), so it is the parser used for them. One adjustment is made,
to the head's lines only, before http.client sees them: it hands the header
block to the email parser, which takes a malformed line as the end of the
headers and drops every header after it, Content-Length included; a
keep-alive answer would then be read until the device closes. So a line with
no name is left out, and the blanks before a colon are removed.

Every socket read and write goes through the current exchange's guard
(`capture.cameras.exchange`), like the strict transport's, and failures come
out as httpx's exceptions so that one classification serves both.
"""

from __future__ import annotations

import http.client
import io
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from capture.cameras import exchange as exchanges
from capture.cameras.exchange import Exchange, Phase

_BUFFER = 64 * 1024
#: A header name (RFC 9110 token).
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class _GuardedSocket(io.RawIOBase):
    """The socket as a raw stream; each read cut to the exchange's deadline and counted.

    Reads go through the `socket.SocketIO` http.client made for the response,
    not the socket itself: that file holds a reference on the socket, so when
    http.client hands a close-delimited answer (an MJPEG stream) over to the
    response and closes its connection, the descriptor stays open until the
    body is done with.
    """

    def __init__(self, sock: socket.socket, file: io.RawIOBase, read_timeout: float | None) -> None:
        self._sock = sock
        self._file = file
        self._read_timeout = read_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        exchange = exchanges.current()
        timeout = self._read_timeout
        if exchange is not None:
            timeout = exchange.read_timeout(timeout)
        self._sock.settimeout(timeout)
        count = self._file.readinto(buffer) or 0
        if exchange is not None:
            exchange.received(memoryview(buffer)[:count])
        return count

    def close(self) -> None:
        if not self.closed:
            self._file.close()  # gives up the reference: the socket closes if nothing else holds it
        super().close()


class _TidyHeadReader(io.BufferedReader):
    """Buffered reads off the guarded socket; malformed header lines tidied while in a head."""

    def __init__(self, raw: _GuardedSocket) -> None:
        super().__init__(raw, _BUFFER)
        self.in_head = True
        self._at_status = True

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        while True:
            line = super().readline(limit)
            if not self.in_head:
                return line
            if self._at_status:
                self._at_status = False
                return line
            if line in (b"\r\n", b"\n", b""):
                self._at_status = True  # after a 1xx head, another status line follows
                return line
            tidy = _tidy_header_line(line)
            if tidy is not None:
                return tidy
            # A line with no name (a bare date, GoAhead-style): left out.


def _tidy_header_line(line: bytes) -> bytes | None:
    """A header line as http.client's parser takes it: blanks before the colon removed.

    None for a line with no header name; a folded continuation line is kept.
    """
    if line[:1] in (b" ", b"\t"):
        return line
    name, colon, rest = line.partition(b":")
    name = name.rstrip(b" \t")
    if colon and _TOKEN.fullmatch(name):
        return name + b":" + rest
    return None


def has_sloppy_header_line(head: bytes) -> bool:
    """Whether a head has a header line with no name or a blank before its colon (GoAhead).

    Decides whether a device whose answer h11 refused gets the lenient
    parser: only for these quirks, never for broken framing.
    """
    lines = head.split(b"\n")[1:]  # the status line is h11's to judge
    for raw in lines:
        line = raw.rstrip(b"\r")
        if not line:
            return False  # the end of the head
        if _tidy_header_line(line) != line:
            return True
    return False


class _GuardedResponse(http.client.HTTPResponse):
    """http.client's response, reading through the guard and the head tidier."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        file = self.fp.detach()  # the socket file, and its reference on the socket
        self.fp = _TidyHeadReader(_GuardedSocket(sock, file, sock.gettimeout()))

    def begin(self) -> None:
        super().begin()
        assert isinstance(self.fp, _TidyHeadReader)
        self.fp.in_head = False


class _Connection:
    """One http.client connection to the device and when it was last idle."""

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.http = connection
        self.idle_since = time.monotonic()

    def fresh(self, expiry: float) -> bool:
        """False when idle too long, or the device closed it (or sent something unasked)."""
        sock = self.http.sock
        if sock is None or time.monotonic() - self.idle_since > expiry:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


class LenientTransport(httpx.BaseTransport):
    """HTTP/1.1 through http.client: at most `max_connections` at once, idle ones kept alive."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext, max_connections: int, keepalive_expiry: float
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; the response's body is read off the socket as it is iterated."""
        timeouts = request.extensions.get("timeout", {})
        if not self._slots.acquire(timeout=timeouts.get("pool") or 0.001):
            raise httpx.PoolTimeout("no connection available", request=request)
        connection: _Connection | None = None
        try:
            connection, reused = self._checkout(request)
            exchange = exchanges.current()
            if exchange is not None:
                exchange.request_sent(reused=reused)
            response = self._exchange(connection, request, exchange, timeouts)
        except BaseException:
            if connection is not None:
                connection.http.close()
            self._slots.release()
            raise
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in response.getheaders()
        ]
        return httpx.Response(
            response.status,
            headers=headers,
            stream=_Body(self, connection, response),
            extensions={
                "http_version": b"HTTP/1.1" if response.version == 11 else b"HTTP/1.0",
                "reason_phrase": response.reason.encode("latin-1", "replace"),
            },
        )

    def _checkout(self, request: httpx.Request) -> tuple[_Connection, bool]:
        url = request.url
        with self._lock:
            if self._closed:
                raise httpx.ConnectError("transport closed", request=request)
            while self._idle:
                connection = self._idle.pop()
                if connection.fresh(self._keepalive_expiry):
                    return connection, True
                connection.http.close()
        port = url.port or (443 if url.scheme == "https" else 80)
        created: http.client.HTTPConnection
        if url.scheme == "https":
            context = self._ssl_context
            created = http.client.HTTPSConnection(url.host, port, context=context)
        else:
            created = http.client.HTTPConnection(url.host, port)
        created.response_class = _GuardedResponse
        return _Connection(created), False

    @staticmethod
    def _exchange(
        connection: _Connection,
        request: httpx.Request,
        exchange: Exchange | None,
        timeouts: dict[str, float | None],
    ) -> http.client.HTTPResponse:
        conn = connection.http
        connect_s, write_s = timeouts.get("connect"), timeouts.get("write")
        try:
            if conn.sock is None:
                conn.timeout = exchange.write_timeout(connect_s) if exchange else connect_s
                try:
                    conn.connect()
                except TimeoutError as exc:
                    raise httpx.ConnectTimeout("timed out", request=request) from exc
                except (OSError, ssl.SSLError) as exc:
                    raise httpx.ConnectError(str(exc), request=request) from exc
            assert conn.sock is not None
            conn.sock.settimeout(exchange.write_timeout(write_s) if exchange else write_s)
            target = (request.url.raw_path or b"/").decode("ascii")
            conn.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers.raw:
                conn.putheader(name.decode("latin-1"), value.decode("latin-1"))
            conn.endheaders(request.read() or None)
            if exchange is not None:
                exchange.phase = Phase.HEAD
            conn.sock.settimeout(timeouts.get("read"))
            response = conn.getresponse()
            if exchange is not None:
                exchange.phase = Phase.BODY
            return response
        except httpx.HTTPError:
            raise
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out", request=request) from exc
        except (http.client.HTTPException, ValueError) as exc:
            raise httpx.RemoteProtocolError(
                str(exc) or type(exc).__name__, request=request
            ) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc

    def release(self, connection: _Connection, response: http.client.HTTPResponse) -> None:
        """Keep a connection whose answer was read to its end, else close it; free its slot."""
        keep = response.isclosed() and not response.will_close and connection.http.sock is not None
        with self._lock:
            keep = keep and not self._closed
            if keep:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
        if not keep:
            response.close()  # its socket file: for a close-delimited answer, the last reference
            connection.http.close()
        self._slots.release()

    def close(self) -> None:
        """Close the idle connections; busy ones close when their answer is done."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.http.close()


class _Body(httpx.SyncByteStream):
    """The body as http.client frames it; the connection goes back to the pool after."""

    def __init__(
        self,
        transport: LenientTransport,
        connection: _Connection,
        response: http.client.HTTPResponse,
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._response = response
        self._released = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        try:
            while piece := response.read1(_BUFFER):
                yield piece
            if response.length:  # http.client ends a short body quietly
                raise httpx.RemoteProtocolError(f"{response.length} bytes of the body missing")
            response.close()  # read to its end: http.client may send the next request
        except httpx.HTTPError:
            raise
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out") from exc
        except http.client.IncompleteRead as exc:
            raise httpx.RemoteProtocolError(f"incomplete body: {exc!r}") from exc
        except (http.client.HTTPException, ValueError) as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        self._transport.release(self._connection, self._response)
