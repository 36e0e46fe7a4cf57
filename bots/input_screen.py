"""What people write, made safe for the personas to hear: cut to size, secrets removed, attempts to
instruct the personas marked as untrusted words."""

from __future__ import annotations

import functools

from adapters.base import ChannelRef, UserRef, literal
from bots.moderator_notices import ModeratorNotices
from bots.services import Services
from bots.storage import AuditRecord, WorldRecord
from bots.verification.checks.injection import inspect_input, quote_untrusted
from bots.verification.checks.secrets import SecretsCheck
from bots.verification.checks.secrets import redact as redact_secrets


@functools.cache
def _secrets() -> SecretsCheck:
    """Finds credentials in what people write; made on first use (its detectors take a while to load,
    and the application loads them off the loop at start, with the verifier)."""
    return SecretsCheck()


class InputScreen:
    def __init__(self, services: Services, channel: ChannelRef, record: WorldRecord, notices: ModeratorNotices) -> None:
        self._services = services
        self._channel = channel
        self._record = record
        self._notices = notices

    async def screen(self, user: UserRef, text: str) -> str:
        """Cut oversized messages; mark attempts to instruct the personas as untrusted content.

        A flagged message still reaches the personas (it is part of the conversation), but wrapped
        so the model reads it as something said, never as instructions; the moderator is told.
        """
        limit = self._services.settings.max_message_chars
        if len(text) > limit:
            await self._notices.tell(
                user,
                f"Your message was {len(text):,} characters long; the personas heard its first {limit:,} "
                "(`bot.max_message_chars`). Send the rest in another message, or raise that setting.")
            text = text[:limit] + " […]"
        text = await self._redact_secrets(user, text)
        finding = inspect_input(text)
        if finding is None:
            return text
        await self._services.storage.record_audit(
            AuditRecord(
                world_id=self._record.id,
                channel_key=self._record.channel_key,
                actor=f"{self._channel.platform}:{user.id} ({user.name})",
                action="input_flagged",
                detail={"kind": finding.kind, "reason": finding.reason, "text": text[:500]},
            )
        )
        await self._notices.tell_moderator(
            f"{_whose(user)} message looks like an attempt to instruct the personas ({finding.reason}). "
            "They hear it as conversation, marked untrusted, and will not follow it.")
        return quote_untrusted(text)

    async def _redact_secrets(self, user: UserRef, text: str) -> str:
        """A key or token someone pasted is removed before the world (prompts, storage, exports) sees it."""
        found = _secrets().find(text)
        if not found:
            return text
        await self._notices.tell_moderator(
            f"{_whose(user)} message contained what looks like a secret (a key, token or password); the "
            "personas heard it with the secret removed. Consider rotating it: it was posted in the channel.")
        return redact_secrets(text, found)


def _whose(user: UserRef) -> str:
    """"Your" for the console's user (called "you"), else "Ana's": the name as written, since a guest
    chooses it (a link or a mention in it does nothing in the moderator's notice)."""
    return "Your" if user.name.casefold() == "you" else f"{literal(user.name)}'s"
