"""The outbox: persona messages are stored first, posted second and marked posted third.

A crash between any two of those steps never loses a message (it is still pending at restart) and
a message marked posted is never posted again. A pending message may still have been posted (the
process died before recording it, or the platform timed out after taking it), so before posting
one again the outbox looks for it in the channel: every entry left by an earlier run, and every one
with a failed attempt. A first attempt in this run needs no look and no write before it, which keeps
storage off the path from a persona's words to the channel. Posts of one channel go out in order,
paced to the platform's limit (those asked for while one goes out wait together, in one delivery);
a failed post is retried with backoff without holding up others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from adapters.base import Adapter, AdapterError, ChannelRef, Identity
from bots.interviews import Interviews
from bots.storage import OutboxEntry, OutboxStatus, Storage, StorageUnavailableError
from bots.storage.base import utcnow

log = logging.getLogger(__name__)

#: Attempts after which a post is sent again even though the channel could not be checked for it.
MAX_UNCHECKED = 6
#: Settled entries remembered (posted, found posted, failed for good), so that neither a read of
#: pending entries that raced their marks nor a copy of an entry taken before it settled posts it again.
RECENTLY_SETTLED = 10_000
#: This run's post ids remembered per channel, so a message in doubt is not taken for one of them.
POSTS_REMEMBERED = 1_000
#: How far before an entry in doubt the posts of other entries are read, to rule them out.
CLAIMS_LOOKED_BACK = timedelta(hours=1)
#: Seconds before retrying a failed post, by attempt; the last value repeats.
RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60)


def channel_from_key(key: str, name: str | None = None) -> ChannelRef:
    platform, _, channel_id = key.partition(":")
    return ChannelRef(platform=platform, id=channel_id, name=name)


class _NextDelivery:
    """A delivery that has not begun: the entries stored for it so far, and its task."""

    __slots__ = ("entries", "task")

    def __init__(self, entries: list[OutboxEntry]) -> None:
        self.entries = entries
        self.task: asyncio.Future[bool]


class Outbox:
    def __init__(
        self,
        storage: Storage,
        adapters: dict[str, Adapter],
        *,
        spawn: Callable[[asyncio.Future | asyncio.Task], None] | None = None,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        interviews: Interviews | None = None,
        owns: Callable[[str], bool] = lambda channel_key: True,
        take: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.storage = storage
        self.adapters = adapters
        #: Where a persona's answer to an interview question goes (its thread, not the channel).
        self.interviews = interviews
        #: Entries created before this (by an earlier run) may have been posted without being marked.
        self._since = utcnow()
        #: Entries whose post began in this run and that are not settled: an attempt was interrupted or
        #: failed, so the channel is looked at before any copy of them is posted.
        self._in_doubt: set[int] = set()
        #: Posted entries whose "posted" mark is still being written: never posted again meanwhile.
        self._marking: dict[int, asyncio.Future] = {}
        #: Entries settled lately: a read of pending entries begun before a mark was stored may still
        #: list them, and a delivery queued earlier may hold them as they were stored.
        self._settled: dict[int, None] = {}
        #: Platform ids of this run's posts, by channel, marked in storage or not yet: an entry in
        #: doubt is never taken to be one of these (a persona may say the same words twice).
        self._posted: dict[str, deque[str]] = {}
        self.retry_delays = retry_delays
        #: Whether this worker posts for a channel now (it holds the channel's lease), and how it
        #: takes a channel nobody runs (``flush_all``).
        self._owns = owns
        self._take = take
        #: Channels taken over from another worker, and when: their entries created before then are
        #: in doubt like an earlier run's.
        self._adopted: dict[str, datetime] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: The delivery of each channel that waits for the one posting now, and the entries it posts.
        self._next: dict[str, _NextDelivery] = {}
        self._last_post: dict[str, float] = {}
        self._retrying: set[str] = set()
        #: Channels with nothing left pending from before their last delivery (read from storage).
        self._clean: set[str] = set()
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

    async def deliver(self, channel_key: str, stored: list[OutboxEntry] | None = None) -> bool:
        """Post the channel's pending entries in order. False if one failed and awaits a retry.

        ``stored``: entries the caller just stored for this channel. When everything older in the
        channel is known to be posted, they are what is pending, and storage is not read again.
        """
        async with self._lock(channel_key):
            return await self._deliver(channel_key, stored)

    def deliver_soon(self, channel_key: str, stored: list[OutboxEntry]) -> asyncio.Future[bool]:
        """Deliver as ``deliver`` does, in a delivery of the channel that has not begun yet.

        While one delivery posts, the entries of every later call join the one delivery waiting
        after it: a busy channel has two deliveries in flight however many posts come, not one
        waiting for each post. Returns the delivery that posts ``stored``.
        """
        waiting = self._next.get(channel_key)
        if waiting is not None and not waiting.task.done():  # (done before it began: cancelled)
            waiting.entries += stored
            return waiting.task
        waiting = _NextDelivery(list(stored))
        waiting.task = asyncio.ensure_future(self._deliver_next(channel_key, waiting))
        self._next[channel_key] = waiting
        self._spawn(waiting.task)
        return waiting.task

    async def _deliver_next(self, channel_key: str, waiting: _NextDelivery) -> bool:
        async with self._lock(channel_key):
            if self._next.get(channel_key) is waiting:
                del self._next[channel_key]  # later entries wait for the delivery after this one
            return await self._deliver(channel_key, waiting.entries)

    async def _deliver(self, channel_key: str, stored: list[OutboxEntry] | None) -> bool:
        if not self._owns(channel_key):
            return True  # another worker runs the channel now, and posts what is pending there
        try:
            if stored is not None and channel_key in self._clean:
                entries = [e for e in stored if e.status is OutboxStatus.PENDING]
            else:
                entries = await self.storage.pending_outbox(channel_key)
                self._clean.add(channel_key)
            for entry in entries:
                if entry.id in self._marking or entry.id in self._settled:
                    continue
                if not self._owns(channel_key):
                    self._clean.discard(channel_key)
                    return True
                if not await self._post(entry):
                    self._clean.discard(channel_key)
                    self._schedule_retry(channel_key, entry.attempts + 1)
                    return False
        except BaseException:
            # Cut short mid-post: the next delivery reads what is pending, the entry in doubt included.
            self._clean.discard(channel_key)
            raise
        return True

    async def flush_all(self) -> None:
        """Post everything pending in every channel (at start-up, after a restart)."""
        pending = await self.storage.pending_outbox()
        channels = list(dict.fromkeys(e.channel_key for e in pending))
        if self._take is not None:
            channels = [key for key in channels if await self._take(key)]
        await asyncio.gather(*(self.deliver(key) for key in channels))

    def adopt(self, channel_key: str) -> None:
        """This worker takes the channel over: what another worker left pending there may have been
        posted already, so each such entry is looked for in the channel before it is posted. The
        other worker may also have posted a moment ago, so the first post here waits a whole
        interval: the platform's pace holds for the channel whichever worker posts."""
        self._adopted[channel_key] = utcnow()
        self._clean.discard(channel_key)
        self._last_post[channel_key] = asyncio.get_running_loop().time()

    async def _post(self, entry: OutboxEntry) -> bool:
        assert entry.id is not None
        platform = entry.channel_key.partition(":")[0]
        adapter = self.adapters.get(platform)
        if adapter is None:
            return False  # that platform is not connected in this process; it stays pending
        channel = channel_from_key(entry.channel_key)
        identity = Identity.model_validate(entry.identity or {"name": entry.persona})
        since = self._adopted.get(entry.channel_key, self._since)
        if entry.attempts > 0 or entry.created_at < since or entry.id in self._in_doubt:
            known = await self._already_posted(adapter, channel, identity, entry)
            if known is True:
                return True
            if known is None:
                return False  # look again later rather than risk a second copy
        await self._pace(entry.channel_key, adapter.post_interval_s)
        self._in_doubt.add(entry.id)
        thread = entry.thread
        if thread is None and self.interviews is not None:
            thread = self.interviews.answer_thread(entry.channel_key, entry.persona)
        try:
            message_id = await adapter.post(channel, identity, entry.text, thread)
        except AdapterError as error:
            # Taken or not, it stays in doubt: a copy of the entry made before this attempt still
            # says "never tried", and only a look in the channel may post it again.
            await self.storage.mark_attempt(entry.id, str(error))
            if error.retryable:
                log.warning("post %s to %s failed, will retry: %s", entry.id, entry.channel_key, error)
                return False
            await self.storage.set_outbox_status(entry.id, OutboxStatus.FAILED, str(error))
            self._settle(entry.id)
            if self.on_failure is not None:
                self.on_failure(entry, str(error))
            return True
        except Exception as error:  # an adapter bug: the outcome is unknown, so look before retrying
            log.exception("post %s to %s raised", entry.id, entry.channel_key)
            await self.storage.mark_attempt(entry.id, f"{type(error).__name__}: {error}")
            return False
        self._mark_posted(entry, message_id)
        return True

    def _claim(self, channel_key: str, message_id: str) -> None:
        self._posted.setdefault(channel_key, deque(maxlen=POSTS_REMEMBERED)).append(message_id)

    def _mark_posted(self, entry: OutboxEntry, message_id: str) -> None:
        """Record the post without waiting for the write: the channel's next post need not wait for
        storage. Until the mark is stored the entry is skipped here; if the process dies first, the
        entry is pending at the next start and found in the channel instead of posted again."""
        entry_id = entry.id
        assert entry_id is not None
        self._claim(entry.channel_key, message_id)

        async def mark() -> None:
            try:
                await self.storage.mark_posted(entry_id, message_id)
            except StorageUnavailableError:
                return  # reported once, when it happened; stays in doubt and is looked for at the next start
            except Exception:
                log.warning("could not record that post %s was made; it is looked for before any retry",
                            entry_id, exc_info=True)
                return  # stays in doubt
            finally:
                self._marking.pop(entry_id, None)
            self._settle(entry_id)

        task = asyncio.ensure_future(mark())
        self._marking[entry_id] = task
        self._spawn(task)

    async def _already_posted(self, adapter: Adapter, channel: ChannelRef, identity: Identity,
                              entry: OutboxEntry) -> bool | None:
        """After an attempt with an unknown outcome, look in the channel before posting again.

        True: it is there (now marked posted); False: it is not; None: the channel could not be read,
        so the entry waits for another look. After ``MAX_UNCHECKED`` failed looks it is posted anyway:
        a message delivered twice beats one never delivered.
        """
        assert entry.id is not None
        try:
            # Posts other entries are known to be: the same words said twice are two posts.
            taken = await self.storage.posted_ids(entry.channel_key, entry.created_at - CLAIMS_LOOKED_BACK)
            taken.update(self._posted.get(entry.channel_key, ()))
            found = await adapter.find_post(channel, identity, entry.text, entry.thread, entry.created_at, taken)
        except AdapterError as error:
            if entry.attempts >= MAX_UNCHECKED:
                log.warning("could not check %s for post %s (%s); posting it again", entry.channel_key, entry.id, error)
                return False
            log.info("could not check %s for post %s, will look again: %s", entry.channel_key, entry.id, error)
            await self.storage.mark_attempt(entry.id, f"could not check the channel: {error}")
            return None
        if found is None:
            log.info("post %s is not on %s (looked since %s); posting it", entry.id, entry.channel_key,
                     entry.created_at.isoformat(timespec="milliseconds"))
            return False
        log.info("post %s was already on %s as %s; not posting it again", entry.id, entry.channel_key, found)
        self._claim(entry.channel_key, found)
        await self.storage.mark_posted(entry.id, found)
        self._settle(entry.id)
        return True

    def _settle(self, entry_id: int) -> None:
        """The entry is done with (posted, or failed for good): nothing in this run posts it again."""
        self._in_doubt.discard(entry_id)
        self._settled[entry_id] = None
        if len(self._settled) > RECENTLY_SETTLED:
            del self._settled[next(iter(self._settled))]

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
