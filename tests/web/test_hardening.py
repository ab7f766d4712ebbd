"""Over real HTTP: DNS rebinding with a token, header injection through `?token=`, /latest/<camera>.jpg."""

from __future__ import annotations

import io
import socket

from PIL import Image

from tests.web.conftest import TOKEN, Running, WebFactory

GUARDED = 'enabled = true\nbind = "127.0.0.1"\nport = 0\ntoken_env = "WEB_TOKEN"'


def raw_get(web: Running, target: str, host: str = "127.0.0.1") -> bytes:
    """The head of the answer to a request line sent as is (no client-side normalising)."""
    port = web.service.web.port  # type: ignore[union-attr]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        connection.sendall(request.encode("utf-8"))
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer.split(b"\r\n\r\n", 1)[0]


def header(head: bytes, name: bytes) -> bytes | None:
    """A header's value in a raw answer head (names are case-insensitive)."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def test_a_rebinding_host_name_cannot_read_even_when_a_token_guards_posts(
    start_web: WebFactory,
) -> None:
    web = start_web(GUARDED)
    assert web.client.get("/api/cameras").status_code == 200  # loopback reads stay open
    foreign = {"Host": "evil.example:8080"}
    assert web.client.get("/api/cameras", headers=foreign).status_code == 401
    assert web.client.get("/media/latest/cam_a.jpg", headers=foreign).status_code == 401
    page = web.client.get("/", headers={**foreign, "Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["Location"].startswith("/login")
    bearer = {**foreign, "Authorization": f"Bearer {TOKEN}"}
    assert web.client.get("/api/cameras", headers=bearer).status_code == 200


def test_a_login_link_cannot_inject_headers_or_redirect_elsewhere(start_web: WebFactory) -> None:
    web = start_web(GUARDED)
    injected = raw_get(web, f"/%0d%0aX-Injected:%201?token={TOKEN}")
    assert b"\r\nX-Injected" not in injected
    assert injected.startswith(b"HTTP/1.1 303")
    unicode_path = raw_get(web, f"/%C3%A9v%E2%82%ACnts?token={TOKEN}")
    assert unicode_path.startswith(b"HTTP/1.1 303"), unicode_path
    assert header(unicode_path, b"Location") == b"/%C3%A9v%E2%82%ACnts"
    for target in (f"//evil.example/?token={TOKEN}", f"/%2Fevil.example?token={TOKEN}"):
        head = raw_get(web, target)
        location = header(head, b"Location")
        assert location is not None and not location.startswith(b"//"), location
        assert TOKEN.encode() not in head


def test_latest_camera_url_serves_the_newest_picture_and_revalidates(web: Running) -> None:
    assert web.client.get("/latest/cam_a.jpg").status_code == 404
    web.snap("cam_a")
    answer = web.client.get("/latest/cam_a.jpg")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "image/jpeg"
    assert answer.content == (web.root / "latest" / "cam_a.jpg").read_bytes()
    assert "no-cache" in answer.headers["Cache-Control"]
    again = web.client.get("/latest/cam_a.jpg", headers={"If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304
    for target in ("/latest/..%2Fjournal.sqlite3.jpg", "/latest/.cam_a.jpg", "/latest/%00.jpg"):
        assert not raw_get(web, target).startswith(b"HTTP/1.1 200"), target


def test_head_answers_like_get_without_a_body_and_keeps_the_connection_usable(
    web: Running,
) -> None:
    web.snap("cam_a")
    picture = (web.root / "latest" / "cam_a.jpg").read_bytes()
    for target in ("/latest/cam_a.jpg", "/media/latest/cam_a.jpg", "/api/cameras", "/"):
        get = web.client.get(target)
        head = web.client.head(target)
        assert head.status_code == get.status_code == 200, target
        assert head.content == b""
        assert head.headers["Content-Type"] == get.headers["Content-Type"]
    head = web.client.head("/latest/cam_a.jpg")
    assert int(head.headers["Content-Length"]) == len(picture)
    stream = web.client.head("/api/stream")  # answers at once instead of streaming forever
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert web.client.get("/latest/cam_a.jpg").content == picture


def test_head_needs_the_token_wherever_get_does(start_web: WebFactory) -> None:
    web = start_web(GUARDED)
    assert web.client.head("/api/cameras", headers={"Host": "evil.example"}).status_code == 401
    bearer = {"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"}
    assert web.client.head("/api/cameras", headers=bearer).status_code == 200


def test_a_snap_naming_both_a_camera_and_a_rule_is_refused_and_takes_nothing(
    web: Running,
) -> None:
    answer = web.client.post("/api/snap", json={"camera": "cam_b", "rule": "plc_check"})
    assert answer.status_code == 400
    assert "either" in answer.json()["error"]
    web.snap("cam_b")  # cam_b's queue is in order: anything queued before is journaled now
    assert [row.camera for row in web.service.journal.query()] == ["cam_b"]


def test_a_picture_claiming_huge_dimensions_gets_no_thumbnail_but_is_still_served(
    web: Running,
) -> None:
    small = io.BytesIO()
    Image.new("RGB", (16, 16)).save(small, "JPEG")
    data = bytearray(small.getvalue())
    frame = data.index(b"\xff\xc0")  # start of frame: height and width follow at +5
    data[frame + 5 : frame + 9] = (20000).to_bytes(2, "big") * 2
    (web.root / "Line A").mkdir(parents=True)
    (web.root / "Line A" / "bomb.jpg").write_bytes(bytes(data))
    thumb = web.client.get("/thumbs/Line%20A/bomb.jpg")
    assert thumb.status_code == 422
    assert web.client.get("/media/Line%20A/bomb.jpg").content == bytes(data)
