"""Authentication over real sockets: each scheme accepts good credentials and rejects bad ones."""

from __future__ import annotations

import httpx
import pytest

from tests.simulator.helpers import PASSWORD, camera, decoded, digest_authorization, raw_get

HIK_PATH = "/ISAPI/Streaming/channels/101/picture"


def _challenge(client: httpx.Client | None, url: str) -> str:
    response = client.get(url) if client else httpx.get(url)
    assert response.status_code == 401
    return response.headers["www-authenticate"]


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
def test_digest_accepts_the_right_password_for_each_algorithm(start_simulator, algorithm):
    sim = start_simulator(camera("hik", "hikvision", digest_algorithms=(algorithm,)))
    with httpx.Client(auth=httpx.DigestAuth("admin", PASSWORD)) as client:
        for _ in range(3):  # the later requests reuse the nonce with a growing nc
            response = client.get(sim.url_of("hik") + HIK_PATH)
            assert response.status_code == 200
            decoded(response.content)
    assert sim.bad_login_count("hik") == 0


def test_digest_rejects_a_wrong_password_and_counts_it(start_simulator):
    sim = start_simulator(camera("hik", "hikvision"))
    with httpx.Client(auth=httpx.DigestAuth("admin", "wrong")) as client:
        response = client.get(sim.url_of("hik") + HIK_PATH)
    assert response.status_code == 401
    assert "<statusString>Unauthorized</statusString>" in response.text
    assert sim.bad_login_count("hik") == 1


def test_rfc2069_digest_without_qop_works_with_httpx(start_simulator):
    sim = start_simulator(camera("dh", "dahua", digest_qop=None))
    with httpx.Client() as client:
        assert "qop" not in _challenge(client, sim.url_of("dh") + "/cgi-bin/snapshot.cgi")
        response = client.get(
            sim.url_of("dh") + "/cgi-bin/snapshot.cgi", auth=httpx.DigestAuth("admin", PASSWORD)
        )
    assert response.status_code == 200


def test_several_algorithms_give_one_challenge_each_with_its_own_nonce(start_simulator):
    sim = start_simulator(camera("hik", "hikvision", digest_algorithms=("SHA-256", "MD5")))
    response = httpx.get(sim.url_of("hik") + HIK_PATH)
    challenges = response.headers.get_list("www-authenticate")
    assert [c.split("algorithm=")[1].split(",")[0] for c in challenges] == ["SHA-256", "MD5"]
    assert len({c.split('nonce="')[1].split('"')[0] for c in challenges}) == 2
    # The SHA-256 nonce answered with MD5 is refused: nonce and algorithm belong together.
    target = sim.url_of("hik") + HIK_PATH
    forged = digest_authorization(challenges[0], HIK_PATH, algorithm="MD5")
    assert httpx.get(target, headers={"Authorization": forged}).status_code == 401
    good = digest_authorization(challenges[1], HIK_PATH)
    assert httpx.get(target, headers={"Authorization": good}).status_code == 200


def test_a_replayed_nc_is_refused(start_simulator):
    sim = start_simulator(camera("hik", "hikvision"))
    url = sim.url_of("hik") + HIK_PATH
    with httpx.Client() as client:
        challenge = _challenge(client, url)
        first = digest_authorization(challenge, HIK_PATH, nc=1)
        assert client.get(url, headers={"Authorization": first}).status_code == 200
        assert client.get(url, headers={"Authorization": first}).status_code == 401
        again = digest_authorization(challenge, HIK_PATH, nc=1)
        assert client.get(url, headers={"Authorization": again}).status_code == 401
        later = digest_authorization(challenge, HIK_PATH, nc=2)
        assert client.get(url, headers={"Authorization": later}).status_code == 200
    assert sim.bad_login_count("hik") == 2


def test_an_expired_nonce_gets_stale_true_and_is_not_a_bad_login(start_simulator):
    sim = start_simulator(camera("hik", "hikvision", nonce_ttl_s=0.0))
    url = sim.url_of("hik") + HIK_PATH
    with httpx.Client() as client:
        challenge = _challenge(client, url)
        assert 'stale="FALSE"' in challenge
        response = client.get(
            url, headers={"Authorization": digest_authorization(challenge, HIK_PATH)}
        )
    assert response.status_code == 401
    assert 'stale="TRUE"' in response.headers["www-authenticate"]
    assert sim.bad_login_count("hik") == 0


def test_an_unknown_nonce_is_stale_with_dahua_wording(start_simulator):
    sim = start_simulator(camera("dh", "dahua"))
    url = sim.url_of("dh") + "/cgi-bin/snapshot.cgi"
    challenge = _challenge(None, url).replace('nonce="', 'nonce="0')
    response = httpx.get(
        url, headers={"Authorization": digest_authorization(challenge, "/cgi-bin/snapshot.cgi")}
    )
    assert response.status_code == 401
    assert 'stale="true"' in response.headers["www-authenticate"]
    assert 'realm="Login to ' in response.headers["www-authenticate"]


def test_digest_uri_must_be_the_request_target(start_simulator):
    sim = start_simulator(camera("hik", "hikvision"))
    url = sim.url_of("hik") + HIK_PATH
    challenge = _challenge(None, url)
    wrong_uri = digest_authorization(
        challenge, HIK_PATH, uri="/ISAPI/Streaming/channels/102/picture"
    )
    assert httpx.get(url, headers={"Authorization": wrong_uri}).status_code == 400


def test_basic_sent_to_a_digest_camera_is_a_failed_login(start_simulator):
    sim = start_simulator(camera("hik", "hikvision"))
    response = httpx.get(sim.url_of("hik") + HIK_PATH, auth=("admin", PASSWORD))
    assert response.status_code == 401
    assert sim.bad_login_count("hik") == 1


def test_basic_accepts_good_and_rejects_bad_credentials(start_simulator):
    sim = start_simulator(camera("ed", "edimax"))
    url = sim.url_of("ed") + "/snapshot.jpg"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith('Basic realm="')
    assert httpx.get(url, auth=("admin", "nope")).status_code == 401
    assert httpx.get(url, auth=("root", PASSWORD)).status_code == 401
    assert httpx.get(url, auth=("admin", PASSWORD)).status_code == 200
    assert sim.bad_login_count("ed") == 2


def test_query_credentials_for_generic_cameras(start_simulator):
    sim = start_simulator(camera("g", "generic", auth="query"))
    url = sim.url_of("g") + "/snap.jpg"
    assert httpx.get(url, params={"user": "admin", "password": PASSWORD}).status_code == 200
    assert httpx.get(url, params={"user": "admin", "password": "x"}).status_code == 401
    assert httpx.get(url).status_code == 401
    assert sim.bad_login_count("g") == 1


def test_no_auth_camera_serves_anyone(start_simulator):
    sim = start_simulator(camera("g", "generic"))
    decoded(httpx.get(sim.url_of("g") + "/snap.jpg").content)


def test_a_garbled_basic_header_is_refused(start_simulator):
    sim = start_simulator(camera("ed", "edimax"))
    answer = raw_get(sim.port_of("ed"), "/snapshot.jpg", "Authorization: Basic !!!\r\n")
    assert answer.startswith(b"HTTP/1.1 401 ")
