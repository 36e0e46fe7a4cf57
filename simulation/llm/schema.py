"""JSON schemas in the strict form OpenAI's structured outputs accept, kept small.

Schemas without titles and without the classes' docstrings cost fewer prompt tokens; strict mode needs every property
required and ``additionalProperties: false`` on every object.
"""

from __future__ import annotations

from collections.abc import Callable
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


#: Keywords whose value is one schema (``items`` may also be a list of them, as in draft 4 to 2019-09).
_SCHEMA_KEYWORDS = frozenset({
    "items", "additionalItems", "additionalProperties", "unevaluatedItems", "unevaluatedProperties",
    "contains", "propertyNames", "not", "if", "then", "else",
})
#: Keywords whose value is a list of schemas.
_SCHEMA_LIST_KEYWORDS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
#: Keywords whose value maps names (properties, patterns, definitions) to schemas: those names are
#: the author's, so a property called "title", "default", "type" or "$ref" is not a keyword.
_SCHEMA_MAP_KEYWORDS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas",
                                  "dependencies"})
#: Keywords dropped from every schema object: they cost tokens and strict mode does not take ``default``.
_DROPPED = ("title", "default")


def _map_subschemas(node: dict[str, Any], change: Callable[[Any], Any]) -> dict[str, Any]:
    """``node`` (a schema object) with ``change`` applied to each schema directly inside it.

    Everything else is data and stays as it is: the names in ``properties``, ``required``, and the
    values of ``enum``, ``const`` or ``examples``, even where they look like schemas.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            # ``dependencies`` may map a name to a list of names: ``change`` leaves non-schemas alone.
            out[key] = {name: change(sub) for name, sub in value.items()}
        elif (key in _SCHEMA_LIST_KEYWORDS or key == "items") and isinstance(value, list):
            out[key] = [change(sub) for sub in value]
        elif key in _SCHEMA_KEYWORDS:
            out[key] = change(value)
        else:
            out[key] = value
    return out


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with each local ``$ref`` replaced by the definition it names (the ref's siblings win)."""
    if not isinstance(node, dict):
        return node  # a boolean schema
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = dict(defs[ref.split("/")[-1]])
        target.pop("description", None)  # the class docstring; a field's own description follows
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)
        return _resolve(target, defs)
    return _map_subschemas(node, lambda sub: _resolve(sub, defs))


def _strict(node: Any) -> Any:
    if not isinstance(node, dict):
        return node  # a boolean schema
    out = _map_subschemas({k: v for k, v in node.items() if k not in _DROPPED}, _strict)
    if out.get("type") == "object" and isinstance(out.get("properties"), dict):
        out["required"] = list(out["properties"].keys())
        out["additionalProperties"] = False
    # ``anyOf: [{type: X}, {type: null}]`` is written more compactly as ``type: [X, "null"]``.
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and all(isinstance(o, dict) and set(o) == {"type"} for o in any_of):
        out.pop("anyOf")
        out["type"] = [o["type"] for o in any_of]
    return out
