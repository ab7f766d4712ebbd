"""Writes MJPEG `multipart/x-mixed-replace` streams, including the framing quirks of real cameras.

The response is written byte for byte here (not by http.server) because the
quirks are exactly the deviations a standard server would not produce: a
boundary declared with its dashes, no delimiter before the first part,
missing or wrong part lengths, LF-only lines, chunked coding, no Content-Type.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BufferedIOBase
from typing import TYPE_CHECKING

from capture.simulator.protocol import StreamControl, StreamWriter

if TYPE_CHECKING:
    from capture.simulator.faults import Faults

BOUNDARY = "myboundary"
WRONG_LENGTH_SHORTFALL = 48
"""How many bytes fewer than it carries a part announces under `wrong_part_length`
(the shortfall seen on Dahua ONVIF snapshots)."""


def mjpeg_writer(
    next_frame: Callable[[], bytes],
    faults: Faults,
    fps: float,
    server: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> StreamWriter:
    """A writer streaming `next_frame()` at `fps` until the client leaves or the simulator stops."""

    def write(out: BufferedIOBase, control: StreamControl) -> None:
        eol = b"\n" if faults.lf_only else b"\r\n"
        declared = f"--{BOUNDARY}" if faults.boundary_dashes else BOUNDARY
        # A device declaring "--myboundary" writes that verbatim as its delimiter.
        delimiter = declared.encode() if faults.boundary_dashes else b"--" + BOUNDARY.encode()
        head = [b"HTTP/1.1 200 OK", b"Server: " + server.encode(), b"Cache-Control: no-cache"]
        if not faults.no_content_type:
            head.append(f"Content-Type: multipart/x-mixed-replace; boundary={declared}".encode())
        if faults.chunked:
            head.append(b"Transfer-Encoding: chunked")
        head.extend(f"{name}: {value}".encode() for name, value in headers)
        head.append(b"Connection: close")
        out.write(eol.join(head) + eol + eol)
        if faults.stall_stream:
            while not control.wait(1.0):
                pass
            return
        first = True
        while True:
            jpeg = next_frame()
            part_head = [b"Content-Type: image/jpeg"]
            if faults.wrong_part_length:
                part_head.append(b"Content-Length: %d" % (len(jpeg) - WRONG_LENGTH_SHORTFALL))
            elif not faults.no_part_length:
                part_head.append(b"Content-Length: %d" % len(jpeg))
            opening = b"" if first and faults.no_first_delimiter else delimiter + eol
            part = opening + eol.join(part_head) + eol + eol + jpeg + eol
            out.write(b"%x\r\n%s\r\n" % (len(part), part) if faults.chunked else part)
            first = False
            if control.wait(1.0 / fps):
                return

    return write
