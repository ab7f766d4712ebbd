"""`capture events`: what the journal recorded, as a table for a technician or JSON lines for a script.

It opens the journal read-only, so it is safe beside a running service.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from capture.config.loader import add_config_argument, load_rule_file
from capture.config.problems import ConfigError
from capture.journal import JournalError, JournalReader, JournalRow
from capture.sanitize import JOURNAL_NAME

_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class Since:
    """A `--since` value: a span back from now, or a date/time (naive means local)."""

    ago: timedelta | None = None
    moment: datetime | None = None

    def resolve(self, zone: tzinfo, now: datetime) -> datetime:
        """The absolute moment, reading a naive date/time in `zone`."""
        if self.ago is not None:
            try:
                return now - self.ago
            except OverflowError:  # further back than the calendar: everything
                return datetime(1970, 1, 1, tzinfo=UTC)  # older than any journal row
        assert self.moment is not None
        if self.moment.tzinfo is None:
            return self.moment.replace(tzinfo=zone)
        return self.moment


def parse_since(text: str) -> Since:
    """Read 30m, 1h, 2d, 1w, 90s, or an ISO date/time such as 2026-11-25 or '2026-11-25 06:00'."""
    match = _AGO.match(text)
    if match:
        try:
            return Since(ago=timedelta(**{_UNITS[match[2]]: float(match[1])}))
        except OverflowError:
            raise argparse.ArgumentTypeError(
                f"{text!r} reaches back further than any calendar; give a date such as 2026-11-25"
            ) from None
    try:
        return Since(moment=datetime.fromisoformat(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a span (30m, 1h, 2d) nor a date/time (2026-11-25 06:00)"
        ) from None


def register(subparsers: Any) -> None:
    """Add `capture events` to the CLI."""
    parser = subparsers.add_parser(
        "events",
        help="list recent events and capture outcomes from the journal",
        description="List events and capture outcomes, newest first. Times are shown in "
        "[service].timezone. With --json, one JSON object per line "
        "(fields: docs/storage-and-journal.md).",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--journal",
        type=Path,
        metavar="PATH",
        help=f"journal database (default: {JOURNAL_NAME} under the rule file's storage root)",
    )
    parser.add_argument(
        "--since",
        type=parse_since,
        metavar="WHEN",
        help="only events since: 30m, 1h, 2d, or a date/time such as '2026-11-25 06:00'",
    )
    parser.add_argument("--rule", metavar="R", help="only this rule")
    parser.add_argument("--camera", metavar="C", help="only this camera")
    parser.add_argument("--failed", action="store_true", help="only failed captures")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--limit", type=_positive, default=50, metavar="N", help="at most N rows (default 50)"
    )
    parser.set_defaults(func=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def run(args: argparse.Namespace) -> int:
    """Print the matching rows; exit 1 when the journal or rule file cannot be read."""
    try:
        journal_path, zone = _locate(args)
        reader = JournalReader(journal_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("cannot find the journal: fix the rule file or give --journal PATH", file=sys.stderr)
        return 1
    except JournalError as exc:
        print(f"capture events: {exc}", file=sys.stderr)
        return 1
    try:
        since = args.since.resolve(zone, datetime.now(zone)) if args.since else None
        rows = reader.query(
            since,
            rule=args.rule,
            camera=args.camera,
            failed_only=args.failed,
            limit=args.limit,
        )
    except JournalError as exc:
        print(f"capture events: {exc}", file=sys.stderr)
        return 1
    finally:
        reader.close()
    if args.json:
        for row in rows:
            print(json.dumps(row.as_json(zone), ensure_ascii=False))
    elif rows:
        print(format_table(rows, zone))
    else:
        print("no matching events", file=sys.stderr)
    return 0


def _locate(args: argparse.Namespace) -> tuple[Path, tzinfo]:
    """The journal's path and the time zone to show times in."""
    if args.journal is not None and args.config is None:
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return args.journal, local
    # Reading the journal needs the storage root, not the cameras' passwords.
    rules = load_rule_file(args.config, resolve_secrets=False)
    path = args.journal or Path(rules.storage.root) / JOURNAL_NAME
    return path, ZoneInfo(rules.service.timezone)


_HEADERS = ("TIME", "TRIGGER", "RULE", "CAMERA", "RESULT", "LATENCY", "FILE / MESSAGE")


def _cells(row: JournalRow, zone: tzinfo) -> tuple[str, ...]:
    time = row.time.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    if row.ok is None:
        values = " ".join(f"{key}={value}" for key, value in row.values.items())
        return (time, row.trigger or "-", "-", "-", "no rule", "", values)
    if row.ok:
        result = "OK (stale)" if row.stale else "OK"
        detail = row.path or ""
        if row.missing_fields:
            detail += f" (not in the event: {', '.join(row.missing_fields)})"
        detail += _upload_note(row)
    else:
        result = row.error_type or "error"
        detail = row.error_message or ""
    latency = f"{row.latency_ms:.0f} ms" if row.latency_ms else ""
    return (time, row.trigger or "-", row.rule or "-", row.camera or "-", result, latency, detail)


def _upload_note(row: JournalRow) -> str:
    """Where the picture is with the object store ([upload]); nothing when it was never queued."""
    if row.upload == "uploaded":
        return " (uploaded)"
    if row.upload == "gone":
        return f" (upload given up: {row.upload_error})"
    if row.upload == "waiting":
        return (
            f" (not uploaded yet: {row.upload_error})"
            if row.upload_error
            else " (not uploaded yet)"
        )
    return ""


def format_table(rows: Sequence[JournalRow], zone: tzinfo) -> str:
    """Rows as aligned columns; the last column (file or message) is never cut."""
    table = [_HEADERS, *(_cells(row, zone) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADERS) - 1)]
    lines = []
    for line in table:
        cells = [
            cell.rjust(width) if index == 5 else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=False))
        ]
        lines.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(lines)
