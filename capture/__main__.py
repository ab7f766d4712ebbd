"""Lets `python -m capture` behave exactly like the `capture` console script."""

from capture.cli import main

raise SystemExit(main())
