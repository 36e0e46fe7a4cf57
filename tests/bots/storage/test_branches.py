"""Branches in storage, on every backend: a fork shares its parent's events up to the fork point
instead of copying them, reads them back as its own, and keeps its own events apart."""

from __future__ import annotations

import pytest

from bots.storage.base import RECENT_EVENTS_HELD, StepWrite, StorageError, WorldStatus
from tests.bots.storage.records import event, step, world


async def _log(storage, world_id: str, first: int, count: int, source: str = "Oscar") -> None:
    await storage.write_step(StepWrite(world_id=world_id, events=[event(i, source) for i in range(first, first + count)]))


async def test_a_branch_reads_its_parents_events_up_to_the_fork_then_its_own(storage):
    await storage.create_world(world("main"))
    await _log(storage, "main", 1, 5)
    await storage.create_world(world("b", parent_id="main", fork_event=3, thread="t1"))
    await _log(storage, "b", 4, 2, source="Lisa")
    await _log(storage, "main", 6, 1)

    branch = await storage.read_events("b")
    assert [(e.id, e.source) for e in branch] == [(1, "Oscar"), (2, "Oscar"), (3, "Oscar"), (4, "Lisa"), (5, "Lisa")]
    assert [e.id for e in await storage.read_events("main")] == [1, 2, 3, 4, 5, 6]
    loaded = await storage.load_world("b")
    assert [e.id for e in loaded.events] == [1, 2, 3, 4, 5] and loaded.events_first == 0
    assert loaded.record.parent_id == "main" and loaded.record.fork_event == 3 and loaded.record.thread == "t1"
    # Only the branch's own two events were stored for it.
    assert (await storage.event_counts())["b"] == 2


async def test_forks_of_forks_share_every_generation(storage):
    await storage.create_world(world("main"))
    await _log(storage, "main", 1, 4)
    await storage.create_world(world("b", parent_id="main", fork_event=2))
    await _log(storage, "b", 3, 3, source="Lisa")
    await storage.create_world(world("c", parent_id="b", fork_event=4))
    await _log(storage, "c", 5, 1, source="Ana")
    # Forked before any event of its parent's own: only the grandparent's events are shared.
    await storage.create_world(world("d", parent_id="b", fork_event=1))

    assert [(e.id, e.source) for e in await storage.read_events("c")] == [
        (1, "Oscar"), (2, "Oscar"), (3, "Lisa"), (4, "Lisa"), (5, "Ana")]
    assert [(e.id, e.source) for e in await storage.read_events("d")] == [(1, "Oscar")]
    assert [e.id for e in (await storage.load_world("d")).events] == [1]


async def test_a_long_branch_loads_only_its_recent_events(storage):
    await storage.create_world(world("main"))
    await _log(storage, "main", 1, RECENT_EVENTS_HELD + 10)
    await storage.create_world(world("b", parent_id="main", fork_event=RECENT_EVENTS_HELD + 5))
    await _log(storage, "b", RECENT_EVENTS_HELD + 6, 3, source="Lisa")

    loaded = await storage.load_world("b")
    assert len(loaded.events) == RECENT_EVENTS_HELD
    assert loaded.events_first == 8 and loaded.events[0].id == 9
    assert [e.source for e in loaded.events[-3:]] == ["Lisa"] * 3
    assert len(await storage.read_events("b")) == RECENT_EVENTS_HELD + 8


async def test_branches_live_beside_the_channels_world_and_are_listed_with_it(storage):
    await storage.create_world(world("main"))
    await storage.write_step(step("main", 1))
    await storage.create_world(world("b", parent_id="main", fork_event=1, thread="t1"))
    await storage.create_world(world("c", parent_id="main", fork_event=1, thread="t2"))

    assert (await storage.world_for_channel("console:main")).id == "main"
    assert [w.id for w in await storage.active_worlds()] == ["main"]
    assert [w.id for w in await storage.branches("main")] == ["b", "c"]
    await storage.stop_world("b")
    assert [(w.id, w.status) for w in await storage.branches("main")] == [
        ("b", WorldStatus.STOPPED), ("c", WorldStatus.ACTIVE)]


async def test_branch_names_are_unique_and_a_world_with_branches_is_not_reset(storage):
    await storage.create_world(world("main"))
    await _log(storage, "main", 1, 2)
    await storage.create_world(world("b", parent_id="main", fork_event=2).model_copy(update={"name": "discount"}))
    with pytest.raises(StorageError, match="already a branch named 'discount'"):
        await storage.create_world(world("b2", parent_id="main", fork_event=2).model_copy(update={"name": "discount"}))

    with pytest.raises(StorageError, match="branches share its conversation"):
        await storage.reset_world("main", clock={}, policy={})
    assert [e.id for e in await storage.read_events("b")] == [1, 2]


async def test_a_branch_reads_the_outbox_entries_of_the_events_it_shares(storage):
    await storage.create_world(world("main"))
    await storage.write_step(step("main", 1))
    await storage.write_step(step("main", 2))
    await storage.create_world(world("b", parent_id="main", fork_event=1))
    await storage.write_step(step("b", 2))
    entries = await storage.outbox_entries("b")
    assert [(e.world_id, e.event_id) for e in entries] == [("main", 1), ("b", 2)]
    assert [(e.world_id, e.event_id) for e in await storage.outbox_entries("main")] == [("main", 1), ("main", 2)]
