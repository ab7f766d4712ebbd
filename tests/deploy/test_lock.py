"""deploy/*.lock: in step with pyproject.toml, hashed, and exactly what this test run uses.

A Pi installs deploy/requirements.lock (deploy/install.sh), plus
deploy/extras/NAME.lock for each optional feature it asks for (install.sh
--extras NAME,...); ./dev installs deploy/requirements-dev.lock, the same
releases plus every extra and the test tools. These tests fail when
pyproject.toml changed without `./dev lock`, or when the venv running them
drifted from the lock, so "what CI tested" stays "what a Pi gets".
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.locks import DEV_LOCK, EXTRAS_DIR, REPO, RUNTIME_LOCK, extra_lock, pins

#: Extras the install lock itself carries (see `./dev lock`).
IN_THE_INSTALL_LOCK = ("onvif",)


def project() -> dict[str, list[str]]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {"runtime": data["dependencies"], **data["optional-dependencies"]}


def optional_extras() -> list[str]:
    """The extras a Pi adds with install.sh --extras: each has a lock of its own."""
    return sorted(set(project()) - {"runtime", "dev", *IN_THE_INSTALL_LOCK})


def locks_and_groups() -> list[tuple[Path, list[str]]]:
    install = ["runtime", *IN_THE_INSTALL_LOCK]
    return [
        (RUNTIME_LOCK, install),
        *[(extra_lock(extra), [*install, extra]) for extra in optional_extras()],
        (DEV_LOCK, sorted(project())),
    ]


@pytest.mark.parametrize(
    ("lock", "groups"), locks_and_groups(), ids=lambda v: getattr(v, "name", "")
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


def test_every_extra_has_its_lock_and_no_lock_is_left_of_a_removed_extra() -> None:
    assert sorted(path.stem for path in EXTRAS_DIR.glob("*.lock")) == optional_extras()


def test_every_lock_is_hashed_and_all_agree_on_every_release_they_share() -> None:
    """So a Pi can combine extras, and gets the releases CI tested (the dev lock's)."""
    dev = pins(DEV_LOCK)
    runtime = pins(RUNTIME_LOCK)
    assert runtime
    for lock in [RUNTIME_LOCK, *map(extra_lock, optional_extras())]:
        locked = pins(lock)
        assert set(runtime) <= set(locked) <= set(dev), lock.name
        for name, pin in locked.items():
            assert pin.hashes > 0, f"{lock.name}: {name} unhashed (pip --require-hashes refuses)"
            assert dev[name].version == pin.version, (
                f"{lock.name}: {name} {pin.version} vs the dev lock's {dev[name].version}"
            )
    assert all(pin.hashes > 0 for pin in dev.values())


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
