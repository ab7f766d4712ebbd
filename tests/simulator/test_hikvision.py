"""Hikvision ISAPI endpoints over real sockets: channels, sizes, NVR proxy path and error XML."""

from __future__ import annotations

import httpx
import pytest

from tests.simulator.helpers import PASSWORD, camera, decoded

AUTH = httpx.DigestAuth("admin", PASSWORD)


@pytest.fixture
def client():
    with httpx.Client(auth=AUTH) as instance:
        yield instance


def test_main_and_sub_stream_pictures_have_their_sizes(start_simulator, client):
    sim = start_simulator(camera("hik", "hikvision", width=800, height=600))
    base = sim.url_of("hik") + "/ISAPI/Streaming/channels/"
    main = client.get(base + "101/picture")
    assert main.headers["content-type"] == "image/jpeg"
    assert decoded(main.content).size == (800, 600)
    assert decoded(client.get(base + "102/picture").content).size == (400, 300)


def test_video_resolution_parameters_scale_the_picture(start_simulator, client):
    sim = start_simulator(camera("hik", "hikvision"))
    url = sim.url_of("hik") + "/ISAPI/Streaming/channels/101/picture"
    both = client.get(url, params={"videoResolutionWidth": 320, "videoResolutionHeight": 180})
    assert decoded(both.content).size == (320, 180)
    width_only = client.get(url, params={"videoResolutionWidth": 320})
    assert decoded(width_only.content).size == (320, 240)
    bad = client.get(url, params={"videoResolutionWidth": "huge"})
    assert bad.status_code == 400
    assert "<subStatusCode>badParameters</subStatusCode>" in bad.text


def test_nvr_channels_are_numbered_camera_then_stream(start_simulator, client):
    sim = start_simulator(camera("nvr", "hikvision", channels=4))
    base = sim.url_of("nvr") + "/ISAPI/Streaming/channels/"
    assert client.get(base + "401/picture").status_code == 200
    missing = client.get(base + "501/picture")
    assert missing.status_code == 403
    assert "<statusCode>4</statusCode>" in missing.text
    assert "<subStatusCode>invalidOperation</subStatusCode>" in missing.text
    assert "<requestURL>/ISAPI/Streaming/channels/501/picture</requestURL>" in missing.text
    assert client.get(base + "103/picture").status_code == 403


def test_proxy_only_nvr_answers_bad_xml_content_and_serves_streaming_proxy(start_simulator, client):
    sim = start_simulator(camera("nvr", "hikvision", channels=2))
    sim.faults("nvr").hikvision_nvr_proxy_only = True
    direct = client.get(sim.url_of("nvr") + "/ISAPI/Streaming/channels/201/picture")
    assert direct.status_code == 400
    assert direct.text.startswith("<?xml ")
    assert "<statusCode>6</statusCode>" in direct.text
    assert "<subStatusCode>badXmlContent</subStatusCode>" in direct.text
    proxied = client.get(
        sim.url_of("nvr") + "/ISAPI/ContentMgmt/StreamingProxy/channels/201/picture"
    )
    assert proxied.status_code == 200
    decoded(proxied.content)


def test_a_plain_camera_has_no_streaming_proxy(start_simulator, client):
    sim = start_simulator(camera("hik", "hikvision"))
    response = client.get(
        sim.url_of("hik") + "/ISAPI/ContentMgmt/StreamingProxy/channels/101/picture"
    )
    assert response.status_code == 404
    assert "Document Error: Not Found" in response.text


def test_the_401_carries_a_user_check_body_and_a_hikvision_style_challenge(start_simulator):
    sim = start_simulator(camera("hik", "hikvision"))
    response = httpx.get(sim.url_of("hik") + "/ISAPI/Streaming/channels/101/picture")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/xml"
    assert "<userCheck>" in response.text
    assert "<lockStatus>" not in response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Digest realm="DS-2CD2143G0-I", qop="auth", nonce="')
    assert ":" in challenge.split('nonce="')[1].split('"')[0]  # Hikvision's "<hex>:<time>"
    assert 'opaque=""' in challenge


def test_lockout_answers_with_lock_status_even_to_the_right_password(start_simulator):
    sim = start_simulator(camera("hik", "hikvision"))
    sim.faults("hik").lockout_after = 2
    url = sim.url_of("hik") + "/ISAPI/Streaming/channels/101/picture"
    with httpx.Client(auth=httpx.DigestAuth("admin", "guess")) as client:
        assert client.get(url).status_code == 401
        assert not sim.is_locked("hik")
        assert client.get(url).status_code == 401
    assert sim.is_locked("hik")
    locked = httpx.get(url, auth=AUTH)
    assert locked.status_code == 401
    assert "<lockStatus>lock</lockStatus>" in locked.text
    assert sim.bad_login_count("hik") == 2
    sim.reset_faults("hik")
    assert httpx.get(url, auth=AUTH).status_code == 200
