"""The OpenAPI description's parts our routes cannot declare: payload models, one path per http trigger.

FastAPI describes the routes; bodies we read ourselves (to answer 411, 413,
415 and 400 as docs/web.md says) and the stream's messages are added from
capture.web.models, and each running `http` trigger gets its own
`POST /api/trigger/<name>` whose body schema lists the trigger's `fields`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from capture.web import models
from capture.web.view import ServiceView, http_trigger_names

SCALAR_TYPES = ["string", "number", "integer", "boolean", "null"]
DESCRIPTION = """\
The dashboard's JSON API, the pictures and the live event stream of one
event-capture service (docs/web.md has the same in prose).

Access: on a loopback bind, reads are open and every POST needs the
token (`Authorization: Bearer <token>`, the `[web]` token of the rule file);
off loopback every request needs it. Errors answer `{"error": "..."}`.
Times are ISO 8601 with the site's UTC offset, to the millisecond.
"""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": models.ErrorDocument} for status in statuses}


def json_model(model: type, description: str) -> dict[str, Any]:
    """An OpenAPI response or body whose schema is one of capture.web.models."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def describe(base: dict[str, Any], view: ServiceView) -> dict[str, Any]:
    """The full description: FastAPI's (`base`, completed once) plus the running http triggers."""
    schema = copy.deepcopy(base)
    for name in http_trigger_names(view):
        config = view.rules.triggers[name]
        schema["paths"][f"/api/trigger/{name}"] = _trigger_path(
            name, config.description, config.fields
        )
    return schema


def with_payload_models(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds the models only referenced by hand (bodies, stream messages) to the components."""
    documented: list[type[BaseModel]] = [
        models.SnapRequest,
        models.TriggerAccepted,
        models.ErrorDocument,
        models.CaptureMessage,
        models.FiringMessage,
        models.DetectionsMessage,
    ]
    _, definitions = models_json_schema(
        [(model, "serialization") for model in documented],
        ref_template="#/components/schemas/{model}",
    )
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(definitions.get("$defs", {}))
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "The [web] token."}
    }
    _bad_parameters_are_400(schema)
    return schema


def _bad_parameters_are_400(schema: dict[str, Any]) -> None:
    """FastAPI documents its 422 validation answer; ours is 400 with an ErrorDocument."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and _can_fail(operation):
                responses.setdefault(
                    "400",
                    json_model(models.ErrorDocument, "A parameter is malformed or out of range."),
                )
    for name in ("HTTPValidationError", "ValidationError"):  # no answer uses them any more
        schema.get("components", {}).get("schemas", {}).pop(name, None)


def _can_fail(operation: dict[str, Any]) -> bool:
    """Whether a parameter can be refused: one that is not free text (a number, a flag)."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        types = {option.get("type") for option in schema.get("anyOf", [schema])}
        if types - {"string", "null"}:
            return True
    return False


def trigger_body_schema(fields: Sequence[str]) -> dict[str, Any]:
    """The JSON body of an http trigger: its `fields` (dotted ones nested), other values allowed."""
    root: dict[str, Any] = {
        "type": "object",
        "properties": {},
        "additionalProperties": True,
        "description": "The event's values: scalars, or objects of them (at most 8 levels, "
        "256 values, 4096 characters a string); `client` is set to the caller's address.",
    }
    for field in fields:
        node = root
        *parents, leaf = field.split(".")
        for part in parents:
            child = node["properties"].get(part)
            if child is None or "properties" not in child:
                child = node["properties"][part] = {"type": "object", "properties": {}}
            node = child
        node["properties"].setdefault(
            leaf, {"type": SCALAR_TYPES, "description": f"The value `{field}` of the event."}
        )
    return root


def _trigger_path(name: str, description: str, fields: Sequence[str]) -> dict[str, Any]:
    """The OpenAPI path item of POST /api/trigger/<name>."""
    errors = {
        str(status): json_model(models.ErrorDocument, text)
        for status, text in (
            (400, "The body is not a JSON object of scalars within the limits."),
            (401, "No valid token."),
            (404, "The trigger is not running."),
            (411, "No Content-Length."),
            (413, "The body is larger than 64 KiB."),
            (415, "Not Content-Type: application/json."),
            (503, "The trigger is stopping."),
        )
    }
    return {
        "post": {
            "tags": ["triggers"],
            "summary": f"Fire the http trigger {name}",
            "description": (description + "\n\n" if description else "")
            + "The posted object becomes the event's values; nested objects give dotted "
            'names (`{"part": {"id": 7}}` gives `part.id`).',
            "operationId": f"fire_trigger_{name}",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": trigger_body_schema(fields)}},
            },
            "responses": {
                "202": json_model(models.TriggerAccepted, "The event is handed to the rules."),
                **errors,
            },
        }
    }
