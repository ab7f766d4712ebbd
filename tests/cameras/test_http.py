"""What a camera answer becomes: a JPEG, or a typed, secret-free error a technician can act on."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator

import httpx
import pytest
import respx

from capture.cameras import build_camera
from capture.cameras.base import HttpCamera
from capture.cameras.errors import (
    AuthFailed,
    CameraError,
    DeviceError,
    InvalidImage,
    LockedOut,
    Timeout,
)
from tests.cameras.helpers import PASSWORD, camera_config, make_jpeg

BASE = "http://127.0.0.1:8080"
JPEG = make_jpeg()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False, using="httpx") as router:
        yield router


def generic(**options: object) -> HttpCamera:
    config = camera_config(
        "generic", port=8080, path="/snap.jpg", user="admin", password=PASSWORD, **options
    )
    camera = build_camera("line3_cam2", config)
    assert isinstance(camera, HttpCamera)
    return camera


def snap_error(camera: HttpCamera) -> CameraError:
    try:
        with pytest.raises(CameraError) as caught:
            camera.snapshot()
    finally:
        camera.close()
    error = caught.value
    assert PASSWORD not in str(error) and PASSWORD not in (error.excerpt or "")
    assert str(error).startswith("camera line3_cam2: ")
    return error


def test_valid_jpeg_becomes_a_snapshot_with_trailing_bytes_trimmed(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(
        200,
        content=JPEG + b"dhav\x00\x00\x00\x00",
        headers={"Content-Type": "image/jpeg", "Last-Modified": "Wed, 21 Oct 2026 07:28:00 GMT"},
    )
    camera = generic(auth="none")
    snapshot = camera.snapshot()
    camera.close()
    assert snapshot.jpeg == JPEG
    assert (snapshot.width, snapshot.height) == (64, 48)
    assert snapshot.source == f"{BASE}/snap.jpg"
    assert (
        snapshot.image_time is not None
        and snapshot.image_time.isoformat() == "2026-10-21T07:28:00+00:00"
    )
    assert snapshot.received_wall.tzinfo is not None
    assert not snapshot.stale


@pytest.mark.parametrize(
    ("body", "content_type", "what"),
    [
        (
            b"<!DOCTYPE html><html><title>Document Error: Service Unavailable</title></html>",
            "text/html",
            "an HTML page",
        ),
        (b'<?xml version="1.0"?><Error>busy</Error>', "application/xml", "an XML document"),
        (b'{"code": 500}', "application/json", "a JSON document"),
        (b"", "image/jpeg", "an empty body"),
        (b"Service not ready\r\n", "image/jpeg", "a text message"),
    ],
    ids=["html", "xml", "json", "empty", "text"],
)
def test_200_with_something_else_than_a_jpeg_is_invalid_image(
    mock: respx.MockRouter, body: bytes, content_type: str, what: str
) -> None:
    mock.get("/snap.jpg").respond(200, content=body, headers={"Content-Type": content_type})
    error = snap_error(generic(auth="none"))
    assert isinstance(error, InvalidImage)
    assert error.status == 200
    assert f"answered HTTP 200 with {what} instead of a JPEG" in str(error)
    if body.strip():
        assert error.excerpt and error.excerpt[:10] == body.decode()[:10]


def test_truncated_jpeg_is_invalid_image_without_excerpt(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(200, content=JPEG[:-100], headers={"Content-Type": "image/jpeg"})
    error = snap_error(generic(auth="none"))
    assert isinstance(error, InvalidImage)
    assert "broken JPEG" in str(error) and "truncated" in str(error)
    assert error.excerpt is None


@pytest.mark.parametrize(
    ("status", "kind", "text"),
    [
        (404, DeviceError, "not found (HTTP 404)"),
        (500, DeviceError, "device answered HTTP 500"),
        (503, DeviceError, "device answered HTTP 503"),
        (403, AuthFailed, "access denied (HTTP 403"),
    ],
)
def test_error_statuses_are_typed(
    mock: respx.MockRouter, status: int, kind: type[CameraError], text: str
) -> None:
    mock.get("/snap.jpg").respond(status, text="Nope")
    error = snap_error(generic(auth="none"))
    assert type(error) is kind
    assert error.status == status
    assert text in str(error)


def test_redirect_is_reported_with_a_redacted_location(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg", params={"password": PASSWORD}).respond(
        302, headers={"Location": f"/login.html?user=admin&password={PASSWORD}"}
    )
    error = snap_error(generic(auth="query"))
    assert isinstance(error, DeviceError)
    assert "redirected (HTTP 302) to /login.html?user=admin&password=***" in str(error)


def test_query_credentials_are_masked_in_source_and_errors(mock: respx.MockRouter) -> None:
    route = mock.get("/snap.jpg").respond(
        200, text=f"<html>bad request /snap.jpg?user=admin&password={PASSWORD}</html>"
    )
    error = snap_error(generic(auth="query"))
    assert route.calls.last.request.url.params["password"] == PASSWORD
    assert "password=***" in str(error)
    assert "***" in (error.excerpt or "")


def test_query_credentials_are_masked_in_httpx_log_lines(
    mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    mock.get("/snap.jpg").respond(200, content=JPEG)
    camera = generic(auth="query", password_param="pw")
    with caplog.at_level(logging.DEBUG):
        camera.snapshot()
    camera.close()
    assert any("pw=***" in record.getMessage() for record in caplog.records)
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)


def test_foscam_cgi_result_minus_two_is_bad_credentials(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(200, text="<CGI_Result>\n  <result>-2</result>\n</CGI_Result>")
    error = snap_error(generic(auth="query"))
    assert isinstance(error, AuthFailed) and error.credentials_rejected
    assert "CGI_Result -2" in str(error)


def test_reolink_locked_login_is_locked_out(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(
        200,
        text='[{"cmd": "Snap", "code": 1, "error": {"detail": "Login has been locked", "rspCode": -31}}]',
    )
    error = snap_error(generic(auth="query"))
    assert isinstance(error, LockedOut)


def test_locked_account_page_is_locked_out(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(403, html="<html>Account locked: too many failed logins.</html>")
    error = snap_error(generic(auth="basic"))
    assert isinstance(error, LockedOut)
    assert error.status == 403


def test_401_without_configured_credentials_says_what_to_set(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(
        401, headers={"WWW-Authenticate": 'Digest realm="DS-2CD2143G0-I", nonce="n", qop="auth"'}
    )
    config = camera_config("generic", port=8080, path="/snap.jpg")
    error = snap_error(build_camera("line3_cam2", config))  # type: ignore[arg-type]
    assert isinstance(error, AuthFailed) and not error.credentials_rejected
    assert "requires authentication (HTTP 401, digest realm 'DS-2CD2143G0-I')" in str(error)
    assert "set user and password_env" in str(error)


def test_rejected_credentials_message_names_realm_and_what_to_check(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(
        401, headers={"WWW-Authenticate": 'Digest realm="DS-2CD2143G0-I", nonce="n", qop="auth"'}
    )
    error = snap_error(generic(auth="digest"))
    assert isinstance(error, AuthFailed) and error.credentials_rejected
    assert str(error) == (
        "camera line3_cam2: authentication failed (HTTP 401, digest realm 'DS-2CD2143G0-I'); "
        "check user and password (in the rule file)"  # the key this section gives it with
    )


def test_basic_configured_against_a_digest_only_camera_says_so(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(401, headers={"WWW-Authenticate": 'Digest realm="r", nonce="n"'})
    error = snap_error(generic(auth="basic"))
    assert isinstance(error, AuthFailed)
    assert "expects digest realm 'r', not basic: set auth = 'auto'" in str(error)


def test_cookies_a_camera_sets_are_never_sent_back(mock: respx.MockRouter) -> None:
    route = mock.get("/snap.jpg").respond(
        200,
        content=JPEG,
        headers={"Content-Type": "image/jpeg", "Set-Cookie": "session=abc; Path=/"},
    )
    camera = generic(auth="none")
    try:
        camera.snapshot()
        camera.snapshot()
    finally:
        camera.close()
    assert route.call_count == 2
    assert all("cookie" not in call.request.headers for call in route.calls)
    assert not camera.http.client.cookies


def test_oversized_answer_is_refused(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(200, content=b"\xff\xd8" + b"\x00" * (2 * 1024 * 1024))
    error = snap_error(generic(auth="none", max_image_mb=1))
    assert isinstance(error, InvalidImage)
    assert "answer larger than 1 MB" in str(error)
    assert "max_image_mb" in str(error)


def pool_context(camera: HttpCamera) -> ssl.SSLContext:
    return camera.http.client._transport._strict._pool._ssl_context  # type: ignore[attr-defined]


def test_https_verification_is_on_by_default_and_can_be_relaxed(tmp_path: object) -> None:
    strict = build_camera("a", camera_config("edimax", scheme="https"))
    relaxed = build_camera("b", camera_config("edimax", scheme="https", verify=False))
    try:
        assert pool_context(strict).verify_mode.name == "CERT_REQUIRED"
        assert pool_context(relaxed).verify_mode.name == "CERT_NONE"
    finally:
        strict.close()
        relaxed.close()


# ------------------------------------------------------------------ the deadline and retries


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


DIGEST = {"WWW-Authenticate": 'Digest realm="cam", qop="auth", nonce="n1", algorithm=MD5'}


def timed_generic(clock: FakeClock, **options: object) -> HttpCamera:
    from capture.cameras.generic import GenericCamera  # noqa: PLC0415

    config = camera_config(
        "generic", port=8080, path="/snap.jpg", user="admin", password=PASSWORD, **options
    )
    return GenericCamera("line3_cam2", config, clock=clock)


def test_the_401_retry_gets_only_what_is_left_of_the_deadline(mock: respx.MockRouter) -> None:
    clock = FakeClock()
    read_timeouts: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        read_timeouts.append(request.extensions["timeout"]["read"])
        if "authorization" not in request.headers:
            clock.now += 0.8  # the challenge came slowly
            return httpx.Response(401, headers=DIGEST)
        return httpx.Response(200, content=JPEG)

    mock.get("/snap.jpg").mock(side_effect=answer)
    camera = timed_generic(clock, auth="digest", timeout_s=1, deadline_s=1.2)
    try:
        camera.snapshot()
    finally:
        camera.close()
    assert read_timeouts[0] == pytest.approx(1.0)  # timeout_s: less than the deadline
    assert read_timeouts[1] == pytest.approx(0.4)  # 1.2 s deadline - 0.8 s spent


def test_a_retry_is_not_sent_once_the_deadline_is_spent(mock: respx.MockRouter) -> None:
    clock = FakeClock()

    def challenge(request: httpx.Request) -> httpx.Response:
        clock.now += 1.5
        return httpx.Response(401, headers=DIGEST)

    route = mock.get("/snap.jpg").mock(side_effect=challenge)
    error = snap_error(timed_generic(clock, auth="digest", timeout_s=1, deadline_s=1.2))
    assert isinstance(error, Timeout)
    assert "deadline_s = 1.2 s" in str(error) and "handshake included" in str(error)
    assert route.call_count == 1  # the login was never sent: no time left for it


def test_the_403_retry_is_bounded_by_the_deadline_too(mock: respx.MockRouter) -> None:
    clock = FakeClock()
    answers = iter(
        [
            httpx.Response(401, headers=DIGEST),
            httpx.Response(200, content=JPEG),
            httpx.Response(403, text="nonce reused"),  # a Dahua NVR refusing the cached nonce
            httpx.Response(401, headers=DIGEST),
            httpx.Response(200, content=JPEG),
        ]
    )
    read_timeouts: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        read_timeouts.append(request.extensions["timeout"]["read"])
        response = next(answers)
        if response.status_code == 403:
            clock.now += 0.5
        return response

    mock.get("/snap.jpg").mock(side_effect=answer)
    camera = timed_generic(clock, auth="digest", timeout_s=5, deadline_s=2)
    try:
        camera.snapshot()  # learns the challenge
        camera.snapshot()  # pre-emptive header refused with 403, then a fresh handshake
    finally:
        camera.close()
    assert read_timeouts[2] == pytest.approx(2)
    assert read_timeouts[3:] == [pytest.approx(1.5)] * 2  # 2 s deadline - 0.5 s spent
