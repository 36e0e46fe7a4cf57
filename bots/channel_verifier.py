"""The channel's verdict on words shown in it: a persona's posts, and its words quoted by the bot."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adapters.base import ChannelRef
from bots.services import Services
from bots.session_config import SessionConfig
from bots.storage import WorldRecord
from bots.verification import Verdict, VerdictAction, VerificationContext
from simulation.world import TinyWorld

log = logging.getLogger(__name__)


class ChannelVerifier:
    def __init__(self, services: Services, channel: ChannelRef, record: WorldRecord, config: SessionConfig) -> None:
        self._services = services
        self._channel = channel
        self._record = record
        self._config = config

    async def verdict(self, world: TinyWorld, text: str, persona: str, *, recent: list[str], max_length: int) -> Verdict:
        """The channel's verdict on ``text`` as ``persona``'s; a check that errors holds it (fail closed)."""
        agent = world.find(persona) if persona else None
        # Of the bot's own values, already valid. Built at every post; and unvalidated, the persona's
        # spec stays the agent's own object, which the verification process recognises at once.
        # Every field is given: a default filled in by ``model_construct`` costs more than the rest.
        context = VerificationContext.model_construct(
            platform=self._channel.platform,
            channel_key=self._record.channel_key,
            world_id=self._record.id,
            world_name=world.name,
            persona=persona,
            persona_spec=agent.persona_data if agent else {},
            recent=recent,
            max_length=max_length,
            system_prompt=None,
            phone_regions=[],
        )
        try:
            verifier = await self._services.verifier_for(self._config, self._record.channel_key)
            return await verifier.verify(text, context)
        except Exception as error:
            log.exception("verification failed for a message of %s", persona or "the bot")
            return Verdict(action=VerdictAction.HOLD, text=text, reasons=[f"verification error: {error}"])

    async def vet(self, world: TinyWorld, text: str, persona: str | None = None) -> tuple[str, str | None]:
        """``text`` as it may be shown (redactions kept) and, when a check would hold or block it,
        why: a card that withholds a persona's words says whose they were and why."""
        verdict = await self.verdict(world, text, persona or "", recent=[], max_length=100_000)
        if verdict.action.value in ("hold", "block"):
            return text, withheld_by(verdict)
        return verdict.text, None


def withheld_by(verdict: Verdict | Mapping[str, Any]) -> str:
    """Why words were withheld, fit to be shown where they would have been: the checks that stopped
    them, not what those checks found, which quotes the very words (a threat, a recited prompt) or,
    from a model judge, is a model's own words. A verifier that names no checks gives its reasons.
    ``verdict`` may be a stored one (an outbox entry's)."""
    found = verdict.model_dump() if isinstance(verdict, Verdict) else verdict
    stopped: dict[str, list[str]] = {"blocked": [], "held": []}
    for check in found.get("checks") or []:
        action = check.get("action")
        if action in ("block", "hold"):
            stopped["blocked" if action == "block" else "held"].append(str(check.get("check")))
    if not any(stopped.values()):
        return "; ".join(found.get("reasons") or []) or str(found.get("action") or "withheld")
    return "; ".join(f"{what} by the {' and '.join(names)} check{'s' if len(names) > 1 else ''}"
                     for what, names in stopped.items() if names)
