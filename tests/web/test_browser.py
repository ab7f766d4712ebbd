"""The dashboard in a real headless Chromium against the running service and the simulator.

Set CAPTURE_SCREENSHOTS=docs to refresh docs/dashboard.png, docs/events.png and docs/api.png.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import wait_for
from tests.web.conftest import UNREACHABLE_STORE, WEB_DEFAULT, Running, WebFactory
from tests.web.webdriver import CHROMEDRIVER, CHROMIUM, Browser

if TYPE_CHECKING:
    from capture.detect.worker import DetectionWorker

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists())
        and os.environ.get("CAPTURE_REQUIRE_TOOLS") != "1",  # ./dev test: fail, not skip
        reason="needs Debian's chromium and chromium-driver (./dev test installs them)",
    ),
]

TILE_IMAGES_RENDERED = """
const tiles = [...document.querySelectorAll('.tile')];
return tiles.length > 0 && tiles.every(t => {
  const img = t.querySelector('.shot img');
  return img && !img.hidden && img.complete && img.naturalWidth > 0;
}) ? tiles.map(t => t.dataset.camera) : null;
"""
TILE_SRC = "return document.querySelector(`.tile[data-camera='${arguments[0]}'] .shot img`).getAttribute('src');"
TILE_RENDERED = "const i = document.querySelector(`.tile[data-camera='${arguments[0]}'] .shot img`); return i.complete && i.naturalWidth > 0;"
TIMELINE_IDS = (
    "return [...document.querySelectorAll('#timeline li[data-event]')].map(li => li.dataset.event);"
)
RECORD_STATUS = """
const status = document.querySelector(`.tile[data-camera='${arguments[0]}'] .status`);
window.statuses = [];
new MutationObserver(() => window.statuses.push(status.textContent))
  .observe(status, {childList: true, characterData: true, subtree: true});
"""
SNAP_DONE = (
    "const t = document.querySelector(`.tile[data-camera='${arguments[0]}']`);"
    "return !t.querySelector('button.snap').disabled && window.statuses.includes('done');"
)
VIEWER = """
const dialog = document.getElementById('viewer'), img = document.getElementById('viewer-image');
return dialog.open && img.complete && img.naturalWidth > 0
  ? [img.getAttribute('src'), img.naturalWidth, document.getElementById('viewer-caption').textContent]
  : null;
"""
SELECT_CAMERA = (
    "const s = document.querySelector('select[name=camera]'); s.value = arguments[0];"
    "s.dispatchEvent(new Event('change', {bubbles: true}));"
)
HOLD_RESPONSES = """
// Hold back the answers to requests whose URL contains arguments[0] (method arguments[1])
// until window.release(); window.settled counts held answers the page has finished with.
const [pattern, method] = arguments;
const original = window.fetch;
window.held = [];
window.settled = 0;
window.fetch = async (url, options = {}) => {
  const response = await original(url, options);
  if (!String(url).includes(pattern) || (options.method || "GET") !== method) return response;
  await new Promise((release) => window.held.push(release));
  const json = response.json.bind(response);
  response.json = async () => {
    try { return await json(); } finally { setTimeout(() => { window.settled += 1; }, 0); }
  };
  return response;
};
window.release = () => { window.fetch = original; window.held.splice(0).forEach((go) => go()); };
"""
WAIT_S = 60
"""Generous: two shared cores may be busy with other work while Chromium renders."""


def seconds_apart(clock: str, iso: str) -> float:
    """How far a page's HH:MM:SS is from an ISO time's wall clock, across midnight too."""
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    moment = datetime.fromisoformat(iso)
    difference = abs(
        hours * 3600
        + minutes * 60
        + seconds
        - (moment.hour * 3600 + moment.minute * 60 + moment.second)
    )
    return min(difference, 86400 - difference)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    instance = Browser(tmp_path, width=1600, height=1280)
    yield instance
    instance.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = os.environ.get("CAPTURE_SCREENSHOTS")
    return Path(target) if target else tmp_path


def api_ids(web: Running, **params: object) -> list[str]:
    return [e["event_id"] for e in web.client.get("/api/events", params=params).json()["events"]]


def test_dashboard_shows_live_pictures_snaps_and_the_events_page_filters(
    web: Running, browser: Browser, shots: Path
) -> None:
    for camera in ("cam_a", "cam_b", "cam_c", "gate_cam"):
        web.snap(camera)
    web.client.post("/api/trigger/plc", json={"result": "NG", "part": "P-4711"})
    web.sim.faults("gate").html_200 = True  # a camera failing now shows its error
    web.snap("gate_cam")

    browser.get(web.base_url + "/")
    rendered = wait_for(lambda: browser.run(TILE_IMAGES_RENDERED), timeout=WAIT_S)
    assert rendered == ["cam_a", "cam_b", "cam_c", "gate_cam"]
    assert browser.run(
        "return [...document.querySelectorAll('.line h2')].map(h => h.textContent)"
    ) == ["Line A", "Line B"]
    badge = "return document.querySelector(`.tile[data-camera='gate_cam'] .badge`).textContent"
    assert browser.run(badge) == "ERROR"
    assert "gate_cam" in browser.run(
        "return document.querySelector(`.tile[data-camera='gate_cam'] .err`).textContent"
    )
    wait_for(
        lambda: browser.run("return document.getElementById('live').textContent") == "● live",
        timeout=WAIT_S,
    )
    # Each trigger's health: the http trigger has fired once and has no connection to lose.
    trigger_row = "return [...document.querySelectorAll(`#triggers tr[data-trigger='plc'] td`)].map(td => td.textContent)"
    assert browser.run(trigger_row)[:4] == ["plc", "http", "OK", "1 fired"]

    # A click on a tile opens its full picture.
    browser.click(".tile[data-camera='cam_a'] a.shot")
    source, width, caption = wait_for(lambda: browser.run(VIEWER), timeout=WAIT_S)
    latest = web.client.get("/api/cameras").json()["lines"][0]["cameras"][0]["latest"]
    assert source == latest["image_url"]
    assert width == 640, "the full picture, not its 480-pixel thumbnail"
    assert caption.startswith("cam_a")
    full = web.client.get(source)
    assert full.headers["content-type"] == "image/jpeg"
    assert full.content == (web.root / "latest" / "cam_a.jpg").read_bytes()
    assert (
        browser.run(
            "return document.querySelector(`.tile[data-camera='cam_a'] a.shot`).getAttribute('href')"
        )
        == source
    )
    browser.click("#viewer-close")
    wait_for(lambda: not browser.run("return document.getElementById('viewer').open"))

    # A new event appears without a reload.
    browser.run("window.notReloaded = true;")
    before = browser.run(TILE_SRC, "cam_c")
    web.client.post("/api/trigger/plc", json={"result": "VIEW", "part": "P-4712"})
    wait_for(
        lambda: browser.run(TILE_SRC, "cam_c") != before and browser.run(TILE_RENDERED, "cam_c"),
        timeout=WAIT_S,
    )
    assert browser.run("return window.notReloaded === true")

    # The snap button takes a new picture that replaces the tile's, and says so, even
    # when the picture's stream message arrives before the answer to the button's POST.
    before = browser.run(TILE_SRC, "cam_b")
    snaps_before = len(web.journal_rows(camera="cam_b", rule="snap"))
    browser.run(RECORD_STATUS, "cam_b")
    browser.run(HOLD_RESPONSES, "/api/snap", "POST")
    browser.click(".tile[data-camera='cam_b'] button.snap")
    wait_for(lambda: browser.run("return window.held.length") == 1, timeout=WAIT_S)
    wait_for(
        lambda: len(web.journal_rows(camera="cam_b", rule="snap")) == snaps_before + 1,
        timeout=WAIT_S,
    )
    wait_for(
        lambda: browser.run(TILE_SRC, "cam_b") != before and browser.run(TILE_RENDERED, "cam_b"),
        timeout=WAIT_S,
    )
    assert browser.run(
        "return document.querySelector(`.tile[data-camera='cam_b'] button.snap`).disabled"
    )
    browser.run("window.release()")
    # "done" once its picture arrived, whichever came first: the POST's answer or the picture.
    wait_for(lambda: browser.run(SNAP_DONE, "cam_b"), timeout=WAIT_S)

    # A rule's button fires it: a new event on every camera of the rule.
    events_before = api_ids(web, rule="line_b_view")
    browser.click("button.snap-rule[data-rule='line_b_view']")
    fired = wait_for(
        lambda: [i for i in api_ids(web, rule="line_b_view") if i not in events_before],
        timeout=WAIT_S,
    )
    assert len(fired) == 1
    event = web.client.get(f"/api/events/{fired[0]}").json()
    assert event["trigger"] == "dashboard"
    wait_for(
        lambda: len(web.client.get(f"/api/events/{fired[0]}").json()["captures"]) == 2,
        timeout=WAIT_S,
    )
    assert browser.run("return document.getElementById('notice').textContent") == ""

    # Without a configured token the page's session dies with the service process; a
    # refused button renews it from the page and goes through (a bare POST cannot).
    browser.delete_cookies()
    rule_button = "return document.querySelector(`button.snap-rule[data-rule='line_b_view']`)"
    wait_for(lambda: not browser.run(rule_button + ".disabled"), timeout=WAIT_S)
    browser.click("button.snap-rule[data-rule='line_b_view']")
    wait_for(
        lambda: len(api_ids(web, rule="line_b_view")) == len(events_before) + 2, timeout=WAIT_S
    )
    assert browser.run("return document.getElementById('notice').textContent") == ""
    assert browser.run("return window.notReloaded === true")

    wait_for(lambda: browser.run(TILE_IMAGES_RENDERED), timeout=WAIT_S)
    browser.run("document.querySelectorAll('.tile .status').forEach(s => s.textContent = '')")
    clock = browser.run("return document.getElementById('clock').textContent")
    site_time = web.client.get("/api/cameras").json()["time"]
    assert seconds_apart(clock, site_time) < 60, f"the site's time: {clock} vs {site_time}"
    browser.screenshot(shots / "dashboard.png")

    # The events page lists every event and filters them.
    browser.get(web.base_url + "/events")
    everything = api_ids(web, limit=20)
    wait_for(lambda: browser.run(TIMELINE_IDS) == everything, timeout=WAIT_S)
    wait_for(
        lambda: browser.run(
            "return [...document.querySelectorAll('#timeline img')].every(i => i.complete && i.naturalWidth > 0)"
        ),
        timeout=WAIT_S,
    )
    browser.screenshot(shots / "events.png")
    browser.run(SELECT_CAMERA, "cam_b")
    cam_b = api_ids(web, camera="cam_b")
    assert 0 < len(cam_b) < len(everything)
    wait_for(lambda: browser.run(TIMELINE_IDS) == cam_b, timeout=WAIT_S)
    assert browser.run("return location.search") == "?camera=cam_b"
    # An older answer arriving after a newer one must not replace it on screen.
    cam_c = api_ids(web, camera="cam_c")
    assert cam_c != everything
    browser.run(HOLD_RESPONSES, "camera=cam_c", "GET")
    browser.run(SELECT_CAMERA, "cam_c")
    wait_for(lambda: browser.run("return window.held.length") == 1, timeout=WAIT_S)
    browser.run(SELECT_CAMERA, "")
    wait_for(lambda: browser.run(TIMELINE_IDS) == everything, timeout=WAIT_S)
    browser.run("window.release()")
    wait_for(lambda: browser.run("return window.settled") == 1, timeout=WAIT_S)
    assert browser.run(TIMELINE_IDS) == everything
    assert browser.run("return location.search") == ""
    browser.click("input[name=failed]")
    failed = api_ids(web, failed="1")
    assert 0 < len(failed) < len(everything)
    wait_for(lambda: browser.run(TIMELINE_IDS) == failed, timeout=WAIT_S)
    assert browser.run("return location.search") == "?failed=1"
    assert browser.run(
        "return document.querySelector('#timeline li.failed .missing').textContent"
    ).startswith("gate_cam #1")

    # An event's page shows every frame of its burst and the trigger's values.
    burst = api_ids(web, rule="plc_check")[0]
    browser.get(f"{web.base_url}/events/{burst}")
    frames = "return [...document.querySelectorAll('.frame img')].filter(i => i.complete && i.naturalWidth > 0).length"
    wait_for(lambda: browser.run(frames) == 2, timeout=WAIT_S)
    values = browser.run(
        "return [...document.querySelectorAll('#values tr')].map(r => r.textContent)"
    )
    assert 'part"P-4711"' in values

    # A rule's button sends no values: the page says which the file name lacked.
    answer = web.client.post("/api/snap", json={"rule": "plc_check"})
    assert answer.status_code == 202
    event_id = answer.json()["event_id"]
    wait_for(
        lambda: len(web.client.get(f"/api/events/{event_id}").json().get("captures", [])) == 2,
        timeout=WAIT_S,
    )
    browser.get(f"{web.base_url}/events/{event_id}")
    notes = "return [...document.querySelectorAll('.frame p.err')].map(p => p.textContent)"
    expected = 'not in the event: part (written as "unknown" in the file name)'
    wait_for(lambda: browser.run(notes) == [expected, expected], timeout=WAIT_S)


BOXES = """
return [...document.querySelectorAll('.frame')].map(frame => [
  [...frame.querySelectorAll('.shot .box-label')].map(label => label.textContent),
  (frame.querySelector('p.objects') || {}).textContent,
]);
"""


def test_event_page_draws_the_boxes_and_the_events_page_filters_by_class(
    start_web: WebFactory, browser: Browser
) -> None:
    web = start_web(detection=True)
    detection = web.service.detection
    assert detection is not None
    fired = web.client.post("/api/trigger/plc", json={"result": "VIEW", "part": "P8"})
    event_id = fired.json()["event_id"]
    wait_for(lambda: detection.stats.analysed == 2, timeout=WAIT_S)
    web.service.journal.flush()
    plain = web.snap("cam_a")

    # What the API says was found, as the page must draw it (the simulator's colours set the scores).
    found = web.client.get(f"/api/events/{event_id}").json()["detections"]
    expected = []
    for picture in found:
        labels = [f"{o['class']} {o['score']:.2f}" for o in picture["objects"]]
        expected.append([labels, f"objects: {', '.join(labels)}"])
    assert len(expected) == 2 and all(labels for labels, _ in expected)
    browser.get(f"{web.base_url}/events/{event_id}")
    wait_for(lambda: browser.run(BOXES) == expected, timeout=WAIT_S)
    left = "return getComputedStyle(document.querySelector('.shot .box')).width"
    assert browser.run(left) != "0px"

    browser.get(f"{web.base_url}/events?class=person")
    wait_for(lambda: browser.run(TIMELINE_IDS) == [event_id], timeout=WAIT_S)
    browser.get(f"{web.base_url}/events")
    wait_for(lambda: browser.run(TIMELINE_IDS) == [plain, event_id], timeout=WAIT_S)


NOT_ANALYSED = [[[], None], [[], None]]


@contextmanager
def event_page_while_detection_is_held(
    web: Running, browser: Browser, part: str
) -> Iterator[DetectionWorker]:
    """A firing's event page open in the browser while its detection waits at a gate.

    The gate opens when the block ends; the page shows the pictures, not analysed yet.
    """
    detection = web.service.detection
    assert detection is not None
    from tests.detect.models import GatedDetector  # noqa: PLC0415 - onnx, for these tests only

    held = GatedDetector(detection._detector, timeout_s=WAIT_S)
    detection._detector = held
    try:
        fired = web.client.post("/api/trigger/plc", json={"result": "VIEW", "part": part})
        event_id = fired.json()["event_id"]
        wait_for(
            lambda: len(web.client.get(f"/api/events/{event_id}").json().get("captures", [])) == 2,
            timeout=WAIT_S,
        )
        browser.get(f"{web.base_url}/events/{event_id}")
        wait_for(lambda: browser.run(BOXES) == NOT_ANALYSED, timeout=WAIT_S)
        yield detection
    finally:
        held.gate.set()
    wait_for(lambda: detection.stats.analysed == 2, timeout=WAIT_S)


def test_an_open_event_page_draws_the_boxes_when_detection_finishes(
    start_web: WebFactory, browser: Browser
) -> None:
    web = start_web(detection=True)
    with event_page_while_detection_is_held(web, browser, "P9"):
        pass
    wait_for(lambda: all(labels for labels, _ in browser.run(BOXES)), timeout=WAIT_S)


def test_an_open_event_page_catches_up_on_what_it_missed_while_its_stream_was_down(
    start_web: WebFactory, browser: Browser
) -> None:
    """A dropped stream (a slow client, a restart) reloads the page when it reopens."""
    web = start_web(detection=True)
    server = web.service.web
    assert server is not None
    feed = server.api.feed
    with event_page_while_detection_is_held(web, browser, "P10"):
        wait_for(lambda: feed.watched, timeout=WAIT_S)
        feed.on_detections = lambda *_: None  # type: ignore[method-assign]  # lost with the stream
    web.service.journal.flush()
    assert browser.run(BOXES) == NOT_ANALYSED  # nothing told the page
    with feed._lock:
        dropped = list(feed._clients)
    for client in dropped:  # as a client too slow for the stream is dropped
        feed.unsubscribe(client)
        feed._end(client)
    wait_for(lambda: all(labels for labels, _ in browser.run(BOXES)), timeout=WAIT_S)


def test_a_page_whose_stream_is_refused_opens_a_new_one(
    start_web: WebFactory, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 (too many tabs, a proxy while the service restarts): browsers give up on an
    error answer for good, so the page must open a stream again by itself."""
    web = start_web()
    server = web.service.web
    assert server is not None
    feed = server.api.feed
    refused: list[bool] = []
    subscribe = feed.subscribe

    def refuse_the_first(loop: Any = None) -> Any:
        if not refused:
            refused.append(True)
            return None  # answered 503, as with MAX_CLIENTS connected
        return subscribe(loop)

    monkeypatch.setattr(feed, "subscribe", refuse_the_first)
    browser.get(web.base_url + "/")
    live = "return document.getElementById('live').textContent"
    wait_for(lambda: refused, timeout=WAIT_S)
    wait_for(lambda: browser.run(live) == "● live", timeout=WAIT_S)
    assert feed.watched


CALL_FROM_DESCRIPTION = """
// As an integrator's script would: read the description, build a body from the
// trigger's documented fields, post it to the path the description names.
window.called = null;
(async () => {
  const spec = await (await fetch("/openapi.json")).json();
  const [path] = Object.keys(spec.paths).filter((p) => p.startsWith("/api/trigger/"));
  const schema = spec.paths[path].post.requestBody.content["application/json"].schema;
  const body = {};
  for (const name of Object.keys(schema.properties)) body[name] = name === "result" ? "NG" : "from-openapi";
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  window.called = [path, response.status, await response.json()];
})();
"""


def test_the_api_page_describes_the_endpoints_and_a_script_calls_one_from_the_description(
    web: Running, browser: Browser, shots: Path
) -> None:
    browser.get(web.base_url + "/docs")
    wait_for(lambda: browser.run("return document.body.dataset.loaded === 'true'"), timeout=WAIT_S)
    headings = browser.run(
        "return [...document.querySelectorAll('.operation h2')].map(h => h.textContent)"
    )
    assert {"GET /api/cameras", "POST /api/snap", "POST /api/trigger/plc"} <= set(headings)
    fields = browser.run(
        "return [...document.querySelectorAll('#fire_trigger_plc code.field')].map(c => c.textContent)"
    )
    assert {"result", "part"} <= set(fields), "the trigger's fields are on the page"
    browser.run(
        "document.getElementById('fire_trigger_plc').scrollIntoView(); window.scrollBy(0, -70);"
    )
    browser.screenshot(shots / "api.png")

    browser.run(CALL_FROM_DESCRIPTION)
    path, status, answer = wait_for(lambda: browser.run("return window.called"), timeout=WAIT_S)
    assert (path, status, answer["trigger"]) == ("/api/trigger/plc", 202, "plc")
    rows = wait_for(lambda: len(rows := web.journal_rows(rule="plc_check")) == 2 and rows)
    assert {row.event_id for row in rows} == {answer["event_id"]}
    assert dict(rows[0].values) == {"result": "NG", "part": "from-openapi", "client": "127.0.0.1"}


def test_the_dashboard_shows_the_upload_backlog(start_web: WebFactory, browser: Browser) -> None:
    web = start_web(WEB_DEFAULT + UNREACHABLE_STORE)
    web.snap("cam_a")
    browser.get(web.base_url + "/")
    pill = "const p = document.getElementById('upload'); return p.hidden ? null : p.textContent;"

    text = wait_for(lambda: browser.run(pill), timeout=WAIT_S)

    assert str(text).startswith("⇪ 1 to upload (")
