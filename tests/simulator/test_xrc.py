"""XRC/ReeCam/old-Foscam CGIs over real sockets: snapshot.cgi, sessions, request_av and videostream."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.simulator.helpers import PASSWORD, camera, decoded

CREDENTIALS = {"user": "admin", "pwd": PASSWORD}


@pytest.fixture
def xrc(start_simulator):
    sim = start_simulator(camera("x", "xrc"))
    with httpx.Client(base_url=sim.url_of("x")) as client:
        yield sim, client


def test_snapshot_with_query_credentials_names_the_file(xrc):
    _, client = xrc
    response = client.get("/snapshot.cgi", params=CREDENTIALS)
    assert response.status_code == 200
    decoded(response.content)
    assert re.fullmatch(
        r'inline; filename="snapshot_\d{14}\.jpg"', response.headers["content-disposition"]
    )


def test_snapshot_resolution_codes_and_filename(xrc):
    _, client = xrc
    response = client.get(
        "/snapshot.cgi", params={**CREDENTIALS, "resolution": 8, "filename": "door"}
    )
    assert decoded(response.content).size == (320, 240)
    assert response.headers["content-disposition"] == 'inline; filename="door.jpg"'


def test_snapshot_also_takes_basic_auth_like_old_foscam(xrc):
    _, client = xrc
    assert client.get("/snapshot.cgi", auth=("admin", PASSWORD)).status_code == 200


def test_bad_query_credentials_are_401_and_counted(xrc):
    sim, client = xrc
    assert client.get("/snapshot.cgi", params={"user": "admin", "pwd": "x"}).status_code == 401
    refused = client.get("/request_av.cgi", params={"user": "admin", "pwd": "x"})
    assert refused.status_code == 401
    assert refused.text == "var result = -1;\r\n"
    assert sim.bad_login_count("x") == 2


def test_a_session_replaces_credentials(xrc):
    _, client = xrc
    created = client.get("/create_session.cgi", params=CREDENTIALS)
    session = re.search(r"var session = (\d+);", created.text)
    assert session, created.text
    assert client.get("/snapshot.cgi", params={"session": session[1]}).status_code == 200
    assert client.get("/snapshot.cgi", params={"session": "12345"}).status_code == 401


def _stream_id(client: httpx.Client) -> str:
    answer = client.get("/request_av.cgi", params=CREDENTIALS)
    assert answer.headers["content-type"] == "text/plain"
    match = re.fullmatch(r"var result = 0;\r\nvar id = (\d+);\r\n", answer.text)
    assert match, answer.text
    return match[1]


def test_request_av_id_opens_one_videostream_once(xrc):
    _, client = xrc
    stream_id = _stream_id(client)
    with client.stream("GET", "/videostream.cgi", params={"id": stream_id, "stream": 0}) as live:
        assert live.headers["content-type"] == "multipart/x-mixed-replace; boundary=myboundary"
        data = b""
        for chunk in live.iter_raw():
            data += chunk
            if data.count(b"--myboundary") >= 2:
                break
    frame = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n--myboundary", 1)[0]
    decoded(frame)
    reused = client.get("/videostream.cgi", params={"id": stream_id, "stream": 0})
    assert reused.status_code == 200
    assert reused.text == "var result = -1;\r\n"


def test_an_unknown_stream_id_is_result_minus_one(xrc):
    _, client = xrc
    assert client.get("/videostream.cgi", params={"id": "42"}).text == "var result = -1;\r\n"


def test_too_many_viewers_is_result_minus_two(xrc):
    sim, client = xrc
    sim.faults("x").xrc_too_many_viewers = True
    answer = client.get("/request_av.cgi", params=CREDENTIALS)
    assert answer.status_code == 200
    assert answer.text == "var result = -2;\r\n"
