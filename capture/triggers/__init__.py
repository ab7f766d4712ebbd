"""Trigger adapters: turn GPIO edges, MQTT messages, file lines, serial lines, ticks and HTTP posts into events.

Importing this package registers every kind; the service builds triggers with
`build_trigger` and only ever sees the `Trigger` protocol.
"""

from __future__ import annotations

# Imported for their @register side effect: one module per kind.
from capture.triggers import file, gpio, http, interval, mqtt, serial
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
    register,
)

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
    "register",
    "serial",
]
