"""Who acts in a step: everyone, only the addressed, round-robin, the moderator's pick, the model's pick.

Policies are small serialisable models so a saved world resumes with the same rotation or picks.
A policy sees the world only as a ``Room`` (who is in it, what was said, the model), so this module
needs nothing of the world's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Literal, Protocol, get_args

from pydantic import BaseModel, Field, TypeAdapter

from config.turn_taking import POLICY_NAMES
from simulation.agent import TinyPerson
from simulation.llm.base import Attribution, ChatRequest, LanguageModel, Message
from simulation.untrusted import READ_RULE


class Room(Protocol):
    """What a policy reads of the world it chooses speakers in."""

    id: str
    model: LanguageModel

    @property
    def agents(self) -> list[TinyPerson]: ...

    def find(self, name: str) -> TinyPerson | None: ...

    def transcript(self, last: int | None = None, *, include_thoughts: bool = False, quoted: bool = False) -> str: ...


class PicksRefusedError(ValueError):
    """The moderator picked a speaker, but this policy does not take picks."""


class _Policy(BaseModel):
    """What every policy answers besides ``select``; by default, nothing to do."""

    kind: str

    def pick(self, names: list[str]) -> None:
        """The moderator chose ``names`` to speak next."""
        raise PicksRefusedError(f"picking speakers needs the moderator policy (this world uses {self.kind!r})")

    def step_taken(self, room: Room, actors: list[TinyPerson], speakers: set[str]) -> None:
        """After a step of the actors this policy chose: ``speakers`` are those who said something."""


class EveryonePolicy(_Policy):
    """Every agent with something new to react to acts, concurrently."""

    kind: Literal["everyone"] = "everyone"

    async def select(self, room: Room) -> list[TinyPerson]:
        return [a for a in room.agents if a.has_unread()]


class AddressedPolicy(_Policy):
    """Only agents addressed by target, name or @mention act; a message to no one gets no answer."""

    kind: Literal["addressed"] = "addressed"

    async def select(self, room: Room) -> list[TinyPerson]:
        return [a for a in room.agents if a.has_unread() and a.addressed_by(a.unread())]


class RoundRobinPolicy(_Policy):
    """One agent a step, taking turns in order among those with something new.

    An agent whose turn was only a thought keeps its place, once: it goes first the next time it has
    something new. Else, when a message and its exchanges take as many steps as there are agents (or a
    divisor of that), the same agents always answer people and the others only each other's remarks,
    which they may let pass in silence every time.
    """

    kind: Literal["round_robin"] = "round_robin"
    #: Where the next turn starts looking: after the last agent who took a turn, or at one that kept its place.
    cursor: int = 0
    #: The agent whose last turn was only a thought, and so is first again; None after a second pass.
    kept_place: str | None = None

    async def select(self, room: Room) -> list[TinyPerson]:
        agents = room.agents
        for offset in range(len(agents)):
            index = (self.cursor + offset) % len(agents)
            if agents[index].has_unread():
                self.cursor = (index + 1) % len(agents)
                return [agents[index]]
        return []

    def step_taken(self, room: Room, actors: list[TinyPerson], speakers: set[str]) -> None:
        """An agent whose turn was only a thought keeps its place, unless it had kept it already (an
        agent that never speaks must not hold up the others)."""
        for agent in actors:
            if agent.name in speakers or self.kept_place == agent.name or agent not in room.agents:
                self.kept_place = None
                continue
            self.kept_place = agent.name
            self.cursor = room.agents.index(agent)


class ModeratorPolicy(_Policy):
    """Only the agents the moderator picked (``pick``) act, once per pick.

    A picked agent with nothing new to answer keeps its pick until it has: picked before a message,
    it answers that message, instead of spending its turn on nothing.
    """

    kind: Literal["moderator"] = "moderator"
    picks: list[str] = Field(default_factory=list)

    def pick(self, names: list[str]) -> None:
        for name in names:
            if name not in self.picks:  # picked twice, it still takes one turn
                self.picks.append(name)

    async def select(self, room: Room) -> list[TinyPerson]:
        picked = [agent for name in self.picks if (agent := room.find(name)) is not None]
        self.picks = [agent.name for agent in picked if not agent.has_unread()]
        return [agent for agent in picked if agent.has_unread()]


class SpeakerChoice(BaseModel):
    next_speaker: str = Field(description="Exactly one of the candidate names")
    reason: str = Field(description="Why this person speaks next, one sentence")


class ModelPolicy(_Policy):
    """The model reads the recent conversation and picks the one agent who speaks next."""

    kind: Literal["model"] = "model"

    async def select(self, room: Room) -> list[TinyPerson]:
        candidates = [a for a in room.agents if a.has_unread()]
        if len(candidates) <= 1:
            return candidates
        names = [a.name for a in candidates]
        recent = room.transcript(last=12, quoted=True)
        request = ChatRequest(
            messages=[
                Message(
                    role="system",
                    content=(
                        "You direct a group conversation. Pick who speaks next so the conversation "
                        "stays natural: whoever was addressed, or has the most relevant stake. " + READ_RULE
                    ),
                ),
                Message(
                    role="user",
                    content=f"Candidates: {', '.join(names)}\nRecent conversation:\n{recent}",
                ),
            ],
            attribution=Attribution(world=room.id),
            task="pick_speaker",
            context={"candidates": names, "transcript": recent},
        )
        choice, _ = await room.model.structured(request, SpeakerChoice)
        picked = room.find(choice.next_speaker)
        if picked is None or picked not in candidates:
            # An invented or absent name: fall back to a stable choice rather than stalling.
            digest = hashlib.sha256(recent.encode()).digest()[0]
            picked = candidates[digest % len(candidates)]
        return [picked]


TurnTakingPolicy = Annotated[
    EveryonePolicy | AddressedPolicy | RoundRobinPolicy | ModeratorPolicy | ModelPolicy,
    Field(discriminator="kind"),
]
POLICY_ADAPTER: TypeAdapter[TurnTakingPolicy] = TypeAdapter(TurnTakingPolicy)

#: Each policy's class by its name (its ``kind``); the names are those in ``config.turn_taking``.
POLICY_CLASSES: dict[str, Callable[[], TurnTakingPolicy]] = {
    cls.model_fields["kind"].default: cls for cls in get_args(get_args(TurnTakingPolicy)[0])
}


def policy_name(text: str) -> str | None:
    """The policy ``text`` names (any case; ``round-robin`` for ``round_robin``), or None."""
    name = text.strip().lower().replace("-", "_")
    return name if name in POLICY_NAMES else None


def make_policy(name: str) -> TurnTakingPolicy:
    known = policy_name(name)
    if known is None:
        raise ValueError(f"unknown turn-taking policy {name!r}; choose one of: {', '.join(POLICY_NAMES)}")
    return POLICY_CLASSES[known]()
