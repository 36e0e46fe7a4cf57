"""Channel leases in storage: one worker runs a channel at a time, and a worker that lost its
channel cannot write over the one that took it."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import pytest

from bots.storage.base import Fence, StaleOwnerError, WorkerRecord
from bots.storage.sqlite.statements import NOW
from tests.bots.storage.records import step, world

SHORT = 0.3


async def test_a_channel_is_held_by_one_worker_until_its_lease_expires(storage):
    assert await storage.take_lease("slack:C1", "a", SHORT) == 1
    assert await storage.take_lease("slack:C1", "b", 30) is None, "held by a"
    assert await storage.take_lease("slack:C1", "a", SHORT) == 1, "renewing one's own lease keeps its token"
    await asyncio.sleep(SHORT + 0.2)
    assert await storage.take_lease("slack:C1", "b", 30) == 2, "an expired lease is taken with a greater token"
    assert await storage.renew_leases("a", 30) == {}, "a learns it lost the channel"
    assert await storage.renew_leases("b", 30) == {"slack:C1": 2}
    [lease] = await storage.leases()
    assert (lease.channel_key, lease.worker, lease.token, lease.expired) == ("slack:C1", "b", 2, False)


async def test_a_released_channel_is_taken_at_once_and_its_token_never_goes_back(storage):
    await storage.take_lease("slack:C1", "a", 30)
    await storage.take_lease("slack:C2", "a", 30)
    await storage.release_leases("a", ["slack:C1"])
    assert await storage.take_lease("slack:C1", "b", 30) == 2
    assert await storage.take_lease("slack:C2", "b", 30) is None, "only the channel named was let go"
    await storage.release_leases("b")
    await storage.release_leases("a")
    assert await storage.take_lease("slack:C1", "a", 30) == 3
    assert await storage.take_lease("slack:C2", "b", 30) == 2
    assert {lease.channel_key: lease.worker for lease in await storage.leases()} == {"slack:C1": "a", "slack:C2": "b"}


async def test_a_write_of_a_worker_that_lost_the_channel_is_refused_and_leaves_nothing(storage):
    await storage.create_world(world("w1", channel="slack:C1"))
    old = await storage.take_lease("slack:C1", "a", SHORT)
    await storage.write_step(step("w1", 1, channel="slack:C1", fence=Fence(channel_key="slack:C1", worker="a", token=old)))
    await asyncio.sleep(SHORT + 0.2)
    new = await storage.take_lease("slack:C1", "b", 30)
    stale = step("w1", 2, channel="slack:C1", fence=Fence(channel_key="slack:C1", worker="a", token=old))
    with pytest.raises(StaleOwnerError, match="slack:C1 is no longer run by this worker"):
        await storage.write_step(stale)
    # Neither its events nor its posts are stored; the new owner's writes are.
    assert [e.id for e in await storage.read_events("w1")] == [1]
    assert [e.event_id for e in await storage.outbox_entries("w1")] == [1]
    await storage.write_step(step("w1", 2, channel="slack:C1", fence=Fence(channel_key="slack:C1", worker="b", token=new)))
    assert [e.id for e in await storage.read_events("w1")] == [1, 2]


async def test_a_stale_write_batched_with_others_fails_alone(storage):
    for n in (1, 2):
        await storage.create_world(world(f"w{n}", channel=f"slack:C{n}"))
        await storage.take_lease(f"slack:C{n}", "a", 30)
    await storage.release_leases("a", ["slack:C2"])
    await storage.take_lease("slack:C2", "b", 30)
    outcomes = await asyncio.gather(
        storage.write_step(step("w1", 1, channel="slack:C1", fence=Fence(channel_key="slack:C1", worker="a", token=1))),
        storage.write_step(step("w2", 1, channel="slack:C2", fence=Fence(channel_key="slack:C2", worker="a", token=1))),
        return_exceptions=True,
    )
    assert not isinstance(outcomes[0], BaseException)
    assert isinstance(outcomes[1], StaleOwnerError)
    assert [e.id for e in await storage.read_events("w1")] == [1]
    assert await storage.read_events("w2") == []


def worker(name: str, lease_s: float = 30) -> WorkerRecord:
    now = datetime.now(UTC)
    return WorkerRecord(id=name, host="box", pid=os.getpid(), started_at=now, seen_at=now, lease_s=lease_s)


async def test_workers_say_they_run_and_are_forgotten_when_they_stop(storage):
    for name in ("a", "b"):
        await storage.worker_alive(worker(name))
    await storage.worker_alive(worker("brief", lease_s=SHORT))
    assert [w.id for w in await storage.workers()] == ["a", "b", "brief"]
    await storage.worker_gone("a")
    await asyncio.sleep(SHORT + 0.2)
    assert [w.id for w in await storage.workers()] == ["b"], "one not heard from within its lease is not alive"
    await storage.worker_alive(worker("brief", lease_s=SHORT))
    assert [w.id for w in await storage.workers()] == ["b", "brief"], "until it says it runs again"


async def test_a_worker_is_alive_for_its_own_lease_whatever_the_reader_runs_with(backend, storage):
    """Liveness is read from what each worker recorded, so every reader (a worker, `troupe doctor`,
    whatever its own TROUPE_LEASE_S) counts the same workers: one on a 60 s lease last heard 40 s ago
    is alive, one on a 6 s lease last heard 8 s ago is not."""
    await storage.worker_alive(worker("patient", lease_s=60))
    await storage.worker_alive(worker("hasty", lease_s=6))
    now = "clock_timestamp()" if backend.name == "postgresql" else NOW
    seconds = "make_interval(secs => {})" if backend.name == "postgresql" else "{}"
    await backend.execute(f"UPDATE workers SET seen_at = {now} - {seconds.format(40)} WHERE id = 'patient';"
                          f"UPDATE workers SET seen_at = {now} - {seconds.format(8)} WHERE id = 'hasty';")
    assert [(w.id, w.lease_s) for w in await storage.workers()] == [("patient", 60)]


async def test_the_inbox_is_read_per_channel_in_order(storage):
    first = await storage.inbox_add("slack:C1", {"text": "one"})
    await storage.inbox_add("slack:C2", {"text": "elsewhere"})
    third = await storage.inbox_add("slack:C1", {"text": "two"})
    assert [(i, e["text"]) for i, _, e in await storage.inbox_pending("slack:C1")] == [(first, "one"), (third, "two")]
    assert len(await storage.inbox_pending()) == 3


async def test_a_sqlite_file_reopened_by_its_one_process_forgets_the_workers_and_leases_of_a_killed_run(tmp_path):
    """Only one process may run on a SQLite file (its lock proves it), so whatever an earlier run
    held when it was killed is void at the next start: its channels are not left waiting."""
    from bots.storage.sqlite import SQLiteStorage

    path = tmp_path / "troupe.db"
    now = datetime.now(UTC)
    killed = SQLiteStorage(path, single_writer=True)
    await killed.open()
    await killed.worker_alive(WorkerRecord(id="killed", host="box", pid=1, started_at=now, seen_at=now, lease_s=30))
    assert await killed.take_lease("slack:C1", "killed", 30) == 1
    await killed.close()  # as a kill -9 would leave it: nothing handed over

    async with SQLiteStorage(path, single_writer=True) as restarted:
        assert await restarted.workers() == []
        assert await restarted.take_lease("slack:C1", "next", 30) == 2
