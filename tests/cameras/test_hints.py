"""The password hint names the key the camera's section uses, in the error itself."""

from __future__ import annotations

from pathlib import Path

import respx
from pydantic import SecretStr

from capture.cameras import build_camera
from capture.cameras.errors import AuthFailed, CameraError
from capture.cameras.hints import password_source
from capture.config.schema import DahuaCamera
from tests.cameras.helpers import camera_config


def test_each_way_of_giving_the_password_is_named_as_written() -> None:
    def hint(**password: object) -> str:
        config = DahuaCamera(vendor="dahua", host="10.0.0.2", **password)  # type: ignore[arg-type]
        return password_source(config)

    assert hint(password="x-secret-x") == "password (in the rule file)"
    assert hint(password_env="LINE3_PW") == "password_env (LINE3_PW)"
    assert (
        hint(password_file=Path("/run/credentials/cam")) == "password_file (/run/credentials/cam)"
    )
    assert hint() == "password (none is set)"


def refused(resolved: str | None = None, **password: object) -> CameraError:
    """The error of a camera whose every login the device refuses.

    `resolved`: the secret the loader read for a `password_env`/`password_file` section.
    """
    config = camera_config(
        "generic", port=8080, path="/snap.jpg", user="admin", auth="basic", **password
    )
    if resolved is not None:
        config = config.model_copy(update={"password": SecretStr(resolved)})
    camera = build_camera("line3_cam2", config)
    with respx.mock(base_url="http://127.0.0.1:8080", assert_all_called=False) as mock:
        mock.get("/snap.jpg").respond(401, headers={"WWW-Authenticate": 'Basic realm="cam"'})
        try:
            camera.snapshot()
        except CameraError as error:
            return error
        finally:
            camera.close()
    raise AssertionError("a refused login gave a picture")


def test_a_refused_login_sends_the_technician_to_the_key_the_section_uses() -> None:
    in_file = refused(password="Pw-in-File-1")
    from_env = refused("Pw-from-Env-2", password_env="LINE3_CAM2_PW")

    assert isinstance(in_file, AuthFailed) and isinstance(from_env, AuthFailed)
    assert str(in_file).endswith("check user and password (in the rule file)")
    assert str(from_env).endswith("check user and password_env (LINE3_CAM2_PW)")
    assert "Pw-in-File-1" not in str(in_file) and "Pw-from-Env-2" not in str(from_env)
