"""Pictures over HTTP: no path leaves the storage root, thumbnails made once, honest caching."""

from __future__ import annotations

import http.client
import os
import shutil
from urllib.parse import quote

import pytest

from capture.web.media import safe_relative
from tests.web.conftest import Running

SECRET = b"\xff\xd8TOP-SECRET-OUTSIDE-THE-ROOT\xff\xd9"


def raw_get(web: Running, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written: httpx would normalise '..' away before sending."""
    assert web.service.web is not None
    connection = http.client.HTTPConnection("127.0.0.1", web.service.web.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def planted(web: Running) -> Running:
    """A picture outside the root, and links inside the root pointing at it and its folder."""
    web.snap("cam_a")
    outside = web.root.parent / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(SECRET)
    (web.root.parent / "secret.jpg").write_bytes(SECRET)
    os.symlink(outside / "secret.jpg", web.root / "link.jpg")
    os.symlink(outside, web.root / "linkdir")
    return web


TRAVERSALS = [
    "/media/../secret.jpg",
    "/media/%2e%2e/secret.jpg",
    "/media/%2E%2E/secret.jpg",
    "/media/..%2fsecret.jpg",
    "/media/..%2Fsecret.jpg",
    "/media/%2e%2e%2fsecret.jpg",
    "/media/latest/..%2f..%2fsecret.jpg",
    "/media/latest/%2e%2e/%2e%2e/secret.jpg",
    "/media/%252e%252e/secret.jpg",
    "/media/..%5csecret.jpg",
    "/media/%5c..%5csecret.jpg",
    "/media//etc/passwd",
    "/media/%2fetc%2fpasswd",
    "/media/%2F" + "%2F".join(["tmp"]) + "/secret.jpg",
    "/media/.%2e/secret.jpg",
    "/media/%c0%ae%c0%ae/secret.jpg",
    "/media/secret.jpg%00.jpg",
    "/media/link.jpg",
    "/media/linkdir/secret.jpg",
    "/media/journal.sqlite3",
    "/media/.capture-index.jsonl",
    "/media/rules0.toml",
    "/thumbs/../secret.jpg",
    "/thumbs/%2e%2e/secret.jpg",
    "/thumbs/link.jpg",
    "/thumbs/linkdir/secret.jpg",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_url_reaches_a_file_outside_the_root_or_a_non_picture(
    planted: Running, path: str
) -> None:
    status, body = raw_get(planted, path)
    assert status in (400, 404), (path, status)
    assert b"TOP-SECRET" not in body
    assert b"SQLite" not in body


def test_an_absolute_path_inside_the_root_is_refused_too(planted: Running) -> None:
    target = next(planted.root.glob("**/snap_*.jpg"))
    status, _ = raw_get(planted, "/media/" + quote(str(target)))
    assert status == 404


@pytest.mark.parametrize(
    "relative",
    [
        "",
        "/abs.jpg",
        "a/../b.jpg",
        "./a.jpg",
        "a//b.jpg",
        ".hidden.jpg",
        "a\\b.jpg",
        "a.txt",
        "a\x00.jpg",
    ],
)
def test_safe_relative_refuses_every_escape(relative: str) -> None:
    assert safe_relative(relative) is None


def test_safe_relative_accepts_ordinary_snapshot_names() -> None:
    assert str(safe_relative("Line 1/2024-05-01/ng_S2 #3.JPG")) == "Line 1/2024-05-01/ng_S2 #3.JPG"


def test_thumbnail_is_made_once_then_served_from_cache_and_revalidated(web: Running) -> None:
    event_id = web.snap("cam_a")
    capture = web.client.get(f"/api/events/{event_id}").json()["captures"][0]
    assert web.service.web is not None
    thumbnails = web.service.web.thumbnails
    first = web.client.get(capture["thumb_url"])
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/jpeg"
    assert len(first.content) < capture["bytes"]
    assert "immutable" in first.headers["cache-control"]
    assert first.headers["last-modified"]
    assert (thumbnails.made, thumbnails.hits) == (1, 0)
    second = web.client.get(capture["thumb_url"])
    assert second.content == first.content
    assert (thumbnails.made, thumbnails.hits) == (1, 1)
    etag = first.headers["etag"]
    revalidated = web.client.get(capture["thumb_url"], headers={"If-None-Match": etag})
    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert revalidated.headers["etag"] == etag
    assert thumbnails.made == 1
    full = web.client.get(capture["image_url"])
    assert full.headers["etag"] != etag, "picture and thumbnail must not share a validator"
    assert full.content == (web.root / capture["path"]).read_bytes()


def test_latest_pictures_are_revalidated_and_never_served_stale(web: Running) -> None:
    web.snap("cam_b")
    latest = web.client.get("/api/cameras").json()["lines"][0]["cameras"][1]["latest"]
    thumb = web.client.get(latest["thumb_url"])
    full = web.client.get(latest["image_url"])
    for answer in (thumb, full):
        assert answer.headers["cache-control"] == "private, no-cache"
    thumb_etag, full_etag = thumb.headers["etag"], full.headers["etag"]
    unchanged = {"If-None-Match": thumb_etag}
    assert web.client.get(latest["thumb_url"], headers=unchanged).status_code == 304
    unchanged = {"If-None-Match": full_etag}
    assert web.client.get("/media/latest/cam_b.jpg", headers=unchanged).status_code == 304
    web.snap("cam_b")
    for path, etag in (
        ("/media/latest/cam_b.jpg", full_etag),
        ("/thumbs/latest/cam_b.jpg", thumb_etag),
    ):
        newer = web.client.get(path, headers={"If-None-Match": etag})
        assert newer.status_code == 200, f"{path}: a replaced latest picture must not answer 304"
        assert newer.headers["etag"] != etag
    newer = web.client.get("/media/latest/cam_b.jpg", headers={"If-None-Match": full_etag})
    assert newer.content == (web.root / "latest" / "cam_b.jpg").read_bytes()
    again = web.client.get("/api/cameras").json()["lines"][0]["cameras"][1]["latest"]
    assert again["thumb_url"] != latest["thumb_url"], "the URL changes so tiles reload"


def test_a_new_picture_under_a_deleted_ones_name_gets_new_urls_and_old_ones_are_not_immutable(
    web: Running,
) -> None:
    """Retention deletes a snapshot and a later one may take its name: no browser keeps the old."""
    event_id = web.snap("cam_a")
    capture = web.client.get(f"/api/events/{event_id}").json()["captures"][0]
    old_urls = (capture["image_url"], capture["thumb_url"])
    for url in old_urls:
        assert "?v=" in url, url
        answer = web.client.get(url)
        assert answer.status_code == 200
        assert "immutable" in answer.headers["cache-control"], url
    old_etag = web.client.get(capture["image_url"]).headers["etag"]
    path = web.root / capture["path"]
    stat = path.stat()
    path.unlink()  # what retention does ...
    replacement = (web.root / "latest" / "cam_a.jpg").read_bytes() + b"\x00" * 17
    path.write_bytes(replacement)  # ... and a later picture of the same name
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    again = web.client.get(f"/api/events/{event_id}").json()["captures"][0]
    assert again["image_url"] != old_urls[0]
    assert again["thumb_url"] != old_urls[1]
    assert web.client.get(again["image_url"]).content == replacement
    assert "immutable" in web.client.get(again["thumb_url"]).headers["cache-control"]
    unversioned = capture["image_url"].split("?")[0]
    for url in (*old_urls, unversioned, unversioned.replace("/media/", "/thumbs/", 1)):
        answer = web.client.get(url, headers={"If-None-Match": old_etag})
        assert answer.status_code == 200, url
        assert answer.headers["cache-control"] == "private, no-cache", url
        assert answer.headers["etag"] != old_etag


def test_a_damaged_picture_answers_an_error_not_a_crash(web: Running) -> None:
    (web.root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    answer = web.client.get("/thumbs/broken.jpg")
    assert answer.status_code == 422
    assert web.client.get("/api/cameras").status_code == 200


def test_a_picture_deleted_meanwhile_is_404(web: Running) -> None:
    event_id = web.snap("cam_a")
    capture = web.client.get(f"/api/events/{event_id}").json()["captures"][0]
    shutil.rmtree(web.root / capture["path"].split("/")[0])
    assert web.client.get(capture["image_url"]).status_code == 404
