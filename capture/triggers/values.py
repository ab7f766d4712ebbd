"""Turn untrusted payloads (JSON, text fields) into bounded, flat event values.

MQTT messages, HTTP posts and sensor lines come from devices we do not
control, so the work per payload is capped: nesting depth, number of values
and key length. Numbers written as text become numbers, so `temp >= 37.5`
works whatever the sender chose.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from capture.errors import CaptureError
from capture.events import Value

MAX_DEPTH = 8
"""Deepest nesting flattened; deeper payloads are rejected as absurd."""

MAX_VALUES = 256
"""Most values one payload may carry."""

MAX_KEY_CHARS = 128
"""Longest dotted value name."""

# An int only without leading zeros ("0042" is a part number, not 42) and with
# at most 15 digits (a 20-digit serial stays text, exactly as sent).
_INT = re.compile(r"[-+]?(?:0|[1-9]\d{0,14})")
# A decimal comma is accepted: many European thermometers print "37,5".
_FLOAT = re.compile(r"[-+]?(?:0|[1-9]\d{0,14})?[.,]\d{1,15}(?:[eE][-+]?\d{1,3})?")


class PayloadFormatError(CaptureError, ValueError):
    """A payload cannot be flattened into values; the message says why."""


def to_number(text: str) -> int | float | None:
    """The number `text` spells (surrounding spaces allowed), or None; also None for one too
    large for a float ("1.0e999"), which stays text rather than become infinity."""
    stripped = text.strip()
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return finite(float(stripped.replace(",", ".")))
    return None


def finite(number: float) -> float | None:
    """`number`, or None for NaN and infinity, which JSON cannot carry and no condition compares.

    Devices report NaN for "no reading" (a PLC's analog input with a broken
    wire, an OPC UA variable not yet computed): as null it reaches the
    event message as valid JSON and reads as missing in a condition.
    """
    return number if math.isfinite(number) else None


def coerce(text: str) -> Value:
    """`text` as an int or float if it looks like one, else unchanged."""
    number = to_number(text)
    return text if number is None else number


def parse_json(text: str) -> Any:
    """Parse JSON, translating every failure (including absurd nesting) to `PayloadFormatError`."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError as exc:
        raise PayloadFormatError(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise PayloadFormatError(f"invalid JSON: {exc.msg} at character {exc.pos}") from exc
    except ValueError as exc:
        raise PayloadFormatError(f"invalid JSON: {exc}") from exc


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, and no condition can compare them sensibly.
    raise ValueError(f"{name} is not a number a condition can use")


def flatten(document: Any, name: str = "value") -> dict[str, Value]:
    """Flatten a JSON document into dotted names: `{"part": {"id": 7}}` -> `part.id = 7`.

    Arrays are indexed (`sizes.0`, `sizes.1`); a document that is not an
    object becomes `name`. Strings that look like numbers become numbers.
    """
    values: dict[str, Value] = {}
    if isinstance(document, Mapping):
        for key, child in document.items():
            _flatten_into(values, str(key), child, 1)
    else:
        _flatten_into(values, name, document, 1)
    return values


def _flatten_into(values: dict[str, Value], path: str, node: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise PayloadFormatError(
            f"nested deeper than {MAX_DEPTH} levels at {path[:MAX_KEY_CHARS]!r}"
        )
    if isinstance(node, Mapping):
        children: list[tuple[str, Any]] = [(str(key), child) for key, child in node.items()]
    elif isinstance(node, list | tuple):
        children = [(str(index), child) for index, child in enumerate(node)]
    else:
        _add(values, path, node)
        return
    for key, child in children:
        _flatten_into(values, f"{path}.{key}", child, depth + 1)


def _add(values: dict[str, Value], path: str, node: Any) -> None:
    if len(path) > MAX_KEY_CHARS:
        raise PayloadFormatError(
            f"value name longer than {MAX_KEY_CHARS} characters: {path[:40]!r}..."
        )
    if len(values) >= MAX_VALUES:
        raise PayloadFormatError(f"more than {MAX_VALUES} values")
    if isinstance(node, str):
        values[path] = coerce(node)
    elif isinstance(node, float):
        values[path] = finite(node)  # 1e400 parses as infinity: null, as for NaN readings
    elif node is None or isinstance(node, bool | int):
        values[path] = node
    else:
        raise PayloadFormatError(f"{path}: unsupported value of type {type(node).__name__}")
