"""`CaptureError`: the one root of every error the project raises on purpose.

Each family keeps its own module and its builtin base (a `Timeout` is still a
`TimeoutError`, a `ConfigError` a `ValueError`, a `StorageError` an
`OSError`), so callers that catch builtins keep working; the root lets the
command line, the service's top level and integrators tell "this project
refused, and its message says what to do" from a bug, with one `except`.
"""

from __future__ import annotations


class CaptureError(Exception):
    """Something the project refused or could not do, with a message meant for a person."""
