"""Any camera with an HTTP snapshot URL: a path template plus none/basic/digest/query auth.

For vendors without a driver of their own; docs/cameras.md has recipes for
Axis, Reolink and Foscam HD. With `auth = "query"` the credentials go into
the `user_param`/`password_param` query parameters, masked wherever the URL
is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from capture.cameras.base import CameraOptions, Frame, HttpCamera, credentials_of, frame_from_reply
from capture.cameras.exchange import Deadline
from capture.cameras.paths import check_template, fill_template
from capture.config.schema import GenericCamera as GenericConfig

if TYPE_CHECKING:
    from typing_extensions import Unpack


class GenericCamera(HttpCamera):
    """A camera reached through a configured snapshot URL."""

    vendor = "generic"
    config: GenericConfig

    def __init__(self, name: str, config: GenericConfig, **kwargs: Unpack[CameraOptions]) -> None:
        check_template(name, config.path)
        super().__init__(name, config, **kwargs)

    def _secret_params(self) -> tuple[str, ...]:
        return (self.config.password_param,)

    def _query_credentials(self) -> dict[str, str]:
        credentials = credentials_of(self.config)
        if credentials is None:
            return {}
        return {
            self.config.user_param: credentials.user,
            self.config.password_param: credentials.password,
        }

    def _fetch(self, deadline: Deadline) -> Frame:
        path = fill_template(self.config.path, self.config)
        info, reply = self.http.get_jpeg(path, None, deadline)
        return frame_from_reply(info, reply)
