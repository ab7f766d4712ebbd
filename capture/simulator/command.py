"""`capture simulate`: run simulated cameras until Ctrl-C, for demos, driver work and benchmarks."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from capture.simulator.camera import VENDORS, SimulatedCamera, SimulatorConfigError, Vendor
from capture.simulator.config import SimulatorSetup, load_simulator_file
from capture.simulator.server import Simulator, SimulatorError
from capture.stopping import StopRequest

DEFAULT_PASSWORD = "sim-password"  # noqa: S105 - a simulator credential, printed on purpose
#: How often `--config` is looked at for changed faults.
FAULT_POLL_S = 0.5


def register(subparsers: Any) -> None:
    """Add the `simulate` subcommand."""
    parser = subparsers.add_parser(
        "simulate",
        help="run simulated IP cameras (Hikvision, Dahua, EDIMAX, XRC, MJPEG, generic)",
        description=(
            "Serve simulated IP cameras on real sockets, one port each, until Ctrl-C. "
            "Without --config, one camera of each vendor (or of each --vendor) is started."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="simulator TOML file listing cameras and faults; saving it switches faults live",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--base-port",
        type=int,
        help="first port; camera i listens on base-port + i (default: free ports)",
    )
    parser.add_argument(
        "--vendor",
        action="extend",
        nargs="+",
        choices=VENDORS,
        help="vendors to simulate, one camera each (ignored with --config)",
    )
    parser.add_argument(
        "--password",
        default=DEFAULT_PASSWORD,
        help=f"password of the default cameras (default {DEFAULT_PASSWORD})",
    )
    parser.set_defaults(func=run)


def default_setup(vendors: list[Vendor] | None, password: str) -> SimulatorSetup:
    """One camera per vendor, named sim-<vendor>."""
    cameras = tuple(
        SimulatedCamera(name=f"sim-{vendor}", vendor=vendor, password=password)
        for vendor in dict.fromkeys(vendors or VENDORS)
    )
    return SimulatorSetup(cameras=cameras)


def run(args: argparse.Namespace) -> int:
    """Start the simulator, print what it serves, wait for Ctrl-C or SIGTERM."""
    try:
        setup = (
            load_simulator_file(args.config)
            if args.config
            else default_setup(args.vendor, args.password)
        )
        simulator = Simulator(
            setup.cameras,
            host=args.host or setup.host,
            base_port=args.base_port if args.base_port is not None else setup.base_port,
        )
        for name, faults in setup.faults.items():
            simulator.faults(name).update(**faults)
        simulator.start()
    except (SimulatorConfigError, SimulatorError) as error:
        print(f"capture simulate: {error}")
        return 2
    stop = StopRequest()
    # Our own SIGINT handler too, as run and demo have: `capture simulate &` in a script
    # starts with SIGINT ignored (a background job of a non-interactive shell), and
    # Python then installs no KeyboardInterrupt, so Ctrl-C or `kill -INT` did nothing.
    previous = stop.install()
    stamp = _stamp(args.config)
    try:
        _print_table(simulator, setup)
        while not stop.wait(FAULT_POLL_S):
            if args.config is not None and (now := _stamp(args.config)) != stamp:
                stamp = now
                _apply_faults(simulator, setup, args.config)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        simulator.stop()
    print("simulator stopped")
    return 0


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size) if stat is not None else None


def _apply_faults(simulator: Simulator, setup: SimulatorSetup, path: Path) -> None:
    """Saving the simulator file switches faults at once: a person's "on demand".

    Only faults change live; cameras, ports and credentials need a restart,
    as clients hold connections to them.
    """
    try:
        edited = load_simulator_file(path)
    except SimulatorConfigError as error:
        print(f"faults not changed: {error}", flush=True)
        return
    if [camera.name for camera in edited.cameras] != [camera.name for camera in setup.cameras]:
        print("faults not changed: the camera list changed; restart to apply it", flush=True)
        return
    for camera in setup.cameras:
        simulator.reset_faults(camera.name)
        faults = edited.faults.get(camera.name, {})
        simulator.faults(camera.name).update(**faults)
        print(
            f"faults {camera.name}: "
            + (", ".join(f"{k}={v}" for k, v in faults.items()) or "none"),
            flush=True,
        )


def _print_table(simulator: Simulator, setup: SimulatorSetup) -> None:
    print(
        f"Camera simulator: {len(setup.cameras)} simulated camera(s). "
        "These are SIMULATOR credentials, not those of any real device."
    )
    rows = [("NAME", "VENDOR", "AUTH", "USER", "PASSWORD", "URL")]
    for camera in simulator.cameras:
        rows.append(
            (
                camera.name,
                camera.vendor,
                camera.effective_auth,
                camera.user,
                camera.password,
                simulator.example_url_of(camera.name),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[-1]
        )
    for name, faults in setup.faults.items():
        print(f"faults {name}: " + ", ".join(f"{k}={v}" for k, v in faults.items()))
    print("Press Ctrl-C to stop.", flush=True)
