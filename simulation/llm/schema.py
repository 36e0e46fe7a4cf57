"""JSON schemas in the strict form OpenAI's structured outputs accept, kept small.

Schemas without titles and without the classes' docstrings cost fewer prompt tokens; strict mode needs every property
required and ``additionalProperties: false`` on every object.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel


@lru_cache(maxsize=256)
def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The strict schema of ``model``, built once per class (it costs milliseconds).

    Every request for that class shares the one dict, as copying it for each (a deep copy on every
    persona turn) cost more than building the rest of the request: read it, never change it.
    """
    schema = model.model_json_schema()
    # A class's docstring describes it to developers; fields' descriptions are written for the model.
    schema.pop("description", None)
    defs = schema.pop("$defs", {})
    resolved = _resolve(schema, defs)
    return _strict(resolved)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = dict(defs[ref.split("/")[-1]])
            target.pop("description", None)  # the class docstring; a field's own description follows
            extra = {k: v for k, v in node.items() if k != "$ref"}
            target.update(extra)
            return _resolve(target, defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if k not in ("title", "default")}
    if out.get("type") == "object" and "properties" in out:
        out["required"] = list(out["properties"].keys())
        out["additionalProperties"] = False
    # ``anyOf: [{type: X}, {type: null}]`` is written more compactly as ``type: [X, "null"]``.
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and all(set(o) == {"type"} for o in any_of):
        out.pop("anyOf")
        out["type"] = [o["type"] for o in any_of]
    return out
