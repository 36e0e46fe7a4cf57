"""Workers sharing a database: each channel run by one, taken over when its worker dies or stops,
spread over the workers alive, and woken for what another worker received."""

from __future__ import annotations

import asyncio
import time

import pytest

from bots.ownership import INBOX_TOPIC, SAFETY, ChannelOwnership
from bots.storage import StaleOwnerError
from tests.bots.storage.records import step, world
from tests.support.waiting import until

TTL = 1.0


class Worker:
    """A ``ChannelOwnership`` and what it was asked to do."""

    def __init__(self, storage, name: str, ttl: float = TTL) -> None:
        self.adopted: list[str] = []
        self.lost: list[str] = []
        self.woken: list[str] = []
        self.busy: set[str] = set()
        #: Leases taken, each noted as it was taken (before ``adopt`` ran).
        self.taken: list[str] = []

        async def adopt(key: str) -> None:
            assert key in self.taken, "a channel is adopted after its taking was told"
            self.adopted.append(key)

        async def lose(key: str) -> None:
            self.lost.append(key)

        self.leases = ChannelOwnership(storage, ttl_s=ttl, adopt=adopt, lost=lose, wake=self.woken.append,
                                       idle=lambda key: key not in self.busy, taken=self.taken.append,
                                       worker_id=name)



async def channels(storage, count: int) -> list[str]:
    keys = [f"slack:C{n}" for n in range(count)]
    for n, key in enumerate(keys):
        await storage.create_world(world(f"w{n}", channel=key))
    return keys


async def test_a_dead_workers_channels_are_taken_over_after_its_lease_expires(storage):
    [key] = await channels(storage, 1)
    dead, survivor = Worker(storage, "dead"), Worker(storage, "survivor")
    assert await dead.leases.acquire(key)
    await dead.leases.start()
    dead.leases.run()
    await survivor.leases.start()
    survivor.leases.run()
    # The dead worker stops renewing (killed): nothing more is heard from it.
    dead.leases._loop_task.cancel()
    waited = await until(lambda: survivor.adopted == [key])
    assert TTL * 0.5 < waited < TTL + 1.5, waited
    assert survivor.leases.holds(key)
    assert survivor.taken == [key], "the take-over was told once, as the lease was taken"
    assert not dead.leases.holds(key), "a worker stops trusting a lease it could not renew"
    assert dead.leases.fence(key).token < survivor.leases.fence(key).token
    await survivor.leases.stop()


async def test_a_worker_trusts_its_lease_for_less_than_its_term(storage):
    [key] = await channels(storage, 1)
    worker = Worker(storage, "a")
    asked = time.monotonic()
    assert await worker.leases.acquire(key)
    await until(lambda: not worker.leases.holds(key))
    # Nobody else may take it before the term is over; the worker let go of it before that.
    assert time.monotonic() - asked < TTL
    assert time.monotonic() - asked >= TTL * SAFETY - 0.05


async def test_a_stopped_worker_hands_its_channels_over_at_once(storage):
    keys = await channels(storage, 2)
    leaving, staying = Worker(storage, "leaving", ttl=30), Worker(storage, "staying", ttl=30)
    for key in keys:
        assert await leaving.leases.acquire(key)
    await leaving.leases.start()
    leaving.leases.run()
    await staying.leases.start()
    staying.leases.run()
    await leaving.leases.stop()
    waited = await until(lambda: sorted(staying.adopted) == keys)
    assert waited < 2, "taken at once, not when the 30-second leases would expire"
    assert [w.id for w in await storage.workers()] == ["staying"]
    await staying.leases.stop()


async def test_a_worker_that_lost_a_channel_is_told_and_stops_acting_for_it(storage):
    [key] = await channels(storage, 1)
    slow, other = Worker(storage, "slow"), Worker(storage, "other")
    assert await slow.leases.acquire(key)
    await slow.leases.start()
    slow.leases.run()
    slow.leases._loop_task.cancel()  # paused past its lease (a long stall)
    await asyncio.sleep(TTL + 0.1)
    assert await other.leases.acquire(key)
    await slow.leases._renew()
    assert slow.lost == [key]
    assert not slow.leases.holds(key)
    # A write of its world still under way (a message being heard) is refused, now that it knows too.
    with pytest.raises(StaleOwnerError):
        await storage.write_step(step("w0", 1, channel=key, fence=slow.leases.fence(key)))
    assert await storage.read_events("w0") == []


async def test_a_worker_that_let_a_channel_go_or_never_took_it_cannot_write_its_world(storage):
    taken, never = await channels(storage, 2)
    worker = Worker(storage, "a")
    await worker.leases.start()
    assert await worker.leases.acquire(taken)
    await storage.write_step(step("w0", 1, channel=taken, fence=worker.leases.fence(taken)))
    assert await worker.leases.release([taken]) == [taken]
    for key, world_id in ((taken, "w0"), (never, "w1")):
        with pytest.raises(StaleOwnerError, match=f"{key} is no longer run by this worker"):
            await storage.write_step(step(world_id, 2, channel=key, fence=worker.leases.fence(key)))
    assert [e.id for e in await storage.read_events("w0")] == [1]
    assert await storage.read_events("w1") == []


async def test_channels_spread_over_the_workers_alive(storage):
    keys = await channels(storage, 6)
    first, second = Worker(storage, "first"), Worker(storage, "second")
    for key in keys:
        assert await first.leases.acquire(key)
    await first.leases.start()
    first.leases.run()
    first.busy.add(keys[0])  # a channel in the middle of a turn is not handed over
    await second.leases.start()
    second.leases.run()
    await until(lambda: len(second.adopted) == 2)
    assert keys[0] not in second.adopted
    assert sorted(first.lost) == sorted(second.adopted), "the first stops running what it handed over"
    assert len(first.leases.held()) == 4 and set(first.leases.held()).isdisjoint(second.adopted)
    await asyncio.sleep(TTL)
    assert len(second.adopted) == 2, "no channel goes back and forth"
    await first.leases.stop()
    await second.leases.stop()


async def test_the_owner_is_woken_for_what_another_worker_kept_for_it(storage):
    [key] = await channels(storage, 1)
    owner, receiver = Worker(storage, "owner", ttl=30), Worker(storage, "receiver", ttl=30)
    assert await owner.leases.acquire(key)
    await owner.leases.start()
    owner.leases.run()
    await receiver.leases.start()
    receiver.leases.run()
    assert not await receiver.leases.acquire(key)
    # A notification reaches the listeners after ``notify`` returns (on PostgreSQL, on a connection
    # of their own), in the order sent: once the owner is woken, the other one was heard too.
    await storage.notify(INBOX_TOPIC, "slack:C-elsewhere")
    await storage.notify(INBOX_TOPIC, key)
    await until(lambda: owner.woken == [key])
    assert receiver.woken == [], "a worker is woken only for the channels it runs"
    await owner.leases.stop()
    await receiver.leases.stop()


async def test_channels_taken_while_a_review_runs_are_not_handed_over_on_its_word(storage):
    """A worker alone reviews its channels while events keep bringing it new ones (a moderator
    starting worlds in channel after channel): the review's fair share counted only the channels it
    saw, so those taken meanwhile are not "too many" and none is let go (with nobody to take it)."""
    keys = await channels(storage, 2)
    alone = Worker(storage, "alone")
    for key in keys:
        assert await alone.leases.acquire(key)
    survey = await alone.leases._survey()
    starting = [f"slack:D{n}" for n in range(4)]
    for key in starting:  # ``start`` arrives in four more channels while the review runs
        assert await alone.leases.acquire(key)
    await alone.leases._balance(survey)
    assert alone.lost == [] and sorted(alone.leases.held()) == sorted(keys + starting)


async def test_a_worker_still_starting_takes_no_channel_another_lets_go_until_it_runs(storage):
    [key] = await channels(storage, 1)
    old, starting = Worker(storage, "old"), Worker(storage, "starting")
    await old.leases.start()
    assert await old.leases.acquire(key)
    await starting.leases.start()  # listening, but its platforms are still connecting
    await old.leases.release([key])
    await asyncio.sleep(0.3)
    assert starting.adopted == [] and not starting.leases.holds(key)
    starting.leases.run()
    await until(lambda: starting.adopted == [key])
    assert starting.leases.holds(key)
