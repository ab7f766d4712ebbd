"""`capture run` (the service) and `capture fire` (a technician's test of a trigger).

`run` is what systemd starts. `fire` injects an event as if a trigger had
fired: with `--dry-run` it only shows which rules match, which cameras would
be shot and the file names they would get; without, it takes the pictures
through the same engine, storage, journal and MQTT event the service uses.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from capture.config.loader import add_config_argument, default_config_path, load_rules
from capture.config.problems import ConfigError, RuleFileMissing
from capture.events import Event
from capture.stopping import StopRequest
from capture.systemd import Watchdog, notify


def register(subparsers: Any) -> None:
    """Add `capture run` and `capture fire` to the CLI."""
    run_parser = subparsers.add_parser(
        "run",
        help="run the service (what systemd starts)",
        description="Start every trigger and capture until SIGTERM or Ctrl-C. Saving the rule "
        "file applies it without a restart; an invalid file is refused and logged.",
    )
    add_config_argument(run_parser)
    run_parser.set_defaults(func=run)

    fire_parser = subparsers.add_parser(
        "fire",
        help="inject an event as if a trigger had fired",
        description="Inject an event for TRIGGER with the given values. --dry-run shows what would "
        "happen (rules, cameras, file names) and touches nothing.",
    )
    add_config_argument(fire_parser)
    fire_parser.add_argument("trigger", help="trigger name from the rule file")
    # `capture fire plc state=NG`: caught to suggest --value, not refused by argparse's wording.
    fire_parser.add_argument("stray", nargs="*", help=argparse.SUPPRESS)
    fire_parser.add_argument(
        "--value",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a value of the event, e.g. --value temp=37.9 (repeatable); numbers become numbers",
    )
    fire_parser.add_argument(
        "--dry-run", action="store_true", help="show what would happen, touch nothing"
    )
    fire_parser.set_defaults(func=fire)


def _load(args: argparse.Namespace) -> Any:
    try:
        return load_rules(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        if not isinstance(exc, RuleFileMissing):
            print(
                "the rule file has errors; fix them and try again (capture check)", file=sys.stderr
            )
        return None


def run(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM/SIGINT; exit 0 after a clean stop."""
    from capture.logs import configure_logging  # noqa: PLC0415 - keeps --help fast
    from capture.service import Service  # noqa: PLC0415

    loaded = _load(args)
    if loaded is None:
        return 1
    configure_logging(loaded.rules.service.log_level)
    service = Service(args.config or default_config_path(), loaded=loaded)
    watchdog = Watchdog.from_environment(
        healthy=service.healthy, status=lambda: status_line(service)
    )

    stop = StopRequest()
    stop.install()  # before start: a SIGTERM during start stops right after it
    service.start()
    notify(f"READY=1\nSTATUS={status_line(service)}")
    if watchdog is not None:
        watchdog.start()
    stop.wait()
    # systemd shows "deactivating" at once and stops expecting watchdog pings.
    notify("STOPPING=1")
    if watchdog is not None:
        watchdog.stop()
    service.stop()
    return 0


def status_line(service: Any) -> str:
    """The one line `systemctl status event-capture` shows: counts, and what needs a look."""
    rules = service.rules
    text = (
        f"capturing: {len(service.cameras)} camera(s), "
        f"{len(service.triggers)}/{len(rules.triggers)} trigger(s) running, {len(rules.rules)} rule(s)"
    )
    if service.trigger_failures:
        text += f"; failed triggers: {', '.join(sorted(service.trigger_failures))}"
    # Running, but their device, PLC server or broker does not answer (they keep trying).
    waiting = sorted(
        name for name, trigger in service.triggers.items() if trigger.stats().connected is False
    )
    if waiting:
        text += f"; triggers waiting for their device: {', '.join(waiting)}"
    if service.reload_errors:
        text += f"; last save of the rule file NOT applied ({len(service.reload_errors)} error(s), see journalctl -u event-capture)"
    return text


def stray_words(args: argparse.Namespace) -> str:
    """What to type instead of `capture fire TRIGGER state=NG`: each value after --value."""
    words = " ".join(repr(word) for word in args.stray)
    values = " ".join(f"--value {word}" for word in [*args.stray, *args.value])
    config = f" -c {args.config}" if args.config else ""
    dry_run = " --dry-run" if args.dry_run else ""
    return (
        f"capture fire: unexpected {words}: give values with --value, e.g. "
        f"capture fire {args.trigger}{config} {values}{dry_run}"
    )


def parse_values(pairs: list[str]) -> dict[str, Any]:
    """`["temp=37.9", "station=S1"]` -> `{"temp": 37.9, "station": "S1"}`."""
    from capture.triggers.values import coerce  # noqa: PLC0415 - keeps --help fast

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--value {pair!r}: write KEY=VALUE")
        values[key.strip()] = coerce(value)
    return values


def fire(args: argparse.Namespace) -> int:
    """Inject one event; print what happened (or would happen)."""
    if args.stray:
        print(stray_words(args), file=sys.stderr)
        return 2
    return _fire(args)


def _fire(args: argparse.Namespace) -> int:
    from capture.rules import RuleSet  # noqa: PLC0415

    loaded = _load(args)
    if loaded is None:
        return 1
    rules = loaded.rules
    if args.trigger not in rules.triggers:
        print(
            f"unknown trigger {args.trigger!r}; known: {', '.join(rules.triggers) or 'none'}",
            file=sys.stderr,
        )
        return 1
    try:
        values = parse_values(args.value)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    event = Event.now(args.trigger, values)
    plan = RuleSet(rules).plan(event)
    if not plan:
        print(f"trigger {args.trigger}: no rule matches these values")
        for rule in rules.rules:
            if args.trigger in rule.when:
                state = "disabled" if not rule.enabled else f"condition false: {rule.condition}"
                print(f"  {rule.name}: {state}")
        return 0
    if args.dry_run:
        for rule, frames in plan:
            print(f"rule {rule.name}: {len(frames)} frame(s)")
            _say_missing(rule.missing_values(event))
            for camera, seq, path in frames:
                print(f"  {camera} #{seq} -> {rules.storage.root}/{path}")
        print("dry run: nothing was captured (cooldowns are not applied in a dry run)")
        return 0
    return _fire_for_real(args, loaded, event)


def _say_missing(names: tuple[str, ...]) -> None:
    """Name the file-name values the event lacks, which are written as "unknown"."""
    if names:
        given = " ".join(f"--value {name}=..." for name in names)
        print(
            f'  not in the event: {", ".join(names)}; the file name says "unknown" '
            f"instead (give {given})"
        )


def _fire_for_real(args: argparse.Namespace, loaded: Any, event: Event) -> int:
    from capture.oneshot import OneShot  # noqa: PLC0415

    with OneShot(loaded.rules) as oneshot:
        reports = oneshot.fire(event)
    if oneshot.undelivered:
        _warn_undelivered(loaded.rules, oneshot.undelivered, oneshot.broker_reachable)
    failed = 0
    for report in reports:
        print(f"rule {report.rule}: event {report.event.id}")
        _say_missing(next((r.missing_fields for r in report.results if r.ok), ()))
        for result in report.results:
            if result.ok:
                print(
                    f"  {result.camera} #{result.seq}: {result.path} ({result.bytes} bytes, {result.latency_ms:.0f} ms)"
                )
            else:
                failed += 1
                print(
                    f"  {result.camera} #{result.seq}: {result.error_type}: {result.error_message}"
                )
    return 1 if failed else 0


def _warn_undelivered(rules: Any, count: int, reachable: bool) -> None:
    """Tell the technician where the event messages the broker did not take are waiting."""
    from capture.sanitize import JOURNAL_NAME  # noqa: PLC0415

    mqtt = rules.mqtt
    why = "did not acknowledge in time" if reachable else "could not be reached"
    print(
        f"warning: MQTT broker {mqtt.host}:{mqtt.port} {why}; {count} event message(s) wait in "
        f"the outbox of {rules.storage.root}/{JOURNAL_NAME}. The running service on this "
        "storage root sends them when it next connects to the broker (or at its next start).",
        file=sys.stderr,
    )
