"""The outbox: persona messages are stored first, posted second and marked posted third.

A crash between any two of those steps never loses a message (it is still pending at restart) and
a message marked posted is never posted again. Posts of one channel go out in order, paced to the
platform's limit; a failed post is retried with backoff without holding up other channels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from adapters.base import Adapter, AdapterError, ChannelRef, Identity
from bots.storage import OutboxEntry, OutboxStatus, Storage

log = logging.getLogger(__name__)

#: Attempts after which a post is sent again even though the channel could not be checked for it.
MAX_UNCHECKED = 6
#: Seconds before retrying a failed post, by attempt; the last value repeats.
RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60)


def channel_from_key(key: str, name: str | None = None) -> ChannelRef:
    platform, _, channel_id = key.partition(":")
    return ChannelRef(platform=platform, id=channel_id, name=name)


class Outbox:
    def __init__(
        self,
        storage: Storage,
        adapters: dict[str, Adapter],
        *,
        spawn: Callable[[asyncio.Future | asyncio.Task], None] | None = None,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.storage = storage
        self.adapters = adapters
        self.retry_delays = retry_delays
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_post: dict[str, float] = {}
        self._retrying: set[str] = set()
        self._retry_tasks: set[asyncio.Future] = set()
        self._closed = False
        self._spawn = spawn or (lambda task: None)
        #: Called with (entry, error) when a post fails for good.
        self.on_failure: Callable[[OutboxEntry, str], object] | None = None

    def _lock(self, channel_key: str) -> asyncio.Lock:
        lock = self._locks.get(channel_key)
        if lock is None:
            lock = self._locks[channel_key] = asyncio.Lock()
        return lock

    async def deliver(self, channel_key: str) -> bool:
        """Post the channel's pending entries in order. False if one failed and awaits a retry."""
        async with self._lock(channel_key):
            for entry in await self.storage.pending_outbox(channel_key):
                if not await self._post(entry):
                    self._schedule_retry(channel_key, entry.attempts + 1)
                    return False
        return True

    async def flush_all(self) -> None:
        """Post everything pending in every channel (at start-up, after a restart)."""
        pending = await self.storage.pending_outbox()
        channels = list(dict.fromkeys(e.channel_key for e in pending))
        await asyncio.gather(*(self.deliver(key) for key in channels))

    async def _post(self, entry: OutboxEntry) -> bool:
        assert entry.id is not None
        platform = entry.channel_key.partition(":")[0]
        adapter = self.adapters.get(platform)
        if adapter is None:
            return False  # that platform is not connected in this process; it stays pending
        channel = channel_from_key(entry.channel_key)
        identity = Identity.model_validate(entry.identity or {"name": entry.persona})
        if entry.attempts > 0:
            known = await self._already_posted(adapter, channel, identity, entry)
            if known is True:
                return True
            if known is None:
                return False  # look again later rather than risk a second copy
        await self._pace(entry.channel_key, adapter.post_interval_s)
        await self.storage.mark_attempt(entry.id)
        try:
            message_id = await adapter.post(channel, identity, entry.text, entry.thread)
        except AdapterError as error:
            await self.storage.mark_attempt(entry.id, str(error))
            if error.retryable:
                log.warning("post %s to %s failed, will retry: %s", entry.id, entry.channel_key, error)
                return False
            await self.storage.set_outbox_status(entry.id, OutboxStatus.FAILED, str(error))
            if self.on_failure is not None:
                self.on_failure(entry, str(error))
            return True
        await self.storage.mark_posted(entry.id, message_id)
        return True

    async def _already_posted(self, adapter: Adapter, channel: ChannelRef, identity: Identity,
                              entry: OutboxEntry) -> bool | None:
        """After an attempt with an unknown outcome, look in the channel before posting again.

        True: it is there (now marked posted); False: it is not; None: the channel could not be read,
        so the entry waits for another look. After ``MAX_UNCHECKED`` failed looks it is posted anyway:
        a message delivered twice beats one never delivered.
        """
        assert entry.id is not None
        try:
            found = await adapter.find_post(channel, identity, entry.text, entry.thread, entry.created_at)
        except AdapterError as error:
            if entry.attempts >= MAX_UNCHECKED:
                log.warning("could not check %s for post %s (%s); posting it again", entry.channel_key, entry.id, error)
                return False
            log.info("could not check %s for post %s, will look again: %s", entry.channel_key, entry.id, error)
            await self.storage.mark_attempt(entry.id)
            await self.storage.mark_attempt(entry.id, f"could not check the channel: {error}")
            return None
        if found is None:
            return False
        log.info("post %s was already on %s as %s; not posting it again", entry.id, entry.channel_key, found)
        await self.storage.mark_posted(entry.id, found)
        return True

    async def _pace(self, channel_key: str, interval: float) -> None:
        if interval <= 0:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_post.get(channel_key, 0.0) + interval - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_post[channel_key] = loop.time()

    def close(self) -> None:
        """Stop retrying; what is still pending is posted at the next start."""
        self._closed = True
        for task in self._retry_tasks:
            task.cancel()

    def _schedule_retry(self, channel_key: str, attempt: int) -> None:
        if channel_key in self._retrying or self._closed:
            return
        self._retrying.add(channel_key)
        delay = self.retry_delays[min(attempt - 1, len(self.retry_delays) - 1)]

        async def retry() -> None:
            try:
                await asyncio.sleep(delay)
            finally:
                self._retrying.discard(channel_key)
            await self.deliver(channel_key)

        task = asyncio.ensure_future(retry())
        self._retry_tasks.add(task)
        task.add_done_callback(self._retry_tasks.discard)
        self._spawn(task)
