"""EDIMAX IC-series cameras: a plain JPEG at a fixed path (default `/snapshot.jpg`)."""

from __future__ import annotations

from capture.cameras.base import Frame, HttpCamera, frame_from_reply
from capture.cameras.exchange import Deadline
from capture.config.schema import EdimaxCamera as EdimaxConfig


class EdimaxCamera(HttpCamera):
    """An EDIMAX camera."""

    vendor = "edimax"
    config: EdimaxConfig

    def _fetch(self, deadline: Deadline) -> Frame:
        info, reply = self.http.get_jpeg(self.config.path, None, deadline)
        return frame_from_reply(info, reply)
