"""The world's ordered event log: every stimulus and every action, with who, when and at which step.

Adapters stream these to platforms; exports and summaries read them; a saved world carries them.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class EventKind(str, Enum):
    #: Something said to or shown to agents (a broadcast, a person's message, a targeted talk).
    STIMULUS = "stimulus"
    #: Something an agent did (TALK, THINK, ...).
    ACTION = "action"
    #: A world-level notice: an agent could not answer, the budget stopped the world, ...
    NOTICE = "notice"


class Event(BaseModel):
    id: int
    kind: EventKind
    step: int
    time: datetime
    #: Who produced it: an agent's name, or a human / "moderator" for stimuli from outside.
    source: str
    #: STIMULUS: CONVERSATION, VISUAL, THOUGHT, GOAL...; ACTION: TALK, THINK...; NOTICE: a code.
    type: str
    content: str
    #: For targeted talk: who it was addressed to. For stimuli: who received it.
    target: str | None = None
    recipients: list[str] = Field(default_factory=list)
    #: The model that produced an action (labels demo-model output).
    model: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
