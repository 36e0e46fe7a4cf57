"""Turning conversations into data: model-based extraction and rule-based reduction of the log.

Researchers want tables, not transcripts. ``ResultsExtractor`` asks the model to fill a schema
(a pydantic class, a list of field names or a JSON schema) from what a persona lived through or
what a world said, and validates the answer like every structured call. ``ResultsReducer`` counts
and tabulates the event log with plain rules, no model calls, so its numbers are exact.
"""

from __future__ import annotations

import asyncio
import io
import json
import keyword
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from defusedcsv import csv
from pydantic import BaseModel, ConfigDict, Field, create_model

from simulation.agent import TinyPerson
from simulation.disclaimer import disclaimer as disclaimer_line
from simulation.events import Event, EventKind
from simulation.llm.base import Attribution, ChatRequest, LanguageModel, Message
from simulation.llm.errors import NOT_IN_SHAPE, BudgetExceededError, LLMError, StructuredOutputError
from simulation.prompts import render_episode
from simulation.untrusted import quote
from simulation.world import TinyWorld

__all__ = [
    "Extraction",
    "ExtractionError",
    "SchemaError",
    "ResultsExtractor",
    "ResultsReducer",
    "model_from_fields",
    "model_from_json_schema",
    "to_csv",
    "to_json",
]

T = TypeVar("T", bound=BaseModel)
SchemaSpec = type[BaseModel] | list[str] | tuple[str, ...] | dict[str, Any]

#: Most recent lines of a conversation shown to the model; enough for a long session.
MAX_LINES = 400
#: Objects and arrays nested deeper than this in an extraction schema are refused: no record a
#: conversation yields is that deep, and building the model would exhaust the stack long before.
MAX_SCHEMA_DEPTH = 16


class ExtractionError(LLMError):
    """The schema cannot be used, or nothing could be extracted."""


class SchemaError(ExtractionError):
    """The schema itself is wrong (repeated fields, a malformed JSON schema): fixing it, not
    trying again, helps."""


# -- schemas ----------------------------------------------------------------------------------


def model_from_fields(names: Iterable[str], model_name: str = "Extracted") -> type[BaseModel]:
    """A model with one text field per name, null when the conversation does not say."""
    names = [n.strip() for n in names]
    if not names or any(not n for n in names):
        raise SchemaError("give at least one non-empty field name")
    seen: set[str] = set()
    for name in names:
        if name.casefold() in seen:  # "stance" and "Stance" would be two columns of one question
            raise SchemaError(f"the field {name!r} is named more than once")
        seen.add(name.casefold())
    return _create(model_name, {n: (str | None, {"default": None}) for n in names})


_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}
_EXAMPLE = '{"type": "object", "properties": {"stance": {"type": "string"}}}'


def model_from_json_schema(schema: Mapping[str, Any], model_name: str = "Extracted") -> type[BaseModel]:
    """A pydantic model for a JSON schema object: scalar types, enums, arrays, nested objects, null.

    Anything else (a list, a property that is not an object, an unknown type) is a ``SchemaError``
    naming the property concerned, so whoever wrote the file can correct it.
    """
    if not isinstance(schema, Mapping):
        raise SchemaError(f"a JSON schema for extraction must be a JSON object such as {_EXAMPLE}, "
                          f"not {_json_kind(schema)}")
    if schema.get("type", "object") != "object" or not isinstance(schema.get("properties"), Mapping):
        raise SchemaError(f"a JSON schema for extraction must be an object with 'properties', such as {_EXAMPLE}")
    if not schema["properties"]:
        raise SchemaError("the JSON schema has no properties to extract")
    return _object_model(schema, model_name, "", 0)


def _object_model(schema: Mapping[str, Any], name: str, path: str, depth: int) -> type[BaseModel]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        raise SchemaError(f"{path}: nested objects need 'properties' (free-form objects cannot be validated)")
    required = schema.get("required", list(properties))
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SchemaError(f"{path or 'the schema'}: 'required' must be a list of property names")
    fields: dict[str, tuple[Any, dict[str, Any]]] = {}
    for key, sub in properties.items():
        where = f"{path}.{key}" if path else key
        if not isinstance(key, str) or not key.strip():
            raise SchemaError(f"{path or 'the schema'}: a property needs a name")
        kind = _python_type(sub, f"{name}_{key}", where, depth + 1)
        description = sub.get("description")
        if description is not None and not isinstance(description, str):
            raise SchemaError(f"{where}: 'description' must be text")
        options: dict[str, Any] = {"description": description}
        if key not in required:
            kind, options["default"] = kind | None, None
        fields[key] = (kind, options)
    return _create(name, fields)


def _python_type(node: Any, name: str, path: str, depth: int) -> Any:
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaError(f"{path}: the schema nests objects and arrays more than {MAX_SCHEMA_DEPTH} levels deep; "
                          "a record to extract is flatter than that")
    if not isinstance(node, Mapping):
        raise SchemaError(f"{path}: a property's schema must be an object, such as {{\"type\": \"string\"}}")
    if "enum" in node:
        values = node["enum"]
        if not isinstance(values, list) or not values or not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise SchemaError(f"{path}: 'enum' must be a list of values (text, numbers, true or false)")
        return Literal[tuple(values)]  # type: ignore[valid-type]
    kind = node.get("type", "string")
    nullable = False
    if isinstance(kind, list):
        nullable = "null" in kind
        kind = next((k for k in kind if k != "null"), "string")
    if isinstance(kind, str) and kind in _JSON_TYPES:
        result = _JSON_TYPES[kind]
    elif kind == "array":
        result = list[_python_type(node.get("items", {"type": "string"}), name, f"{path}[]", depth + 1)]  # type: ignore[misc]
    elif kind == "object":
        result = _object_model(node, name, path, depth)
    else:
        shown = repr(kind) if isinstance(kind, str) else json.dumps(kind)
        raise SchemaError(f"{path}: unsupported JSON schema type {shown}; 'type' is one of string, integer, "
                          "number, boolean, array or object")
    return result | None if nullable else result


def _json_kind(value: Any) -> str:
    """How a JSON value is called in a message: "a list", "a number"."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number" if isinstance(value, (int, float)) else "text"


def _create(model_name: str, fields: dict[str, tuple[Any, dict[str, Any]]]) -> type[BaseModel]:
    """Fields whose names are not Python identifiers ("favourite colour"), or would hide a model's
    own attributes ("json", "copy"), keep them as aliases."""
    named: dict[str, tuple[Any, Any]] = {}
    for i, (key, (kind, options)) in enumerate(fields.items()):
        if key.isidentifier() and not keyword.iskeyword(key) and not key.startswith(("_", "model_")) \
                and not hasattr(BaseModel, key):
            named[key] = (kind, Field(**options))
        else:
            attribute = f"field_{i}"
            while attribute in fields or attribute in named:  # a property may itself be called field_0
                attribute += "_"
            named[attribute] = (kind, Field(alias=key, **options))
    return create_model(model_name, __config__=ConfigDict(populate_by_name=True), **named)  # type: ignore[call-overload]


def _as_model(schema: SchemaSpec) -> type[BaseModel]:
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema
    if isinstance(schema, (list, tuple)):
        return model_from_fields(schema)
    if isinstance(schema, Mapping):
        return model_from_json_schema(schema)
    raise SchemaError(f"schema must be a pydantic class, a list of field names or a JSON schema, not {type(schema).__name__}")


# -- results ----------------------------------------------------------------------------------


@dataclass
class Extraction(Generic[T]):
    """Validated objects by subject (a persona's name, or the world's name for one object)."""

    schema: type[T]
    records: dict[str, T]
    per_agent: bool
    model_name: str
    disclaimer: str = ""
    #: Subjects whose extraction failed, with why (per-agent runs go on without them).
    failed: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.disclaimer:
            self.disclaimer = disclaimer_line(self.model_name)

    @property
    def value(self) -> T:
        """The one extracted object (of a single-object extraction, or of a one-persona run)."""
        if len(self.records) != 1:
            raise ExtractionError(f"this extraction has {len(self.records)} objects; read .records instead")
        return next(iter(self.records.values()))

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows (nested fields as ``a.b``), with the subject first."""
        column = "persona" if self.per_agent else "subject"
        return [{column: subject, **_flat(obj.model_dump(mode="json", by_alias=True))} for subject, obj in self.records.items()]

    def to_json(self) -> str:
        return to_json(self)

    def to_csv(self) -> str:
        return to_csv(self)


def to_json(data: Extraction[Any] | BaseModel | Iterable[BaseModel] | Mapping[str, BaseModel]) -> str:
    """Extraction results (or plain objects) as JSON; an extraction keeps its model and disclaimer."""
    if isinstance(data, Extraction):
        payload: Any = {
            "model_name": data.model_name,
            "disclaimer": data.disclaimer,
            "per_agent": data.per_agent,
            "records": {k: v.model_dump(mode="json", by_alias=True) for k, v in data.records.items()},
        }
        if data.failed:
            payload["failed"] = data.failed
    elif isinstance(data, BaseModel):
        payload = data.model_dump(mode="json", by_alias=True)
    elif isinstance(data, Mapping):
        payload = {k: v.model_dump(mode="json", by_alias=True) for k, v in data.items()}
    else:
        payload = [v.model_dump(mode="json", by_alias=True) for v in data]
    return json.dumps(payload, ensure_ascii=False, indent=1) + "\n"


def to_csv(data: Extraction[Any] | Iterable[BaseModel | Mapping[str, Any]]) -> str:
    """Rows as CSV text: nested fields as ``a.b`` columns, lists joined with ``; ``. The header is the
    first line, as spreadsheets expect; an extraction's disclaimer is its last column, ``note``."""
    if isinstance(data, Extraction):
        rows = [{**row, "note": data.disclaimer} for row in data.rows()]
    else:
        rows = [_flat(r.model_dump(mode="json", by_alias=True) if isinstance(r, BaseModel) else dict(r)) for r in data]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return out.getvalue()


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- the extractor ----------------------------------------------------------------------------

_SYSTEM = (
    "You extract structured data from a simulated conversation for a researcher. Fill every field "
    "from what was said, thought or shown; use null (or an empty list) when the material does not "
    "say. Do not invent facts."
)


class ResultsExtractor:
    def __init__(self, model: LanguageModel) -> None:
        self.model = model

    async def extract(
        self,
        target: TinyWorld | TinyPerson,
        schema: SchemaSpec,
        instructions: str = "",
        *,
        per_agent: bool = False,
    ) -> Extraction[Any]:
        """Fill ``schema`` from ``target``: one object, or one per persona of a world (``per_agent``).

        Per-persona extractions run concurrently and read each persona's own memory; one that
        fails is listed in ``failed`` and the rest are kept. A spent budget stops them all.
        """
        model_class = _as_model(schema)
        if isinstance(target, TinyWorld) and per_agent:
            agents = target.agents
            outcomes = await asyncio.gather(
                *(self._one(a.name, _person_material(a), a, model_class, instructions, a.world_id) for a in agents),
                return_exceptions=True,
            )
            records: dict[str, Any] = {}
            failed: dict[str, str] = {}
            names: list[str] = []
            for agent, outcome in zip(agents, outcomes):
                if isinstance(outcome, BudgetExceededError):
                    raise outcome
                if isinstance(outcome, StructuredOutputError):
                    failed[agent.name] = f"{NOT_IN_SHAPE} ({outcome})"
                elif isinstance(outcome, LLMError):
                    failed[agent.name] = str(outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    records[agent.name], name = outcome
                    names.append(name)
            return Extraction(model_class, records, True, names[-1] if names else self.model.name, failed=failed)
        if isinstance(target, TinyWorld):
            value, name = await self._one(target.name, _world_material(target), None, model_class, instructions, target.id)
        else:
            value, name = await self._one(target.name, _person_material(target), target, model_class, instructions, target.world_id)
        return Extraction(model_class, {target.name: value}, isinstance(target, TinyPerson), name)

    async def _one(
        self,
        subject: str,
        lines: list[str],
        person: TinyPerson | None,
        model_class: type[BaseModel],
        instructions: str,
        world_id: str | None,
    ) -> tuple[BaseModel, str]:
        about = f"What {subject} lived through" if person is not None else f"The conversation in {subject!r}"
        body = [f"{about}:", *(lines[-MAX_LINES:] or ["(nothing yet)"])]
        if person is not None:
            body.insert(0, f"Persona: {person.spec.summary()}")
        if instructions:
            body.append(f"Instructions: {instructions}")
        request = ChatRequest(
            messages=[Message(role="system", content=_SYSTEM), Message(role="user", content="\n".join(body))],
            attribution=Attribution(world=world_id, persona=person.name if person else None),
            task="extract",
            context={
                "subject": subject,
                "persona": person.persona_data if person is not None else None,
                "lines": lines[-MAX_LINES:],
                "instructions": instructions,
            },
        )
        value, result = await self.model.structured(request, model_class)
        return value, result.model


def _person_material(person: TinyPerson) -> list[str]:
    summary = person.episodic.summary
    lines = [f"(memory) {quote(summary, one_line=True)}"] if summary else []
    episodes = person.episodic.unconsolidated()
    return lines + [render_episode(e, person.name) for e in episodes]


def _world_material(world: TinyWorld) -> list[str]:
    return world.transcript(include_thoughts=True).splitlines()


# -- the reducer ------------------------------------------------------------------------------

Rule = Callable[[Event], Any]
EventSource = TinyWorld | Iterable[Event]


class ResultsReducer:
    """Counts, tallies and per-persona tables from the event log, by rules, with no model calls.

    Rules follow TinyTroupe's reduction rules: ``add_rule("TALK", fn)`` calls ``fn(event)`` for
    every TALK event; ``reduce`` collects what the rules return (None means "nothing here").
    """

    def __init__(self) -> None:
        self.rules: list[tuple[str, Rule]] = []

    def add_rule(self, trigger: str, rule: Rule) -> ResultsReducer:
        """Run ``rule`` on events of type ``trigger`` (TALK, THINK, CONVERSATION, a notice code, or ``*``)."""
        self.rules.append((trigger, rule))
        return self

    def reduce(self, source: EventSource, persona: str | None = None) -> list[dict[str, Any]]:
        """One row per (event, rule) result: event id, persona, type, then the rule's fields or value."""
        rows: list[dict[str, Any]] = []
        for event in _events(source):
            if persona is not None and event.source != persona:
                continue
            for trigger, rule in self.rules:
                if trigger not in ("*", event.type):
                    continue
                value = rule(event)
                if value is None:
                    continue
                row = {"event_id": event.id, "persona": event.source, "type": event.type}
                row.update(value if isinstance(value, Mapping) else {"value": value})
                rows.append(row)
        return rows

    @staticmethod
    def counts(source: EventSource, by: Literal["kind", "type", "source", "target", "model"] = "type") -> dict[str, int]:
        """How many events per kind, type, source, target or model, most frequent first."""
        values = (getattr(e, by) for e in _events(source))
        counter = Counter(v.value if isinstance(v, EventKind) else (v or "-") for v in values)
        return dict(counter.most_common())

    @staticmethod
    def counts_by_persona(source: EventSource) -> dict[str, dict[str, int]]:
        """Each persona's actions by type (``{"Priya Nair": {"TALK": 3, "THINK": 4}}``)."""
        out: dict[str, dict[str, int]] = {}
        for event in _events(source):
            if event.kind is EventKind.ACTION:
                per = out.setdefault(event.source, {})
                per[event.type] = per.get(event.type, 0) + 1
        return out

    @staticmethod
    def tally(items: Extraction[Any] | Iterable[Event | BaseModel | Mapping[str, Any]], field_name: str) -> dict[str, int]:
        """How often each value of ``field_name`` occurs (dotted for nested fields and ``meta.x``).

        Works on extraction results, extracted objects, dicts and events; list values count each
        element; missing values are counted as ``"-"``.
        """
        records = items.records.values() if isinstance(items, Extraction) else items
        counter: Counter[str] = Counter()
        for record in records:
            value = _field(record, field_name)
            for item in value if isinstance(value, list) else [value]:
                counter[_cell(item) or "-"] += 1
        return dict(counter.most_common())

    @staticmethod
    def persona_table(source: EventSource) -> list[dict[str, Any]]:
        """One row per persona who acted: messages, thoughts, words said, first and last step, last words."""
        rows: dict[str, dict[str, Any]] = {}
        for event in _events(source):
            if event.kind is not EventKind.ACTION:
                continue
            row = rows.setdefault(
                event.source,
                {"persona": event.source, "messages": 0, "thoughts": 0, "words": 0, "first_step": event.step, "last_step": event.step, "last_said": ""},
            )
            row["last_step"] = event.step
            if event.type == "TALK":
                row["messages"] += 1
                row["words"] += len(event.content.split())
                row["last_said"] = event.content
            elif event.type == "THINK":
                row["thoughts"] += 1
        return list(rows.values())


def _events(source: EventSource) -> list[Event]:
    return list(source.events) if isinstance(source, TinyWorld) else list(source)


def _field(record: Any, path: str) -> Any:
    value: Any = record.model_dump(mode="json", by_alias=True) if isinstance(record, BaseModel) else record
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value
