"""The factory triggers' added latency: a Modbus register / OPC UA value change -> the picture on disk.

    ./dev bench                 # after bench/run.py and bench/web.py; alone:
    .venv/bin/python bench/factory.py [--changes N] [--poll-ms MS] [--publishing-ms MS]

A real pymodbus Modbus TCP server and a real asyncua OPC UA server run in
this process (tests/factory.py, each on its own loop thread); the camera
simulator and `capture run` run as their own processes, as on a Pi. The
service has a `modbus` trigger on a holding register (default poll_ms, 50)
and an `opcua` trigger on an Int32 variable (default publishing_ms, 50,
sampling as fast as the server can); each change writes a new value and the
rule names the file after it, so inotify tells when that change's picture
appeared. Changes are spaced by a random 150-250 ms, so they fall anywhere in
the poll or publishing cycle. Printed: p50 / p90 / max of change -> file per
kind. What the trigger adds is about half its interval on average (a whole
one at worst); the rest is the trigger -> file path bench/run.py measures
(~4 ms p50).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from run import PASSWORD, ROOT, FileClock, Service, camera_toml, percentiles, simulator

from tests.factory import ModbusDevice, OpcuaServer

MODBUS_REGISTER = 3
WARM_UP = 3


def rules_toml(
    root: Path,
    camera_port: int,
    modbus: ModbusDevice,
    opcua: OpcuaServer,
    poll_ms: int,
    publishing_ms: int,
) -> str:
    return (
        f'[service]\nsite = "bench"\nline = "Bench"\nlog_level = "warning"\n\n'
        f'[storage]\nroot = "{root}"\nretention_interval_s = 3600\nkeep_days = 1\n\n'
        "[mqtt]\nenabled = false\n\n[web]\nenabled = false\n\n"
        + camera_toml("cam", camera_port)
        + f'[triggers.io]\ntype = "modbus"\nhost = "{modbus.host}"\nport = {modbus.port}\n'
        f'table = "holding_registers"\naddress = {MODBUS_REGISTER}\npoll_ms = {poll_ms}\n\n'
        f'[triggers.plc]\ntype = "opcua"\nendpoint = "{opcua.endpoint}"\n'
        f'nodes = ["{opcua.node("Count")}"]\npublishing_ms = {publishing_ms}\n\n'
        '[[rules]]\nname = "io"\nwhen = "io"\ncameras = ["cam"]\nfilename = "modbus/{value}.jpg"\n\n'
        '[[rules]]\nname = "plc"\nwhen = "plc"\ncameras = ["cam"]\nfilename = "opcua/{value}.jpg"\n'
    )


def measure(
    clock: FileClock, folder: str, change: Callable[[int], None], count: int, first: int
) -> list[float]:
    """Milliseconds from each change to its file; the first WARM_UP changes are not counted."""
    latencies = []
    for index in range(count + WARM_UP):
        value = first + index
        name = f"{folder}/{value}.jpg"
        changed = time.time()
        change(value)
        deadline = time.monotonic() + 10
        while name not in clock.appeared and time.monotonic() < deadline:
            time.sleep(0.002)
        if name not in clock.appeared:
            raise RuntimeError(f"no picture for {name} within 10 s")
        if index >= WARM_UP:
            latencies.append((clock.appeared[name] - changed) * 1000)
        time.sleep(random.uniform(0.15, 0.25))
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=60, help="value changes per kind")
    parser.add_argument("--poll-ms", type=int, default=50, help="the modbus trigger's poll_ms")
    parser.add_argument(
        "--publishing-ms", type=int, default=50, help="the opcua trigger's publishing_ms"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON result"
    )
    args = parser.parse_args()
    cams = [{"name": "cam", "vendor": "hikvision", "password": PASSWORD}]
    modbus, opcua = ModbusDevice(), OpcuaServer()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="capture-bench-factory-") as tmp,
            simulator(cams) as ports,
        ):
            work = Path(tmp)
            root = work / "data"
            clock = FileClock(root)
            text = rules_toml(root, ports["cam"], modbus, opcua, args.poll_ms, args.publishing_ms)
            service = Service(work, text)
            try:
                wait_connected(service, clock, modbus)
                results = {
                    "modbus": percentiles(
                        measure(
                            clock,
                            "modbus",
                            lambda v: modbus.set_registers(MODBUS_REGISTER, v),
                            args.changes,
                            100,
                        )
                    ),
                    "opcua": percentiles(
                        measure(
                            clock, "opcua", lambda v: opcua.write("Count", v), args.changes, 100
                        )
                    ),
                }
            finally:
                service.stop()
                clock.stop()
    finally:
        modbus.close()
        opcua.close()
    report(results, args)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"factory-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(
        json.dumps({"settings": vars(args) | {"out": str(args.out)}, **results}, indent=2)
    )
    print(f"written: {out}")
    return 0


def wait_connected(service: Service, clock: FileClock, modbus: ModbusDevice) -> None:
    """Until the service reads the device (its first change gives a file)."""
    deadline = time.monotonic() + 30
    value = 60000
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(service.log.read_text()[-3000:])
        modbus.set_registers(MODBUS_REGISTER, value)
        time.sleep(0.3)
        if f"modbus/{value}.jpg" in clock.appeared:
            return
        value += 1
    raise RuntimeError(
        "the service did not take pictures within 30 s:\n" + service.log.read_text()[-3000:]
    )


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"factory triggers: value change -> file on disk, {args.changes} changes each")
    print(f"{'trigger':<28} {'p50':>8} {'p90':>8} {'max':>8}")
    for kind, setting in (
        ("modbus", f"poll_ms {args.poll_ms}"),
        ("opcua", f"publishing_ms {args.publishing_ms}"),
    ):
        figures = results[kind]
        print(
            f"{kind + ' (' + setting + ')':<28} {figures['p50']:>6.1f}ms {figures['p90']:>6.1f}ms {figures['max']:>6.1f}ms"
        )


if __name__ == "__main__":
    raise SystemExit(main())
