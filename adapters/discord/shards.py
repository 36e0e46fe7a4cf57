"""Several Discord shards in one process, started as fast as Discord allows.

Discord accepts, per 5 seconds, one IDENTIFY from each rate-limit bucket (``shard_id %
max_concurrency``, ``max_concurrency`` from ``GET /gateway/bot``); one sent too early is answered
with Invalid Session. discord.py waits 5 s before every IDENTIFY but the first whatever the bucket,
so a bot allowed 16 at once would still start one shard per 5 s: the client here waits only for
the shard's own bucket.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import discord

#: Discord's window: one IDENTIFY per bucket per this many seconds, plus a margin for the network.
IDENTIFY_INTERVAL_S = 5.0 + 0.25


class IdentifyPacer:
    """Spaces the IDENTIFYs of each rate-limit bucket ``IDENTIFY_INTERVAL_S`` apart (in this process)."""

    def __init__(self, max_concurrency: int = 1, interval: float = IDENTIFY_INTERVAL_S) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.interval = interval
        self._last: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def bucket(self, shard_id: int | None) -> int:
        return (shard_id or 0) % self.max_concurrency

    async def wait(self, shard_id: int | None) -> None:
        """Return once ``shard_id`` may IDENTIFY; the attempt counts whether Discord accepts it or not."""
        key = self.bucket(shard_id)
        async with self._locks.setdefault(key, asyncio.Lock()):
            last = self._last.get(key)
            if last is not None:
                delay = last + self.interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._last[key] = time.monotonic()


class ShardedClient(discord.AutoShardedClient):
    """discord.py's sharded client, whose shards IDENTIFY paced by bucket rather than 5 s each."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.identify_pacer = IdentifyPacer()
        #: The shard count Discord recommends, once asked.
        self.recommended_shards: int | None = None

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self.identify_pacer.wait(shard_id)

    async def learn_identify_limits(self) -> None:
        """Ask Discord how many shards it recommends and how many may IDENTIFY at once (after ``login``)."""
        shards, _, limits = await self.http.get_bot_gateway()
        self.recommended_shards = shards
        self.identify_pacer.max_concurrency = max(1, int(limits.get("max_concurrency", 1)))

    def shards_to_start(self) -> int:
        """How many shards this process starts (as far as known before it starts them)."""
        if self.shard_ids is not None:
            return len(self.shard_ids)
        return self.shard_count or self.recommended_shards or 1


def runs_shard_zero(shard_ids: list[int] | None) -> bool:
    """Whether a process running ``shard_ids`` (None: all of them) runs shard 0, which Discord sends
    direct messages to and whose process alone registers the slash commands."""
    return shard_ids is None or 0 in shard_ids
