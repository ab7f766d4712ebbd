"""Vendor specifics the simulator does not play: parsing of device bodies, paths and options."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
import respx

from capture.cameras import build_camera
from capture.cameras.errors import AuthFailed, DeviceError, InvalidImage, LockedOut
from capture.cameras.hikvision import isapi_status
from capture.cameras.xrc import filename_time, js_variables
from tests.cameras.helpers import PASSWORD, camera_config, make_jpeg

BASE = "http://127.0.0.1:8080"

NEW_FIRMWARE_ERROR = b"""<?xml version="1.0" encoding="UTF-8"?>
<ResponseStatus version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">
<statusCode>3</statusCode>
<statusString>Device Error</statusString>
<subStatusCode>deviceError</subStatusCode>
</ResponseStatus>"""


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False, using="httpx") as router:
        yield router


def error_of(vendor: str, **options: object) -> Exception:
    settings: dict[str, object] = {"port": 8080, "user": "admin", "password": PASSWORD, **options}
    camera = build_camera("cam", camera_config(vendor, **settings))
    try:
        with pytest.raises(Exception) as caught:
            camera.snapshot()
    finally:
        camera.close()
    return caught.value


def test_isapi_status_is_read_in_any_namespace() -> None:
    assert isapi_status(NEW_FIRMWARE_ERROR) == ("3", "Device Error", "deviceError")
    assert isapi_status(b"<userCheck/>") is None


def test_hikvision_device_error_carries_the_isapi_codes(mock: respx.MockRouter) -> None:
    mock.get("/ISAPI/Streaming/channels/101/picture").respond(500, content=NEW_FIRMWARE_ERROR)
    error = error_of("hikvision", auth="basic")
    assert isinstance(error, DeviceError)
    assert "ISAPI statusCode 3 'Device Error', subStatusCode deviceError" in str(error)


def test_hikvision_locked_user_check_gives_the_unlock_time(mock: respx.MockRouter) -> None:
    body = b"<userCheck><statusValue>401</statusValue><lockStatus>lock</lockStatus><unlockTime>1200</unlockTime></userCheck>"
    mock.get("/ISAPI/Streaming/channels/101/picture").respond(401, content=body)
    error = error_of("hikvision", auth="basic")
    assert isinstance(error, LockedOut) and error.retry_after_s == 1200


def test_hikvision_auto_does_not_fall_back_after_an_auth_failure(mock: respx.MockRouter) -> None:
    direct = mock.get("/ISAPI/Streaming/channels/101/picture").respond(
        401, headers={"WWW-Authenticate": 'Basic realm="r"'}
    )
    proxy = mock.get(url__regex=r".*/StreamingProxy/.*").respond(200, content=make_jpeg())
    assert isinstance(error_of("hikvision", auth="basic"), AuthFailed)
    assert direct.call_count == 1 and proxy.call_count == 0


def isapi_error(code: int, text: str, sub: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        '<ResponseStatus version="1.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">\n'
        "<requestURL>/ISAPI/Streaming/channels/101/picture</requestURL>\n"
        f"<statusCode>{code}</statusCode>\n<statusString>{text}</statusString>\n"
        f"<subStatusCode>{sub}</subStatusCode>\n</ResponseStatus>\n"
    ).encode()


BAD_XML = isapi_error(6, "Invalid XML Content", "badXmlContent")
DIRECT = "/ISAPI/Streaming/channels/101/picture"
PROXY = "/ISAPI/ContentMgmt/StreamingProxy/channels/101/picture"


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        # statusCode 6 as well, but a resolution the channel cannot give: no proxy helps.
        (400, isapi_error(6, "Invalid Content", "badParameters"), "subStatusCode badParameters"),
        # PnP cameras behind some NVRs answer 403 on the direct path (camera-apis.md §2.1):
        # it may also be the user's rights, so the error names the setting, nothing is tried.
        (403, isapi_error(4, "Invalid Operation", "notSupport"), "try streaming_proxy = 'always'"),
    ],
    ids=["bad-parameters", "forbidden"],
)
def test_hikvision_errors_streaming_proxy_cannot_fix_are_reported_not_retried_on_it(
    mock: respx.MockRouter, status: int, body: bytes, said: str
) -> None:
    direct = mock.get(DIRECT).respond(status, content=body)
    proxy = mock.get(PROXY).respond(200, content=make_jpeg())
    error = error_of("hikvision", auth="basic", width=8000)
    assert isinstance(error, DeviceError)
    assert said in str(error)
    assert direct.call_count == 1 and proxy.call_count == 0


def test_hikvision_fallback_is_remembered_only_once_the_proxy_served_a_picture(
    mock: respx.MockRouter,
) -> None:
    direct = mock.get(DIRECT).respond(400, content=BAD_XML)
    proxy = mock.get(PROXY)
    proxy.side_effect = [
        httpx.Response(404, text="Not Found"),
        httpx.Response(200, content=make_jpeg()),
        httpx.Response(200, content=make_jpeg(colour=(0, 90, 0))),
    ]
    camera = build_camera(
        "cam", camera_config("hikvision", port=8080, user="admin", password=PASSWORD, auth="basic")
    )
    try:
        with pytest.raises(DeviceError) as first:
            camera.snapshot()
        # Both answers are reported, and the direct path is tried again next time.
        assert "badXmlContent" in str(first.value) and "StreamingProxy failed too" in str(
            first.value
        )
        assert "HTTP 404" in str(first.value)
        assert camera.state().note is None
        assert PROXY in camera.snapshot().source
        assert direct.call_count == 2 and proxy.call_count == 2
        assert PROXY in camera.snapshot().source  # remembered now: straight to the proxy
        assert direct.call_count == 2 and proxy.call_count == 3
        assert "StreamingProxy" in (camera.state().note or "")
    finally:
        camera.close()


def test_hikvision_proxy_refusing_the_login_is_an_auth_failure(mock: respx.MockRouter) -> None:
    mock.get(DIRECT).respond(400, content=BAD_XML)
    mock.get(PROXY).respond(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
    error = error_of("hikvision", auth="basic")
    assert isinstance(error, AuthFailed) and error.credentials_rejected


def test_dahua_zero_based_channel_subtracts_one(mock: respx.MockRouter) -> None:
    route = mock.get("/cgi-bin/snapshot.cgi").respond(200, content=make_jpeg())
    camera = build_camera(
        "cam", camera_config("dahua", port=8080, channel=3, zero_based_channel=True, auth="none")
    )
    camera.snapshot()
    camera.close()
    assert route.calls.last.request.url.params["channel"] == "2"


def test_dahua_bad_request_names_the_channel(mock: respx.MockRouter) -> None:
    mock.get("/cgi-bin/snapshot.cgi").respond(400, text="Error\r\nBad Request!\r\n")
    error = error_of("dahua", auth="digest")
    assert isinstance(error, DeviceError) and "channel" in str(error)


def test_edimax_uses_the_configured_path(mock: respx.MockRouter) -> None:
    route = mock.get("/images/snap.jpg").respond(200, content=make_jpeg())
    camera = build_camera(
        "cam", camera_config("edimax", port=8080, path="/images/snap.jpg", auth="none")
    )
    assert camera.snapshot().source == f"{BASE}/images/snap.jpg"
    camera.close()
    assert route.called


@pytest.mark.parametrize(
    ("text", "variables"),
    [
        ("var result = 0; var id = 1567918901;", {"result": "0", "id": "1567918901"}),
        ("var result=-2;\r\nvar name='cam 1';", {"result": "-2", "name": "cam 1"}),
        ("garbage", {}),
    ],
)
def test_xrc_javascript_variables_are_parsed(text: str, variables: dict[str, str]) -> None:
    assert js_variables(text) == variables


def test_xrc_file_name_time_is_device_local() -> None:
    assert filename_time("snapshot_20110708163405.jpg") == datetime(2011, 7, 8, 16, 34, 5)
    assert filename_time("snap.jpg") is None
    assert filename_time("snapshot_20119999999999.jpg") is None


def test_xrc_stream_without_id_is_a_device_error(mock: respx.MockRouter) -> None:
    mock.get("/request_av.cgi").respond(200, text="var result = -1;")
    error = error_of("xrc", mode="stream", session="12345", user=None, password=None)
    assert isinstance(error, DeviceError) and "session not open" in str(error)


def test_generic_template_fields_are_filled(mock: respx.MockRouter) -> None:
    route = mock.get(url__startswith=f"{BASE}/cgi-bin/api.cgi").respond(200, content=make_jpeg())
    config = camera_config(
        "generic",
        port=8080,
        channel=2,
        auth="query",
        user="admin",
        password=PASSWORD,
        path="/cgi-bin/api.cgi?cmd=Snap&channel={channel0}&rs={random}&snapType={stream}",
    )
    camera = build_camera("cam", config)
    first, second = camera.snapshot(), camera.snapshot()
    camera.close()
    params = [call.request.url.params for call in route.calls]
    assert params[0]["channel"] == "1" and params[0]["snapType"] == "main"
    assert params[0]["rs"] != params[1]["rs"]
    assert params[0]["password"] == PASSWORD and "password=***" in first.source
    assert second.stale  # respx served the same bytes twice


def test_mjpeg_html_page_with_200_is_an_invalid_image(mock: respx.MockRouter) -> None:
    mock.get("/mjpg/video.mjpg").respond(200, html="<html><body>Stream unavailable</body></html>")
    error = error_of("mjpeg", path="/mjpg/video.mjpg", auth="none")
    assert isinstance(error, InvalidImage)
    assert "answered HTTP 200 with an HTML page" in str(error)


def test_mjpeg_stream_of_error_parts_is_an_invalid_image_with_excerpt(
    mock: respx.MockRouter,
) -> None:
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nno signal\r\n"
    mock.get("/v.mjpg").respond(
        200, content=part * 12, headers={"Content-Type": "multipart/x-mixed-replace; boundary=b"}
    )
    error = error_of("mjpeg", path="/v.mjpg", auth="none")
    assert isinstance(error, InvalidImage)
    assert "no valid frame in the MJPEG stream" in str(error) and "no signal" in str(error)


def test_mjpeg_unauthorized_stream_is_auth_failed(mock: respx.MockRouter) -> None:
    mock.get("/v.mjpg").mock(
        return_value=httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
    )
    error = error_of("mjpeg", path="/v.mjpg", auth="basic")
    assert isinstance(error, AuthFailed) and error.credentials_rejected
