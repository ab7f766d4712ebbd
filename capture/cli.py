"""The `capture` command line: one subcommand per job, each defined by its module.

Each command module exposes `register(subparsers)`, which adds its parser and
sets `func` to a callable taking the parsed arguments and returning an exit
code. Keeping them in their modules means adding a command never touches the
others. Only the module of the command being run is imported, so `capture
check` does not pay for the simulator's Pillow or the service's MQTT client,
and `capture run` does not keep the demo's modules in memory. `capture --help`
imports none: it lists the commands from `SUMMARIES` (a test keeps them in
step with the modules' own help).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from capture import __version__

#: Command name -> the module that registers it, in the order `--help` lists them.
COMMANDS: dict[str, str] = {
    "check": "capture.config.command",
    "cameras": "capture.cameras.command",
    "snap": "capture.cameras.command",
    "discover": "capture.discover_command",
    "run": "capture.run_command",
    "fire": "capture.run_command",
    "events": "capture.journal_command",
    "detect": "capture.detect.command",
    "models": "capture.detect.command",
    "demo": "capture.demo",
    "simulate": "capture.simulator.command",
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))
#: What `capture --help` says of each command: the `help` its module registers it with.
SUMMARIES: dict[str, str] = {
    "check": "validate a rule file and summarize it",
    "cameras": "probe every configured camera",
    "snap": "take one snapshot from a camera now",
    "discover": "ask an ONVIF camera what it offers and print its rule-file section",
    "run": "run the service (what systemd starts)",
    "fire": "inject an event as if a trigger had fired",
    "events": "list recent events and capture outcomes from the journal",
    "detect": "run the object detector on a picture and print what it finds",
    "models": "install a detection model (COCO-SSD)",
    "demo": "run simulator + service on a built-in demo configuration",
    "simulate": "run simulated IP cameras (Hikvision, Dahua, EDIMAX, XRC, MJPEG, generic)",
}


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    """The top-level parser with the subcommands of `modules` registered.

    Commands of other modules are listed by name and summary only, so the
    top-level help imports no command module (it took 285 ms with all of them).
    """
    parser = argparse.ArgumentParser(
        prog="capture",
        description="Event-triggered camera snapshots for production lines.",
    )
    parser.add_argument("--version", action="version", version=f"capture {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if module_name not in modules:
            subparsers.add_parser(name, help=SUMMARIES[name])
        elif name not in subparsers.choices:
            importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    # The command is the first word that is not a top-level option (-h, --version).
    command = next((word for word in arguments if not word.startswith("-")), None)
    module = COMMANDS.get(command or "")
    parser = build_parser((module,) if module else ())
    args = parser.parse_args(arguments)
    from capture.errors import CaptureError  # noqa: PLC0415 - `capture --help` imports no more

    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except CaptureError as exc:
        # A refusal no command turned into its own output: its message, never a traceback.
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `capture events | head` closes the pipe early; that is not an error.
        sys.stderr.close()
        return 0
