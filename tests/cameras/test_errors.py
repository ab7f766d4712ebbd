"""The error hierarchy: one root, builtin-compatible leaves, kind names for the journal."""

from __future__ import annotations

import pytest

from capture.cameras.errors import (
    ERROR_TYPES,
    AuthFailed,
    CameraError,
    DeviceError,
    InvalidImage,
    LockedOut,
    Timeout,
    Unreachable,
    Unsupported,
)


@pytest.mark.parametrize(
    ("error_type", "builtin"),
    [
        (AuthFailed, PermissionError),
        (LockedOut, PermissionError),
        (Timeout, TimeoutError),
        (Unreachable, ConnectionError),
        (InvalidImage, ValueError),
        (Unsupported, NotImplementedError),
    ],
)
def test_leaves_are_also_the_matching_builtin(error_type: type[CameraError], builtin: type) -> None:
    assert issubclass(error_type, CameraError) and issubclass(error_type, builtin)


def test_every_leaf_carries_camera_status_excerpt_and_kind() -> None:
    for error_type in ERROR_TYPES:
        kwargs = {"retry_after_s": 5.0} if error_type is LockedOut else {}
        error = error_type(
            "line3_cam2", "what happened; what to do", status=401, excerpt="x", **kwargs
        )
        assert str(error) == "camera line3_cam2: what happened; what to do"
        assert (error.camera, error.status, error.excerpt) == ("line3_cam2", 401, "x")
        assert error.kind == error_type.__name__
        assert error.args == ("camera line3_cam2: what happened; what to do",)


def test_locked_out_is_an_auth_failure_with_a_retry_time() -> None:
    error = LockedOut("c", "locked", retry_after_s=60)
    assert isinstance(error, AuthFailed) and error.retry_after_s == 60


def test_device_error_is_not_mistaken_for_a_builtin() -> None:
    assert not issubclass(DeviceError, OSError | ValueError)
