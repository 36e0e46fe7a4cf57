"""Who acts in a step: everyone, only the addressed, round-robin, the moderator's pick, the model's pick.

Policies are small serialisable models so a saved world resumes with the same rotation or picks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal, Union, get_args

from pydantic import BaseModel, Field, TypeAdapter

from config.turn_taking import POLICY_NAMES
from simulation.llm.base import Attribution, ChatRequest, Message
from simulation.untrusted import READ_RULE

if TYPE_CHECKING:
    from simulation.agent import TinyPerson
    from simulation.world import TinyWorld


class EveryonePolicy(BaseModel):
    """Every agent with something new to react to acts, concurrently."""

    kind: Literal["everyone"] = "everyone"

    async def select(self, world: TinyWorld) -> list[TinyPerson]:
        return [a for a in world.agents if a.has_unread()]


class AddressedPolicy(BaseModel):
    """Only agents addressed by target, name or @mention act; a message to no one gets no answer."""

    kind: Literal["addressed"] = "addressed"

    async def select(self, world: TinyWorld) -> list[TinyPerson]:
        return [a for a in world.agents if a.has_unread() and a.addressed_by(a.unread())]


class RoundRobinPolicy(BaseModel):
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

    async def select(self, world: TinyWorld) -> list[TinyPerson]:
        agents = world.agents
        for offset in range(len(agents)):
            index = (self.cursor + offset) % len(agents)
            if agents[index].has_unread():
                self.cursor = (index + 1) % len(agents)
                return [agents[index]]
        return []

    def turn_taken(self, world: TinyWorld, agent: TinyPerson, spoke: bool) -> None:
        """After ``agent``'s turn: one that only thought keeps its place, unless it had kept it already
        (an agent that never speaks must not hold up the others)."""
        if spoke or self.kept_place == agent.name or agent not in world.agents:
            self.kept_place = None
            return
        self.kept_place = agent.name
        self.cursor = world.agents.index(agent)


class ModeratorPolicy(BaseModel):
    """Only the agents the moderator picked (``world.pick``) act, once per pick.

    A picked agent with nothing new to answer keeps its pick until it has: picked before a message,
    it answers that message, instead of spending its turn on nothing.
    """

    kind: Literal["moderator"] = "moderator"
    picks: list[str] = Field(default_factory=list)

    async def select(self, world: TinyWorld) -> list[TinyPerson]:
        picked = [agent for name in self.picks if (agent := world.find(name)) is not None]
        self.picks = [agent.name for agent in picked if not agent.has_unread()]
        return [agent for agent in picked if agent.has_unread()]


class SpeakerChoice(BaseModel):
    next_speaker: str = Field(description="Exactly one of the candidate names")
    reason: str = Field(description="Why this person speaks next, one sentence")


class ModelPolicy(BaseModel):
    """The model reads the recent conversation and picks the one agent who speaks next."""

    kind: Literal["model"] = "model"

    async def select(self, world: TinyWorld) -> list[TinyPerson]:
        candidates = [a for a in world.agents if a.has_unread()]
        if len(candidates) <= 1:
            return candidates
        names = [a.name for a in candidates]
        recent = world.transcript(last=12, quoted=True)
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
            attribution=Attribution(world=world.id),
            task="pick_speaker",
            context={"candidates": names, "transcript": recent},
        )
        choice, _ = await world.model.structured(request, SpeakerChoice)
        picked = world.find(choice.next_speaker)
        if picked is None or picked not in candidates:
            # An invented or absent name: fall back to a stable choice rather than stalling.
            digest = hashlib.sha256(recent.encode()).digest()[0]
            picked = candidates[digest % len(candidates)]
        return [picked]


TurnTakingPolicy = Annotated[
    Union[EveryonePolicy, AddressedPolicy, RoundRobinPolicy, ModeratorPolicy, ModelPolicy],
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
