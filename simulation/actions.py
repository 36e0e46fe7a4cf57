"""What an agent does in one turn, as the single structured object the model returns.

One agent turn is one model call: the reply carries the agent's thoughts, its words and its updated
cognitive state together, instead of one call per action.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import BaseModel, WithJsonSchema, field_validator, model_validator


class ActionType(str, Enum):
    """Kinds of action. New kinds can be added without changing the turn's shape."""

    THINK = "THINK"
    TALK = "TALK"
    DONE = "DONE"


class Action(BaseModel):
    # A model is offered THINK and TALK only: the end of the list ends the turn. DONE is still read
    # (TinyTroupe writes it, and a model told of it may send it).
    type: Annotated[ActionType, WithJsonSchema({"enum": ["THINK", "TALK"], "type": "string"})]
    content: str = ""
    #: For TALK: the name of the one person addressed, or None to speak to everyone (a model sends
    #: "" for everyone: a plain string costs fewer prompt tokens than a nullable one).
    target: Annotated[str | None, WithJsonSchema({"type": "string"})] = None

    @field_validator("content")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("target")
    @classmethod
    def _everyone(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value


class CognitiveState(BaseModel):
    """What the agent is after, what it attends to and how it feels, in its own words."""

    goals: str = ""
    attention: str = ""
    emotions: str = ""


class AgentTurn(BaseModel):
    """The whole of one agent turn: actions in order, then the updated cognitive state."""

    actions: list[Action]
    cognitive_state: CognitiveState

    @model_validator(mode="after")
    def _not_empty(self) -> AgentTurn:
        # A person always at least thinks: a turn that neither thinks nor talks before its DONE is
        # a model that did not take the turn (small models open with DONE), so it is asked again.
        for action in self.actions:
            if action.type is ActionType.DONE:
                break
            if action.content:
                return self
        raise ValueError("the turn has no THINK or TALK with content before DONE")

    def meaningful_actions(self) -> list[Action]:
        """Actions worth recording: DONE and empty ones carry nothing."""
        return [a for a in self.actions if a.type is not ActionType.DONE and a.content]
