"""deploy/test-arm64.sh where it cannot emulate: skipped with the reason, or failed under ./dev test.

The proof itself (an arm64 root, the installer, the service's commands) runs
after the suite in `./dev test`; these tests cover the one decision it makes
before it needs root: whether to skip, and that ./dev test and CI never do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import needs_tool

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "test-arm64.sh"
REASON = "it needs root (chroot, mounts, binfmt_misc); run: sudo "
NOBODY = 65534


def run_without_root(tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """The script as a user who is not root (nobody, when the suite runs as root)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **environ}
    command = ["bash", str(SCRIPT)]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False
    )


@needs_tool(os.geteuid() != 0 or shutil.which("setpriv"), "setpriv (Debian package util-linux)")
def test_without_root_it_says_why_it_is_skipped_and_succeeds(tmp_path: Path) -> None:
    result = run_without_root(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"[arm64] SKIPPED: the arm64 install proof cannot run here: {REASON}{SCRIPT}\n"
    )
    assert not (tmp_path / ".cache").exists()


@needs_tool(os.geteuid() != 0 or shutil.which("setpriv"), "setpriv (Debian package util-linux)")
def test_under_dev_test_a_machine_that_cannot_emulate_fails_it(tmp_path: Path) -> None:
    result = run_without_root(tmp_path, CAPTURE_REQUIRE_TOOLS="1")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"[arm64] error: cannot run the arm64 install proof: {REASON}{SCRIPT}; "
        "CAPTURE_REQUIRE_TOOLS=1 (./dev test, CI) requires it\n"
    )
