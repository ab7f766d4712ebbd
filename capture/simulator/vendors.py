"""The registry of vendor personalities: one entry per vendor the simulator can play."""

from __future__ import annotations

from typing import TYPE_CHECKING

from capture.simulator.dahua import Dahua
from capture.simulator.hikvision import Hikvision
from capture.simulator.personality import Personality
from capture.simulator.plain import Edimax, Generic, Mjpeg
from capture.simulator.xrc import Xrc

if TYPE_CHECKING:
    from capture.simulator.device import Device

PERSONALITIES: dict[str, type[Personality]] = {
    "hikvision": Hikvision,
    "dahua": Dahua,
    "edimax": Edimax,
    "xrc": Xrc,
    "mjpeg": Mjpeg,
    "generic": Generic,
}


def personality_for(device: Device) -> Personality:
    """The personality playing `device`'s vendor."""
    return PERSONALITIES[device.camera.vendor](device)
