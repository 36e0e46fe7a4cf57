"""Interview threads: which persona each one talks with, and where that persona's answers go.

``interview NAME`` has the platform open a thread; everything written there is put to that persona
(an ``ask``), and the persona's next post answers in the thread. Which thread interviews whom is
kept in storage, so a thread keeps working after a restart.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque

from adapters.base import ChannelRef
from bots.storage import Storage

log = logging.getLogger(__name__)

#: How long an interview question waits for its answer before the persona's posts go to the channel again.
ANSWER_TTL_S = 300.0


class Interviews:
    """The interview threads of every channel, and the answers owed to them."""

    def __init__(self, storage: Storage, *, ttl_s: float = ANSWER_TTL_S) -> None:
        self.storage = storage
        self.ttl_s = ttl_s
        #: Persona by (channel key, thread); None for a thread known not to be an interview.
        self._personas: dict[tuple[str, str], str | None] = {}
        #: Questions asked in interview threads, by (channel key, persona), oldest first.
        self._owed: defaultdict[tuple[str, str], deque[tuple[str, float]]] = defaultdict(deque)

    async def opened(self, channel: ChannelRef, thread: str, persona: str) -> None:
        """``thread`` (in ``channel``) now interviews ``persona``."""
        self._personas[(channel.key, thread)] = persona
        try:
            await self.storage.set_adapter_state(channel.platform, _key(channel.id, thread), {"persona": persona})
        except Exception:
            log.warning("could not store the interview thread %s", thread, exc_info=True)

    async def persona_in(self, channel: ChannelRef) -> str | None:
        """The persona interviewed in the thread ``channel`` points at, if it is an interview thread."""
        if channel.thread is None:
            return None
        known = (channel.key, channel.thread)
        if known in self._personas:
            return self._personas[known]
        try:
            stored = await self.storage.adapter_state(channel.platform, _key(channel.id, channel.thread))
            # Threads opened by earlier versions on Discord were kept under the thread's id alone.
            legacy = None if stored else await self.storage.adapter_state(channel.platform, f"interview:{channel.thread}")
        except Exception:  # storage trouble: taken as a plain message, and asked about again next time
            log.warning("could not read the interview of thread %s", channel.thread, exc_info=True)
            return None
        if legacy and str(legacy.get("channel")) == channel.id:
            stored = legacy
        persona = str(stored["persona"]) if stored and stored.get("persona") else None
        self._personas[known] = persona
        return persona

    def asked(self, channel: ChannelRef, persona: str) -> None:
        """A question was put to ``persona`` in the thread ``channel`` points at: its next post answers there."""
        if channel.thread is not None:
            self._owed[(channel.key, persona)].append((channel.thread, time.monotonic()))

    def answer_thread(self, channel_key: str, persona: str) -> str | None:
        """The thread owed this persona's next post, if a question there is still fresh.

        A question that got no answer (refused, or the world paused) stops claiming posts after a while.
        """
        owed = self._owed.get((channel_key, persona))
        now = time.monotonic()
        while owed:
            thread, asked = owed.popleft()
            if now - asked <= self.ttl_s:
                return thread
        return None


def _key(channel_id: str, thread: str) -> str:
    return f"interview:{channel_id}:{thread}"
