"""The driver registry stays in step with the camera config union."""

from __future__ import annotations

import typing

import pytest

from capture.cameras import CAMERA_DRIVERS, Camera, build_camera
from capture.config.schema import CameraConfig
from tests.cameras.helpers import camera_config


def _config_vendors() -> set[str]:
    union = typing.get_args(CameraConfig)[0]
    return {
        typing.get_args(model.model_fields["vendor"].annotation)[0]
        for model in typing.get_args(union)
    }


def test_every_configurable_vendor_has_exactly_one_driver() -> None:
    assert set(CAMERA_DRIVERS) == _config_vendors()
    assert all(isinstance(CAMERA_DRIVERS.load(vendor), type) for vendor in CAMERA_DRIVERS)


@pytest.mark.parametrize("vendor", sorted(_config_vendors()))
def test_build_camera_returns_a_camera_of_that_vendor(vendor: str) -> None:
    options = {"path": "/x"} if vendor in ("mjpeg", "generic") else {}
    camera = build_camera("cam1", camera_config(vendor, **options))
    try:
        assert isinstance(camera, Camera)
        assert type(camera) is CAMERA_DRIVERS.load(vendor)
        assert camera.state().vendor == vendor
    finally:
        camera.close()


def test_an_unknown_vendor_is_refused_with_the_known_ones() -> None:
    config = camera_config("edimax").model_copy(update={"vendor": "axis"})
    with pytest.raises(
        ValueError, match=r"camera cam1: unknown camera vendor 'axis' \(known: dahua, "
    ):
        build_camera("cam1", config)


@pytest.mark.parametrize("vendor", ["generic", "mjpeg"])
def test_unknown_path_template_field_is_refused_when_built(vendor: str) -> None:
    with pytest.raises(
        ValueError, match=r"camera gate: path uses \{chanel\}; known fields: \{channel\}"
    ):
        build_camera("gate", camera_config(vendor, path="/cgi?ch={chanel}"))
