"""One error root: every family the project raises on purpose is a `CaptureError`, builtin bases kept."""

from __future__ import annotations

import argparse

import pytest

from capture import cli
from capture.cameras.errors import CameraError, LockedOut, Timeout, Unreachable
from capture.cameras.jpeg import JpegError
from capture.condition import ConditionError
from capture.config.problems import ConfigError
from capture.errors import CaptureError
from capture.journal import JournalError
from capture.storage import StorageError
from capture.template import TemplateError
from capture.triggers.base import PayloadError, TriggerError
from capture.triggers.values import PayloadFormatError
from capture.web.api import ApiError
from capture.web.server import WebError
from capture.web.thumbnails import ThumbnailError

#: Each family and the builtin base callers may still catch it by.
FAMILIES: list[tuple[type[Exception], type[Exception]]] = [
    (CameraError, Exception),
    (Timeout, TimeoutError),
    (LockedOut, PermissionError),
    (Unreachable, ConnectionError),
    (JpegError, ValueError),
    (ConditionError, ValueError),
    (ConfigError, ValueError),
    (TemplateError, ValueError),
    (StorageError, OSError),
    (JournalError, Exception),
    (TriggerError, Exception),
    (PayloadError, ValueError),
    (PayloadFormatError, ValueError),
    (ApiError, Exception),
    (WebError, Exception),
    (ThumbnailError, Exception),
]


@pytest.mark.parametrize(("family", "builtin"), FAMILIES, ids=lambda c: c.__name__)
def test_every_family_has_the_one_root_and_keeps_its_builtin_base(
    family: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(family, CaptureError)
    assert issubclass(family, builtin)


def test_the_command_line_prints_an_unhandled_refusal_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(args: argparse.Namespace) -> int:
        raise StorageError("camera cam1: the disk is full; free space under /srv/captures")

    parser = cli.build_parser()
    real = parser.parse_args

    def parse(arguments: list[str]) -> argparse.Namespace:
        args = real(arguments)
        args.func = refuse
        return args

    monkeypatch.setattr(cli, "build_parser", lambda *_: parser)
    monkeypatch.setattr(parser, "parse_args", parse)
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert err == "StorageError: camera cam1: the disk is full; free space under /srv/captures\n"
