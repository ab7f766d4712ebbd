"""Access control: loopback reads open, POSTs always behind a token, everything behind it off loopback."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr

from capture.config.schema import WebConfig
from capture.web.auth import COOKIE_NAME, AccessPolicy
from tests.web.conftest import TOKEN, Running, WebFactory

LOOPBACK_WITH_TOKEN = 'enabled = true\nbind = "127.0.0.1"\nport = 0\ntoken_env = "WEB_TOKEN"'
OFF_LOOPBACK = 'enabled = true\nbind = "0.0.0.0"\nport = 0\ntoken_env = "WEB_TOKEN"'


def policy(bind: str, token: str | None) -> AccessPolicy:
    return AccessPolicy(WebConfig(bind=bind, token=SecretStr(token) if token else None, port=0))


def test_loopback_without_token_reads_are_open_but_posts_need_the_pages_session() -> None:
    unconfigured = policy("127.0.0.1", None)
    assert unconfigured.allows("GET", None, None)
    assert unconfigured.allows("HEAD", None, None)
    assert not unconfigured.allows("POST", None, None)
    assert not unconfigured.allows("POST", "Bearer ", None), "no empty token"
    assert not unconfigured.allows("POST", "Bearer guess", None)
    assert not unconfigured.allows("POST", None, f"{COOKIE_NAME}=forged")
    assert unconfigured.pages_open_sessions
    assert unconfigured.allows("POST", None, unconfigured.session_cookie().split(";")[0])
    other_process = policy("127.0.0.1", None)
    assert not other_process.allows("POST", None, unconfigured.session_cookie().split(";")[0]), (
        "each process makes its own secret: a restart ends the sessions"
    )


def test_with_a_token_or_off_loopback_pages_open_no_session_and_the_token_is_needed() -> None:
    guarded = policy("127.0.0.1", TOKEN)
    assert guarded.allows("GET", None, None)
    assert not guarded.allows("POST", None, None)
    assert not guarded.allows("POST", f"Bearer {TOKEN}x", None)
    assert guarded.allows("POST", f"Bearer {TOKEN}", None)
    assert guarded.allows("POST", f"bearer  {TOKEN} ", None)
    exposed = policy("0.0.0.0", TOKEN)
    assert not exposed.allows("GET", None, None)
    assert not exposed.allows("GET", f"Basic {TOKEN}", None)
    assert exposed.allows("GET", f"Bearer {TOKEN}", None)
    assert not guarded.pages_open_sessions
    assert not exposed.pages_open_sessions


def test_the_session_cookie_is_derived_from_the_token_and_never_equals_it() -> None:
    guarded = policy("0.0.0.0", TOKEN)
    cookie = guarded.session_cookie()
    assert TOKEN not in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    value = cookie.split(";")[0]
    assert guarded.allows("GET", None, value)
    assert not policy("0.0.0.0", TOKEN + "2").allows("GET", None, value)
    assert not guarded.allows("GET", None, f"{COOKIE_NAME}=forged")
    assert not guarded.allows("GET", None, 'broken="cookie')


def test_without_a_token_only_loopback_host_names_are_served() -> None:
    open_policy = policy("127.0.0.1", None)
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "localhost"):
        assert open_policy.host_allowed(host), host
    for host in ("evil.example:8080", "10.0.0.5", None, "127.0.0.1.evil.example"):
        assert not open_policy.host_allowed(host), host
    guarded = policy("127.0.0.1", TOKEN)
    assert not guarded.allows("GET", None, None, local_host=guarded.host_allowed("pi.lan:80"))
    assert guarded.allows("GET", f"Bearer {TOKEN}", None, local_host=False)
    assert policy("0.0.0.0", TOKEN).host_allowed("pi.factory.lan:8080")


def test_a_rebinding_host_name_is_refused_when_no_token_protects_the_api(web: Running) -> None:
    answer = web.client.post(
        "/api/snap", json={"camera": "cam_a"}, headers={"Host": "evil.example"}
    )
    assert answer.status_code == 421
    assert web.service.journal.query() == []


def test_without_a_token_a_bare_post_is_refused_with_advice_and_the_page_lets_a_browser_snap(
    start_web: WebFactory,
) -> None:
    web = start_web()
    with httpx.Client(base_url=web.base_url, trust_env=False, timeout=10) as curl:
        for path, body in (
            ("/api/snap", {"camera": "cam_a"}),
            ("/api/trigger/plc", {"result": "NG"}),
        ):
            refused = curl.post(path, json=body)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Bearer")
            advice = refused.json()["error"]
            assert "[web]" in advice and "token_env" in advice, advice
        assert curl.get("/api/cameras").status_code == 200, "reads stay open on loopback"
        assert "set-cookie" not in curl.get("/api/cameras").headers, "only pages log a browser in"
        assert web.service.journal.query() == []

        page = curl.get("/")
        assert page.status_code == 200
        set_cookie = page.headers["set-cookie"]
        assert set_cookie.startswith(f"{COOKIE_NAME}=")
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
        # A valid session is kept, its 30 days renewed from now (a wall screen never logs out).
        assert curl.get("/events").headers["set-cookie"] == set_cookie
        login = curl.get("/login", params={"next": "/events"})
        assert (login.status_code, login.headers["location"]) == (303, "/events"), (
            "no token to type in: the page itself logs in"
        )
        assert curl.post("/api/snap", json={"camera": "cam_a"}).status_code == 202
        fired = curl.post("/api/trigger/plc", json={"result": "OK", "part": "1"})
        assert fired.status_code == 202

    other = start_web()  # another process, with a secret of its own
    with httpx.Client(base_url=other.base_url, trust_env=False, timeout=10) as stale:
        session = {"Cookie": set_cookie.split(";")[0]}
        assert stale.post("/api/snap", json={"camera": "cam_a"}, headers=session).status_code == 401
    assert other.service.journal.query() == []


def test_with_a_token_configured_pages_open_no_session(start_web: WebFactory) -> None:
    web = start_web(LOOPBACK_WITH_TOKEN)
    with httpx.Client(base_url=web.base_url, trust_env=False, timeout=10) as browser:
        page = browser.get("/")
        assert page.status_code == 200
        assert "set-cookie" not in page.headers
        refused = browser.post("/api/snap", json={"camera": "cam_a"})
        assert refused.status_code == 401
        assert "log in" in refused.json()["error"]
    assert web.service.journal.query() == []


def test_with_a_token_on_loopback_reads_are_open_and_every_post_needs_the_token(
    start_web: WebFactory,
) -> None:
    web = start_web(LOOPBACK_WITH_TOKEN)
    assert web.client.get("/api/cameras").status_code == 200
    refused = web.client.post("/api/snap", json={"camera": "cam_a"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    wrong = {"Authorization": "Bearer not-the-token"}
    assert web.client.post("/api/snap", json={"camera": "cam_a"}, headers=wrong).status_code == 401
    assert web.client.post("/api/trigger/plc", json={"result": "NG"}).status_code == 401
    assert web.service.journal.query() == []
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert web.client.post("/api/snap", json={"camera": "cam_a"}, headers=right).status_code == 202
    fired = web.client.post("/api/trigger/plc", json={"result": "NG", "part": "1"}, headers=right)
    assert fired.status_code == 202


def test_off_loopback_every_endpoint_needs_the_token(start_web: WebFactory) -> None:
    web = start_web(OFF_LOOPBACK)
    for path in ("/api/cameras", "/api/events", "/api/stream", "/media/latest/cam_a.jpg",
                 "/thumbs/latest/cam_a.jpg", "/api/events/x"):  # fmt: skip
        assert web.client.get(path).status_code == 401, path
        assert web.client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    page = web.client.get("/events")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fevents"
    assert web.client.get("/login").status_code == 200
    assert web.client.get("/static/app.css").status_code == 200, "the login page needs its style"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert web.client.get("/api/cameras", headers=bearer).status_code == 200


def test_a_browser_logs_in_once_with_the_token_in_the_url_or_the_form(
    start_web: WebFactory,
) -> None:
    web = start_web(OFF_LOOPBACK)
    answer = web.client.get("/events", params={"token": TOKEN, "camera": "cam_a"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/events?camera=cam_a", "the token leaves the address bar"
    set_cookie = answer.headers["set-cookie"]
    assert TOKEN not in set_cookie
    assert "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie
    cameras = web.client.get("/api/cameras")
    assert cameras.status_code == 200, "the cookie now opens the API"
    # The poll every dashboard page makes renews the session: 30 days from the last use.
    assert cameras.headers["set-cookie"] == set_cookie
    assert "set-cookie" not in web.client.get("/api/events").headers
    assert web.client.get("/").status_code == 200

    with httpx.Client(base_url=web.base_url, trust_env=False) as other:
        refused = other.post("/login", data={"token": "guess", "next": "/events"})
        assert refused.status_code == 401
        assert "not valid" in refused.text
        assert other.get("/api/cameras").status_code == 401
        accepted = other.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
        assert accepted.status_code == 303
        assert accepted.headers["location"] == "/", "no open redirect"
        # Browsers drop tabs and line breaks from a URL: `/\t/evil.example` is `//evil...`.
        for sneaky in ("/\t/evil.example", "/\n/evil.example", "/ /evil.example"):
            again = other.post("/login", data={"token": TOKEN, "next": sneaky})
            assert (again.status_code, again.headers["location"]) == (303, "/"), sneaky
        shown = other.get("/login", params={"next": "/\t/evil.example"})
        assert "evil.example" not in shown.text
        assert other.get("/api/cameras").status_code == 200
        out = other.post("/login", data={"logout": "1"})
        assert out.status_code == 303
        assert other.get("/api/cameras").status_code == 401


def test_a_wrong_token_in_the_url_shows_the_login_page(start_web: WebFactory) -> None:
    web = start_web(OFF_LOOPBACK)
    answer = web.client.get("/", params={"token": "guess"})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "guess" not in answer.text


def test_too_many_wrong_tokens_make_an_address_wait_but_a_logged_in_browser_carries_on(
    start_web: WebFactory,
) -> None:
    web = start_web(OFF_LOOPBACK)
    assert web.client.post("/login", data={"token": TOKEN}).status_code == 303  # logged in
    assert web.client.post("/api/snap", json={"camera": "cam_a"}).status_code != 401
    with httpx.Client(base_url=web.base_url, trust_env=False) as guesser:
        assert guesser.post("/api/snap", json={"camera": "cam_a"}).status_code == 401
        for n in range(web.service.web.throttle.limit):
            assert guesser.post("/login", data={"token": f"guess{n}"}).status_code == 401
        waiting = guesser.post("/login", data={"token": TOKEN})  # even the right one
        assert waiting.status_code == 429
        assert 1 <= int(waiting.headers["retry-after"]) <= 60
        assert TOKEN not in waiting.text
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert guesser.get("/api/cameras", headers=bearer).status_code == 429
        assert guesser.get("/", params={"token": TOKEN}).status_code == 429
        assert guesser.get("/api/cameras").status_code == 401  # no attempt: the usual answer
    assert web.client.get("/api/cameras").status_code == 200, "the session cookie still works"


def test_a_form_post_cannot_snap_even_with_the_session_cookie(start_web: WebFactory) -> None:
    """Cross-site forms can only send form encodings; the API wants JSON (and SameSite=Strict)."""
    web = start_web(OFF_LOOPBACK)
    web.client.get("/", params={"token": TOKEN})
    answer = web.client.post("/api/snap", data={"camera": "cam_a"})
    assert answer.status_code == 415
    assert web.client.post("/api/snap", json={"camera": "cam_a"}).status_code == 202


def test_the_token_appears_in_no_page_log_line_or_error(
    start_web: WebFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    web = start_web(OFF_LOOPBACK)
    bodies = [
        web.client.get("/", params={"token": TOKEN}).text,
        web.client.get("/").text,
        web.client.get("/login").text,
        web.client.get("/api/cameras").text,
        web.client.post("/login", data={"token": TOKEN + "x"}).text,
        web.client.get("/nothing", params={"token": TOKEN + "x"}).text,
        web.client.post(
            "/api/trigger/plc", json={"result": 1}, headers={"Authorization": f"Bearer {TOKEN}x"}
        ).text,
    ]
    with httpx.Client(base_url=web.base_url, trust_env=False) as raw:
        bodies.append(raw.get("/media/latest/cam_a.jpg", params={"token": TOKEN}).text)
    web.service.stop()
    assert all(TOKEN not in body for body in bodies)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("capture"))
    assert "web request method=GET path=/ status=303" in ours, "requests are logged"
    assert TOKEN not in ours
    assert "token=" not in ours.replace("token=required", "")
