"""What every channel session shares (storage, verification, outbox, model, the platforms' adapters),
and how a session makes a platform call whose failure must not stop it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.base import Adapter, ChannelRef, UserRef
from bots.outbox import Outbox
from bots.session_config import SessionConfig
from bots.storage import Fence, Storage
from bots.verification import Verifier
from config.settings import BotSettings
from config.verification import VerificationPolicy
from simulation.llm.usage import UsageLedger

log = logging.getLogger(__name__)


class Services:
    """What every session shares: storage, verification, outbox, model, the adapter of each platform."""

    def __init__(
        self,
        *,
        storage: Storage,
        verifier_for: Callable[[SessionConfig, str], Awaitable[Verifier]],
        policy_for: Callable[[SessionConfig, str], VerificationPolicy],
        outbox: Outbox,
        adapters: dict[str, Adapter],
        model: Any,
        ledger: UsageLedger,
        settings: BotSettings,
        spawn: Callable[[Awaitable[Any]], asyncio.Task],
        is_moderator: Callable[[UserRef, ChannelRef], Awaitable[bool]],
        fence: Callable[[str], Fence | None] = lambda channel_key: None,
        take: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.storage = storage
        self.verifier_for = verifier_for
        self.policy_for = policy_for
        self.outbox = outbox
        self.adapters = adapters
        self.model = model
        self.ledger = ledger
        self.settings = settings
        self.spawn = spawn
        #: Whether someone is a moderator here now (asked before anything private to moderators is delivered).
        self.is_moderator = is_moderator
        #: The lease a channel's writes must still hold (this worker's fence for it), or None.
        self.fence = fence
        #: Take a channel to run here (its lease); False while another worker runs it.
        self.take = take or _anyone_may


async def _anyone_may(channel_key: str) -> bool:
    return True


async def quietly(awaitable: Awaitable[Any]) -> None:
    """Await a platform call whose failure must not stop what called it (a typing indicator, a
    private notice): the failure is logged, nothing more."""
    try:
        await awaitable
    except Exception:
        log.warning("platform call failed", exc_info=True)
