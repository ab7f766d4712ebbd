"""The `capture` command line: one subcommand per job, each defined by its module.

Each command module exposes `register(subparsers)`, which adds its parser and
sets `func` to a callable taking the parsed arguments and returning an exit
code. Keeping them in their modules means adding a command never touches the
others, and importing the CLI stays cheap (`capture check` must start fast).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from capture import __version__

#: Modules that register subcommands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "capture.config.command",
    "capture.cameras.command",
    "capture.run_command",
    "capture.demo",
    "capture.simulator.command",
    "capture.journal_command",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="capture",
        description="Event-triggered camera snapshots for production lines.",
    )
    parser.add_argument("--version", action="version", version=f"capture {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `capture events | head` closes the pipe early; that is not an error.
        sys.stderr.close()
        return 0
