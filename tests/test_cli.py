"""The `capture` command line: fast top-level help, each command's own module."""

from __future__ import annotations

import argparse
import subprocess
import sys

from capture.cli import COMMAND_MODULES, COMMANDS, SUMMARIES, build_parser


def test_the_top_level_help_imports_no_command_module() -> None:
    probe = (
        "import sys\nfrom capture.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('capture.')), file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr.strip() == "['capture.cli']"
    for name, summary in SUMMARIES.items():
        assert f"    {name:<9} {summary[:30]}" in result.stdout


def test_the_summaries_are_the_help_each_module_registers_its_command_with() -> None:
    parser = build_parser(COMMAND_MODULES)
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    registered = {action.dest: action.help for action in subparsers._choices_actions}
    assert registered == SUMMARIES
    assert set(COMMANDS) == set(SUMMARIES)
