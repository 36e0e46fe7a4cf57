"""The storage contract the bot codes against.

The bot never writes SQL: it calls this small repository interface, so a second backend (for
example PostgreSQL, for deployments that outgrow one process) can be added without touching it.
Every method that changes several rows does so in one transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from simulation.agent import AgentState
from simulation.events import Event
from simulation.memory import Episode


def utcnow() -> datetime:
    return datetime.now(UTC)


class StorageError(Exception):
    """The database could not do what was asked (corrupt file, newer schema, disk full...)."""


class StorageUnavailableError(StorageError):
    """The database cannot be used at all any more (disk full, read-only, damaged, I/O errors): no
    write would succeed, so the bot stops rather than drop what it hears."""


class StaleOwnerError(StorageError):
    """A write for a channel whose lease this worker no longer holds (another worker took the
    channel over): refused, so a stale owner never overwrites what the new one does."""


class NotStoredError(StorageError, LookupError):
    """What was asked for by id is not in the database (a mistyped id, a message of another world)."""


@dataclass(frozen=True)
class DatabaseProblem:
    """What is wrong with a database and what to do about it: one line for a command, or a
    doctor's check and its fix."""

    detail: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.detail}: {self.fix}" if self.fix else self.detail


class ExplainedStorageError(StorageError):
    """A StorageError that says what to do; ``problem`` holds what is wrong and the fix apart."""

    def __init__(self, problem: DatabaseProblem | str) -> None:
        self.problem = problem if isinstance(problem, DatabaseProblem) else DatabaseProblem(problem)
        super().__init__(str(self.problem))


class DatabaseSetupError(ExplainedStorageError):
    """The database cannot be used where the settings put it: a setting, the file system or the
    database server must change (another process holds it, it is not writable or reachable, the
    password is wrong, it is not Troupe's or too new), not its data."""


class WorldStatus(str, Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"


class WorldRecord(BaseModel):
    """A world and the channel it is bound to. At most one non-stopped world per channel, besides
    its branches (``parent_id``)."""

    id: str
    #: ``platform:channel-id`` (``console:main``, ``discord:1234``, ``slack:C0123``).
    channel_key: str
    name: str
    situation: str | None = None
    status: WorldStatus = WorldStatus.ACTIVE
    #: Session settings: talk policy, exchanges after a human message, observers, ...
    config: dict[str, Any] = Field(default_factory=dict)
    #: ``SimulatedClock`` and turn-taking policy as JSON.
    clock: dict[str, Any] = Field(default_factory=dict)
    policy: dict[str, Any] = Field(default_factory=dict)
    targeted_talk: str = "room"
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    #: A branch forked from this world (a ``fork``): it lives beside it in the same channel.
    parent_id: str | None = None
    #: A branch's log starts with its parent's events 1 to ``fork_event``, shared, not copied.
    fork_event: int = Field(default=0, ge=0)
    #: Where a branch talks: its thread in the channel (or the name of its section on the console).
    thread: str | None = None


class PersonaRecord(BaseModel):
    """A persona in a world: its spec (TinyTroupe dict), platform identity and place in the order."""

    name: str
    spec: dict[str, Any]
    identity: dict[str, Any] = Field(default_factory=dict)
    position: int = 0


class OutboxStatus(str, Enum):
    #: Stored, verified, not yet posted (or posting was interrupted).
    PENDING = "pending"
    POSTED = "posted"
    #: Verification asked for a moderator's decision.
    HELD = "held"
    #: Verification refused it; never posted.
    BLOCKED = "blocked"
    #: Posting failed for good (the platform refused it); the reason is kept.
    FAILED = "failed"


class OutboxEntry(BaseModel):
    """One persona message on its way to a platform: stored first, posted second, marked third."""

    id: int | None = None
    world_id: str
    channel_key: str
    #: The world event (a TALK action) this message carries; unique per world.
    event_id: int
    persona: str
    identity: dict[str, Any] = Field(default_factory=dict)
    text: str
    thread: str | None = None
    status: OutboxStatus = OutboxStatus.PENDING
    #: The verification verdict (strictest check, reasons), for the audit trail.
    verdict: dict[str, Any] = Field(default_factory=dict)
    platform_message_id: str | None = None
    attempts: int = 0
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    posted_at: datetime | None = None


class UsageRow(BaseModel):
    persona: str | None = None
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class AuditRecord(BaseModel):
    """Who decided what, when: moderator decisions on held messages, flagged inputs, refusals."""

    id: int | None = None
    at: datetime = Field(default_factory=utcnow)
    world_id: str | None = None
    channel_key: str
    #: ``platform:user-id (name)`` of the person, or ``troupe`` for the bot's own decisions.
    actor: str
    #: ``approve``, ``edit``, ``reject``, ``held``, ``input_flagged``, ``persona_refused``, ...
    action: str
    outbox_id: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


#: Episodes a persona holds beyond what its prompts need (its recent past, for polls and drift
#: checks). Older ones, already folded into its summary, stay in storage: a restored persona is
#: loaded without them, and a running one lets them go once they are stored.
RECENT_EPISODES_HELD = 200
#: Events of a world's log it holds (its recent part, for transcripts, summaries and catching up);
#: the whole log stays in storage, for exports (``Storage.read_events``).
RECENT_EVENTS_HELD = 1000


class MemoryWrite(BaseModel):
    """A persona's memory as it changed since its last stored write.

    Episodes only ever get appended, so a write carries the new ones alone (``episodes``, the first
    of them at index ``first``) instead of the whole, ever-growing memory. The rest of ``state``
    replaces what was stored; its own episode list and its persona are not read (the persona is
    stored with the persona record).
    """

    state: AgentState
    first: int = Field(default=0, ge=0)
    episodes: list[Episode] = Field(default_factory=list)
    #: Whether the rest of ``state`` changed too. A persona that only heard something has new
    #: episodes and nothing else new: its stored row stays as it is.
    row: bool = True

    @classmethod
    def since(cls, state: AgentState, stored: int, *, row: bool = True) -> MemoryWrite:
        """The write for ``state`` when its first ``stored`` episodes are already stored (``row``:
        the rest of it changed too)."""
        if stored < state.episodic.first:
            raise ValueError(f"episodes {stored} to {state.episodic.first} are not held in memory to be stored")
        return cls.model_construct(state=state, first=stored, episodes=state.episodic.since(stored), row=row)


class Fence(BaseModel):
    """Who may write for a channel: the worker holding its lease, with the lease's fencing token.

    A write carrying a fence is refused (``StaleOwnerError``) unless the lease still names that
    worker with that token: a worker that lost a channel (paused, cut off, presumed dead) cannot
    write over what the channel's new owner does, even if it does not know yet that it lost it.
    """

    channel_key: str
    worker: str
    token: int


class Lease(BaseModel):
    """Which worker owns a channel's world, until when (the database's clock), and the fencing
    token that grows each time the channel changes hands."""

    channel_key: str
    worker: str
    token: int
    expires_at: datetime
    #: Past ``expires_at`` (by the database's clock) when it was read: anyone may take it.
    expired: bool = False


class WorkerRecord(BaseModel):
    """A running Troupe process sharing the database, as it last said it was alive."""

    id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    #: Its own lease term (``lease_s``), stored with each heartbeat: it counts as alive until that
    #: long after ``seen_at``, whatever term the reader runs with.
    lease_s: float = Field(gt=0)


class StepWrite(BaseModel):
    """Everything one world step (or one stimulus) changed, written in one transaction."""

    world_id: str
    #: When set, the write is refused unless this worker still holds the channel's lease.
    fence: Fence | None = None
    #: New fields for the world row (clock, policy, status, config, ...); empty leaves it alone.
    world: dict[str, Any] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)
    #: What changed in each persona's memory (new episodes, cognitive state), by persona name.
    memories: dict[str, MemoryWrite] = Field(default_factory=dict)
    outbox: list[OutboxEntry] = Field(default_factory=list)
    #: Usage totals per persona (``None`` for world-level calls), replaced whole.
    usage: list[UsageRow] = Field(default_factory=list)


class StoredWorld(BaseModel):
    """A world as loaded back: its record, personas in order, memories and its recent events.

    Each memory carries its persona as stored in the persona record, and holds its recent past
    (episodes before ``episodic.first`` stay in storage). ``events`` are the last
    ``RECENT_EVENTS_HELD`` of the log; ``events_first`` came before them (``read_events``).
    """

    record: WorldRecord
    personas: list[PersonaRecord]
    memories: dict[str, AgentState]
    events: list[Event]
    events_first: int = 0
    usage: list[UsageRow] = Field(default_factory=list)


class Storage(ABC):
    """Async repository. ``open`` creates or migrates the schema; ``close`` flushes and closes."""

    #: Called once, with the error, when the database turns out to be unusable (see
    #: ``StorageUnavailableError``); the application stops on it.
    on_unavailable: Callable[[StorageUnavailableError], object] | None = None
    #: Whether several processes may run on this database at once (channels then move between them).
    shared: bool = False

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # -- worlds and channels ------------------------------------------------------------------

    @abstractmethod
    async def create_world(self, record: WorldRecord, personas: Sequence[PersonaRecord] = ()) -> None:
        """Store a new world bound to its channel. Raises StorageError if the channel has one."""

    @abstractmethod
    async def world_for_channel(self, channel_key: str) -> WorldRecord | None:
        """The channel's active or paused world, if any."""

    @abstractmethod
    async def active_worlds(self) -> list[WorldRecord]:
        """Every world bound to a channel that is not stopped, for restoring them at start-up
        (branches are restored with their parent: ``branches``)."""

    @abstractmethod
    async def branches(self, world_id: str) -> list[WorldRecord]:
        """The branches forked from a world, stopped ones included, oldest first."""

    @abstractmethod
    async def all_worlds(self) -> list[WorldRecord]:
        """Every stored world, stopped ones included, oldest first (for listing and exports)."""

    @abstractmethod
    async def event_counts(self) -> dict[str, int]:
        """How many events each world has stored, by world id (worlds without events are absent)."""

    @abstractmethod
    async def load_world(self, world_id: str) -> StoredWorld:
        """The world with personas, memories, recent events and usage. Raises StorageError if unknown."""

    @abstractmethod
    async def read_events(self, world_id: str) -> list[Event]:
        """A world's whole event log, oldest first (for exports); a branch's starts with the
        events it shares with its parent."""

    @abstractmethod
    async def update_world(self, world_id: str, **fields: Any) -> None:
        """Change fields of the world row (status, config, clock, policy, name, situation)."""

    @abstractmethod
    async def stop_world(self, world_id: str) -> None:
        """Mark the world stopped and unbind its channel; its history is kept."""

    @abstractmethod
    async def reset_world(self, world_id: str, *, clock: dict[str, Any], policy: dict[str, Any]) -> int:
        """Forget the world's events and memories (personas stay) and reset its clock and policy.
        Refused (StorageError) for a world with branches: they share its events.

        Pending outbox entries of the world are kept: what was already said is still owed. Held
        ones are blocked: approved later, they would be posted into a conversation that never led
        to them. Returns how many were held.
        """

    # -- personas -----------------------------------------------------------------------------

    @abstractmethod
    async def save_persona(self, world_id: str, persona: PersonaRecord, memory: AgentState | None = None) -> None:
        """Add or replace a persona (and optionally its memory) in one transaction."""

    @abstractmethod
    async def remove_persona(self, world_id: str, name: str) -> int:
        """Remove a persona and its memory; its past events stay in the log. Its messages held for
        review are dropped (nobody may post as someone who left); returns how many."""

    # -- the step -----------------------------------------------------------------------------

    @abstractmethod
    async def write_step(self, write: StepWrite) -> list[OutboxEntry]:
        """Write a step atomically; returns its outbox entries with their ids.

        The write is read before the call first yields, so live objects in it (an agent's memory)
        may change while the call waits for its commit.

        Outbox entries are unique per (world, event): writing the same event's entry again returns
        the stored one instead of adding a second.
        """

    # -- outbox -------------------------------------------------------------------------------

    @abstractmethod
    async def pending_outbox(self, channel_key: str | None = None) -> list[OutboxEntry]:
        """PENDING entries, oldest first (all channels, or one)."""

    @abstractmethod
    async def outbox_entries(self, world_id: str) -> list[OutboxEntry]:
        """Every entry of a world, oldest first; a branch's include its parent's for the events they share."""

    @abstractmethod
    async def mark_posted(self, entry_id: int, platform_message_id: str) -> None: ...

    @abstractmethod
    async def posted_ids(self, channel_key: str, since: datetime) -> set[str]:
        """Platform ids of the channel's entries marked posted since ``since`` (the latest 1,000 at most)."""

    @abstractmethod
    async def mark_attempt(self, entry_id: int, error: str | None = None) -> None:
        """Count a posting attempt whose outcome is unknown; with ``error``, one that failed, and why."""

    @abstractmethod
    async def set_outbox_status(self, entry_id: int, status: OutboxStatus, error: str | None = None) -> None: ...

    @abstractmethod
    async def get_outbox(self, entry_id: int) -> OutboxEntry:
        """One entry. Raises StorageError if there is none with that id."""

    @abstractmethod
    async def held_outbox(self, channel_key: str) -> list[OutboxEntry]:
        """HELD entries of a channel, oldest first: the moderator's review queue."""

    @abstractmethod
    async def decide_outbox(
        self, entry_id: int, status: OutboxStatus, audit: AuditRecord, *, text: str | None = None,
        identity: dict[str, Any] | None = None,
    ) -> OutboxEntry:
        """Settle a held entry (new status, maybe new text and the identity it posts under) and record
        the decision, atomically.

        Raises StorageError if the entry is not HELD any more (someone decided first).
        """

    # -- audit --------------------------------------------------------------------------------

    @abstractmethod
    async def record_audit(self, record: AuditRecord) -> None: ...

    @abstractmethod
    async def audit_log(self, channel_key: str) -> list[AuditRecord]:
        """A channel's audit records, oldest first."""

    # -- platform adapters' own state ----------------------------------------------------------

    @abstractmethod
    async def adapter_state(self, platform: str, key: str) -> dict[str, Any] | None:
        """A value an adapter stored (a channel's webhook, say), or None."""

    @abstractmethod
    async def set_adapter_state(self, platform: str, key: str, value: dict[str, Any] | None) -> None:
        """Store (or, with None, forget) a value of an adapter's."""

    @abstractmethod
    async def take_adapter_state(self, platform: str, key: str) -> dict[str, Any] | None:
        """Forget a value and return it, at once: of several takers (in any process) one gets it."""

    @abstractmethod
    async def forget_stale_adapter_state(self, platform: str, prefix: str, stored_before: datetime) -> None:
        """Forget the values whose key starts with ``prefix`` that were last stored before ``stored_before``."""

    # -- inbox --------------------------------------------------------------------------------

    @abstractmethod
    async def inbox_add(self, channel_key: str, event: dict[str, Any]) -> int:
        """Keep a message received but not yet handled; returns its inbox id."""

    @abstractmethod
    async def inbox_done(self, entry_id: int) -> None:
        """The message is handled (heard, or found not to concern any world)."""

    @abstractmethod
    async def inbox_pending(self, channel_key: str | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        """Messages received but not yet handled (of one channel, or all): (id, channel key, event),
        oldest first."""

    # -- channel ownership: which worker runs which channel's world ------------------------------

    @abstractmethod
    async def take_lease(self, channel_key: str, worker: str, ttl_s: float) -> int | None:
        """Hold ``channel_key`` for ``ttl_s`` seconds more; returns the fencing token, or None when
        another worker holds an unexpired lease on it. Renewing one's own lease keeps its token;
        taking a free or expired one gives a token greater than any before."""

    @abstractmethod
    async def renew_leases(self, worker: str, ttl_s: float) -> dict[str, int]:
        """Extend every lease ``worker`` still holds; returns them (channel key: token). A lease
        missing from the answer was taken by another worker after it expired."""

    @abstractmethod
    async def release_leases(self, worker: str, channel_keys: Sequence[str] | None = None) -> None:
        """Give up leases at once (all of ``worker``'s, or those named), for others to take."""

    @abstractmethod
    async def leases(self) -> list[Lease]:
        """Every channel lease, expired ones included, by channel."""

    @abstractmethod
    async def worker_alive(self, worker: WorkerRecord) -> None:
        """Say that ``worker`` runs (its ``seen_at`` becomes the database's now), with its lease term."""

    @abstractmethod
    async def workers(self) -> list[WorkerRecord]:
        """The workers alive: each said it runs within its own lease term (``WorkerRecord.lease_s``),
        by the database's clock, so every reader counts the same workers whatever its own term."""

    @abstractmethod
    async def worker_gone(self, worker: str) -> None:
        """Forget a worker that stopped."""

    # -- wake-ups between workers ---------------------------------------------------------------

    async def notify(self, topic: str, payload: str) -> None:
        """Wake whoever listens to ``topic``: in this process here; a shared database's backend
        reaches every worker on it."""
        for callback in list(self._listeners().get(topic, ())):
            callback(payload)

    async def listen(self, topic: str, callback: Callable[[str], object]) -> None:
        """Call ``callback(payload)`` on every ``notify`` of ``topic`` from now on."""
        self._listeners().setdefault(topic, []).append(callback)

    def _listeners(self) -> dict[str, list[Callable[[str], object]]]:
        listeners = self.__dict__.get("_topic_listeners")
        if listeners is None:
            listeners = self.__dict__["_topic_listeners"] = {}
        return listeners

    # -- usage --------------------------------------------------------------------------------

    @abstractmethod
    async def usage(self, world_id: str) -> list[UsageRow]: ...
