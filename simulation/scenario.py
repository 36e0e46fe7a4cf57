"""Scenario files: a world described in YAML (personas, situation, opening, steps), run in one go.

Persona entries are a bundled persona's name, a path (relative to the scenario file; our JSON/YAML
or a TinyTroupe agent file), or an inline persona mapping; ``fragments`` apply TinyTroupe fragments.
A scenario read for someone else is read within the limits of :mod:`simulation.document_limits`,
and every file it names must lie inside the readable folders, as the scenario itself does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulation.agent import TinyPerson
from simulation.document_limits import DocumentLimitError, load_yaml
from simulation.events import Event
from simulation.file_access import ReadableFolders
from simulation.files import FileReadError, read_text_file
from simulation.llm.base import LanguageModel
from simulation.llm.errors import BudgetExceededError
from simulation.persona import PersonaError, PersonaSpec, find_bundled_persona, load_persona
from simulation.turn_taking import make_policy
from simulation.world import TargetedTalk, TinyWorld

#: A scenario file larger than this is not read (a dozen inline personas take a few tens of kB).
MAX_SCENARIO_FILE_BYTES = 2_000_000
#: Fragments one persona entry may apply: each one is a file read and a merge of the whole persona.
MAX_FRAGMENTS = 20


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the problem."""


class PersonaEntry(BaseModel):
    """A persona reference: ``file``, ``bundled`` or ``inline``, plus fragments to apply."""

    model_config = ConfigDict(extra="forbid")

    file: str | None = None
    bundled: str | None = None
    inline: dict[str, Any] | None = None
    fragments: list[str] = Field(default_factory=list, max_length=MAX_FRAGMENTS)


class ScriptedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    text: str
    source: str = Field(default="moderator", alias="from")
    to: str | None = None


class Variant(BaseModel):
    """One branch of an A/B run: its name and the messages (the intervention) it gets after the
    shared opening; none for the control."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80, pattern=r"^[\w][\w .-]*$")
    messages: list[ScriptedMessage] = Field(default_factory=list)
    #: Steps after each of its messages (the scenario's by default).
    steps: int | None = Field(default=None, ge=1, le=1000)


class Scenario(BaseModel):
    #: A misspelt key ("opening_message") is an error, not a scenario that silently runs nothing.
    model_config = ConfigDict(extra="forbid")

    name: str
    situation: str | None = None
    policy: str = "everyone"
    targeted_talk: TargetedTalk = "private"
    personas: list[PersonaEntry] = Field(min_length=1)
    opening: str | None = None
    messages: list[ScriptedMessage] = Field(default_factory=list)
    #: Steps after each message; ``until_quiet`` stops early once nobody has anything to add.
    steps: int = Field(default=1, ge=1, le=1000)
    until_quiet: bool = False
    #: Branches run from one shared start (the opening and messages above), each in a fork of it.
    variants: list[Variant] = Field(default_factory=list, max_length=20)

    @field_validator("variants")
    @classmethod
    def _distinct_variants(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name.casefold() for v in value]
        twice = [v.name for v in value if names.count(v.name.casefold()) > 1]
        if twice:
            raise ValueError(f"variant names must differ (case aside): {', '.join(twice)}")
        return value

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        make_policy(value)  # raises, naming the policies there are
        return value.strip().lower()

    @field_validator("personas", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, str):
                looks_like_path = item.endswith((".json", ".yaml", ".yml")) or "/" in item
                out.append({"file": item} if looks_like_path else {"bundled": item})
            elif isinstance(item, dict) and not {"file", "bundled", "inline"} & item.keys():
                out.append({"inline": item})
            else:
                out.append(item)
        return out


def load_scenario(path: str | Path) -> tuple[Scenario, Path]:
    """The scenario in ``path`` and the folder its relative paths start from.

    Errors say where in the file the problem is, never what the file holds there.
    """
    source = Path(path)
    if source.is_dir():
        raise ScenarioError(f"{source} is a folder; give the scenario's YAML file")
    try:
        # Only a regular file, and at most one byte past the limit whatever size it claims.
        data = load_yaml(read_text_file(source, limit=MAX_SCENARIO_FILE_BYTES, kind="a scenario file"))
    except FileReadError as error:
        raise ScenarioError(str(error)) from None
    except FileNotFoundError:
        raise ScenarioError(f"{source}: no such scenario file") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{source}: is not a UTF-8 text file; save the scenario as UTF-8 YAML.") from None
    except OSError as error:
        raise ScenarioError(f"{source}: cannot be read: {error.strerror or error}") from None
    except DocumentLimitError as error:
        raise ScenarioError(f"{source}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "the syntax is broken"
        raise ScenarioError(f"{source}: not valid YAML{where}: {problem}. Fix the syntax there "
                            "(indentation, or a value with ':' that needs quotes, is the usual cause).") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario is a mapping with name, personas, opening, steps")
    try:
        return Scenario.model_validate(data), source.resolve().parent
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors()
        )
        raise ScenarioError(f"{source}: {problems}") from None


def resolve_persona(entry: PersonaEntry, base: Path, folders: ReadableFolders | None = None) -> PersonaSpec:
    """The persona an entry describes; its files are taken relative to ``base`` (the scenario's folder).

    With ``folders``, a persona or fragment file is read only if it lies inside them (the rule the
    scenario file itself was read under); without, any file is (the machine's owner runs it).
    """
    if entry.file:
        spec = load_persona(_named_file(entry.file, base, folders))
    elif entry.bundled:
        spec = find_bundled_persona(entry.bundled)
    elif entry.inline is not None:
        spec = PersonaSpec.from_data(entry.inline, source="inline persona")
    else:
        raise PersonaError("a persona entry needs file, bundled or inline")
    for fragment in entry.fragments:
        spec = spec.apply_fragment(_named_file(fragment, base, folders))
    return spec


def _named_file(name: str, base: Path, folders: ReadableFolders | None) -> Path:
    if folders is not None:
        return folders.file(name, relative_to=base)
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path


def build_world(scenario: Scenario, base: Path, model: LanguageModel) -> TinyWorld:
    """The scenario's world with its personas; raises ``ScenarioError`` for a scripted message to
    someone who is not one of them (one from anyone is fine: a persona's line is said by it)."""
    world = TinyWorld(
        scenario.name,
        model=model,
        policy=scenario.policy,
        targeted_talk=scenario.targeted_talk,  # type: ignore[arg-type]
        situation=scenario.situation,
    )
    for entry in scenario.personas:
        world.add_agent(TinyPerson(resolve_persona(entry, base), model))
    known = ", ".join(a.name for a in world.agents)
    for number, message in enumerate(scenario.messages, 1):
        if message.to and world.find(message.to) is None:
            raise ScenarioError(f"messages {number}: 'to: {message.to}' is not one of the personas ({known})")
    for variant in scenario.variants:
        for number, message in enumerate(variant.messages, 1):
            if message.to and world.find(message.to) is None:
                raise ScenarioError(f"variants {variant.name} messages {number}: 'to: {message.to}' is not one "
                                    f"of the personas ({known})")
    return world


async def play_scenario(scenario: Scenario, world: TinyWorld) -> AsyncIterator[Event]:
    """Deliver the opening and each scripted message, letting the world run after each, and yield
    every event as it enters the log: a persona's turn as soon as it is taken. Ends once the
    personas' memory work is done too."""
    script = ([ScriptedMessage.model_validate({"text": scenario.opening})] if scenario.opening else []) + list(
        scenario.messages
    )
    for message in script:
        yield await _deliver(world, message)
        async for event in _advance(scenario, world):
            yield event
    if not script:
        async for event in _advance(scenario, world):
            yield event
    await world.settle()


async def play_variant(scenario: Scenario, variant: Variant, world: TinyWorld) -> AsyncIterator[Event]:
    """A variant's messages in ``world`` (a fork of the shared start), each followed by its steps;
    a variant without messages (the control) runs the scenario's steps once more."""
    steps = variant.steps or scenario.steps
    if not variant.messages:
        async for event in _advance(scenario, world, steps):
            yield event
    for message in variant.messages:
        yield await _deliver(world, message)
        async for event in _advance(scenario, world, steps):
            yield event
    await world.settle()


async def _deliver(world: TinyWorld, message: ScriptedMessage) -> Event:
    if world.find(message.source) is not None:  # a persona's scripted line: it says it
        return await world.say_for(message.source, message.text, to=message.to)
    if message.to:
        return await world.talk_to(message.to, message.text, message.source)
    return await world.broadcast(message.text, message.source)


async def _advance(scenario: Scenario, world: TinyWorld, steps: int | None = None) -> AsyncIterator[Event]:
    """The scenario's steps after a message (until nobody has anything new, with ``until_quiet``)."""
    for _ in range(steps or scenario.steps):
        async with await world.next_step(if_any=scenario.until_quiet) as step:
            try:
                async for turn in step:
                    for event in turn.events:
                        yield event
            except BudgetExceededError:
                yield step.events[-1]  # the notice that the budget ran out
                raise
        if step.quiet:
            return
