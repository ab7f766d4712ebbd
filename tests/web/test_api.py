"""The JSON API over real HTTP against a running Service and simulated cameras."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from capture.events import CaptureResult
from capture.triggers.values import MAX_DEPTH, MAX_VALUES
from capture.web import models
from tests.conftest import wait_for
from tests.factory import ModbusDevice
from tests.web.conftest import UNREACHABLE_STORE, WEB_DEFAULT, Running, WebFactory
from tests.web.test_openapi import check


def test_cameras_are_grouped_by_line_with_latest_picture_status_and_hour_figures(
    web: Running,
) -> None:
    web.snap("cam_a")
    document = web.client.get("/api/cameras").json()
    assert document["site"] == "web-test-plant"
    assert [(line["name"], [c["name"] for c in line["cameras"]]) for line in document["lines"]] == [
        ("Line A", ["cam_a", "cam_b"]),
        ("Line B", ["cam_c", "gate_cam"]),
    ]
    cam_a, cam_b = document["lines"][0]["cameras"]
    assert cam_a["status"] == "ok"
    assert cam_a["description"] == "Press 1 outfeed"
    assert cam_a["stats"]["captures"] == 1
    assert cam_a["stats"]["success_rate"] == 1.0
    assert cam_a["stats"]["median_latency_ms"] > 0
    for figure in ("median_latency_ms", "median_trigger_to_image_ms"):  # no float noise
        assert cam_a["stats"][figure] == round(cam_a["stats"][figure], 3)
    picture = web.client.get(cam_a["latest"]["thumb_url"])
    assert picture.status_code == 200
    assert picture.content.startswith(b"\xff\xd8")
    assert cam_a["stream"] is None  # a snapshot camera holds no stream
    assert cam_b["status"] == "unknown"
    assert cam_b["latest"] is None
    assert [rule["name"] for rule in document["rules"]] == ["plc_check", "line_b_view"]
    assert document["rules"][1]["cameras"] == ["cam_c", "gate_cam"]
    assert document["upload"] is None  # [upload] is off


def test_cameras_document_carries_the_upload_backlog_while_the_store_is_away(
    start_web: WebFactory,
) -> None:
    web = start_web(WEB_DEFAULT + UNREACHABLE_STORE)
    web.snap("cam_a")
    web.snap("cam_b")

    upload = web.client.get("/api/cameras").json()["upload"]

    assert (upload["bucket"], upload["waiting"]) == ("pictures", 2)
    assert upload["waiting_bytes"] == sum(row.bytes for row in web.journal_rows() if row.ok)
    assert upload["oldest"].endswith("+01:00") or upload["oldest"].endswith("+02:00")


def test_a_stream_backed_camera_shows_its_stream_down_and_its_fallback_pictures(
    web: Running,
) -> None:
    event_id = web.snap("gate_cam")
    gate = document_camera(web, "gate_cam")
    stream = gate["stream"]
    assert stream["source"].endswith("/no-such-stream.mjpg")
    assert stream["up"] is False
    assert "404" in stream["last_error"]
    assert stream["kbit_s"] == 0.0
    [row] = [r for r in web.journal_rows(camera="gate_cam") if r.event_id == event_id]
    assert (row.ok, row.via, row.offset_ms) == (True, "fallback", 0)


def document_camera(web: Running, name: str) -> dict:
    document = web.client.get("/api/cameras").json()
    return next(c for line in document["lines"] for c in line["cameras"] if c["name"] == name)


def test_a_failing_camera_shows_error_status_with_its_last_error(web: Running) -> None:
    web.sim.faults("dahua").dahua_403 = True
    web.snap("cam_c")
    cam_c = web.client.get("/api/cameras").json()["lines"][1]["cameras"][0]
    assert cam_c["name"] == "cam_c"
    assert cam_c["status"] == "error"
    assert cam_c["last_error"]["type"]
    assert "cam_c" in cam_c["last_error"]["message"]
    assert cam_c["stats"] | {"median_latency_ms": None} == {
        "captures": 1,
        "ok": 0,
        "failed": 1,
        "success_rate": 0.0,
        "median_latency_ms": None,
        "median_trigger_to_image_ms": None,
    }
    web.sim.faults("dahua").dahua_403 = False
    web.snap("cam_c")
    cam_c = web.client.get("/api/cameras").json()["lines"][1]["cameras"][0]
    assert cam_c["status"] == "ok"
    assert cam_c["last_error"] is not None, "the last error stays visible after recovery"


def test_status_follows_the_journal_when_it_is_newer_than_the_live_feed(web: Running) -> None:
    """The engine journals a frame just before it tells the live feed: no stale badge meanwhile."""
    snapped = web.snap("cam_c")
    assert web.service.web is not None
    feed = web.service.web.api.feed
    wait_for(lambda: (last := feed.last("cam_c")) is not None and last.result.event_id == snapped)
    last = feed.last("cam_c")
    assert last is not None
    row = next(row for row in web.journal_rows(camera="cam_c") if row.event_id == snapped)
    assert last.result.event_time == row.time, "the engine hands the event's time with its result"
    # The feed still holds a failure of an earlier event, as in the moment between the
    # journal's row of the next (successful) frame and the feed's notification.
    earlier = datetime.now(UTC) - timedelta(seconds=30)
    feed.on_result(
        CaptureResult(
            event_id="earlier-0000000001",  # the time is the result's, never parsed from the id
            event_time=earlier,
            rule="snap",
            camera="cam_c",
            seq=1,
            error_type="Timeout",
            error_message="camera cam_c: no answer within 3 s",
        )
    )
    cam_c = web.client.get("/api/cameras").json()["lines"][1]["cameras"][0]
    assert cam_c["status"] == "ok"
    assert cam_c["last_error"]["type"] == "Timeout", "the older failure is still the last error"
    # A failure the feed reports for a newer event than the journal's wins.
    later = datetime.now(UTC) + timedelta(seconds=30)
    feed.on_result(
        CaptureResult(
            event_id="later-0000000002", event_time=later, rule="snap", camera="cam_c", seq=1,
            error_type="AuthFailed", error_message="camera cam_c: authentication failed",
        )
    )  # fmt: skip
    cam_c = web.client.get("/api/cameras").json()["lines"][1]["cameras"][0]
    assert cam_c["status"] == "error"
    assert cam_c["last_error"]["type"] == "AuthFailed"


def test_http_trigger_end_to_end_writes_files_and_journal_rows(web: Running) -> None:
    answer = web.client.post("/api/trigger/plc", json={"result": "NG", "part": "P-17"})
    assert answer.status_code == 202
    event_id = answer.json()["event_id"]
    assert answer.json()["trigger"] == "plc"
    rows = wait_for(lambda: len(rows := web.journal_rows(rule="plc_check")) == 2 and rows)
    assert {row.event_id for row in rows} == {event_id}
    assert all(row.ok for row in rows)
    assert dict(rows[0].values) == {"result": "NG", "part": "P-17", "client": "127.0.0.1"}
    # Pictures are filed by the event's date in [service].timezone, not the machine's.
    site_zone = ZoneInfo(web.service.rules.service.timezone)
    site_date = rows[0].time.astimezone(site_zone).date().isoformat()
    event = web.client.get(f"/api/events/{event_id}").json()
    assert event["time"][:10] == site_date, "the API shows the event in the site's time zone"
    folder = web.root / "Line A" / site_date
    assert sorted(p.name for p in folder.iterdir()) == [
        "plc_check_cam_a_P-17_1.jpg",
        "plc_check_cam_a_P-17_2.jpg",
    ]
    assert event["trigger"] == "plc"
    assert event["values"] == {"result": "NG", "part": "P-17", "client": "127.0.0.1"}
    assert [(c["camera"], c["seq"], c["ok"]) for c in event["captures"]] == [
        ("cam_a", 1, True),
        ("cam_a", 2, True),
    ]
    full = web.client.get(event["captures"][1]["image_url"])
    assert full.content == (folder / "plc_check_cam_a_P-17_2.jpg").read_bytes()


def test_http_trigger_refuses_unknown_names_and_bad_bodies_without_firing(web: Running) -> None:
    post = web.client.post
    assert post("/api/trigger/nope", json={"result": "NG"}).status_code == 404
    assert post("/api/trigger/plc", json=[1, 2]).status_code == 400
    nested: dict = {"leaf": 1}
    for level in range(MAX_DEPTH + 1):
        nested = {f"level{level}": nested}
    assert post("/api/trigger/plc", json=nested).status_code == 400
    assert (
        post("/api/trigger/plc", json={f"v{i}": i for i in range(MAX_VALUES + 1)}).status_code
        == 400
    )
    assert (
        post(
            "/api/trigger/plc", content=b"{not json", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        post(
            "/api/trigger/plc", content=b"[" * 50_000, headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    too_big = b'{"x": "' + b"a" * 70_000 + b'"}'
    assert (
        post(
            "/api/trigger/plc", content=too_big, headers={"Content-Type": "application/json"}
        ).status_code
        == 413
    )
    assert post("/api/trigger/plc", data={"result": "NG"}).status_code == 415
    for constant in (b"NaN", b"Infinity", b"-Infinity"):  # Python's json takes them: not JSON
        body = b'{"order": ' + constant + b"}"
        refused = post(
            "/api/trigger/plc", content=body, headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 400 and constant.decode() in refused.json()["error"]
    bad = post("/api/trigger/plc", json="NG")
    assert bad.status_code == 400
    assert "JSON object" in bad.json()["error"]
    assert web.service.triggers["plc"].stats().rejected >= 1
    assert web.service.journal.query() == []


def test_a_number_too_large_for_a_float_is_null_and_the_events_api_still_answers(
    web: Running,
) -> None:
    body = b'{"result": "NG", "part": "P-18", "order": 1e400}'
    posted = web.client.post(
        "/api/trigger/plc", content=body, headers={"Content-Type": "application/json"}
    )
    assert posted.status_code == 202
    wait_for(lambda: web.journal_rows(rule="plc_check"))
    answer = web.client.get("/api/events")
    assert answer.status_code == 200
    [event] = [e for e in answer.json()["events"] if e["values"].get("part") == "P-18"]
    assert event["values"]["order"] is None


def test_snap_a_rule_with_values_photographs_every_camera_of_the_rule(web: Running) -> None:
    answer = web.client.post("/api/snap", json={"rule": "line_b_view", "values": {"part": "X9"}})
    assert answer.status_code == 202
    event_id = answer.json()["event_id"]
    rows = wait_for(lambda: len(rows := web.journal_rows(rule="line_b_view")) == 2 and rows)
    assert {row.camera for row in rows} == {"cam_c", "gate_cam"}
    assert {row.event_id for row in rows} == {event_id}
    assert dict(rows[0].values) == {"part": "X9"}


def test_a_rule_button_without_the_file_names_values_says_which_are_missing(
    web: Running,
) -> None:
    # The dashboard's rule button sends no values; plc_check's file name uses {part}.
    answer = web.client.post("/api/snap", json={"rule": "plc_check"})
    assert answer.status_code == 202
    event_id = answer.json()["event_id"]
    rows = wait_for(lambda: len(rows := web.journal_rows(rule="plc_check")) == 2 and rows)
    assert [row.missing_fields for row in rows] == [("part",), ("part",)]
    event = web.client.get(f"/api/events/{event_id}").json()
    assert [capture["missing_fields"] for capture in event["captures"]] == [["part"], ["part"]]
    assert all("_unknown_" in capture["path"] for capture in event["captures"])


def test_snap_refuses_unknown_names_and_malformed_requests(web: Running) -> None:
    post = web.client.post
    assert post("/api/snap", json={"camera": "nope"}).status_code == 404
    assert post("/api/snap", json={"rule": "nope"}).status_code == 404
    assert post("/api/snap", json={"neither": 1}).status_code == 400
    assert post("/api/snap", json={"rule": "line_b_view", "values": [1]}).status_code == 400
    assert post("/api/snap", json=["cam_a"]).status_code == 400
    assert web.client.get("/api/snap").status_code == 404
    assert web.service.journal.query() == []


def test_events_are_paged_and_filtered_by_line_camera_rule_and_failure(web: Running) -> None:
    first = web.snap("cam_a")
    second = web.snap("cam_c")
    web.sim.faults("dahua").dahua_403 = True
    failed = web.snap("cam_c")
    web.sim.faults("dahua").dahua_403 = False
    fired = web.client.post("/api/trigger/plc", json={"result": "NG", "part": "P1"}).json()
    wait_for(lambda: len(web.journal_rows(rule="plc_check")) == 2)

    def ids(**params: object) -> list[str]:
        page = web.client.get("/api/events", params=params)
        assert page.status_code == 200, page.text
        return [event["event_id"] for event in page.json()["events"]]

    newest_first = [fired["event_id"], failed, second, first]
    assert ids() == newest_first
    assert ids(line="Line A") == [fired["event_id"], first]
    assert ids(line="Line B") == [failed, second]
    assert ids(camera="cam_c") == [failed, second]
    assert ids(camera="cam_c", line="Line A") == []
    assert ids(rule="plc_check") == [fired["event_id"]]
    assert ids(rule="snap", failed="1") == [failed]
    assert ids(failed="1") == [failed]
    page = web.client.get("/api/events", params={"limit": 3}).json()
    assert page["more"] is True
    assert [e["event_id"] for e in page["events"]] == newest_first[:3]
    rest = web.client.get("/api/events", params={"limit": 3, "offset": 3}).json()
    assert [e["event_id"] for e in rest["events"]] == newest_first[3:]
    assert rest["more"] is False
    failed_event = web.client.get(f"/api/events/{failed}").json()
    assert failed_event["ok"] is False
    assert failed_event["captures"][0]["image_url"] is None
    assert failed_event["captures"][0]["error"]["type"]


def test_bad_paging_parameters_and_unknown_events_are_refused(web: Running) -> None:
    assert web.client.get("/api/events", params={"limit": 0}).status_code == 400
    assert web.client.get("/api/events", params={"limit": "ten"}).status_code == 400
    assert web.client.get("/api/events", params={"offset": -1}).status_code == 400
    missing = web.client.get("/api/events/20990101T000000.000Z-000000000001")
    assert missing.status_code == 404
    assert "no event" in missing.json()["error"]
    assert web.client.get("/api/nothing").status_code == 404


def test_pages_and_static_files_are_served_with_a_strict_content_policy(web: Running) -> None:
    for path in ("/", "/events", "/events/20990101T000000.000Z-000000000001"):
        page = web.client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "https://" not in page.text, "no CDN: factories have no internet"
    script = web.client.get("/static/dashboard.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in web.client.get("/static/common.js").text
    assert web.client.get("/static/nope.js").status_code == 404
    assert web.client.get("/static/dashboard.html").status_code == 404


def test_trigger_health_shows_a_modbus_device_that_stops_answering_and_a_failed_trigger(
    start_web: WebFactory, modbus_device: ModbusDevice
) -> None:
    extra = (
        modbus_device.trigger_section("io_gate", reconnect_max_s=0.5)
        + """
[triggers.pin]
type = "gpio"
pin = 17
"""
    )
    running = start_web(extra=extra)

    def health(name: str) -> dict:
        document = running.client.get("/api/cameras").json()
        return next(trigger for trigger in document["triggers"] if trigger["name"] == name)

    modbus_device.set_bits(0, True)
    wait_for(lambda: health("io_gate")["emitted"] == 1)
    gate = health("io_gate")
    assert (gate["type"], gate["status"], gate["connected"], gate["error"]) == (
        "modbus",
        "ok",
        True,
        None,
    )
    assert gate["last_event"] is not None and gate["last_event"].endswith("+01:00")
    assert health("pin")["status"] == "failed" and "cannot start" in health("pin")["error"]
    assert health("plc") == {
        "name": "plc",
        "type": "http",
        "description": "",
        "status": "ok",
        "error": None,
        "emitted": 0,
        "rejected": 0,
        "ignored": 0,
        "connected": None,
        "last_event": None,
    }

    modbus_device.stop()
    wait_for(lambda: health("io_gate")["status"] == "waiting")
    gate = health("io_gate")
    assert gate["connected"] is False and gate["emitted"] == 1
    assert gate["error"].startswith(
        f"trigger io_gate (modbus 127.0.0.1:{modbus_device.port} unit 1)"
    )
    modbus_device.start()
    wait_for(lambda: health("io_gate")["status"] == "ok")


def test_events_show_what_detection_found_and_filter_by_class(start_web: WebFactory) -> None:
    web = start_web(detection=True)
    detection = web.service.detection
    assert detection is not None

    def ids(**params: object) -> list[str]:
        page = web.client.get("/api/events", params=params)
        assert page.status_code == 200, page.text
        return [event["event_id"] for event in page.json()["events"]]

    fired = web.client.post("/api/trigger/plc", json={"result": "VIEW", "part": "P7"})
    event_id = fired.json()["event_id"]
    wait_for(lambda: detection.stats.analysed == 2)
    web.service.journal.flush()
    plain = web.snap("cam_a")

    assert ids() == [plain, event_id]
    assert ids(**{"class": "person"}) == [event_id]
    assert ids(**{"class": "truck", "line": "Line B"}) == [event_id]
    assert ids(**{"class": "pers"}) == []  # a whole class, not a part of one
    document = web.client.get(f"/api/events/{event_id}").json()
    check(models.EventDocument, document)
    assert [(d["camera"], d["status"]) for d in document["detections"]] == [
        ("cam_c", "analysed"),
        ("gate_cam", "analysed"),
    ]
    person = document["detections"][0]["objects"][0]
    assert person["class"] == "person" and person["box"] == [0, 0, 320, 480]
    assert web.client.get(f"/api/events/{plain}").json()["detections"] == []
