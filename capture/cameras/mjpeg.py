"""Any camera serving an MJPEG stream (`multipart/x-mixed-replace`): its first complete frame.

The stream is closed as soon as one frame is complete, so each snapshot
costs one TCP connection and one of the camera's stream slots for the time
of one frame. The tolerant framing is in `capture.cameras.multipart`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from capture.cameras.base import CameraOptions, Frame, HttpCamera
from capture.cameras.exchange import Deadline
from capture.cameras.paths import check_template, fill_template
from capture.config.schema import MjpegCamera as MjpegConfig

if TYPE_CHECKING:
    from typing_extensions import Unpack


class MjpegCamera(HttpCamera):
    """A camera whose picture is taken from its MJPEG stream."""

    vendor = "mjpeg"
    config: MjpegConfig

    def __init__(self, name: str, config: MjpegConfig, **kwargs: Unpack[CameraOptions]) -> None:
        check_template(name, config.path)
        super().__init__(name, config, **kwargs)

    def stream_url(self) -> str:
        """The configured stream path: the same stream a snapshot reads one frame of."""
        return fill_template(self.config.path, self.config)

    def _fetch(self, deadline: Deadline) -> Frame:
        path = fill_template(self.config.path, self.config)
        info, source = self.http.get_stream_frame(path, None, deadline)
        return Frame(jpeg=info, source=source)
