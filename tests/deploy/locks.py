"""Reading deploy/*.lock (pins with their markers and hashes), for the lock and install tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = REPO / "deploy" / "requirements.lock"
DEV_LOCK = REPO / "deploy" / "requirements-dev.lock"
EXTRAS_DIR = REPO / "deploy" / "extras"


def extra_lock(extra: str) -> Path:
    """deploy/extras/EXTRA.lock: the install lock plus one optional extra (install.sh --extras)."""
    return EXTRAS_DIR / f"{extra}.lock"


PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


@dataclass(frozen=True)
class Pin:
    version: str
    marker: Marker | None
    hashes: int

    def applies(self) -> bool:
        """Whether this machine's Python installs it (universal locks carry markers)."""
        return self.marker is None or self.marker.evaluate()


def pins(path: Path) -> dict[str, Pin]:
    """Each release of the lock by name; of a fork (numpy: one release for Python 3.11, a
    newer one where it needs 3.12), the one this machine's Python installs."""
    found: dict[str, Pin] = {}
    forks: dict[str, list[Pin]] = {}
    name: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match["name"])
            marker = Marker(match["marker"]) if match["marker"] else None
            forks.setdefault(name, []).append(Pin(match["version"], marker, 0))
        elif line.strip().startswith("--hash=sha256:") and name is not None:
            pin = forks[name][-1]
            forks[name][-1] = Pin(pin.version, pin.marker, pin.hashes + 1)
    for name, releases in forks.items():
        if len(releases) == 1:
            found[name] = releases[0]
            continue
        assert all(pin.marker is not None for pin in releases), f"{path.name}: {name} pinned twice"
        applying = [pin for pin in releases if pin.applies()]
        assert len(applying) <= 1, f"{path.name}: {name} pinned twice for this Python"
        found[name] = applying[0] if applying else releases[0]
    return found
