"""Which worker runs which channel's world, when several Troupe processes share one database.

Each channel is owned by one worker at a time, through a lease in the database: renewed every
``ttl / 3`` seconds, lost when it is not renewed within ``ttl`` (the worker died, hung or was cut
off), given up at once when the worker stops. Every lease carries a fencing token that grows each
time the channel changes hands, and every write of a world carries its owner's token (``Fence``):
storage refuses the writes of a worker that lost the channel, even before it knows it lost it.

A worker trusts its own lease for less than its term (``SAFETY``), by its own monotonic clock
from the moment it asked for the renewal: it stops posting for a channel before anyone else may
take it over. Expiry itself is read by the database's clock, the same for every worker.

Each worker's heartbeat carries its own term, so every reader (another worker, ``troupe doctor``)
counts it alive for as long as it said, whatever term the reader runs with.

While the database cannot be reached (a restart, a failover), renewals wait for it to come back
(the storage keeps trying for a while): the leases' trust runs out meanwhile, so nothing is posted
for their channels. The first renewal after it is back keeps the leases nobody took meanwhile,
with their tokens, and drops those another worker took over; their new tokens refuse this
worker's writes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from bots.storage import Fence, Lease, Storage, StorageError, StorageUnavailableError, WorkerRecord
from bots.storage.base import utcnow

log = logging.getLogger(__name__)

#: Topics workers wake each other with: an event kept for a channel's owner, channels let go of.
INBOX_TOPIC = "troupe_inbox"
RELEASED_TOPIC = "troupe_released"
#: Share of a lease's term a worker trusts it for after asking for its renewal.
SAFETY = 0.8
#: The token of a fence for a channel not held: leases count from 1, so it matches none.
NO_LEASE = 0
#: Channels above its fair share a worker keeps before it lets the rest go to others.
SHARE_SLACK = 1


def new_worker_id() -> str:
    """``host:pid:random``: unique even when a restarted container reuses a host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ChannelOwnership:
    """This worker's leases: taking, renewing, giving up, and noticing channels others let go.

    ``adopt(key)`` is called for a channel this worker should take over (its owner stopped or
    died); ``lost(key)`` when a lease was taken by another worker; ``wake(key)`` when another
    worker kept an event for a channel this one owns. ``balance()`` answers the channels to
    let go of (those over this worker's fair share that are idle).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        ttl_s: float,
        adopt: Callable[[str], Awaitable[object]],
        lost: Callable[[str], Awaitable[object]],
        wake: Callable[[str], object],
        idle: Callable[[str], bool],
        workers: Callable[[int], Awaitable[object]] | None = None,
        sweep: Callable[[], Awaitable[object]] | None = None,
        placement: Callable[[str], bool | None] = lambda channel_key: None,
        taken: Callable[[str], object] = lambda channel_key: None,
        worker_id: str | None = None,
    ) -> None:
        self.storage = storage
        self.ttl_s = ttl_s
        self.worker = WorkerRecord(id=worker_id or new_worker_id(), host=socket.gethostname(), pid=os.getpid(),
                                   started_at=utcnow(), seen_at=utcnow(), lease_s=ttl_s)
        self._adopt, self._lost, self._wake, self._idle = adopt, lost, wake, idle
        #: Where a channel's events arrive (``Adapter.runs_here``): one kept here is never handed
        #: over, and one whose events reach another worker only is never taken over here.
        self._placement = placement
        #: Told how many workers are alive whenever that changes (limits shared by the deployment).
        self._workers_changed = workers
        #: Called at every renewal: picks up what a missed wake-up left waiting.
        self._sweep = sweep
        #: Told at once when a lease is taken, before anything may act for the channel here: what
        #: its last worker left in flight is in doubt from that moment.
        self._taken = taken
        self.workers_alive = 1
        #: Channel key: (token, monotonic time until which the lease is trusted).
        self._held: dict[str, tuple[int, float]] = {}
        self._taking: dict[str, asyncio.Future[bool]] = {}
        self._taking_over: set[str] = set()
        self._loop_task: asyncio.Task | None = None
        self._adopting: set[asyncio.Task] = set()
        self._stopped = False
        self._registered = False

    @property
    def id(self) -> str:
        return self.worker.id

    # -- the leases this worker holds ----------------------------------------------------------

    def holds(self, channel_key: str) -> bool:
        """Whether this worker may act for the channel now: it holds a lease it can still trust."""
        held = self._held.get(channel_key)
        return held is not None and time.monotonic() < held[1]

    def fence(self, channel_key: str) -> Fence:
        """The fence this worker's writes for the channel carry. For a channel it does not hold (let go
        of, lost, never taken) no lease matches it: a write still under way from a world forgotten
        here is refused, not stored beside the new owner's."""
        held = self._held.get(channel_key)
        return Fence(channel_key=channel_key, worker=self.id, token=held[0] if held is not None else NO_LEASE)

    def held(self) -> list[str]:
        return list(self._held)

    async def acquire(self, channel_key: str) -> bool:
        """Take (or keep) the channel's lease; False while another worker holds it. Concurrent calls
        for one channel share one request."""
        if self.holds(channel_key):
            return True
        taking = self._taking.get(channel_key)
        if taking is None:
            taking = self._taking[channel_key] = asyncio.ensure_future(self._take(channel_key))
            taking.add_done_callback(lambda _: self._taking.pop(channel_key, None))
        return await asyncio.shield(taking)

    async def claim(self, channel_key: str) -> bool:
        """Take the channel unless its events reach another worker only (``acquire`` for one this
        worker found in storage, not one it received an event for)."""
        return self._placement(channel_key) is not False and await self.acquire(channel_key)

    async def _take(self, channel_key: str) -> bool:
        asked = time.monotonic()
        token = await self.storage.take_lease(channel_key, self.id, self.ttl_s)
        if token is None:
            return False
        self._held[channel_key] = (token, asked + self.ttl_s * SAFETY)
        self._taken(channel_key)
        return True

    async def release(self, channel_keys: Iterable[str] | None = None) -> list[str]:
        """Give channels up at once (all, by default) and tell the other workers."""
        keys = list(self._held) if channel_keys is None else [k for k in channel_keys if k in self._held]
        if not keys:
            return []
        for key in keys:
            self._held.pop(key, None)
        await self.storage.release_leases(self.id, keys)
        await self.storage.notify(RELEASED_TOPIC, "\n".join([self.id, *keys]))
        return keys

    # -- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Say this worker runs and listen for the others' wake-ups; ``run`` keeps the leases alive."""
        await self.storage.worker_alive(self.worker)
        self._registered = True
        await self.storage.listen(INBOX_TOPIC, self._on_inbox)
        await self.storage.listen(RELEASED_TOPIC, self._on_released)

    def run(self) -> None:
        """Renew the leases, take over channels nobody runs and spread them, from now on (once the
        worker has restored what it runs, so a channel is not taken over while being restored)."""
        if self._loop_task is None and not self._stopped:
            self._loop_task = asyncio.ensure_future(self._keep_alive())

    async def stop(self) -> None:
        """Hand every channel over now, for the other workers to take at once."""
        if self._stopped:
            return
        self._stopped = True
        if not self._registered:
            return  # never started (the database failed first): nothing to hand over
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for task in list(self._adopting):
            task.cancel()
        await asyncio.gather(*self._adopting, return_exceptions=True)
        try:
            # Handing over is worth it while the leases run: a database that went away (and that
            # storage waits for) is not waited for past them.
            async with asyncio.timeout(self.ttl_s):
                await self.release()
                await self.storage.worker_gone(self.id)
        except StorageUnavailableError:
            return  # said once when it happened; the leases run out by themselves
        except TimeoutError:
            log.warning("could not hand the channels over within %g s, the database cannot be reached (they are "
                        "taken over when their leases expire)", self.ttl_s)
        except StorageError as error:
            log.warning("could not hand the channels over (they are taken over when their leases expire): %s",
                        error)

    async def share(self) -> int:
        """How many channels this worker should own: the channels with a world, spread over the
        workers alive now."""
        return (await self._survey()).share

    async def _survey(self) -> _Survey:
        """The workers alive, the leases and the channels with a world, read once for a review."""
        workers = max(1, len(await self.storage.workers()))
        leases = {lease.channel_key: lease for lease in await self.storage.leases()}
        worlds = [w.channel_key for w in await self.storage.active_worlds()]
        return _Survey(workers, leases, worlds)

    async def _keep_alive(self) -> None:
        interval = self.ttl_s / 3
        while not self._stopped:
            try:
                await self._renew()
                if self._sweep is not None:
                    await self._sweep()
                survey = await self._survey()
                await self._count_workers(survey.workers)
                await self._look_for_orphans(survey)
                await self._balance(survey)
            except StorageUnavailableError:
                return
            except Exception:
                log.warning("could not renew or review the channel leases; trying again", exc_info=True)
            await asyncio.sleep(interval)

    async def _renew(self) -> None:
        await self.storage.worker_alive(self.worker)
        # Timed from here, not before the heartbeat: that may have waited for a lost database to come
        # back, and the leases run from their renewal.
        asked = time.monotonic()
        kept = await self.storage.renew_leases(self.id, self.ttl_s)
        for key in list(self._held):
            token = kept.get(key)
            if token is None or token != self._held[key][0]:
                self._held.pop(key, None)
                log.warning("lost %s to another worker; it carries on there", key)
                await self._lost(key)
            else:
                self._held[key] = (token, asked + self.ttl_s * SAFETY)

    async def _count_workers(self, alive: int) -> None:
        if alive != self.workers_alive:
            self.workers_alive = alive
            log.info("%d Troupe worker(s) share the database now", alive)
            if self._workers_changed is not None:
                await self._workers_changed(alive)

    async def _look_for_orphans(self, survey: _Survey) -> None:
        """Take over channels with a world whose owner stopped renewing, up to a fair share (all of
        them when this is the only worker left)."""
        orphans = [key for key in survey.worlds
                   if key not in self._held and survey.unowned(key) and self._placement(key) is not False]
        room = max(0, survey.share - len(self._held))
        for key in orphans[:room]:
            await self._take_over(key)

    async def _balance(self, survey: _Survey) -> None:
        """Let idle channels over this worker's fair share go, for workers that joined later.

        Counted as the survey saw them: channels taken since (by events arriving meanwhile) are
        neither counted against the share it computed nor let go on its word."""
        surveyed = [key for key in self._held if survey.holder(key) == self.id]
        excess = len(surveyed) - (survey.share + SHARE_SLACK)
        if excess <= 0:
            return
        idle = [key for key in surveyed if self._placement(key) is not True and self._idle(key)][:excess]
        if idle:
            log.info("handing %d channel(s) over to other workers", len(idle))
            for key in idle:
                await self._lost(key)
            await self.release(idle)

    async def _take_over(self, channel_key: str) -> None:
        """Take a channel over and run it here, once (a release and a scan may both find it)."""
        if self._stopped or channel_key in self._held or channel_key in self._taking_over:
            return
        self._taking_over.add(channel_key)
        try:
            if not await self.acquire(channel_key):
                return
            log.info("taking over %s", channel_key)
            try:
                await self._adopt(channel_key)
            except Exception:
                log.exception("could not take over %s; letting it go for another worker", channel_key)
                await self.release([channel_key])
        finally:
            self._taking_over.discard(channel_key)

    def _on_inbox(self, channel_key: str) -> None:
        if channel_key in self._held:
            self._wake(channel_key)

    def _on_released(self, payload: str) -> None:
        worker, *keys = payload.splitlines()
        if self._stopped or self._loop_task is None or worker == self.id:
            # Not before ``run``: a worker still starting has no platform connected to post with yet
            # (its first review takes what is still free).
            return
        task = asyncio.ensure_future(self._take_released([key for key in keys if key]))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def _take_released(self, channel_keys: list[str]) -> None:
        """Channels another worker let go: those with a world, as many as this worker has room for,
        taken side by side."""
        survey = await self._survey()
        worlds = set(survey.worlds)
        wanted = [key for key in channel_keys
                  if key in worlds and key not in self._held and self._placement(key) is not False]
        room = max(0, survey.share + SHARE_SLACK - len(self._held))
        await asyncio.gather(*(self._take_over(key) for key in wanted[:room]))


@dataclass(frozen=True)
class _Survey:
    """What a worker reviews its channels by: the workers alive, every lease, the channels with a
    world (in storage's order)."""

    workers: int
    leases: dict[str, Lease]
    worlds: list[str]

    @property
    def share(self) -> int:
        """A fair share of the channels that have a world or an owner, spread over the workers."""
        owned = {key for key, lease in self.leases.items() if lease.worker and not lease.expired}
        return math.ceil(len(owned | set(self.worlds)) / self.workers)

    def holder(self, channel_key: str) -> str | None:
        """The worker holding the channel's lease, if anyone does."""
        lease = self.leases.get(channel_key)
        return None if lease is None or lease.expired or not lease.worker else lease.worker

    def unowned(self, channel_key: str) -> bool:
        """Nobody holds the channel's lease now (never taken, released, or expired)."""
        return self.holder(channel_key) is None
