"""`capture events` over a real journal and rule file: the table, JSON lines, filters, errors."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from capture.cli import main
from capture.events import CaptureResult, Event
from capture.journal import Journal
from capture.journal_command import Since, parse_since
from capture.upload.queue import UploadQueue

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)  # 09:00 in Berlin

JSON_FIELDS = {
    "event_id", "time", "recorded", "trigger", "values", "matched_rules", "rule", "camera",
    "seq", "ok", "path", "bytes", "latency_ms", "trigger_to_image_ms", "image_time", "width",
    "height", "stale", "error_type", "error_message", "missing_fields", "offset_ms", "via",
    "upload", "object_key",
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def rules(tmp_path: Path, store: Path) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(f'[service]\ntimezone = "Europe/Berlin"\n[storage]\nroot = "{store}"\n')
    return path


@pytest.fixture
def journal(store: Path) -> Iterator[Journal]:
    instance = Journal(store / "journal.sqlite3")
    yield instance
    instance.close()


def fire(journal: Journal, at: datetime, trigger: str, rule: str | None, **values: object) -> Event:
    ev = Event(trigger=trigger, values=values, wall_time=at)  # type: ignore[arg-type]
    journal.record_event(ev, [rule] if rule else [])
    return ev


@pytest.fixture
def history(journal: Journal) -> Journal:
    """A thermometer reading below the threshold, then a fever with one good and one dead camera."""
    fire(journal, T0, "thermo", None, temp=36.5)
    ev = fire(journal, T0 + timedelta(seconds=5), "thermo", "fever", temp=37.9)
    journal.record_result(
        CaptureResult(ev.id, "fever", "gate1", 1, path="Line 1/2026-11-25/fever_gate1_1.jpg",
                      bytes=70_123, latency_ms=118.40092699992, trigger_to_image_ms=131.0)
    )  # fmt: skip
    journal.record_result(
        CaptureResult(ev.id, "fever", "gate2", 1, error_type="CameraTimeout",
                      error_message="camera gate2: no answer within 3 s; check power and network")
    )  # fmt: skip
    journal.flush()
    return journal


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["events", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_shows_outcomes_newest_first_in_the_service_time_zone(
    history: Journal, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "-c", str(rules))

    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == [
        "TIME",
        "TRIGGER",
        "RULE",
        "CAMERA",
        "RESULT",
        "LATENCY",
        "FILE",
        "/",
        "MESSAGE",
    ]
    assert lines[1].split()[:6] == [
        "2026-11-25",
        "09:00:05",
        "thermo",
        "fever",
        "gate2",
        "CameraTimeout",
    ]
    assert lines[1].endswith("camera gate2: no answer within 3 s; check power and network")
    assert lines[2].split()[:8] == [
        "2026-11-25",
        "09:00:05",
        "thermo",
        "fever",
        "gate1",
        "OK",
        "118",
        "ms",
    ]
    assert lines[2].endswith("Line 1/2026-11-25/fever_gate1_1.jpg")
    assert lines[3].split() == [
        "2026-11-25",
        "09:00:00",
        "thermo",
        "-",
        "-",
        "no",
        "rule",
        "temp=36.5",
    ]
    assert len(lines) == 4
    # Columns line up: every row's file/message starts where the header's does.
    start = lines[0].index("FILE / MESSAGE")
    assert lines[1][start:].startswith("camera gate2") and lines[2][start:].startswith("Line 1/")


def test_table_and_json_show_where_each_picture_is_with_the_object_store(
    journal: Journal, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = UploadQueue(journal)
    journal.with_result = queue.hook(lambda result: f"plant/{result.path}")
    ev = fire(journal, T0, "gate", "pass")
    for seq in (1, 2, 3):
        journal.record_result(CaptureResult(ev.id, "pass", "cam", seq, path=f"p/{seq}.jpg"))
    journal.flush()
    first, second, third = queue.waiting(10)
    queue.done([first])
    queue.given_up([(second, "p/2.jpg: no longer on local disk")])
    queue.failed([(third, "object store http://s3:9000: connection refused")])
    journal.flush()

    _, out, _ = run(capsys, "-c", str(rules))
    _, lines, _ = run(capsys, "-c", str(rules), "--json")

    assert [line.split("p/", 1)[1] for line in out.splitlines()[1:]] == [
        "3.jpg (not uploaded yet: object store http://s3:9000: connection refused)",
        "2.jpg (upload given up: p/2.jpg: no longer on local disk)",
        "1.jpg (uploaded)",
    ]
    objects = [json.loads(line) for line in lines.splitlines()]
    assert [(o["upload"], o["object_key"]) for o in objects] == [
        ("waiting", "plant/p/3.jpg"), ("gone", "plant/p/2.jpg"), ("uploaded", "plant/p/1.jpg"),
    ]  # fmt: skip


def test_json_prints_one_object_per_line_with_stable_fields(
    history: Journal, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "-c", str(rules), "--json")

    objects = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [set(o) for o in objects] == [JSON_FIELDS] * 3
    failed, good, quiet = objects
    assert good["camera"] == "gate1" and good["ok"] is True and good["bytes"] == 70_123
    # The site's clock, as in the table: 09:00:05 in Berlin, with its offset.
    assert good["time"] == "2026-11-25T09:00:05.000+01:00" and good["values"] == {"temp": 37.9}
    assert good["recorded"].endswith("+01:00")
    assert good["trigger_to_image_ms"] == 131.0 and good["matched_rules"] == ["fever"]
    assert good["latency_ms"] == 118.401  # rounded to the microsecond
    assert failed["ok"] is False and failed["error_type"] == "CameraTimeout"
    assert quiet["ok"] is None and quiet["rule"] is None and quiet["recorded"] is None


@pytest.mark.parametrize(
    ("options", "cameras"),
    [
        (["--failed"], ["gate2"]),
        (["--camera", "gate1"], ["gate1"]),
        (["--rule", "fever"], ["gate2", "gate1"]),
        (["--rule", "other"], []),
        (["--limit", "1"], ["gate2"]),
    ],
)
def test_filters_select_the_rows(
    history: Journal,
    rules: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    cameras: list[str],
) -> None:
    code, out, _ = run(capsys, "-c", str(rules), "--json", *options)

    assert code == 0
    assert [json.loads(line)["camera"] for line in out.splitlines()] == cameras


def test_since_takes_a_local_date_time_of_the_service_time_zone(
    journal: Journal, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fire(journal, T0 - timedelta(seconds=1), "plc", None, n=1)
    fire(journal, T0 + timedelta(seconds=1), "plc", None, n=2)
    journal.flush()

    _, out, _ = run(capsys, "-c", str(rules), "--json", "--since", "2026-11-25 09:00")

    assert [json.loads(line)["values"]["n"] for line in out.splitlines()] == [2]


def test_since_takes_a_span_back_from_now(
    journal: Journal, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    for n, age in enumerate((timedelta(hours=3), timedelta(minutes=50), timedelta(seconds=10))):
        fire(journal, now - age, "plc", None, n=n)
    journal.flush()

    _, hour, _ = run(capsys, "-c", str(rules), "--json", "--since", "1h")
    _, minute, _ = run(capsys, "-c", str(rules), "--json", "--since", "30m")

    assert [json.loads(line)["values"]["n"] for line in hour.splitlines()] == [2, 1]
    assert [json.loads(line)["values"]["n"] for line in minute.splitlines()] == [2]
    # Further back than datetime can count: everything, not a traceback.
    code, ever, _ = run(capsys, "-c", str(rules), "--json", "--since", "1000000d")
    assert code == 0 and len(ever.splitlines()) == 3
    with pytest.raises(argparse.ArgumentTypeError, match="back further than any calendar"):
        parse_since("99999999999999w")


def test_the_journal_can_be_named_without_a_rule_file(
    history: Journal, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--journal", str(store / "journal.sqlite3"), "--json")

    assert code == 0
    assert len(out.splitlines()) == 3


def test_an_empty_result_says_so_on_stderr(
    history: Journal, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "-c", str(rules), "--camera", "nobody")

    assert (code, out) == (0, "")
    assert "no matching events" in err


def test_a_missing_journal_exits_1_saying_why(
    rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "-c", str(rules))

    assert (code, out) == (1, "")
    assert "no journal at" in err and "has not run" in err


def test_reading_the_journal_needs_no_camera_password(
    history: Journal,
    tmp_path: Path,
    store: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After `capture demo`, or on a desk without the Pi's secrets.env: the rule
    # file names a password variable that this shell does not have.
    monkeypatch.delenv("NOT_IN_THIS_SHELL", raising=False)
    path = tmp_path / "with-camera.toml"
    path.write_text(
        f'[service]\ntimezone = "Europe/Berlin"\n[storage]\nroot = "{store}"\n'
        '[cameras.gate1]\nvendor = "hikvision"\nhost = "10.0.0.5"\nuser = "admin"\n'
        'password_env = "NOT_IN_THIS_SHELL"\n'
    )

    code, out, err = run(capsys, "-c", str(path), "--json")

    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_a_broken_rule_file_exits_1_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "rules.toml"
    broken.write_text('[service]\ntimezone = "Mars/Olympus"\n')

    code, _, err = run(capsys, "-c", str(broken))

    assert code == 1
    assert f"{broken}:2" in err and "--journal" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", Since(ago=timedelta(minutes=30))),
        ("1h", Since(ago=timedelta(hours=1))),
        ("2d", Since(ago=timedelta(days=2))),
        ("1.5h", Since(ago=timedelta(minutes=90))),
        ("2026-11-25", Since(moment=datetime(2026, 11, 25))),
        ("2026-11-25T06:30", Since(moment=datetime(2026, 11, 25, 6, 30))),
        ("2026-11-25 06:30:00+00:00", Since(moment=datetime(2026, 11, 25, 6, 30, tzinfo=UTC))),
    ],
)
def test_since_spellings(text: str, expected: Since) -> None:
    assert parse_since(text) == expected


def test_a_naive_since_is_read_in_the_given_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")

    moment = parse_since("2026-11-25 09:00").resolve(berlin, datetime.now(berlin))

    assert moment == T0


@pytest.mark.parametrize("text", ["yesterday", "5x", "-1h", ""])
def test_since_nonsense_is_a_usage_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="30m"):
        parse_since(text)
