"""Who may join a channel as a persona: a name that passes for nobody else and shows as plain
words, and a description that asks for no malicious behaviour (except in a red-team channel)."""

from __future__ import annotations

import asyncio

from adapters.base import ChannelRef, literal
from bots.persona_identity import Identities
from bots.persona_names import name_refusal
from bots.services import Services
from bots.session_config import SessionConfig
from bots.storage import AuditRecord, WorldRecord
from bots.verification import VerdictAction, verify_text
from bots.verification.api import pipeline_for
from bots.verification.personas import check_persona_spec
from simulation.persona import PersonaSpec


class PersonaRefusedError(ValueError):
    """A persona whose description asks for malicious behaviour, in a channel that is not red-team."""


class PersonaAdmission:
    def __init__(self, services: Services, channel: ChannelRef, record: WorldRecord, config: SessionConfig,
                 identities: Identities) -> None:
        self._services = services
        self._channel = channel
        self._record = record
        self._config = config
        self._identities = identities

    async def admit(self, spec: PersonaSpec) -> bool:
        """Whether ``spec`` joins only because the channel is red-team; raises ``PersonaRefusedError``
        (and records why in the audit log) when it may not join."""
        refusal = await self._name_refusal(spec.name)
        if refusal is not None:
            await self._record_refusal(spec.name, [refusal])
            raise PersonaRefusedError(f"Cannot add this persona: {refusal}")
        check = check_persona_spec(spec.to_tinytroupe_dict(), self._config.safety_mode)
        if not check.allowed:
            await self._record_refusal(spec.name, check.reasons)
            raise PersonaRefusedError(
                f"{literal(spec.name)} cannot join: " + "; ".join(check.reasons) + ". Personas that harass, deceive "
                "or attack the channel run only in a channel a moderator switched to red-team testing "
                "(`safety red-team`)."
            )
        return check.red_team

    async def _name_refusal(self, name: str) -> str | None:
        """Why a persona may not be called ``name`` in this channel, or None.

        The name must not pass for the bot, the platform or its staff, must show as plain words, and
        must pass the channel's checks of persona words (links, personal data, toxicity…): it is
        shown in the bot's own messages.
        """
        refusal = name_refusal(name, *self._identities.names_taken())
        if refusal is not None:
            return refusal
        # The offline checks of the channel's policy; the model-based judge is not asked about a name.
        policy = self._services.policy_for(self._config, self._record.channel_key)
        policy = policy.merged({"judge": {"enabled": False, "moderation": False}})
        await asyncio.to_thread(pipeline_for, policy)  # built off the loop the first time
        verdict = await verify_text(name, None, policy, platform=self._channel.platform)
        if verdict.action is VerdictAction.PASS:
            return None
        reasons = "; ".join(verdict.reasons) or verdict.action.value
        return (f"the persona name “{literal(name)}” is shown in the channel, and the checks on persona words "
                f"refuse it ({literal(reasons)}). Give the persona a name that is just a name.")

    async def _record_refusal(self, name: str, reasons: list[str]) -> None:
        await self._services.storage.record_audit(
            AuditRecord(
                world_id=self._record.id,
                channel_key=self._record.channel_key,
                actor="troupe",
                action="persona_refused",
                detail={"persona": name, "reasons": reasons},
            )
        )
