"""A channel's own settings, stored with its world: turn-taking, observers, safety mode, checks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from adapters.base import UserRef


class SessionConfig(BaseModel):
    """A channel's own settings, stored with its world."""

    policy: str = "everyone"
    exchanges: int = 1
    #: Persona name -> users who privately receive its thoughts.
    observers: dict[str, list[UserRef]] = Field(default_factory=dict)
    #: Who started the world; hears notices (a persona could not answer, the budget ran out).
    moderator: UserRef | None = None
    channel_name: str | None = None
    #: ``red-team`` lets personas with malicious descriptions run, every post of theirs labelled.
    safety_mode: Literal["team", "red-team"] = "team"
    #: Changes to the verification policy for this channel only.
    verification: dict[str, Any] = Field(default_factory=dict)
    #: Personas admitted only because the channel is in red-team mode.
    red_team_personas: list[str] = Field(default_factory=list)
    #: The name of the branch this world is (forked from the channel's world): its posts carry it.
    branch: str | None = None
