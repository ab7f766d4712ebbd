"""./dev and pyproject.toml: what a fresh clone installs, and prints while it does."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

DEV = Path(__file__).resolve().parents[1] / "dev"

#: What pip printed on the first `./dev test` with setuptools 80 (compat editable mode).
BANNER = """\
  !!

          ********************************************************************************
          The 'compat' editable mode is transitional and will be removed
          in future versions of `setuptools`.
          Please adapt your code accordingly to use either the 'strict' or the
          'lenient' modes.

          See https://setuptools.pypa.io/en/latest/userguide/development_mode.html for details.
          ********************************************************************************

  !!
    mode = _EditableMode.convert(self.mode)
"""


def filtered(text: str) -> str:
    function = "source <(sed -n '/^pip_notes_filtered()/,/^}/p' \"$0\"); pip_notes_filtered"
    return subprocess.run(
        ["bash", "-c", function, str(DEV)], input=text, capture_output=True, text=True, check=True
    ).stdout


def test_the_setuptools_compat_banner_is_filtered_and_errors_pass_through() -> None:
    error = "ERROR: Could not find a version that satisfies the requirement pydantic>=2.14\n"
    location = "WARNING: Location 'x' is ignored: it is either a non-existing path or lacks a specific scheme.\n"
    assert filtered(BANNER) == ""
    assert filtered(location + BANNER + error) == error


def test_every_package_data_pattern_names_files_that_exist() -> None:
    project = tomllib.loads((DEV.parent / "pyproject.toml").read_text())
    for package, patterns in project["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert list((DEV.parent / package).glob(pattern)), f"{package}/{pattern}: no such file"
