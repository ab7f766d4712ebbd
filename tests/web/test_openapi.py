"""The OpenAPI description: every endpoint, payloads that match what is sent, one path per http trigger."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from capture.triggers.base import TRIGGER_KINDS
from capture.web import models
from capture.web.openapi import trigger_body_schema
from capture.web.view import HTTP_KIND
from tests.conftest import wait_for
from tests.web.conftest import TOKEN, Running, WebFactory
from tests.web.test_live import messages

OFF_LOOPBACK = 'enabled = true\nbind = "0.0.0.0"\nport = 0\ntoken_env = "WEB_TOKEN"'

ENDPOINTS = {
    ("get", "/"),
    ("get", "/events"),
    ("get", "/events/{event_id}"),
    ("get", "/docs"),
    ("get", "/login"),
    ("post", "/login"),
    ("get", "/api/cameras"),
    ("get", "/api/events"),
    ("get", "/api/events/{event_id}"),
    ("post", "/api/snap"),
    ("get", "/api/stream"),
    ("post", "/api/trigger/plc"),
    ("get", "/media/{path}"),
    ("get", "/thumbs/{path}"),
    ("get", "/latest/{camera}.jpg"),
}


def schema_of(spec: dict, ref: str) -> dict:
    return spec["components"]["schemas"][ref.rsplit("/", maxsplit=1)[-1]]


def check(model: type[BaseModel], document: object) -> None:
    """The document validates against its documented model, which forbids unknown keys."""
    model.model_validate(document)


def detections_message(web: Running) -> object:
    """The `detections` message the live feed sends (no detector needed to produce one)."""
    server = web.service.web
    assert server is not None
    subscription = server.api.feed.subscribe()
    assert subscription is not None
    try:
        server.api.feed.on_detections("ev-1", "plc_check")
        raw = subscription.queue.get(timeout=5)
    finally:
        server.api.feed.unsubscribe(subscription)
    assert raw is not None
    head, data = raw.decode().strip().split("\n")
    assert head == "event: detections"
    return json.loads(data.removeprefix("data: "))


def test_the_description_lists_every_endpoint_with_its_payloads(web: Running) -> None:
    answer = web.client.get("/openapi.json")
    assert answer.status_code == 200
    spec = answer.json()
    assert spec["openapi"].startswith("3.")
    listed = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert listed == ENDPOINTS
    statuses = {
        status
        for item in spec["paths"].values()
        for operation in item.values()
        for status in operation["responses"]
    }
    assert "422" not in statuses, "malformed parameters answer 400, as documented"
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert "400" not in spec["paths"]["/latest/{camera}.jpg"]["get"]["responses"], "free text"
    limit_answers = spec["paths"]["/api/events"]["get"]["responses"]
    assert limit_answers["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorDocument"
    )
    cameras = spec["paths"]["/api/cameras"]["get"]["responses"]["200"]["content"]
    ref = cameras["application/json"]["schema"]["$ref"]
    assert set(schema_of(spec, ref)["properties"]) == set(models.CamerasDocument.model_fields)
    snap_body = spec["paths"]["/api/snap"]["post"]["requestBody"]["content"]["application/json"]
    assert set(schema_of(spec, snap_body["schema"]["$ref"])["properties"]) == {
        "camera",
        "rule",
        "values",
    }
    limit = next(
        p for p in spec["paths"]["/api/events"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 200)
    stream = spec["paths"]["/api/stream"]["get"]["responses"]["200"]["content"]
    refs = [entry["$ref"] for entry in stream["text/event-stream"]["schema"]["oneOf"]]
    assert {ref.split("/")[-1] for ref in refs} == {
        "CaptureMessage",
        "FiringMessage",
        "DetectionsMessage",
    }
    for ref in refs:
        assert schema_of(spec, ref)["properties"]


def test_each_http_trigger_has_its_path_with_a_body_schema_from_its_fields(web: Running) -> None:
    spec = web.client.get("/openapi.json").json()
    post = spec["paths"]["/api/trigger/plc"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"result", "part"}, "the trigger's fields"
    assert body["additionalProperties"] is True
    assert post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/TriggerAccepted"
    )
    assert "/api/trigger/{name}" not in spec["paths"]

    # A trigger added by a reload of the rule file is described at once.
    path = web.service.config_path
    assert path is not None
    text = path.read_text(encoding="utf-8")
    extra = '[triggers.mes]\ntype = "http"\nfields = ["order.id", "order.qty", "station"]\n'
    path.write_text(text.replace("[triggers.plc]", extra + "\n[triggers.plc]"), encoding="utf-8")
    assert web.service.reload()
    spec = web.client.get("/openapi.json").json()
    mes = spec["paths"]["/api/trigger/mes"]["post"]["requestBody"]["content"]["application/json"]
    order = mes["schema"]["properties"]["order"]
    assert set(order["properties"]) == {"id", "qty"}
    assert "station" in mes["schema"]["properties"]


def test_a_trigger_body_schema_nests_dotted_fields() -> None:
    schema = trigger_body_schema(["a", "b.c", "b.d.e", "a.x"])
    assert set(schema["properties"]) == {"a", "b"}
    assert set(schema["properties"]["b"]["properties"]) == {"c", "d"}
    assert set(schema["properties"]["b"]["properties"]["d"]["properties"]) == {"e"}
    assert schema["properties"]["a"]["properties"] == {
        "x": schema["properties"]["a"]["properties"]["x"]
    }


def test_the_http_kind_the_web_serves_is_in_the_trigger_registry() -> None:
    assert HTTP_KIND in TRIGGER_KINDS


def test_real_answers_match_their_documented_models(web: Running) -> None:
    with web.client.stream("GET", "/api/stream") as stream:
        lines = stream.iter_lines()
        next(lines), next(lines)
        fired = web.client.post("/api/trigger/plc", json={"result": "NG", "part": "P9"})
        assert fired.status_code == 202
        check(models.TriggerAccepted, fired.json())
        seen = messages(lines)
        kinds: dict[str, list[dict]] = {}
        while "firing" not in kinds:
            kind, data = next(seen)
            kinds.setdefault(kind, []).append(data)
    for message in kinds["capture"]:
        check(models.CaptureMessage, message)
    check(models.FiringMessage, kinds["firing"][0])
    check(models.DetectionsMessage, detections_message(web))
    snapped = web.client.post("/api/snap", json={"camera": "cam_b"})
    check(models.SnapAccepted, snapped.json())
    snapped_event = f"/api/events/{snapped.json()['event_id']}"
    # A 404 until the journal has the event (it is recorded a moment after the answer).
    wait_for(lambda: web.client.get(snapped_event).json().get("captures"))
    check(models.CamerasDocument, web.client.get("/api/cameras").json())
    check(models.EventsPage, web.client.get("/api/events").json())
    check(models.EventDocument, web.client.get(f"/api/events/{fired.json()['event_id']}").json())
    check(models.ErrorDocument, web.client.get("/api/events/nope").json())
    with pytest.raises(ValueError, match="extra"):
        check(models.ErrorDocument, {"error": "x", "detail": "FastAPI's own shape"})


def test_the_api_page_needs_no_cdn_and_the_description_follows_the_access_rules(
    start_web: WebFactory,
) -> None:
    web = start_web(OFF_LOOPBACK)
    assert web.client.get("/openapi.json").status_code == 401
    page = web.client.get("/docs")
    assert page.status_code == 303, "a page: to the login form"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    page = web.client.get("/docs", headers=bearer)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "https://" not in page.text
    assert "/static/api.js" in page.text
    script = web.client.get("/static/api.js")
    assert script.status_code == 200, "static files are open: the login page needs its style"
    assert "/openapi.json" in script.text
    spec = web.client.get("/openapi.json", headers=bearer).json()
    assert TOKEN not in json.dumps(spec)
