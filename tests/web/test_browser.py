"""The dashboard in a real headless Chromium against the running service and the simulator.

Set CAPTURE_SCREENSHOTS=docs to refresh docs/dashboard.png and docs/events.png.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.web.conftest import Running
from tests.web.webdriver import CHROMEDRIVER, CHROMIUM, Browser

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
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
    rendered = wait_for(lambda: browser.run(TILE_IMAGES_RENDERED), timeout=20)
    assert rendered == ["cam_a", "cam_b", "cam_c", "gate_cam"]
    assert browser.run(
        "return [...document.querySelectorAll('.line h2')].map(h => h.textContent)"
    ) == ["Line A", "Line B"]
    badge = "return document.querySelector(`.tile[data-camera='gate_cam'] .badge`).textContent"
    assert browser.run(badge) == "ERROR"
    assert "gate_cam" in browser.run(
        "return document.querySelector(`.tile[data-camera='gate_cam'] .err`).textContent"
    )
    wait_for(lambda: browser.run("return document.getElementById('live').textContent") == "● live")

    # A new event appears without a reload.
    browser.run("window.notReloaded = true;")
    before = browser.run(TILE_SRC, "cam_c")
    web.client.post("/api/trigger/plc", json={"result": "VIEW", "part": "P-4712"})
    wait_for(
        lambda: browser.run(TILE_SRC, "cam_c") != before and browser.run(TILE_RENDERED, "cam_c"),
        timeout=20,
    )
    assert browser.run("return window.notReloaded === true")

    # The snap button takes a new picture that replaces the tile's.
    before = browser.run(TILE_SRC, "cam_b")
    snaps_before = len(web.journal_rows(camera="cam_b", rule="snap"))
    browser.click(".tile[data-camera='cam_b'] button.snap")
    wait_for(lambda: len(web.journal_rows(camera="cam_b", rule="snap")) == snaps_before + 1)
    wait_for(
        lambda: browser.run(TILE_SRC, "cam_b") != before and browser.run(TILE_RENDERED, "cam_b"),
        timeout=20,
    )
    assert browser.run("return window.notReloaded === true")
    wait_for(lambda: browser.run(TILE_IMAGES_RENDERED))
    browser.run("document.querySelectorAll('.tile .status').forEach(s => s.textContent = '')")
    clock = browser.run("return document.getElementById('clock').textContent")
    assert clock[:5] == web.client.get("/api/cameras").json()["time"][11:16], "the site's time"
    browser.screenshot(shots / "dashboard.png")

    # The events page lists every event and filters them.
    browser.get(web.base_url + "/events")
    everything = api_ids(web, limit=20)
    wait_for(lambda: browser.run(TIMELINE_IDS) == everything, timeout=20)
    wait_for(
        lambda: browser.run(
            "return [...document.querySelectorAll('#timeline img')].every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    browser.screenshot(shots / "events.png")
    browser.run(
        "const s = document.querySelector('select[name=camera]'); s.value = 'cam_b'; s.dispatchEvent(new Event('change', {bubbles: true}));"
    )
    cam_b = api_ids(web, camera="cam_b")
    assert 0 < len(cam_b) < len(everything)
    wait_for(lambda: browser.run(TIMELINE_IDS) == cam_b, timeout=20)
    assert browser.run("return location.search") == "?camera=cam_b"
    browser.run(
        "const s = document.querySelector('select[name=camera]'); s.value = ''; s.dispatchEvent(new Event('change', {bubbles: true}));"
    )
    browser.click("input[name=failed]")
    failed = api_ids(web, failed="1")
    assert 0 < len(failed) < len(everything)
    wait_for(lambda: browser.run(TIMELINE_IDS) == failed, timeout=20)
    assert browser.run(
        "return document.querySelector('#timeline li.failed .missing').textContent"
    ).startswith("gate_cam #1")

    # An event's page shows every frame of its burst and the trigger's values.
    burst = api_ids(web, rule="plc_check")[0]
    browser.get(f"{web.base_url}/events/{burst}")
    frames = "return [...document.querySelectorAll('.frame img')].filter(i => i.complete && i.naturalWidth > 0).length"
    wait_for(lambda: browser.run(frames) == 2, timeout=20)
    values = browser.run(
        "return [...document.querySelectorAll('#values tr')].map(r => r.textContent)"
    )
    assert 'part"P-4711"' in values
