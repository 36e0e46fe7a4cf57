"""Storytelling: the next beat of a simulation, chosen to serve its purpose, and put into the world.

Left alone, personas drift or go quiet; a research scenario needs events that push the
conversation towards what it is meant to explore (a price rise, a competitor's launch, a question
to the quietest persona). The storyteller proposes one beat from the purpose and the recent
events; ``inject`` delivers it through the world's own stimuli, so it is logged and heard like any
other event.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from simulation.events import Event, EventKind
from simulation.llm.base import Attribution, ChatRequest, LanguageModel, Message
from simulation.untrusted import READ_RULE
from simulation.world import TinyWorld

__all__ = ["StaleBeatError", "StoryBeat", "Storyteller"]

#: Recent conversation lines the storyteller reads.
RECENT_LINES = 20


class StaleBeatError(ValueError):
    """A beat the world has moved past: nobody is left to hear it, or it is addressed to a persona
    who has left (its words are for them, so it is not given to the others instead)."""


class StoryBeat(BaseModel):
    """One intervention: something said to the group (or one persona), or something shown."""

    kind: Literal["message", "scene"] = Field(
        description="'message': something said in the conversation; 'scene': something the personas see or that happens"
    )
    content: str = Field(description="The words said or the scene described, as the personas will receive it")
    target: str | None = Field(description="A persona's name to address one person, or null for everyone")
    rationale: str = Field(description="Why this beat serves the purpose now, one sentence")
    #: Who says a message beat in the world's log.
    source: str = "narrator"

    @field_validator("content")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a beat needs content")
        return value.strip()


class _BeatDraft(BaseModel):
    kind: Literal["message", "scene"] = Field(description=StoryBeat.model_fields["kind"].description)
    content: str = Field(description=StoryBeat.model_fields["content"].description)
    target: str | None = Field(description=StoryBeat.model_fields["target"].description)
    rationale: str = Field(description=StoryBeat.model_fields["rationale"].description)

    @field_validator("content")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a beat needs content")
        return value.strip()


_SYSTEM = (
    "You are the storyteller of a simulation with simulated personas. Propose the next beat: one "
    "message to the group or to one persona, or one scene they see, that moves the conversation "
    "towards the purpose, follows naturally from the recent events and does not repeat them. Keep it "
    "short and concrete. " + READ_RULE
)


class Storyteller:
    def __init__(self, model: LanguageModel, purpose: str, *, source: str = "narrator") -> None:
        if not purpose.strip():
            raise ValueError("a storyteller needs a purpose")
        self.model = model
        self.purpose = purpose.strip()
        self.source = source

    async def propose(self, world: TinyWorld) -> StoryBeat:
        """The next beat for ``world``; a target that is not one of its personas becomes everyone."""
        recent = world.transcript(last=RECENT_LINES, quoted=True)
        names = [a.name for a in world.agents]
        said_by = {n: sum(1 for e in world.events if e.source == n and e.type == "TALK") for n in names}
        request = ChatRequest(
            messages=[
                Message(role="system", content=_SYSTEM),
                Message(
                    role="user",
                    content="\n".join(
                        [
                            f"Purpose: {self.purpose}",
                            *([f"Situation: {world.situation}"] if world.situation else []),
                            "Personas (messages so far): " + ", ".join(f"{n} ({c})" for n, c in said_by.items()),
                            "Recent events:",
                            recent or "(nothing yet)",
                        ]
                    ),
                ),
            ],
            attribution=Attribution(world=world.id),
            task="story_beat",
            context={
                "purpose": self.purpose,
                "personas": names,
                "said_by": said_by,
                "recent": [
                    {"source": e.source, "type": e.type, "content": e.content}
                    for e in world.events[-RECENT_LINES:]
                    if e.kind is not EventKind.NOTICE
                ],
            },
        )
        draft, _ = await self.model.structured(request, _BeatDraft, schema_name="StoryBeat")
        if _repeats(draft.content, world):
            # A beat the personas already heard moves nothing; ask once for another.
            retry = request.model_copy(
                update={
                    "messages": [
                        *request.messages,
                        Message(role="assistant", content=draft.model_dump_json()),
                        Message(role="user", content="That beat repeats an earlier event. Propose a different one."),
                    ],
                    "context": {**request.context, "repeated": draft.content},
                }
            )
            draft, _ = await self.model.structured(retry, _BeatDraft, schema_name="StoryBeat")
        target = world.find(draft.target) if draft.target else None
        return StoryBeat(
            kind=draft.kind,
            content=draft.content,
            target=target.name if target is not None else None,
            rationale=draft.rationale.strip(),
            source=self.source,
        )

    async def inject(self, world: TinyWorld, beat: StoryBeat) -> Event:
        """Deliver ``beat`` as a world stimulus: a scene is shown to all, a message said to all or one.

        Raises ``StaleBeatError`` when the world has no personas, or none by the beat's target.
        """
        if not world.agents:
            raise StaleBeatError(f"“{world.name}” has no personas to hear the beat")
        if beat.target and world.find(beat.target) is None:
            raise StaleBeatError(f"the beat is addressed to {beat.target}, who has left “{world.name}”")
        if beat.kind == "scene":
            return await world.show(beat.content)
        if beat.target:
            return await world.talk_to(beat.target, beat.content, source=beat.source)
        return await world.broadcast(beat.content, source=beat.source)


def _repeats(content: str, world: TinyWorld) -> bool:
    key = " ".join(content.casefold().split())
    return any(
        " ".join(e.content.casefold().split()) == key
        for e in world.events[-RECENT_LINES:]
        if e.kind is not EventKind.NOTICE
    )
