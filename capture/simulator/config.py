"""Reads a simulator TOML file: which cameras to play, on which host and ports, with which faults.

The keys are the fields of `SimulatedCamera` and `Faults`, so the file and
the Python API never drift apart; a typo is an error naming the file and
the camera, not a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capture.simulator.camera import SimulatedCamera, SimulatorConfigError
from capture.simulator.faults import Faults

_CAMERA_FIELDS = frozenset(f.name for f in dataclasses.fields(SimulatedCamera))
_FAULT_FIELDS = frozenset(f.name for f in dataclasses.fields(Faults) if f.name != "_lock")


@dataclass(frozen=True)
class SimulatorSetup:
    """Everything a simulator file describes."""

    cameras: tuple[SimulatedCamera, ...]
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    host: str = "127.0.0.1"
    base_port: int | None = None


def load_simulator_file(path: Path) -> SimulatorSetup:
    """Parse and check a simulator TOML file; raise `SimulatorConfigError` naming what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SimulatorConfigError(f"{path}: cannot read: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise SimulatorConfigError(f"{path}: not valid TOML: {error}") from error
    return parse_simulator_setup(data, str(path))


def parse_simulator_setup(data: dict[str, Any], source: str = "simulator config") -> SimulatorSetup:
    """Build the setup from already-parsed TOML data."""
    unknown = set(data) - {"simulator", "camera"}
    if unknown:
        raise SimulatorConfigError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
    options = data.get("simulator", {})
    unknown = set(options) - {"host", "base_port"}
    if unknown:
        raise SimulatorConfigError(
            f"{source}: [simulator]: unknown key(s) {', '.join(sorted(unknown))}"
        )
    entries = data.get("camera", [])
    if not isinstance(entries, list) or not entries:
        raise SimulatorConfigError(f"{source}: add at least one [[camera]] with name and vendor")
    cameras = []
    faults: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(entries, start=1):
        camera, camera_faults = _camera(entry, f"{source}: camera #{index}")
        cameras.append(camera)
        if camera_faults:
            faults[camera.name] = camera_faults
    base_port = options.get("base_port")
    if base_port is not None and not (isinstance(base_port, int) and 1 <= base_port <= 65535):
        raise SimulatorConfigError(f"{source}: [simulator]: base_port must be 1..65535")
    return SimulatorSetup(
        cameras=tuple(cameras),
        faults=faults,
        host=str(options.get("host", "127.0.0.1")),
        base_port=base_port,
    )


def _camera(entry: dict[str, Any], where: str) -> tuple[SimulatedCamera, dict[str, Any]]:
    settings = dict(entry)
    faults = settings.pop("faults", {})
    where = f"{where} ({settings.get('name', 'unnamed')})"
    unknown = set(settings) - _CAMERA_FIELDS
    if unknown:
        raise SimulatorConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    unknown = set(faults) - _FAULT_FIELDS
    if unknown:
        raise SimulatorConfigError(f"{where}: unknown fault(s) {', '.join(sorted(unknown))}")
    if "name" not in settings or "vendor" not in settings:
        raise SimulatorConfigError(f"{where}: name and vendor are required")
    if "digest_algorithms" in settings:
        settings["digest_algorithms"] = tuple(settings["digest_algorithms"])
    if settings.get("digest_qop") == "none":
        settings["digest_qop"] = None  # TOML has no null
    try:
        return SimulatedCamera(**settings), faults
    except (TypeError, SimulatorConfigError) as error:
        raise SimulatorConfigError(f"{where}: {error}") from error
