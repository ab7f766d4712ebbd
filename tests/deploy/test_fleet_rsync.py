"""docs/fleet.md's rsync pull: it copies every snapshot and nothing else, and the archive keeps what the Pi's retention deletes."""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from PIL import Image

from capture.config.schema import StorageConfig
from capture.journal import Journal
from capture.storage import Storage
from tests.conftest import needs_tool

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"
RSYNC = shutil.which("rsync")


def documented_rsync(source: Path, target: Path) -> list[str]:
    """The guide's rsync command, with the Pi and the server's folder replaced by local ones."""
    [command] = re.findall(r"^(rsync .*?[^\\])$", GUIDE.read_text(), re.S | re.M)
    words = shlex.split(command.replace("\\\n", " "))
    assert words[-2] == "archive@line3-capture:/var/lib/event-capture/", words
    return [*words[:-2], f"{source}/", f"{target}/"]


def picture() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


@needs_tool(RSYNC, "rsync (Debian package rsync)")
def test_the_pull_copies_snapshots_only_and_keeps_them_after_the_pi_deleted_them(
    tmp_path: Path,
) -> None:
    pi, archive = tmp_path / "pi", tmp_path / "archive"
    storage = Storage(StorageConfig(root=pi, min_free_mb=0))
    journal = Journal(pi / "journal.sqlite3")
    try:
        first = storage.save(
            "Line 3/2026-11-25/ng_S2_line3_press_101502_1.jpg", picture(), "line3_press"
        )
        second = storage.save(
            "Line 3/2026-11-25/infeed_line3_infeed_101503_1.jpg", picture(), "line3_infeed"
        )
        # A write in progress at the moment of the copy.
        (pi / "Line 3" / "2026-11-25" / ".capture-4711-9.tmp").write_bytes(b"\xff\xd8half")
        subprocess.run(documented_rsync(pi, archive), check=True, timeout=60)
        copied = sorted(str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file())
        assert copied == sorted([str(first.relative), str(second.relative)])
        assert (archive / str(first.relative)).read_bytes() == (
            pi / str(first.relative)
        ).read_bytes()
        # The Pi's retention removes a picture; the next pull keeps the archive's copy.
        (pi / str(first.relative)).unlink()
        subprocess.run(documented_rsync(pi, archive), check=True, timeout=60)
        assert (archive / str(first.relative)).is_file()
    finally:
        journal.close()
        storage.close()
