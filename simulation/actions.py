"""What an agent does in one turn, as the single structured object the model returns.

One agent turn is one model call: the reply carries the agent's thoughts, its words and its updated
cognitive state together, instead of one call per action.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field, field_validator, model_validator


class ActionType(str, Enum):
    """Kinds of action. New kinds can be added without changing the turn's shape."""

    THINK = "THINK"
    TALK = "TALK"
    DONE = "DONE"


class Action(BaseModel):
    type: ActionType
    content: str = ""
    #: For TALK: the name of the one person addressed, or None to speak to everyone.
    target: str | None = None

    @field_validator("content")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class CognitiveState(BaseModel):
    """What the agent is after, what it attends to and how it feels, in its own words."""

    goals: str = ""
    attention: str = ""
    emotions: str = ""


class AgentTurn(BaseModel):
    """The whole of one agent turn: actions in order, then the updated cognitive state."""

    actions: list[Action] = Field(min_length=1)
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
