"""The one ``verify`` step between a persona's words and the outbox.

A verdict is ``pass``, ``rewrite`` (post the new text), ``hold`` (a moderator decides) or ``block``
(never posted). Verdicts are stored with the outbox entry, so every decision is auditable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from config.verification import country_codes


class VerdictAction(str, Enum):
    PASS = "pass"
    REWRITE = "rewrite"
    HOLD = "hold"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def postable(self) -> bool:
        return self in (VerdictAction.PASS, VerdictAction.REWRITE)


_SEVERITY = {VerdictAction.PASS: 0, VerdictAction.REWRITE: 1, VerdictAction.HOLD: 2, VerdictAction.BLOCK: 3}


class VerificationContext(BaseModel):
    """What a check may look at besides the text."""

    platform: str = "unknown"
    channel_key: str = ""
    world_id: str = ""
    world_name: str = ""
    persona: str = ""
    persona_spec: dict[str, Any] = Field(default_factory=dict)
    #: The recent conversation, oldest first, as ``Name: text`` lines.
    recent: list[str] = Field(default_factory=list)
    max_length: int = 2000
    #: The system prompt the persona was given, when known, so leaks of it can be recognised.
    system_prompt: str | None = None
    #: Countries (ISO 3166 codes, the channel's own first) whose phone numbers count without a
    #: country code when written the way that country writes them; empty: a default list.
    phone_regions: list[str] = Field(default_factory=list)

    @field_validator("phone_regions", mode="before")
    @classmethod
    def _regions(cls, value: Any) -> Any:
        return country_codes(value)


class CheckResult(BaseModel):
    """One check's answer about one message."""

    check: str
    action: VerdictAction = VerdictAction.PASS
    reason: str = ""
    #: How sure the check is (0–1); thresholds in the channel policy apply to it.
    score: float = 0.0
    #: For ``rewrite``: the text to post instead.
    text: str | None = None


class Check(ABC):
    """One verification check. Offline checks must be fast (well under 10 ms per message)."""

    #: Short stable name used in configuration, audit records and reasons.
    name: str = "check"
    #: Whether the check calls a model (it then gets the longer model timeout).
    uses_model: bool = False

    @abstractmethod
    async def run(self, text: str, context: VerificationContext) -> CheckResult: ...


class Verdict(BaseModel):
    action: VerdictAction
    #: The text to post (the original, or the rewritten one).
    text: str
    reasons: list[str] = Field(default_factory=list)
    #: Each check's own answer, for the audit trail.
    checks: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def decision(self) -> str:
        """``pass``, ``rewrite``, ``hold`` or ``block``: the stable name used by evaluations."""
        return self.action.value


class Verifier(ABC):
    @abstractmethod
    async def verify(self, text: str, context: VerificationContext) -> Verdict: ...


class PassThroughVerifier(Verifier):
    """Lets everything through unchanged; the verdict still records that nothing was checked."""

    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        return Verdict(action=VerdictAction.PASS, text=text, checks=[{"check": "pass-through", "action": "pass"}])
