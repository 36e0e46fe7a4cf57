"""What a model server has shown it can do, discovered once per server and model and remembered.

Servers differ in how they take a request for JSON: OpenAI takes a strict ``json_schema``, the
llama.cpp family takes ``json_object`` with a ``schema`` (its grammar-constrained mode), LM Studio
refuses ``json_object``, older Azure API versions refuse ``json_schema``, and a small local model may
give no valid JSON at all. Discovery walks down the ladder of ``StructuredMode`` as the server
refuses modes, reading the refusal to skip modes it rules out, so a new world spends at most one
refused request on it. The result is kept per base URL + model in a ``ProfileStore`` (the bot's
database, or the model cache file), so a restart does not discover again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from pydantic import BaseModel

log = logging.getLogger(__name__)


class StructuredMode(str, Enum):
    """How to ask for JSON, from the strongest guarantee to none."""

    #: ``response_format: json_schema`` with ``strict: true`` (OpenAI structured outputs).
    JSON_SCHEMA_STRICT = "json_schema_strict"
    #: ``json_schema`` without ``strict`` (servers that refuse or ignore the flag).
    JSON_SCHEMA = "json_schema"
    #: ``json_object`` carrying a ``schema``: the llama.cpp family constrains the reply to it.
    JSON_OBJECT_SCHEMA = "json_object_schema"
    #: ``json_object``: any JSON object; the schema travels in the prompt.
    JSON_OBJECT = "json_object"
    #: No ``response_format``: the schema travels in the prompt.
    PROMPT = "prompt"
    #: The model gives no valid JSON: persona turns are plain words (research still asks, in PROMPT form).
    TEXT = "text"

    @property
    def request_mode(self) -> StructuredMode:
        """The mode a call that needs a shape is sent in: TEXT models are still asked via the prompt."""
        return StructuredMode.PROMPT if self is StructuredMode.TEXT else self

    @property
    def response_format_type(self) -> str | None:
        """The ``response_format.type`` this mode sends, or None for none."""
        if self in (StructuredMode.JSON_SCHEMA_STRICT, StructuredMode.JSON_SCHEMA):
            return "json_schema"
        if self in (StructuredMode.JSON_OBJECT_SCHEMA, StructuredMode.JSON_OBJECT):
            return "json_object"
        return None

    @property
    def schema_in_prompt(self) -> bool:
        """Whether the schema travels in the prompt: the server takes it itself only as
        ``json_schema`` or (the llama.cpp family, by grammar) as ``json_object`` with a ``schema``."""
        return self.request_mode not in (
            StructuredMode.JSON_SCHEMA_STRICT, StructuredMode.JSON_SCHEMA, StructuredMode.JSON_OBJECT_SCHEMA
        )

    def describe(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    StructuredMode.JSON_SCHEMA_STRICT: "json_schema (strict)",
    StructuredMode.JSON_SCHEMA: "json_schema (not strict)",
    StructuredMode.JSON_OBJECT_SCHEMA: "json_object with schema (grammar-constrained)",
    StructuredMode.JSON_OBJECT: "json_object, schema in the prompt",
    StructuredMode.PROMPT: "schema in the prompt, no response_format",
    StructuredMode.TEXT: "plain text (words only, no thoughts)",
}

_LADDER = list(StructuredMode)
_QUOTED_TYPE = re.compile(r"""['"`](text|json_object|json_schema)['"`]""")
_LISTS_ALLOWED = re.compile(r"should be|must be|one of|expected|allowed|permitted|supported values|valid values")

#: Structured calls in one mode that fail (after their re-ask) this many times in a row, with no
#: valid reply in that mode ever, move the model one rung down the ladder.
INVALID_STREAK = 3


def after_refusal(tried: StructuredMode, refusal: str, *, object_schema: bool = True) -> StructuredMode | None:
    """The next mode to try after the server refused ``tried`` saying ``refusal``; None if none is left.

    Reads the refusal to skip what it rules out: a server that says the type "should be 'text' or
    'json_object'" (llama-cpp-python) goes straight to json_object with a schema; one that refuses
    ``json_schema`` outright skips the non-strict variant; one that only minds ``strict`` tries
    without it; one that allows only 'json_schema' or 'text' (LM Studio) skips json_object; one that
    names the refused type skips that type's other variants. ``object_schema``: whether the server may
    hold ``json_object`` to a schema (OpenAI and Azure ignore one, so for them it is skipped).
    """
    text = refusal.lower()
    index = _LADDER.index(tried)
    below = _LADDER[index + 1 : _LADDER.index(StructuredMode.PROMPT) + 1]
    if not object_schema:
        below = [m for m in below if m is not StructuredMode.JSON_OBJECT_SCHEMA]
    if not below:
        return None
    allowed = set(_QUOTED_TYPE.findall(text)) if _LISTS_ALLOWED.search(text) else set()
    allowed.discard(tried.response_format_type or "")
    if allowed:
        for mode in below:
            kind = mode.response_format_type
            if kind is None or kind in allowed:
                return mode
    if tried is StructuredMode.JSON_SCHEMA_STRICT and "strict" in text:
        return StructuredMode.JSON_SCHEMA
    if tried.response_format_type and tried.response_format_type in text:
        # The type itself is refused: its other variants would be too.
        return next(m for m in below if m.response_format_type != tried.response_format_type)
    return below[0]


class ModelProfile(BaseModel):
    """What is remembered of one server + model."""

    structured_mode: StructuredMode = StructuredMode.JSON_SCHEMA_STRICT
    #: The server's context window in tokens, when it told us (info endpoint or a refusal).
    context_tokens: int | None = None
    #: The model gave no valid persona turn in its first tries: turns ask for words only.
    words_only_turns: bool = False
    updated_at: float = 0.0


class ProfileStore(ABC):
    """Where model profiles are kept between runs: keyed by ``base URL|model``."""

    @abstractmethod
    async def load_model_profile(self, key: str) -> dict | None:
        """The stored profile (as a dict), or None."""

    @abstractmethod
    async def save_model_profile(self, key: str, profile: dict) -> None:
        """Keep ``profile`` under ``key``, replacing what was there."""


class MemoryProfileStore(ProfileStore):
    """Profiles for this process only (tests, runs without a database or cache file)."""

    def __init__(self) -> None:
        self.profiles: dict[str, dict] = {}

    async def load_model_profile(self, key: str) -> dict | None:
        return self.profiles.get(key)

    async def save_model_profile(self, key: str, profile: dict) -> None:
        self.profiles[key] = dict(profile)


class SqliteProfileStore(ProfileStore):
    """Profiles in a table of an SQLite file of the model layer's own (the response cache's file),
    for ``troupe simulate``, which opens no bot database. A profile is read once and written
    rarely, so each access opens the file briefly in a worker thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute(
            "CREATE TABLE IF NOT EXISTS model_profiles (key TEXT PRIMARY KEY, profile TEXT NOT NULL, updated_at REAL NOT NULL)"
        )
        return db

    def _load(self, key: str) -> dict | None:
        db = self._connect()
        try:
            row = db.execute("SELECT profile FROM model_profiles WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
        return json.loads(row[0]) if row else None

    def _save(self, key: str, profile: dict) -> None:
        db = self._connect()
        try:
            with db:
                db.execute(
                    "INSERT INTO model_profiles (key, profile, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
                    (key, json.dumps(profile), time.time()),
                )
        finally:
            db.close()

    async def load_model_profile(self, key: str) -> dict | None:
        return await asyncio.to_thread(self._load, key)

    async def save_model_profile(self, key: str, profile: dict) -> None:
        await asyncio.to_thread(self._save, key, profile)


ContextProbe = Callable[[], Awaitable["int | None"]]


@dataclass
class Capabilities:
    """The live profile of one server + model, shared by the backend and every wrapper around it.

    ``key`` and ``store`` make it remembered across restarts; ``probe`` asks the server for its
    context window once, when nothing is known of it yet.
    """

    structured_mode: StructuredMode = StructuredMode.JSON_SCHEMA_STRICT
    #: The context window the server reported or a refusal revealed, in tokens.
    learned_context_tokens: int | None = None
    #: The context cap the settings give (``TROUPE_LLM_CONTEXT_TOKENS``), in tokens.
    configured_context_tokens: int | None = None
    notes: list[str] = field(default_factory=list)
    key: str | None = None
    store: ProfileStore | None = None
    probe: ContextProbe | None = None
    #: The server writes until its context window is full unless a request says otherwise (local
    #: servers do, and a small model held to a grammar may ramble): turns carry a token cap.
    bounded_replies: bool = False
    #: The server may hold ``json_object`` to a ``schema`` (the llama.cpp family); OpenAI and Azure
    #: ignore one, so discovery skips that rung for them.
    object_schema: bool = True
    #: Whether the current mode has been shown to work (a reply that was not a refusal, or a
    #: remembered profile). Until then structured calls go one at a time, so a new server costs
    #: one refused request, not one per persona asking at once.
    confirmed: bool = False
    #: Structured calls that gave a valid reply, and those that failed in a row, per mode.
    valid: Counter[StructuredMode] = field(default_factory=Counter)
    invalid_streak: Counter[StructuredMode] = field(default_factory=Counter)
    #: Refusals of a response_format seen, in all (the discovery's cost).
    refusals: int = 0
    #: Persona turns: the model gave no valid turn in its first tries, so turns ask for words only.
    words_only_turns: bool = False
    #: Persona turns that came back whole, and words-only ones since the last whole one.
    whole_turns: int = 0
    words_turn_streak: int = 0
    _ready: bool = False
    _ready_lock: asyncio.Lock | None = None
    _discovery_lock: asyncio.Lock | None = None

    @property
    def context_tokens(self) -> int | None:
        """The smaller of the configured cap and the server's known window, or None if neither is set."""
        known = [n for n in (self.configured_context_tokens, self.learned_context_tokens) if n]
        return min(known) if known else None

    @property
    def words_only(self) -> bool:
        """Persona turns skip the structured call and ask for plain words."""
        return self.words_only_turns or self.structured_mode is StructuredMode.TEXT

    async def turn_taken(self, *, words_only: bool) -> None:
        """Count a persona turn. A model whose first ``INVALID_STREAK`` turns all fell back to words,
        and none came whole, is not asked for whole turns any more (each try costs two calls)."""
        if not words_only:
            self.whole_turns += 1
            self.words_turn_streak = 0
            return
        self.words_turn_streak += 1
        if not self.words_only_turns and not self.whole_turns and self.words_turn_streak >= INVALID_STREAK:
            self.words_only_turns = True
            self.notes.append(f"persona turns now ask for words only: {self.words_turn_streak} turns in a row gave no valid turn")
            log.info("%s: persona turns now ask for words only", self.key or "model")
            await self._save()

    async def ready(self) -> None:
        """Load the remembered profile (and ask the server for its window) once; cheap after that."""
        if self._ready:
            return
        if self._ready_lock is None:
            self._ready_lock = asyncio.Lock()
        async with self._ready_lock:
            if self._ready:
                return
            stored = await self._load()
            if stored is not None:
                self.structured_mode = stored.structured_mode
                self.learned_context_tokens = stored.context_tokens
                self.words_only_turns = stored.words_only_turns
                self.confirmed = True
            if self.learned_context_tokens is None and self.probe is not None:
                try:
                    found = await self.probe()
                except Exception as error:  # an info endpoint is a nicety: never fail a turn on it
                    log.debug("context probe failed: %s", error)
                    found = None
                if found:
                    self.learned_context_tokens = found
                    await self._save()
            self._ready = True

    def discovery(self) -> asyncio.Lock | None:
        """The lock a structured call holds while the mode is not yet confirmed, else None."""
        if self.confirmed:
            return None
        if self._discovery_lock is None:
            self._discovery_lock = asyncio.Lock()
        return self._discovery_lock

    def answered(self, mode: StructuredMode) -> None:
        """The server answered a call in ``mode`` without refusing it."""
        if mode is self.structured_mode.request_mode:
            self.confirmed = True

    async def refused(self, tried: StructuredMode, reason: str) -> bool:
        """The server refused ``tried``: step down (once, however many calls saw it). False if nothing is left."""
        if self.structured_mode is not tried:
            return True  # a concurrent call stepped down already
        self.refusals += 1
        following = after_refusal(tried, reason, object_schema=self.object_schema)
        if following is None:
            return False
        self.structured_mode = following
        self.notes.append(f"structured output now uses {following.describe()}: {reason}")
        log.info("%s: structured output now uses %s (%s)", self.key or "model", following.describe(), reason)
        await self._save()
        return True

    async def gave_valid(self, mode: StructuredMode) -> None:
        self.valid[mode] += 1
        self.invalid_streak[mode] = 0

    async def gave_invalid(self, mode: StructuredMode) -> None:
        """A structured call failed validation after its re-ask. A mode that never gave a valid
        reply and fails ``INVALID_STREAK`` times in a row is taken to be ignored by the server (or
        beyond the model): the next rung is tried, down to words only."""
        self.invalid_streak[mode] += 1
        if (
            self.structured_mode.request_mode is mode
            and self.structured_mode is not StructuredMode.TEXT
            and not self.valid[mode]
            and self.invalid_streak[mode] >= INVALID_STREAK
        ):
            following = _LADDER[_LADDER.index(self.structured_mode) + 1]
            self.structured_mode = following
            self.notes.append(
                f"structured output now uses {following.describe()}: "
                f"{self.invalid_streak[mode]} replies in a row were not valid JSON of the asked shape"
            )
            log.info("%s: structured output now uses %s (no valid reply in %s)", self.key or "model",
                     following.describe(), mode.describe())
            await self._save()

    async def learn_context(self, tokens: int) -> None:
        """The server revealed its context window (in a refusal)."""
        if tokens > 0 and tokens != self.learned_context_tokens:
            self.learned_context_tokens = tokens
            await self._save()

    def profile(self) -> ModelProfile:
        return ModelProfile(
            structured_mode=self.structured_mode,
            context_tokens=self.learned_context_tokens,
            words_only_turns=self.words_only_turns,
            updated_at=time.time(),
        )

    async def _load(self) -> ModelProfile | None:
        if self.store is None or self.key is None:
            return None
        try:
            data = await self.store.load_model_profile(self.key)
            return ModelProfile.model_validate(data) if data else None
        except Exception as error:  # a damaged or unreadable profile only costs a rediscovery
            log.warning("could not read the remembered profile of %s: %s", self.key, error)
            return None

    async def _save(self) -> None:
        if self.store is None or self.key is None:
            return
        try:
            await self.store.save_model_profile(self.key, self.profile().model_dump(mode="json"))
        except Exception as error:
            log.warning("could not remember the profile of %s: %s", self.key, error)
