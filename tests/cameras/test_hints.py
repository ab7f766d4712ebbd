"""The password hint names the key the camera's section uses."""

from __future__ import annotations

from pathlib import Path

from capture.cameras.hints import with_password_source
from capture.config.schema import DahuaCamera

MESSAGE = "authentication failed (HTTP 401); check user and password_env/password_file"


def test_each_way_of_giving_the_password_is_named_as_written() -> None:
    def hint(**password: object) -> str:
        config = DahuaCamera(vendor="dahua", host="10.0.0.2", **password)  # type: ignore[arg-type]
        return with_password_source(MESSAGE, config).rpartition("check user and ")[2]

    assert hint(password="x-secret-x") == "password (in the rule file)"
    assert hint(password_env="LINE3_PW") == "password_env (LINE3_PW)"
    assert (
        hint(password_file=Path("/run/credentials/cam")) == "password_file (/run/credentials/cam)"
    )
    assert hint() == "password (none is set)"


def test_a_message_without_the_hint_or_a_camera_without_a_config_is_left_as_it_is() -> None:
    assert with_password_source("timed out", DahuaCamera(vendor="dahua", host="h")) == "timed out"
    assert with_password_source(MESSAGE, None) == MESSAGE
