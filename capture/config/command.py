"""`capture check`: validate a rule file and show what it will do.

The technician's first tool after editing rules.toml: every mistake with its
line, or a summary of which trigger fires which rule on which cameras.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from capture.config.loader import add_config_argument, default_config_path, load_rules
from capture.config.problems import ConfigError, RuleFileMissing
from capture.config.schema import RuleFile
from capture.config.secrets import mask_secrets


def register(subparsers: Any) -> None:
    """Add `capture check` to the CLI."""
    parser = subparsers.add_parser(
        "check",
        help="validate a rule file and summarize it",
        description="Validate the rule file and every cross-reference. Prints every problem "
        "as file:line: key: message and exits 1, or prints a summary and exits 0.",
    )
    add_config_argument(parser)
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing when the file is valid"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the file; exit status 0 when it can be used, 1 when not."""
    path = args.config or default_config_path()
    try:
        loaded = load_rules(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        if isinstance(exc, RuleFileMissing):
            return 1
        count = len(exc.errors)
        print(
            f"{path}: {count} error{'s' if count != 1 else ''}; nothing was changed",
            file=sys.stderr,
        )
        return 1
    for warning in loaded.warnings:
        print(warning, file=sys.stderr)
    if not args.quiet:
        print(mask_secrets(summarize(loaded.rules, str(path)), loaded.clear_secrets))
    return 0


def summarize(rules: RuleFile, source: str) -> str:
    """A short, secret-free description of what the file configures."""
    lines_of_cameras = sorted({rules.camera_line(name) for name in rules.cameras})
    enabled = [rule for rule in rules.rules if rule.enabled]
    out = [
        f"{source}: OK — site {rules.service.site!r}, {len(lines_of_cameras)} line(s), "
        f"{len(rules.cameras)} camera(s), {len(rules.triggers)} trigger(s), "
        f"{len(rules.rules)} rule(s) ({len(rules.rules) - len(enabled)} disabled)",
        "",
        "cameras:",
    ]
    width = max((len(name) for name in rules.cameras), default=0)
    for name, camera in rules.cameras.items():
        channel = (
            f" ch{camera.channel} {camera.stream}"
            if camera.vendor in ("hikvision", "dahua")
            else ""
        )
        out.append(
            f"  {name:<{width}}  {camera.vendor:<9} {camera.scheme}://{camera.host}:{camera.effective_port}"
            f"{channel}  line {rules.camera_line(name)!r}"
        )
    out += ["", "triggers:"]
    width = max((len(name) for name in rules.triggers), default=0)
    for name, trigger in rules.triggers.items():
        out.append(f"  {name:<{width}}  {trigger.type:<8} {_trigger_detail(name, trigger)}")
    out += ["", "rules:"]
    for rule in rules.rules:
        state = "" if rule.enabled else "  [disabled]"
        condition = f" if {rule.condition}" if rule.condition else ""
        burst = f", {rule.burst} frames every {rule.interval_ms} ms" if rule.burst > 1 else ""
        delay = f", after {rule.delay_ms} ms" if rule.delay_ms else ""
        if rule.frames_ms is not None:
            burst = ", frames at " + ", ".join(f"{offset:+d}" for offset in rule.frames_ms) + " ms"
        cooldown = ""
        if rule.cooldown_s:
            per = f" per {rule.cooldown_key}" if rule.cooldown_key else ""
            cooldown = f", cooldown {rule.cooldown_s:g} s{per}"
        cameras = ", ".join(rules.rule_cameras(rule))
        out.append(
            f"  {rule.name}: {' | '.join(rule.when)}{condition} -> {cameras}{burst}{delay}{cooldown}{state}"
        )
    return "\n".join(out)


def _trigger_detail(name: str, trigger: Any) -> str:
    details: dict[str, Callable[[Any], str]] = {
        "gpio": lambda t: f"pin {t.pin}, {t.edge}, bounce {t.bounce_ms} ms",
        "mqtt": lambda t: f"topic {t.topic}",
        "file": lambda t: f"{t.mode} {t.path} ({t.parser})",
        "serial": lambda t: f"{t.port} {t.baud} baud ({t.parser})",
        "interval": lambda t: f"every {t.every_s:g} s" + (f" during {t.hours}" if t.hours else ""),
        "http": lambda _t: f"POST /api/trigger/{name}",
    }
    return str(details[trigger.type](trigger))
