"""The channel's verdict on words shown in it: a persona's posts, and its words quoted by the bot."""

from __future__ import annotations

import logging

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
            return text, "; ".join(verdict.reasons) or verdict.action.value
        return verdict.text, None
