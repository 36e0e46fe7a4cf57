"""Structured requests the demo has no composer for: the JSON schema asked for, and a bland valid answer."""

from __future__ import annotations

import json
from typing import Any

from simulation.llm.base import ChatRequest


def wants_json(request: ChatRequest) -> bool:
    """Whether the request asks for JSON in its system prompt rather than through ``response_format``."""
    return any("JSON schema" in m.content for m in request.messages if m.role == "system")


def requested_schema(request: ChatRequest) -> dict[str, Any]:
    """The JSON schema the request's answer must follow (an empty object schema when it names none)."""
    fmt = request.response_format or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["schema"]
    for message in reversed(request.messages):
        marker = "JSON schema: "
        if marker in message.content:
            try:
                return json.loads(message.content.split(marker, 1)[1])
            except ValueError:
                break
    return {"type": "object", "properties": {}}


def bland_instance(schema: dict[str, Any], key: str = "") -> Any:
    """A valid (if bland) instance of a JSON schema, labelled as demo output where it is text."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {k: bland_instance(v, k) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [bland_instance(schema.get("items", {}), key)]
    if kind == "integer":
        return max(0, int(schema.get("minimum", 0)))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return f"(demo model) {key.replace('_', ' ') or 'text'}"
