"""Dahua snapshot.cgi over real sockets: 1-based channels, sub streams and Dahua's text errors."""

from __future__ import annotations

import httpx
import pytest

from tests.simulator.helpers import PASSWORD, camera, decoded


@pytest.fixture
def dahua(start_simulator):
    sim = start_simulator(camera("dh", "dahua", channels=4))
    with httpx.Client(
        base_url=sim.url_of("dh"), auth=httpx.DigestAuth("admin", PASSWORD)
    ) as client:
        yield sim, client


def test_channels_are_one_based_and_default_to_one(dahua):
    _, client = dahua
    for query in ("", "?channel=1", "?channel=4"):
        response = client.get("/cgi-bin/snapshot.cgi" + query)
        assert response.status_code == 200
        assert decoded(response.content).size == (640, 480)


@pytest.mark.parametrize("channel", ["0", "5", "one"])
def test_a_channel_the_device_lacks_is_a_400_with_error_text(dahua, channel):
    _, client = dahua
    response = client.get("/cgi-bin/snapshot.cgi", params={"channel": channel})
    assert response.status_code == 400
    assert response.text.startswith("Error")


def test_subtype_one_is_the_smaller_sub_stream(dahua):
    _, client = dahua
    response = client.get("/cgi-bin/snapshot.cgi", params={"channel": 2, "subtype": 1})
    assert decoded(response.content).size == (320, 240)


def test_error_body_fault_answers_200_with_error(dahua):
    sim, client = dahua
    sim.faults("dh").dahua_error_body = True
    response = client.get("/cgi-bin/snapshot.cgi?channel=1")
    assert response.status_code == 200
    assert response.content == b"Error\r\n"


def test_403_fault_answers_authority_check_failure(dahua):
    sim, client = dahua
    sim.faults("dh").dahua_403 = True
    response = client.get("/cgi-bin/snapshot.cgi?channel=1")
    assert response.status_code == 403
    assert response.text.startswith("Authority:check failure.")


def test_the_401_offers_digest_in_dahua_wording(start_simulator):
    sim = start_simulator(camera("dh", "dahua"))
    response = httpx.get(sim.url_of("dh") + "/cgi-bin/snapshot.cgi?channel=1")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Digest realm="Login to ')
    assert "algorithm" not in challenge  # Dahua leaves MD5 implicit
    assert 'stale="false"' in challenge
