"""Who a simulated person is: the persona specification, its files, fragments and bundled cast.

A persona is TinyTroupe's persona dictionary. We keep the dictionary exactly as written (key order,
nesting, unknown fields) so TinyTroupe agent files round-trip unchanged, and validate it through a
typed model so a broken file fails at load time with a message that says what to fix, instead of
producing a confused character mid-simulation.

Two spellings load: TinyTroupe's (``personality.traits``, ``preferences.interests``,
``long_term_goals``, ``style``) and a flatter one (``traits``, ``interests``, ``goals``,
``speaking_style``). The accessors ``traits``, ``interests``, ``goals`` and ``speaking_style`` read
either, so callers need not care which one a file uses.

Specs are immutable: ``define`` and ``apply_fragment`` return a new spec, so a spec shared by
several agents or kept as a template never changes behind anyone's back.
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from simulation.document_limits import DocumentLimitError, DocumentTooLongError, check_document, load_json, load_yaml
from simulation.files import FileReadError, read_text_file

__all__ = [
    "Occupation",
    "PersonaError",
    "PersonaSpec",
    "bundled_personas",
    "find_bundled_persona",
    "load_persona",
    "load_population_description",
    "parse_persona_text",
]

AGENT_TYPE = "TinyPerson"
FRAGMENT_TYPE = "Fragment"

_LAYOUT_HINT = 'a persona object such as {"name": "Priya Nair", "age": 34, ...}, or a TinyTroupe agent {"type": "TinyPerson", "persona": {...}}'


class PersonaError(ValueError):
    """A persona (or population, or fragment) that cannot be used, with where and how to fix it.

    ``path`` is the file (or the text source's label) and ``field`` the offending field as a dotted
    path (``"personality.traits[2]"``), or ``None`` when the problem is the file as a whole.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.field = field


# ----------------------------------------------------------------------------------------------
# The typed view
# ----------------------------------------------------------------------------------------------


class _Open(BaseModel):
    """Nested parts accept fields we do not know, like the persona itself."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Occupation(_Open):
    """TinyTroupe's job object; its parts may take any shape, the title is read as text."""

    title: Any = None
    organization: Any = None
    description: Any = None


class PersonaSpec(BaseModel):
    """A persona: TinyTroupe's fields typed, any other field kept as an extra.

    Build one with :func:`load_persona`, :meth:`from_data` or :func:`parse_persona_text`; they keep
    the original dictionary so :meth:`to_tinytroupe_dict` gives it back unchanged.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    # What Troupe relies on is typed and checked: the name is who speaks, the age and the job make the
    # one-line summary. Everything else is carried as written, whatever its shape: TinyTroupe's
    # factory writes text, lists or nested objects for any of them (``health`` as physical and
    # mental objects, ``style`` as tone, vocabulary and habits, ``skills`` as groups).
    name: str
    age: int | None = Field(default=None, ge=0)
    occupation: str | Occupation | None = None
    gender: Any = None
    nationality: Any = None
    residence: Any = None
    education: Any = None
    personality: Any = None
    preferences: Any = None
    skills: Any = None
    long_term_goals: Any = None
    beliefs: Any = None
    behaviors: Any = None
    health: Any = None
    relationships: Any = None
    other_facts: Any = None
    style: Any = None

    _data: dict[str, Any] = PrivateAttr(default_factory=dict)
    _source: str = PrivateAttr(default="<data>")

    @field_validator("name", mode="before")
    @classmethod
    def _name_is_text(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty")
        return value

    @field_validator("age", mode="before")
    @classmethod
    def _age_is_a_number(cls, value: Any) -> Any:
        # YAML reads ``age: yes`` as True, and pydantic would take True for 1.
        if isinstance(value, bool):
            raise ValueError(f"must be a number of years, not {value!r}")
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError(f"must be a number of years, got {value!r}")
        return value

    def model_post_init(self, context: Any) -> None:
        raw = context.get("raw") if isinstance(context, dict) else None
        if raw is None:
            raw = self.model_dump(exclude_unset=True)
        self._data = copy.deepcopy(raw)
        if isinstance(context, dict) and context.get("source"):
            self._source = str(context["source"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PersonaSpec):
            return NotImplemented
        return self._data == other._data

    __hash__ = None  # type: ignore[assignment]

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: Any, source: str = "<data>") -> PersonaSpec:
        """A spec from parsed data: a bare persona, ``{"persona": {...}}`` or a TinyTroupe agent."""
        persona = _persona_object(data, source)
        return cls._validate(persona, source)

    @classmethod
    def _validate(cls, persona: dict[str, Any], source: str) -> PersonaSpec:
        _check_size(persona, source)  # before anything walks or copies it whole
        persona = copy.deepcopy(persona)
        _check_text(persona, source)
        try:
            return cls.model_validate(persona, context={"raw": persona, "source": source})
        except ValidationError as exc:
            raise _explain(exc, persona, source) from None

    # -- export -----------------------------------------------------------------------------

    @property
    def source(self) -> str:
        """Where this spec came from (a file path or a label), for messages."""
        return self._source

    def to_tinytroupe_dict(self) -> dict[str, Any]:
        """The persona dictionary exactly as loaded (plus any ``define``/fragment changes), a copy."""
        return copy.deepcopy(self._data)

    def to_tinytroupe_agent(self) -> dict[str, Any]:
        """A TinyTroupe agent document, ready to ``json.dump`` as ``*.agent.json``."""
        return {"type": AGENT_TYPE, "persona": self.to_tinytroupe_dict()}

    # -- accessors that read both spellings -------------------------------------------------

    def _extra(self, key: str) -> Any:
        return (self.model_extra or {}).get(key)

    @property
    def traits(self) -> list[str]:
        """Personality traits, from ``personality.traits`` and/or a top-level ``traits``, as texts."""
        return _combine(_part(self.personality, "traits"), self._extra("traits"))

    @property
    def interests(self) -> list[str]:
        """Interests, from ``preferences.interests`` and/or a top-level ``interests``, as texts."""
        return _combine(_part(self.preferences, "interests"), self._extra("interests"))

    @property
    def likes(self) -> list[str]:
        return _combine(_part(self.preferences, "likes"), self._extra("likes"))

    @property
    def dislikes(self) -> list[str]:
        return _combine(_part(self.preferences, "dislikes"), self._extra("dislikes"))

    @property
    def goals(self) -> list[str]:
        """Long-term goals, from ``long_term_goals`` and/or a top-level ``goals``, as texts."""
        return _combine(self.long_term_goals, self._extra("goals"))

    @property
    def speaking_style(self) -> str | None:
        """How this person writes: ``style`` (TinyTroupe; text, or an object of tone, vocabulary and
        habits, given as one line) or ``speaking_style``."""
        for value in (self.style, self._extra("speaking_style")):
            text = "; ".join(_leaf_texts(value, labelled=True))
            if text.strip():
                return text
        return None

    @property
    def occupation_title(self) -> str | None:
        """The job title, whether ``occupation`` is text or TinyTroupe's object."""
        if isinstance(self.occupation, str):
            return self.occupation or None
        if isinstance(self.occupation, Occupation):
            for value in (self.occupation.title, self.occupation.organization):
                texts = _leaf_texts(value)
                if texts:
                    return texts[0]
        return None

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else self.name

    def summary(self) -> str:
        """One line for lists and logs: name, age, occupation, residence."""
        parts = [self.name]
        if self.age is not None:
            parts.append(str(self.age))
        if self.occupation_title:
            parts.append(self.occupation_title)
        if self.residence:
            parts.append(f"lives in {self.residence}")
        return ", ".join(parts)

    # -- changes (each returns a new spec) --------------------------------------------------

    def define(self, key: str, value: Any, *, merge: bool = True) -> PersonaSpec:
        """A new spec with ``key`` set, as TinyPerson.define does; this spec is left unchanged.

        ``key`` may be dotted (``"preferences.likes"``). Text is dedented. Lists and objects are
        merged into what is there (lists concatenated without duplicates) unless ``merge=False``;
        other values replace the old one.
        """
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise PersonaError(
                f"{self._source}: cannot define {key!r}: use a field name like 'age' or a dotted path like 'preferences.likes'.",
                path=self._source,
                field=key or None,
            )
        if isinstance(value, str):
            value = textwrap.dedent(value)
        data = copy.deepcopy(self._data)
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise PersonaError(
                    f"{self._source}: cannot define {key!r}: field '{where}' is {_kind(child)}, not an object. "
                    f"Define '{where}' as a whole instead.",
                    path=self._source,
                    field=where,
                )
            node = child
        last = parts[-1]
        if merge and isinstance(value, (dict, list)) and last in node:
            merged = _merge(
                {last: node[last]},
                {last: value},
                overwrite=True,
                source=self._source,
                prefix=".".join(parts[:-1]),
                theirs="the new value",
                fix="Pass merge=False to replace it.",
            )
            node[last] = merged[last]
        else:
            node[last] = copy.deepcopy(value)
        return type(self)._validate(data, self._source)

    def apply_fragment(self, fragment: str | Path | Mapping[str, Any], *, overwrite: bool = True) -> PersonaSpec:
        """A new spec with a TinyTroupe fragment merged in; this spec is left unchanged.

        Merging follows TinyTroupe: new fields are added, objects merge recursively, lists are
        concatenated with duplicates removed (order kept), and fields that are empty (null) here
        take the fragment's value. A differing scalar is replaced by the fragment's; pass
        ``overwrite=False`` to get an error instead, which is what TinyTroupe does. A field whose
        shape differs (text here, list in the fragment) is always an error.
        """
        additions, label = _fragment_object(fragment)
        merged = _merge(self._data, additions, overwrite=overwrite, source=label)
        return type(self)._validate(merged, self._source)


# ----------------------------------------------------------------------------------------------
# Files and text
# ----------------------------------------------------------------------------------------------


def load_persona(path: str | Path) -> PersonaSpec:
    """Load a persona from JSON or YAML: our own layout or a TinyTroupe ``*.agent.json`` as is."""
    p = Path(path)
    data = _read_structured(p)
    return PersonaSpec.from_data(data, source=str(p))


def parse_persona_text(text: str, source: str = "<text>") -> PersonaSpec:
    """A persona from pasted JSON or YAML text (any layout :func:`load_persona` accepts)."""
    data = _parse_text(text, source, prefer_json=text.lstrip().startswith(("{", "[")))
    return PersonaSpec.from_data(data, source=source)


def load_population_description(path: str | Path) -> str:
    """A TinyTroupe population file as compact text, for use as context when inventing personas."""
    p = Path(path)
    data = _read_structured(p)
    src = str(p)
    if not isinstance(data, dict):
        raise PersonaError(
            f"{src}: a population file must be an object with 'title', 'description' and 'content'; "
            f"this one is {_kind(data)}.",
            path=src,
        )
    if data.get("type") in (AGENT_TYPE, FRAGMENT_TYPE) or "persona" in data:
        raise PersonaError(
            f"{src}: this is a persona file, not a population description. Add it as a persona (`persona add FILE`, or load_persona() in Python).",
            path=src,
            field="type",
        )
    if "content" not in data:
        raise PersonaError(
            f"{src}: field 'content' is missing. A population file has 'title', 'description' and 'content' "
            "(the facts about the population); add 'content'.",
            path=src,
            field="content",
        )
    lines: list[str] = []
    for key in ("title", "description"):
        if isinstance(data.get(key), str) and data[key].strip():
            lines.append(data[key].strip())
    lines.extend(_flatten(data["content"], 0))
    return "\n".join(lines)


#: What a persona, fragment or population file may be called (no suffix: read by its content).
_PERSONA_SUFFIXES = (".json", ".yaml", ".yml", "")


def _read_structured(p: Path) -> Any:
    if not p.exists():
        where = "" if p.is_absolute() else f" (relative paths are resolved from {Path.cwd()})"
        raise PersonaError(f"{p}: file not found. Check the path{where}.", path=p)
    if p.is_dir():
        raise PersonaError(f"{p}: is a folder; give the path of a .json or .yaml file inside it.", path=p)
    if p.suffix.lower() not in _PERSONA_SUFFIXES:
        raise PersonaError(
            f"{p}: is not a persona file ({p.suffix} is not JSON or YAML). A persona is a .json or .yaml file: "
            "a TinyTroupe agent (*.agent.json), a fragment (*.fragment.json) or Troupe's own layout.",
            path=p,
        )
    try:
        # Only a regular file, and at most one byte past the limit whatever size it claims: a device
        # (/dev/zero), a FIFO or a /proc file would otherwise be read without end.
        text = read_text_file(p, limit=MAX_PERSONA_FILE_BYTES, kind="a persona file")
    except FileReadError as exc:
        raise PersonaError(str(exc), path=p) from None
    except UnicodeDecodeError:
        raise PersonaError(f"{p}: is not a UTF-8 text file; save it as UTF-8 JSON or YAML.", path=p) from None
    except OSError as exc:
        raise PersonaError(f"{p}: cannot be read ({exc.strerror or exc}).", path=p) from None
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        prefer_json = False
    elif suffix == ".json":
        prefer_json = True
    else:
        prefer_json = text.lstrip().startswith(("{", "["))
    return _parse_text(text, str(p), prefer_json=prefer_json)


def _parse_text(text: str, source: str, *, prefer_json: bool) -> Any:
    """``text`` as JSON or YAML, read within the limits of :mod:`simulation.document_limits`.

    Messages say where the problem is, never what the text holds there.
    """
    if not text.strip():
        raise PersonaError(f"{source}: is empty. Write {_LAYOUT_HINT}.", path=source)
    if len(text) > MAX_PERSONA_FILE_BYTES:
        raise PersonaError(f"{source}: is {len(text):,} characters long; a persona's text is at most "
                           f"{MAX_PERSONA_FILE_BYTES:,}. Is it the right text?", path=source)
    try:
        return _parse_document(text, source, prefer_json=prefer_json)
    except DocumentLimitError as exc:
        where = f"field '{exc.field}' " if exc.field else ""
        raise PersonaError(f"{source}: {where}{exc}", path=source, field=exc.field) from None


def _parse_document(text: str, source: str, *, prefer_json: bool) -> Any:
    if prefer_json:
        try:
            return load_json(text)
        except json.JSONDecodeError as exc:
            raise PersonaError(
                f"{source}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}. "
                "Fix the syntax there (a missing comma or quote, or a trailing comma, is the usual cause).",
                path=source,
            ) from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PersonaError(
            f"{source}: not valid YAML{where}: {problem}. "
            "Fix the syntax there (indentation, or a value with ':' that needs quotes, is the usual cause).",
            path=source,
        ) from None


# ----------------------------------------------------------------------------------------------
# Telling the layouts apart
# ----------------------------------------------------------------------------------------------


def _persona_object(data: Any, source: str) -> dict[str, Any]:
    """The persona dictionary inside whatever layout ``data`` uses, or a PersonaError saying why not."""
    if not isinstance(data, dict):
        raise PersonaError(
            f"{source}: the top level is {_kind(data)}, but a persona must be an object. Write {_LAYOUT_HINT}.",
            path=source,
        )
    kind = data.get("type")
    if kind == FRAGMENT_TYPE:
        raise PersonaError(
            f"{source}: this is a TinyTroupe fragment (type 'Fragment'), a partial persona meant to be added to "
            "a full one, not a persona itself. Apply it to a persona: in a scenario, list it under that persona's "
            "`fragments:`; in Python, load_persona('someone.agent.json').apply_fragment(this_file).",
            path=source,
            field="type",
        )
    if "persona" in data:
        if kind is not None and kind != AGENT_TYPE:
            raise PersonaError(
                f"{source}: field 'type' is {kind!r}, but a persona file has type 'TinyPerson'. "
                "Change it to \"TinyPerson\" if this is a person, or use the loader for that kind of file.",
                path=source,
                field="type",
            )
        persona = data["persona"]
        if not isinstance(persona, dict):
            raise PersonaError(
                f"{source}: field 'persona' is {_kind(persona)}, but it must be an object with the persona's fields "
                '(e.g. "persona": {"name": "Priya Nair", ...}).',
                path=source,
                field="persona",
            )
        return persona
    if _looks_like_population(data):
        raise PersonaError(
            f"{source}: this looks like a TinyTroupe population description (it has 'title', 'description' and "
            "'content'), not a persona: it describes people to invent (`generate N \"DESCRIPTION\"` in a "
            "channel, or PersonaFactory with load_population_description() in Python); a persona file needs a 'name'.",
            path=source,
        )
    if kind is not None and "name" not in data:
        if kind == AGENT_TYPE:
            raise PersonaError(
                f"{source}: field 'persona' is missing. A TinyTroupe agent file is "
                '{"type": "TinyPerson", "persona": {"name": ..., ...}}; put the persona\'s fields under "persona".',
                path=source,
                field="persona",
            )
        raise PersonaError(
            f"{source}: field 'type' is {kind!r}, but a persona file has type 'TinyPerson' (or no type at all). "
            "This file describes something else; load it with the loader for that kind of file.",
            path=source,
            field="type",
        )
    return data


def _looks_like_population(data: Mapping[str, Any]) -> bool:
    return "content" in data and "title" in data and "name" not in data


def _fragment_object(fragment: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(fragment, (str, Path)):
        label = str(fragment)
        data = _read_structured(Path(fragment))
    elif isinstance(fragment, Mapping):
        label = "<fragment>"
        data = dict(fragment)
        _check_size(data, label)
    else:
        raise PersonaError(
            f"a fragment must be a file path or a dict, not {_kind(fragment)}.", path=None
        )
    if not isinstance(data, dict):
        raise PersonaError(
            f"{label}: the top level is {_kind(data)}, but a fragment must be an object: "
            '{"type": "Fragment", "persona": {...}}.',
            path=label,
        )
    kind = data.get("type")
    if "persona" in data:
        if kind not in (None, FRAGMENT_TYPE):
            raise PersonaError(
                f"{label}: field 'type' is {kind!r}, but a fragment has type 'Fragment'. "
                "A full agent file is a persona of its own: add it as one (`persona add FILE`, or load_persona() in Python).",
                path=label,
                field="type",
            )
        persona = data["persona"]
        if not isinstance(persona, dict):
            raise PersonaError(
                f"{label}: field 'persona' is {_kind(persona)}, but it must be an object with the fields to add.",
                path=label,
                field="persona",
            )
        return persona, label
    if kind is not None or _looks_like_population(data):
        raise PersonaError(
            f"{label}: this is not a fragment. A fragment is "
            '{"type": "Fragment", "persona": {...fields to add...}}.',
            path=label,
            field="type" if kind is not None else None,
        )
    return data, label


# ----------------------------------------------------------------------------------------------
# Merging (TinyTroupe's rules) and helpers
# ----------------------------------------------------------------------------------------------


def _merge(
    current: Mapping[str, Any],
    additions: Mapping[str, Any],
    *,
    overwrite: bool,
    source: str,
    prefix: str = "",
    theirs: str = "the fragment",
    fix: str = "Make both the same shape.",
) -> dict[str, Any]:
    merged = copy.deepcopy(dict(current))
    for key, new in additions.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        new = copy.deepcopy(new)
        if key not in merged or merged[key] is None:
            merged[key] = new
            continue
        old = merged[key]
        if isinstance(old, dict) and isinstance(new, dict):
            merged[key] = _merge(old, new, overwrite=overwrite, source=source, prefix=where, theirs=theirs, fix=fix)
        elif isinstance(old, list) and isinstance(new, list):
            merged[key] = _unique(old + new)
        elif _shape(old) != _shape(new):
            raise PersonaError(
                f"{source}: field '{where}' is {_kind(new)} in {theirs} but {_kind(old)} in the persona, "
                f"so they cannot be merged. {fix}",
                path=source,
                field=where,
            )
        elif old != new:
            if not overwrite:
                raise PersonaError(
                    f"{source}: field '{where}' is {new!r} in {theirs} but {old!r} in the persona. "
                    "Remove it from one of them, or merge with overwrite=True to take the fragment's value.",
                    path=source,
                    field=where,
                )
            merged[key] = new
    return merged


def _unique(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _shape(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _kind(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "a true/false value"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _combine(*values: Any) -> list[str]:
    """The texts of every leaf of ``values`` (lists and nested objects included), once each."""
    out: list[str] = []
    for value in values:
        for text in _leaf_texts(value):
            if text not in out:
                out.append(text)
    return out


def _part(value: Any, key: str) -> Any:
    """``value[key]`` when ``value`` is an object, else None (a field may take any shape)."""
    return value.get(key) if isinstance(value, dict) else None


def _leaf_texts(value: Any, *, labelled: bool = False) -> list[str]:
    """Every non-empty leaf of ``value`` as text, in order; ``labelled`` puts a nested leaf's key before it."""
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            texts = _leaf_texts(item, labelled=labelled)
            if labelled and texts and not isinstance(item, dict):
                out.append(f"{key}: {', '.join(texts)}")
            else:
                out.extend(texts)
        return out
    if isinstance(value, list):
        return [text for item in value for text in _leaf_texts(item, labelled=labelled)]
    if isinstance(value, bool):
        return ["yes" if value else "no"]
    return [str(value)]


def _flatten(node: Any, depth: int) -> list[str]:
    pad = "  " * depth
    lines: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if _is_flat(value):
                lines.append(f"{pad}- {key}: {_inline(value)}")
            else:
                lines.append(f"{pad}- {key}:")
                lines.extend(_flatten(value, depth + 1))
    elif isinstance(node, list):
        for item in node:
            if _is_flat(item):
                lines.append(f"{pad}- {_inline(item)}")
            else:
                lines.extend(_flatten(item, depth))
    else:
        lines.append(f"{pad}{node}")
    return lines


def _is_flat(value: Any) -> bool:
    if isinstance(value, dict):
        return all(not isinstance(v, (dict, list)) for v in value.values())
    if isinstance(value, list):
        return all(not isinstance(v, (dict, list)) for v in value)
    return True


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)



# ----------------------------------------------------------------------------------------------
# Validation messages
# ----------------------------------------------------------------------------------------------

_EXPECTED = {
    "name": 'the person\'s full name as text, e.g. "name": "Priya Nair"',
    "age": 'a whole number of years, e.g. "age": 34 (or leave the field out)',
    "occupation": 'a job title ("Nurse") or an object {"title", "organization", "description"}',
}


#: A persona is read by the model on every turn; far past this it is a mistake, not a person.
MAX_PERSONA_CHARS = 100_000
#: A persona file larger than this is not read at all.
MAX_PERSONA_FILE_BYTES = 1_000_000
MAX_NAME_CHARS = 100
#: Characters no name needs and a terminal or a log would act on: C0 controls but newline, carriage
#: return and tab; DEL; C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Lone surrogates: not Unicode at all, so no file, database or platform can hold them.
_BROKEN = re.compile("[\ud800-\udfff]")


def _check_size(persona: Mapping[str, Any], source: str) -> None:
    """Refuse a description the size of a book or nested past reason, in at most
    ``MAX_PERSONA_CHARS`` steps however its parts are shared (data from a YAML file, a model, storage)."""
    try:
        check_document(persona, max_chars=MAX_PERSONA_CHARS)
    except DocumentTooLongError as exc:
        raise PersonaError(
            f"{source}: the persona {exc}; keep it under {MAX_PERSONA_CHARS:,} characters "
            "(the model reads all of it on every turn). Move long background into fewer, shorter facts.",
            path=source,
        ) from None
    except DocumentLimitError as exc:
        where = f"field '{exc.field}'" if exc.field else "the persona"
        raise PersonaError(f"{source}: {where} {exc}", path=source, field=exc.field) from None


def _check_text(persona: dict[str, Any], source: str) -> None:
    """Refuse what no person's description holds: broken Unicode anywhere, a name that is not one
    clean line. Control characters elsewhere are kept as written (models that write persona files
    leave stray ones): they are made harmless where text goes out (``simulation.untrusted.printable``)."""

    def walk(node: Any, where: str) -> None:
        if isinstance(node, str):
            bad = _BROKEN.search(node) or (_CONTROL.search(node) if where == "name" else None)
            if bad is not None:
                char = bad.group()
                what = "a broken character (a lone surrogate)" if "\ud800" <= char <= "\udfff" else \
                    f"a control character (U+{ord(char):04X})"
                raise PersonaError(f"{source}: field '{where}' contains {what}; remove it.", path=source, field=where)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(key, where)
                walk(value, f"{where}.{key}" if where else str(key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")

    walk(persona, "")
    name = persona.get("name")
    if isinstance(name, str):
        if "\n" in name or "\r" in name or "\t" in name:
            raise PersonaError(f"{source}: field 'name' must be one line; remove the line breaks or tabs.",
                               path=source, field="name")
        if len(name) > MAX_NAME_CHARS:
            raise PersonaError(f"{source}: field 'name' is {len(name):,} characters long; a name is at most "
                               f"{MAX_NAME_CHARS}.", path=source, field="name")


def _explain(exc: ValidationError, data: dict[str, Any], source: str) -> PersonaError:
    found: dict[str, Mapping[str, Any]] = {}
    for err in exc.errors():
        found.setdefault(_field_path(err["loc"], data, missing=err["type"] == "missing"), err)
    # A union (text or object) reports one error per alternative; the deepest one is the real problem.
    fields = [f for f in found if not any(o != f and o.startswith(f) and o[len(f)] in ".[" for o in found)]
    problems = [(f, _problem(f, found[f])) for f in fields]
    field, first = problems[0]
    message = f"{source}: field '{field}' {first}"
    if len(problems) > 1:
        message += " Also: " + "; ".join(f"field '{f}' {p.rstrip('.')}" for f, p in problems[1:]) + "."
    return PersonaError(message, path=source, field=field)


def _problem(field: str, err: Mapping[str, Any]) -> str:
    top = re.split(r"[.\[]", field, maxsplit=1)[0]
    if err["type"] == "missing":
        if field == "name":
            return 'is missing. Fix: every persona needs a name; add "name": "Full Name".'
        return "is missing. Fix: add it."
    got = err.get("input")
    if err["type"] == "value_error":
        detail = str(err["msg"]).removeprefix("Value error, ")
    elif err["type"] == "greater_than_equal":
        detail = f"must be 0 or more, got {got!r}"
    elif field == top:
        detail = f"is {_kind(got)}"
    else:
        detail = f"is {_kind(got)} ({str(err['msg']).lower()})"
    hint = _EXPECTED.get(top)
    if hint is None:
        return f"{detail}."
    if field == top:
        return f"{detail}. Fix: make it {hint}."
    return f"{detail}. Fix: '{top}' should be {hint}."


def _field_path(loc: tuple[Any, ...], data: Any, *, missing: bool) -> str:
    """``loc`` as a readable path, dropping pydantic's union-member labels that are not real keys."""
    parts: list[str] = []
    node = data
    for i, step in enumerate(loc):
        if isinstance(node, dict) and step in node:
            parts.append(f".{step}" if parts else str(step))
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            parts.append(f"[{step}]")
            node = node[step]
        elif missing and i == len(loc) - 1 and isinstance(step, str):
            parts.append(f".{step}" if parts else step)
    return "".join(parts) or "persona"


# ----------------------------------------------------------------------------------------------
# Bundled personas
# ----------------------------------------------------------------------------------------------


def _personas_dir() -> Path:
    # Looked up on each call so a test or an embedding application can point config elsewhere.
    from config import PERSONAS_DIR

    return PERSONAS_DIR


def _persona_files(folder: Path) -> list[Path]:
    files = [
        f
        for f in sorted(folder.iterdir())
        if f.is_file() and f.suffix.lower() in (".json", ".yaml", ".yml") and ".fragment." not in f.name
    ]
    return files


def bundled_personas() -> dict[str, Path]:
    """The personas shipped in ``config/personas``, by lowercased full name, first name and file stem.

    A first name shared by two personas is left out, so it never silently picks one of them.
    """
    folder = _personas_dir()
    if not folder.is_dir():
        return {}
    index: dict[str, Path] = {}
    first_names: dict[str, list[Path]] = {}
    for f in _persona_files(folder):
        spec = load_persona(f)
        index[_lower(spec.name)] = f
        index.setdefault(_lower(f.name.split(".")[0]), f)
        first_names.setdefault(_lower(spec.first_name), []).append(f)
    for first, paths in first_names.items():
        if len(paths) == 1:
            index.setdefault(first, paths[0])
    return index


def find_bundled_persona(name: str) -> PersonaSpec:
    """A bundled persona by full name, first name or file stem; case, accents and ``_``/``-`` do not matter."""
    index = bundled_personas()
    folded = {_fold(key): path for key, path in index.items()}
    path = index.get(_lower(name)) or folded.get(_fold(name))
    if path is None:
        names = sorted({load_persona(p).name for p in set(index.values())})
        available = ", ".join(names) if names else "none (the folder is empty)"
        raise PersonaError(
            f"no bundled persona named {name!r}. Available: {available}. "
            "Use a full name, a first name or a file name, or give the path of your own persona file.",
            path=_personas_dir(),
            field="name",
        )
    return load_persona(path)


def _lower(text: str) -> str:
    return " ".join(text.casefold().split())


def _fold(text: str) -> str:
    """Loose form for lookups, so "diego-hernandez" finds "Diego Hernández"."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(plain.casefold().replace("_", " ").replace("-", " ").split())
