"""The event stream: a new capture reaches a connected client at once; stopping ends the stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from capture.web.live import MAX_CLIENTS
from tests.web.conftest import Running, WebFactory


def messages(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """(event name, data) pairs from a Server-Sent Events line stream."""
    kind = "message"
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: "))


def test_the_stream_delivers_a_new_capture_and_its_firing(web: Running) -> None:
    with web.client.stream("GET", "/api/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 3000"
        assert next(lines) == ": connected"
        fired = web.client.post("/api/trigger/plc", json={"result": "NG", "part": "P5"}).json()
        seen = messages(lines)
        kind, capture = next(seen)
        assert kind == "capture"
        assert capture["event_id"] == fired["event_id"]
        assert (capture["camera"], capture["rule"], capture["line"], capture["ok"]) == (
            "cam_a", "plc_check", "Line A", True,
        )  # fmt: skip
        assert web.client.get(capture["latest"]["thumb_url"]).status_code == 200
        assert web.client.get(capture["image_url"]).status_code == 200
        kinds = [next(seen)[0] for _ in range(2)]
        assert kinds == ["capture", "firing"]


def test_a_failed_capture_is_streamed_with_its_error(web: Running) -> None:
    web.sim.faults("gate").html_200 = True
    with web.client.stream("GET", "/api/stream") as stream:
        lines = stream.iter_lines()
        next(lines), next(lines)
        web.client.post("/api/snap", json={"camera": "gate_cam"})
        kind, capture = next(messages(lines))
        assert (kind, capture["camera"], capture["ok"]) == ("capture", "gate_cam", False)
        assert capture["error"]["type"]
        assert capture["latest"] is None


def test_stopping_the_service_ends_open_streams(web: Running) -> None:
    with web.client.stream("GET", "/api/stream") as stream:
        lines = stream.iter_lines()
        next(lines), next(lines)
        web.service.stop()
        assert [line for line in lines if line] == [], "the stream ends instead of hanging"


def test_clients_beyond_the_limit_are_refused_politely(web: Running) -> None:
    assert web.service.web is not None
    feed = web.service.web.api.feed
    held = [feed.subscribe() for _ in range(MAX_CLIENTS)]
    try:
        answer = web.client.get("/api/stream")
        assert answer.status_code == 503
    finally:
        for subscription in held:
            assert subscription is not None
            feed.unsubscribe(subscription)
    with (
        httpx.Client(base_url=web.base_url, trust_env=False, timeout=10) as client,
        client.stream("GET", "/api/stream") as stream,
    ):
        assert stream.status_code == 200


def test_analysed_pictures_are_announced_once_the_event_page_can_read_them(
    start_web: WebFactory,
) -> None:
    web = start_web(detection=True)
    with web.client.stream("GET", "/api/stream") as stream:
        lines = stream.iter_lines()
        next(lines), next(lines)
        fired = web.client.post("/api/trigger/plc", json={"result": "VIEW", "part": "P9"}).json()
        found = next(data for kind, data in messages(lines) if kind == "detections")
    assert found == {"event_id": fired["event_id"], "rule": "line_b_view"}
    # Committed before the message left: the page reloading on it finds the rows.
    event = web.client.get(f"/api/events/{fired['event_id']}").json()
    pictures = event["detections"]
    assert len(pictures) == 2 and all(p["status"] == "analysed" for p in pictures)


def test_a_firing_is_announced_once_the_events_page_can_read_all_its_frames(
    start_web: WebFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow SD card commits late: the events page reloading at `firing` must find it whole."""
    web = start_web()
    writer = web.service.journal
    commit = writer._commit

    def slow_commit(batch: Any) -> Any:
        time.sleep(0.05)  # an SD card flushing to disk
        return commit(batch)

    monkeypatch.setattr(writer, "_commit", slow_commit)
    with web.client.stream("GET", "/api/stream") as stream:
        lines = stream.iter_lines()
        next(lines), next(lines)
        fired = web.client.post("/api/trigger/plc", json={"result": "NG", "part": "P7"}).json()
        found = next(data for kind, data in messages(lines) if kind == "firing")
        page = web.client.get("/api/events").json()["events"]  # what the page reloads
    assert found["event_id"] == fired["event_id"]
    [event] = [e for e in page if e["event_id"] == fired["event_id"]]
    assert len(event["captures"]) == 2 and all(c["ok"] for c in event["captures"])
