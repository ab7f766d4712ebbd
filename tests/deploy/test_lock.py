"""deploy/*.lock: in step with pyproject.toml, hashed, and exactly what this test run uses.

A Pi installs deploy/requirements.lock (deploy/install.sh); ./dev installs
deploy/requirements-dev.lock, the same releases plus the test tools. These
tests fail when pyproject.toml changed without `./dev lock`, or when the
venv running them drifted from the lock, so "what CI tested" stays "what a
Pi gets".
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.locks import DETECT_LOCK, DEV_LOCK, REPO, RUNTIME_LOCK, pins


def project() -> dict[str, list[str]]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = data["optional-dependencies"]
    return {"runtime": data["dependencies"], "dev": extras["dev"], "detect": extras["detect"]}


@pytest.mark.parametrize(
    ("lock", "groups"),
    [
        (RUNTIME_LOCK, ["runtime"]),
        (DETECT_LOCK, ["runtime", "detect"]),
        (DEV_LOCK, ["runtime", "dev", "detect"]),
    ],
)
def test_every_requirement_of_pyproject_is_met_by_a_pin_of_the_lock(
    lock: Path, groups: list[str]
) -> None:
    locked = pins(lock)
    for group in groups:
        for text in project()[group]:
            requirement = Requirement(text)
            pin = locked.get(canonicalize_name(requirement.name))
            assert pin is not None, f"{lock.name} lacks {requirement.name}: run ./dev lock"
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"{lock.name} pins {requirement.name}=={pin.version}, pyproject.toml asks "
                f"{requirement.specifier}: run ./dev lock"
            )


@pytest.mark.parametrize("install_lock", [RUNTIME_LOCK, DETECT_LOCK])
def test_every_pin_is_hashed_and_the_install_lock_is_part_of_the_dev_lock(
    install_lock: Path,
) -> None:
    runtime, dev = pins(install_lock), pins(DEV_LOCK)
    assert runtime and set(runtime) <= set(dev)
    for name, pin in runtime.items():
        assert dev[name].version == pin.version, f"{name}: {pin.version} vs {dev[name].version}"
    unhashed = [name for name, pin in {**runtime, **dev}.items() if pin.hashes == 0]
    assert unhashed == []  # pip --require-hashes would refuse the lock


def test_this_run_uses_exactly_the_locked_releases() -> None:
    """./dev installs the dev lock; a drifted venv would test something a Pi never gets."""
    drifted = {}
    for name, pin in pins(DEV_LOCK).items():
        if not pin.applies():
            continue
        installed = metadata.version(name)
        if installed != pin.version:
            drifted[name] = (installed, pin.version)
    assert drifted == {}, f"installed vs locked: {drifted}; ./dev reinstalls when the lock changes"
