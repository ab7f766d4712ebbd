"""The registry every extension point uses: targets named, imported only on use, unknown names explained."""

from __future__ import annotations

import subprocess
import sys

import pytest

from capture.registry import Registry


def test_entries_are_read_without_importing_and_loaded_on_use() -> None:
    registry: Registry[object] = Registry("codec", {"json": "json:dumps", "zlib": "zlib:compress"})
    assert sorted(registry) == ["json", "zlib"]
    assert registry["json"] == "json:dumps"
    assert registry.module("zlib") == "zlib"
    import json  # noqa: PLC0415

    assert registry.load("json") is json.dumps


def test_an_unknown_name_says_what_is_known() -> None:
    registry: Registry[object] = Registry("codec", {"json": "json:dumps", "zlib": "zlib:compress"})
    with pytest.raises(KeyError, match=r"unknown codec 'yaml' \(known: json, zlib\)"):
        registry.load("yaml")


def test_a_target_without_an_attribute_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="codec 'json': target 'json' is not 'module:attribute'"):
        Registry("codec", {"json": "json"})


def test_importing_the_registries_loads_no_driver_or_trigger_library() -> None:
    """gpiozero, watchdog, pyserial and the drivers are loaded only when a rule file uses them."""
    code = (
        "import sys, capture.cameras, capture.triggers;"
        "print(sorted(m for m in sys.modules if m.startswith(('gpiozero', 'watchdog', 'serial',"
        " 'pymodbus', 'asyncua', 'capture.cameras.hikvision', 'capture.triggers.gpio'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
