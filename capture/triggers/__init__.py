"""Trigger adapters: turn GPIO edges, MQTT messages, file lines, serial lines, ticks and HTTP posts into events.

The service builds triggers with `build_trigger` and only ever sees the
`Trigger` protocol. A kind's module (and its library: gpiozero, watchdog,
pyserial) is imported when a trigger of that kind is built, or when its
module is named (`capture.triggers.gpio`), never just by importing this package.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from capture.triggers.base import (
    TRIGGER_KINDS,
    Emit,
    PayloadError,
    Trigger,
    TriggerContext,
    TriggerError,
    TriggerFactory,
    TriggerStats,
    build_trigger,
    trigger_factory,
)

if TYPE_CHECKING:
    from capture.triggers import file, gpio, http, interval, mqtt, serial

__all__ = [
    "TRIGGER_KINDS",
    "Emit",
    "PayloadError",
    "Trigger",
    "TriggerContext",
    "TriggerError",
    "TriggerFactory",
    "TriggerStats",
    "build_trigger",
    "file",
    "gpio",
    "http",
    "interval",
    "mqtt",
    "serial",
    "trigger_factory",
]


def __getattr__(name: str) -> ModuleType:
    # `capture.triggers.gpio` keeps working as an attribute, imported on first use.
    if name in TRIGGER_KINDS:
        return importlib.import_module(TRIGGER_KINDS.module(name))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
