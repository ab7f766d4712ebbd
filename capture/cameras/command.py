"""`capture snap` and `capture cameras`: a technician's tools to test cameras from the shell.

`snap` takes one picture now and writes it (atomically, never a partial or
non-JPEG file); `cameras` probes every configured camera at once and prints
a table of who answers, how fast and with what image. Both share the login
back-off of the running service (capture.cameras.logins), so running them
again and again with a wrong password cannot lock the camera's account; they
say which device they skipped for it, for how long and why.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from capture.cameras import Camera, Snapshot, build_camera
from capture.cameras.errors import CameraError, LockedOut
from capture.cameras.logins import shared_logins
from capture.config.loader import add_config_argument, load_rule_file
from capture.config.problems import ConfigError, did_you_mean
from capture.config.schema import CameraConfig, RuleFile

#: Most cameras probed at once by `capture cameras`.
MAX_PROBES = 32


def register(subparsers: Any) -> None:
    """Add `capture snap` and `capture cameras` to the CLI."""
    snap = subparsers.add_parser(
        "snap",
        help="take one snapshot from a camera now",
        description="Take one snapshot now and write it. Prints path, size, resolution and "
        "latency; on failure prints the typed error, writes nothing and exits 1.",
    )
    snap.add_argument("camera", metavar="CAMERA", help="camera name from the rule file")
    add_config_argument(snap)
    snap.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="PATH",
        help="file to write, or an existing folder (default: ./CAMERA_YYYYmmdd_HHMMSS.jpg)",
    )
    snap.set_defaults(func=run_snap)

    cameras = subparsers.add_parser(
        "cameras",
        help="probe every configured camera",
        description="Take one snapshot from every camera at once and print a table: name, "
        "vendor, line, latency, image size, and OK or the error. Exits 1 if any failed.",
    )
    add_config_argument(cameras)
    cameras.set_defaults(func=run_cameras)


def _load(args: argparse.Namespace) -> RuleFile | None:
    try:
        return load_rule_file(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def run_snap(args: argparse.Namespace) -> int:
    """Take one snapshot; 0 when a JPEG was written, 1 otherwise."""
    rules = _load(args)
    if rules is None:
        return 1
    if args.camera not in rules.cameras:
        known = ", ".join(rules.cameras) or "none"
        print(
            f"unknown camera {args.camera!r}{did_you_mean(args.camera, rules.cameras)}; "
            f"cameras in the rule file: {known}",
            file=sys.stderr,
        )
        return 1
    config = rules.cameras[args.camera]
    try:
        camera = build_camera(args.camera, config, logins=shared_logins(rules.storage.root))
    except Exception as exc:  # untranslated, see cannot_set_up
        print(f"camera {args.camera}: {cannot_set_up(args.camera, config, exc)}", file=sys.stderr)
        return 1
    try:
        with _errors_reported_once():
            snapshot = camera.snapshot()
    except CameraError as error:
        print(f"{error.kind}: {error}", file=sys.stderr)
        return 1
    finally:
        camera.close()
    target = output_path(args.output, args.camera, ZoneInfo(rules.service.timezone))
    try:
        write_atomically(target, snapshot.jpeg)
    except OSError as exc:
        print(f"cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(
        f"{target}: {len(snapshot.jpeg)} bytes, {snapshot.width}x{snapshot.height}, "
        f"{snapshot.latency_ms:.0f} ms"
    )
    return 0


def output_path(output: Path | None, camera: str, zone: tzinfo) -> Path:
    """The file to write: `output` itself, or the default name inside `output` or ./.

    The default name has the time in the site's zone, as the service's own file names do.
    """
    default_name = f"{camera}_{datetime.now(zone):%Y%m%d_%H%M%S}.jpg"
    if output is None:
        return Path(default_name)
    if output.is_dir():
        return output / default_name
    return output


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename, so no partial file is ever seen."""
    folder = path.parent if str(path.parent) else Path()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; a snapshot is meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _errors_reported_once() -> Iterator[None]:
    """Keep the camera modules' log lines off stderr: the command prints each error itself.

    Without a configured handler, Python's last-resort handler would print the
    service's `event=failing`/`event=backoff` warnings next to the typed
    error line, repeating the same message up to three times.
    """
    cameras_logger = logging.getLogger("capture.cameras")
    handler = logging.NullHandler()
    cameras_logger.addHandler(handler)
    try:
        yield
    finally:
        cameras_logger.removeHandler(handler)


def cannot_set_up(name: str, config: CameraConfig, exc: Exception) -> str:
    """Why a camera's driver could not be built, for the technician.

    build_camera does not translate its failures (a driver's ValueError, a CA
    file's OSError, httpx's InvalidURL), so the commands take any of them.
    """
    if isinstance(exc, OSError) and config.ca_file is not None:
        detail = f"ca_file {str(config.ca_file)!r}: {exc.strerror or exc}"
    else:
        detail = str(exc).removeprefix(f"camera {name}: ") or type(exc).__name__
    return f"cannot be set up: {detail}"


def probe(camera: Camera) -> tuple[Snapshot | None, CameraError | None]:
    """One snapshot from one camera: the snapshot or the error."""
    try:
        return camera.snapshot(), None
    except CameraError as error:
        return None, error


def run_cameras(args: argparse.Namespace) -> int:
    """Probe every camera concurrently and print the table; 1 if any failed."""
    rules = _load(args)
    if rules is None:
        return 1
    names = list(rules.cameras)
    if not names:
        print("no cameras in the rule file", file=sys.stderr)
        return 1
    # All built before any probe, so the channels of one NVR share its slots and back-off.
    cameras: list[Camera] = []
    not_set_up: dict[str, str] = {}
    logins = shared_logins(rules.storage.root)
    try:
        for name in names:
            try:
                cameras.append(build_camera(name, rules.cameras[name], logins=logins))
            except Exception as exc:  # untranslated, see cannot_set_up
                not_set_up[name] = cannot_set_up(name, rules.cameras[name], exc)
        with _errors_reported_once(), ThreadPoolExecutor(min(len(names), MAX_PROBES)) as pool:
            probed = dict(zip([c.name for c in cameras], pool.map(probe, cameras), strict=True))
    finally:
        for camera in cameras:
            camera.close()
    results = [probed.get(name, (None, None)) for name in names]
    rows = [["NAME", "VENDOR", "LINE", "LATENCY", "IMAGE", "RESULT"]]
    for name, (snapshot, error) in zip(names, results, strict=True):
        config = rules.cameras[name]
        if snapshot is not None:
            # No "stale" mark: a probe is a camera's first picture, there is nothing to compare.
            cells = [
                f"{snapshot.latency_ms:.0f} ms",
                f"{snapshot.width}x{snapshot.height} {len(snapshot.jpeg) // 1024} KiB",
                "OK",
            ]
        elif name in not_set_up:
            cells = ["-", "-", not_set_up[name]]
        else:
            assert error is not None
            cells = ["-", "-", f"{error.kind}: {error.message}"]
        rows.append([name, config.vendor, rules.camera_line(name), *cells])
    print(format_table(rows))
    for line in skipped_devices(names, [error for _, error in results]):
        print(line, file=sys.stderr)
    failed = sum(1 for snapshot, _ in results if snapshot is None)
    if failed:
        print(f"{failed} of {len(names)} camera(s) failed", file=sys.stderr)
    return 1 if failed else 0


def skipped_devices(names: list[str], errors: list[CameraError | None]) -> list[str]:
    """One line per device skipped for the shared login back-off: which, how long, why."""
    held: dict[str, tuple[LockedOut, list[str]]] = {}
    for name, error in zip(names, errors, strict=True):
        if isinstance(error, LockedOut) and error.skipped_device is not None:
            held.setdefault(error.skipped_device, (error, []))[1].append(name)
    return [
        f"skipped {device} ({', '.join(cameras)}): no login tried, "
        f"{error.retry_after_s or 0:.0f} s left of its login back-off; see the table for why"
        for device, (error, cameras) in held.items()
    ]


def format_table(rows: list[list[str]]) -> str:
    """Left-aligned columns; the last column is not padded (it holds long error messages)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    )
