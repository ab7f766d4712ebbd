"""Fills a configured path template (`/axis-cgi/jpg/image.cgi?camera={channel}`) for one request.

Templates are checked when the camera is built, so a typo such as
`{chanel}` is reported at start-up, not at the first trigger.
"""

from __future__ import annotations

import secrets
import string

from capture.config.schema import CameraBase

#: Fields a path template may use, and what they mean (docs/cameras.md lists them).
FIELDS = {
    "channel": "the configured channel (1-based)",
    "channel0": "the channel counted from 0 (Reolink)",
    "stream": "main or sub",
    "host": "the camera's host",
    "port": "the camera's port",
    "random": "a fresh random token per request (cache buster, e.g. Reolink rs=)",
}


def check_template(camera: str, template: str) -> None:
    """Raise ValueError naming the camera when the template uses an unknown or odd field."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"camera {camera}: path {template!r}: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in FIELDS or spec or conversion:
            known = ", ".join("{" + name + "}" for name in FIELDS)
            raise ValueError(f"camera {camera}: path uses {{{field}}}; known fields: {known}")


def fill_template(template: str, config: CameraBase) -> str:
    """The path for one request."""
    return template.format_map(
        {
            "channel": config.channel,
            "channel0": max(config.channel - 1, 0),
            "stream": config.stream,
            "host": config.host,
            "port": config.effective_port,
            "random": secrets.token_hex(4),
        }
    )
