"""A post the platform refused for a moment is tried again by itself, on the outbox's schedule, and
not after the outbox is closed; a post whose fate is unknown is looked for (in its thread, if it
went to one), and posted again only after the channel's history could not be read several times;
posts to a channel keep the platform's interval; every failure is recorded with its reason, and
nothing is posted ahead of a post whose fate is unknown."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from adapters.base import AdapterError, ChannelRef, Identity
from adapters.memory import MemoryAdapter
from bots.interviews import Interviews
from bots.outbox import MAX_UNCHECKED, Outbox
from bots.storage import OutboxEntry, OutboxStatus, StepWrite, WorldRecord
from bots.storage.sqlite import SQLiteStorage

CHANNEL = "memory:general"


class Unreadable(MemoryAdapter):
    """A platform that takes posts but whose channel history cannot be read."""

    async def find_post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None,
                        since: datetime, taken=()) -> str | None:
        raise AdapterError("history unavailable", retryable=True)


async def outbox_with_one_entry(tmp_path: Path, adapter: MemoryAdapter, delays: tuple[float, ...]):
    storage = SQLiteStorage(tmp_path / "troupe.db")
    await storage.open()
    await storage.create_world(WorldRecord(id="w1", channel_key=CHANNEL, name="Room"))
    tasks: list[asyncio.Future] = []
    outbox = Outbox(storage, {"memory": adapter}, retry_delays=delays, spawn=tasks.append)
    [stored] = await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
        world_id="w1", channel_key=CHANNEL, event_id=1, persona="Priya Nair",
        identity={"name": "Priya Nair"}, text="Let's ship on Friday.")]))
    return storage, outbox, stored


async def all_marked_posted(storage: SQLiteStorage, within: float = 5.0) -> None:
    """Until every entry is marked posted (the marks are written after the posts)."""
    deadline = asyncio.get_running_loop().time() + within
    while {e.status for e in await storage.outbox_entries("w1")} != {OutboxStatus.POSTED}:
        assert asyncio.get_running_loop().time() < deadline, "not every post was marked posted"
        await asyncio.sleep(0.01)


async def posted_within(adapter: MemoryAdapter, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while not adapter.posts():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_a_refused_post_is_tried_again_by_itself_after_the_first_delay(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    storage, outbox, _ = await outbox_with_one_entry(tmp_path, adapter, (0.05, 30.0))
    try:
        adapter.fail_next_posts(1)
        assert await outbox.deliver(CHANNEL) is False
        assert await posted_within(adapter, 3), "the retry after 0.05 s posted it"
        await asyncio.sleep(0.05)
        [entry] = await storage.outbox_entries("w1")
        assert (entry.status, entry.attempts) == (OutboxStatus.POSTED, 1)
    finally:
        outbox.close()
        await storage.close()


async def test_refusals_past_the_schedule_wait_its_last_delay_each_time(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    storage, outbox, _ = await outbox_with_one_entry(tmp_path, adapter, (0.02, 0.3))
    try:
        adapter.fail_next_posts(3)
        started = asyncio.get_running_loop().time()
        assert await outbox.deliver(CHANNEL) is False
        assert await posted_within(adapter, 3)
        assert asyncio.get_running_loop().time() - started >= 0.02 + 0.3 + 0.3
        assert adapter.post_attempts == 4 and len(adapter.posts()) == 1
    finally:
        outbox.close()
        await storage.close()


async def test_a_closed_outbox_tries_nothing_again(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    storage, outbox, _ = await outbox_with_one_entry(tmp_path, adapter, (0.02,))
    try:
        outbox.close()
        adapter.fail_next_posts(1)
        assert await outbox.deliver(CHANNEL) is False
        await asyncio.sleep(0.3)
        assert adapter.post_attempts == 1 and adapter.posts() == []
        [entry] = await storage.outbox_entries("w1")
        assert entry.status is OutboxStatus.PENDING, "it is posted at the next start"
    finally:
        await storage.close()


async def test_an_unreadable_history_is_looked_at_again_then_the_post_is_made_anyway(tmp_path: Path) -> None:
    adapter = Unreadable()
    storage, outbox, _ = await outbox_with_one_entry(tmp_path, adapter, (60.0,))
    try:
        adapter.fail_next_posts(1)
        assert await outbox.deliver(CHANNEL) is False  # the post failed: its fate is unknown from now on
        for attempts in range(2, MAX_UNCHECKED + 1):
            assert await outbox.deliver(CHANNEL) is False  # the channel could not be read: wait
            [entry] = await storage.outbox_entries("w1")
            assert (entry.attempts, entry.error) == (attempts, "could not check the channel: history unavailable")
            assert adapter.posts() == []
        assert await outbox.deliver(CHANNEL) is True  # a message delivered twice beats one never delivered
        await asyncio.sleep(0.05)
        assert len(adapter.posts()) == 1
        [entry] = await storage.outbox_entries("w1")
        assert entry.status is OutboxStatus.POSTED
    finally:
        outbox.close()
        await storage.close()


async def test_posts_to_a_channel_are_spaced_by_the_platforms_interval(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    adapter.post_interval_s = 0.2
    storage, outbox, _ = await outbox_with_one_entry(tmp_path, adapter, (60.0,))
    try:
        await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
            world_id="w1", channel_key=CHANNEL, event_id=2, persona="Priya Nair",
            identity={"name": "Priya Nair"}, text="Or Monday.")]))
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await outbox.deliver(CHANNEL) is True
        assert len(adapter.posts()) == 2 and loop.time() - started >= 0.2
    finally:
        outbox.close()
        await storage.close()


async def test_a_thread_post_whose_answer_was_lost_is_found_in_its_thread(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    storage = SQLiteStorage(tmp_path / "troupe.db")
    await storage.open()
    await storage.create_world(WorldRecord(id="w1", channel_key=CHANNEL, name="Room"))
    outbox = Outbox(storage, {"memory": adapter}, retry_delays=(60.0,))
    try:
        await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
            world_id="w1", channel_key=CHANNEL, event_id=1, persona="Priya Nair", thread="T1",
            identity={"name": "Priya Nair"}, text="In the thread: Friday.")]))
        adapter.crash_after_post(1, _answer_lost)
        assert await outbox.deliver(CHANNEL) is False  # posted in the thread; the answer never came
        assert await outbox.deliver(CHANNEL) is True  # found there, not posted again
        assert [(p.thread, p.text) for p in adapter.posts()] == [("T1", "In the thread: Friday.")]
    finally:
        outbox.close()
        await storage.close()


def _answer_lost(record) -> None:
    raise AdapterError("Server disconnected", retryable=True)


class Broken(MemoryAdapter):
    """A platform adapter with a bug: its first post raises something that is no AdapterError."""

    async def post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None = None) -> str:
        if not self.post_attempts:
            self.post_attempts += 1
            raise RuntimeError("adapter bug")
        return await super().post(channel, identity, text, thread)


async def test_a_failure_is_recorded_with_its_reason(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    storage, outbox, _ = await outbox_with_one_entry(tmp_path, adapter, (60.0,))
    told: list[tuple[int, str]] = []
    outbox.on_failure = lambda entry, error: told.append((entry.id, error))
    try:
        adapter.fail_next_posts(1)
        assert await outbox.deliver(CHANNEL) is False
        [entry] = await storage.outbox_entries("w1")
        assert (entry.status, entry.attempts, entry.error) == (OutboxStatus.PENDING, 1, "simulated platform failure")
        assert told == []
        adapter.fail_next_posts(1, retryable=False)
        assert await outbox.deliver(CHANNEL) is True  # looked for first, then refused for good
        [entry] = await storage.outbox_entries("w1")
        assert (entry.status, entry.error) == (OutboxStatus.FAILED, "simulated platform failure")
        assert told == [(entry.id, "simulated platform failure")]
    finally:
        outbox.close()
        await storage.close()


async def test_an_adapter_bug_leaves_the_post_pending_and_in_its_place(tmp_path: Path) -> None:
    adapter = Broken()
    storage, outbox, _ = await outbox_with_one_entry(tmp_path, adapter, (60.0,))
    try:
        await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
            world_id="w1", channel_key=CHANNEL, event_id=2, persona="Priya Nair",
            identity={"name": "Priya Nair"}, text="Or Monday.")]))
        assert await outbox.deliver(CHANNEL) is False
        assert adapter.posts() == [], "nothing is posted ahead of the one whose fate is unknown"
        first, second = await storage.outbox_entries("w1")
        assert (first.status, first.attempts, first.error) == (OutboxStatus.PENDING, 1, "RuntimeError: adapter bug")
        assert await outbox.deliver(CHANNEL) is True
        assert [p.text for p in adapter.posts()] == ["Let's ship on Friday.", "Or Monday."]
    finally:
        outbox.close()
        await storage.close()


async def test_a_platform_not_connected_here_keeps_its_posts_pending(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    storage, _, _ = await outbox_with_one_entry(tmp_path, adapter, (60.0,))
    outbox = Outbox(storage, {}, retry_delays=(60.0,))
    try:
        assert await outbox.deliver(CHANNEL) is False
        [entry] = await storage.outbox_entries("w1")
        assert (entry.status, entry.attempts) == (OutboxStatus.PENDING, 0)
    finally:
        outbox.close()
        await storage.close()


async def test_an_entry_stored_without_an_identity_posts_under_its_personas_name(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    storage = SQLiteStorage(tmp_path / "troupe.db")
    await storage.open()
    await storage.create_world(WorldRecord(id="w1", channel_key=CHANNEL, name="Room"))
    outbox = Outbox(storage, {"memory": adapter}, retry_delays=(60.0,))
    try:
        await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
            world_id="w1", channel_key=CHANNEL, event_id=1, persona="Priya Nair", text="Hello.")]))
        assert await outbox.deliver(CHANNEL) is True
        assert [(p.identity, p.text) for p in adapter.posts()] == [("Priya Nair", "Hello.")]
    finally:
        outbox.close()
        await storage.close()


class Stalled(MemoryAdapter):
    """A platform slow to answer posts to one channel, until ``answer`` is set."""

    def __init__(self, channel_id: str) -> None:
        super().__init__()
        self.stalled = channel_id
        self.answer = asyncio.Event()

    async def post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None = None) -> str:
        if channel.id == self.stalled:
            await self.answer.wait()
        return await super().post(channel, identity, text, thread)


async def test_a_post_slow_to_go_out_holds_up_no_other_channel_and_goes_out_once(tmp_path: Path) -> None:
    adapter = Stalled("general")
    storage, outbox, _ = await outbox_with_one_entry(tmp_path, adapter, (60.0,))
    await storage.create_world(WorldRecord(id="w2", channel_key="memory:random", name="Random"))
    await storage.write_step(StepWrite(world_id="w2", outbox=[OutboxEntry(
        world_id="w2", channel_key="memory:random", event_id=1, persona="Henrik Lindqvist",
        identity={"name": "Henrik Lindqvist"}, text="Lunch at noon?")]))
    try:
        slow = asyncio.ensure_future(outbox.deliver(CHANNEL))
        await asyncio.sleep(0.05)  # the post to #general waits for the platform's answer
        again = asyncio.ensure_future(outbox.deliver(CHANNEL))  # and another delivery there is asked for
        assert await asyncio.wait_for(outbox.deliver("memory:random"), 1) is True
        assert [p.text for p in adapter.posts()] == ["Lunch at noon?"]
        adapter.answer.set()
        assert await slow is True and await again is True
        assert sorted(p.text for p in adapter.posts()) == ["Let's ship on Friday.", "Lunch at noon?"]
    finally:
        outbox.close()
        await storage.close()


class SlowToRecord(SQLiteStorage):
    """Storage that takes its time to record that a post was made, until ``record`` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.record = asyncio.Event()

    async def mark_posted(self, entry_id: int, platform_message_id: str) -> None:
        await self.record.wait()
        await super().mark_posted(entry_id, platform_message_id)


async def test_while_a_post_is_being_recorded_the_next_one_goes_out_and_the_first_is_not_repeated(
        tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    storage = SlowToRecord(tmp_path / "troupe.db")
    await storage.open()
    await storage.create_world(WorldRecord(id="w1", channel_key=CHANNEL, name="Room"))
    marks: list[asyncio.Future] = []
    outbox = Outbox(storage, {"memory": adapter}, retry_delays=(60.0,), spawn=marks.append)
    try:
        for event_id, text in ((1, "Let's ship on Friday."), (2, "Or Monday.")):
            await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
                world_id="w1", channel_key=CHANNEL, event_id=event_id, persona="Priya Nair",
                identity={"name": "Priya Nair"}, text=text)]))
            assert await outbox.deliver(CHANNEL) is True
        assert [p.text for p in adapter.posts()] == ["Let's ship on Friday.", "Or Monday."]
        storage.record.set()
        await asyncio.gather(*marks)
        assert [e.status for e in await storage.outbox_entries("w1")] == [OutboxStatus.POSTED] * 2
        assert await outbox.deliver(CHANNEL) is True
        assert len(adapter.posts()) == 2
    finally:
        outbox.close()
        await storage.close()


async def test_a_personas_answer_to_an_interview_question_goes_to_the_interviews_thread(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    storage = SQLiteStorage(tmp_path / "troupe.db")
    await storage.open()
    await storage.create_world(WorldRecord(id="w1", channel_key=CHANNEL, name="Room"))
    interviews = Interviews(storage)
    outbox = Outbox(storage, {"memory": adapter}, retry_delays=(60.0,), interviews=interviews)
    try:
        interviews.asked(adapter.channel("general", thread="T7"), "Priya Nair")
        for event_id, persona, text in ((1, "Henrik Lindqvist", "I was not asked."),
                                        (2, "Priya Nair", "Friday, as I said."),
                                        (3, "Priya Nair", "And now to everyone.")):
            await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
                world_id="w1", channel_key=CHANNEL, event_id=event_id, persona=persona,
                identity={"name": persona}, text=text)]))
        assert await outbox.deliver(CHANNEL) is True
        assert [(p.identity, p.thread) for p in adapter.posts()] == [
            ("Henrik Lindqvist", None), ("Priya Nair", "T7"), ("Priya Nair", None)]
    finally:
        outbox.close()
        await storage.close()


async def test_posts_asked_for_while_one_goes_out_wait_in_one_delivery_and_go_out_in_order(tmp_path: Path) -> None:
    """A busy channel: however many posts are stored while one is going out, one delivery waits for
    them (not one each), and they go out after it, in the order they were stored."""
    adapter = Stalled("general")
    storage, outbox, first = await outbox_with_one_entry(tmp_path, adapter, (60.0,))
    try:
        outbox._clean.add(CHANNEL)  # nothing older is pending: deliveries post what they are given
        going_out = outbox.deliver_soon(CHANNEL, [first])
        await asyncio.sleep(0.05)  # the first post waits for the platform's answer
        asked: list[asyncio.Future] = []
        for n in range(2, 7):
            [stored] = await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
                world_id="w1", channel_key=CHANNEL, event_id=n, persona="Priya Nair",
                identity={"name": "Priya Nair"}, text=f"Point {n}.")]))
            asked.append(outbox.deliver_soon(CHANNEL, [stored]))
        assert len({going_out, *asked}) == 2, "the five later posts wait in one delivery"
        adapter.answer.set()
        assert await going_out is True and all([await a for a in asked])
        assert [p.text for p in adapter.posts()] == ["Let's ship on Friday.", *(f"Point {n}." for n in range(2, 7))]
        await all_marked_posted(storage)
        following = outbox.deliver_soon(CHANNEL, [])
        assert following not in asked and await following is True, "a later post starts a delivery of its own"
    finally:
        outbox.close()
        await storage.close()


async def test_a_post_asked_for_after_a_waiting_delivery_was_cancelled_still_goes_out(tmp_path: Path) -> None:
    adapter = Stalled("general")
    storage, outbox, first = await outbox_with_one_entry(tmp_path, adapter, (60.0,))
    try:
        outbox._clean.add(CHANNEL)
        going_out = outbox.deliver_soon(CHANNEL, [first])
        await asyncio.sleep(0.05)
        waiting = outbox.deliver_soon(CHANNEL, [])
        waiting.cancel()  # (the app stopping, say)
        await asyncio.sleep(0)
        [stored] = await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
            world_id="w1", channel_key=CHANNEL, event_id=2, persona="Priya Nair",
            identity={"name": "Priya Nair"}, text="One more thing.")]))
        later = outbox.deliver_soon(CHANNEL, [stored])
        assert later is not waiting
        adapter.answer.set()
        assert await going_out is True and await later is True
        assert [p.text for p in adapter.posts()] == ["Let's ship on Friday.", "One more thing."]
    finally:
        outbox.close()
        await storage.close()
