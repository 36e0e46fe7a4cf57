"""A crash between posting a message and recording it never doubles the post after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.base import AdapterError, Identity
from adapters.memory import MemoryAdapter, Sent, SimulatedCrash
from bots.outbox import Outbox
from bots.storage import OutboxEntry, OutboxStatus, StepWrite, WorldRecord
from bots.storage.sqlite import SQLiteStorage
from tests.support.testbot import TestBot, demo_settings, start_bot


async def crashed_after_posting(tmp_path: Path) -> tuple[MemoryAdapter, str]:
    """A bot that died right after its first persona post reached the platform, before noting it."""
    first = await start_bot(demo_settings(tmp_path))
    await first.command("start Team room")
    await first.command("persona add Priya Nair")
    never = asyncio.Event()
    first.adapter.crash_after_post(1, lambda record: never.wait())  # the process freezes right here
    first.adapter.push_message("Priya, what's the plan for today?")
    await first.adapter.pop("post")  # it did reach the channel
    world_id = first.app.sessions.get("memory:general").record.id
    await first.app.stop(timeout=0.2)  # and the process is gone before it could note it
    storage = SQLiteStorage(tmp_path / "troupe.db")
    await storage.open()
    try:
        entries = await storage.outbox_entries(world_id)
    finally:
        await storage.close()
    assert [(e.status, e.attempts) for e in entries] == [(OutboxStatus.PENDING, 0)]
    return first.adapter, world_id


async def test_a_post_whose_recording_was_lost_is_found_not_reposted(tmp_path: Path) -> None:
    before, world_id = await crashed_after_posting(tmp_path)
    platform = MemoryAdapter()
    platform.sent = list(before.sent)  # the platform still shows what was posted
    second = await start_bot(demo_settings(tmp_path), platform)
    try:
        await second.app.wait_idle()
        assert len(platform.posts()) == 1, "posted twice"
        entries = await second.app.storage.outbox_entries(world_id)
        assert [e.status for e in entries] == [OutboxStatus.POSTED]
        assert entries[0].platform_message_id == before.posts()[0].message_id
    finally:
        await second.app.stop()


async def test_without_a_history_to_look_in_the_post_is_delivered_again(tmp_path: Path) -> None:
    before, world_id = await crashed_after_posting(tmp_path)
    platform = MemoryAdapter()
    platform.history_visible = False  # a platform that cannot tell: at least once beats never
    second = await start_bot(demo_settings(tmp_path), platform)
    try:
        await second.app.wait_idle()
        assert [p.text for p in platform.posts()] == [before.posts()[0].text]
        entries = await second.app.storage.outbox_entries(world_id)
        assert [e.status for e in entries] == [OutboxStatus.POSTED]
    finally:
        await second.app.stop()


async def priya_answered_then_stopped(tmp_path: Path, *questions: str) -> tuple[Sent, MemoryAdapter]:
    """A bot in which Priya answered ``questions``, stopped: her first answer, and a platform whose
    history holds what was said (where what is written while the bot is down goes)."""
    first = await start_bot(demo_settings(tmp_path))
    await first.command("start Team room")
    await first.command("persona add Priya Nair")
    for question in questions:
        await first.say(question)
    await first.app.stop()
    platform = MemoryAdapter()
    platform.history = list(first.adapter.history)
    return first.adapter.posts()[0], platform


def heard_in(bot: TestBot) -> list[str]:
    """What the channel's world heard, in order."""
    return [e.content for e in bot.app.sessions.get("memory:general").world.events if e.kind.value == "stimulus"]


async def test_messages_written_while_the_bot_was_down_are_heard_once_after_restart(tmp_path: Path) -> None:
    _, platform = await priya_answered_then_stopped(tmp_path, "Priya, first question: how are you?")
    platform.write_while_away("Priya, are you back?")
    platform.write_while_away("Priya, second thing: the budget.")
    second = await start_bot(demo_settings(tmp_path), platform)
    try:
        await second.app.wait_idle()
        assert heard_in(second) == ["Priya, first question: how are you?", "Priya, are you back?",
                                    "Priya, second thing: the budget."]
        assert platform.posts() and {p.identity for p in platform.posts()} == {"Priya Nair"}  # she answers them
        # The platform delivers one of them again (a retry): it is not heard twice.
        again = platform.history[-2]
        platform._events.put_nowait(again)
        await second.app.wait_idle()
        assert heard_in(second).count("Priya, are you back?") == 1
    finally:
        await second.app.stop()


async def test_replies_in_a_thread_written_while_the_bot_was_down_are_heard_after_restart(tmp_path: Path) -> None:
    """A thread that is no branch's belongs to the channel's world, after a restart as live."""
    answer, platform = await priya_answered_then_stopped(tmp_path, "Priya, first question: how are you?",
                                                         "Anyone else around?")
    platform.write_while_away("Priya, about that answer: why?", thread=answer.message_id)
    second = await start_bot(demo_settings(tmp_path), platform)
    try:
        await second.app.wait_idle()
        assert heard_in(second) == ["Priya, first question: how are you?", "Anyone else around?",
                                    "Priya, about that answer: why?"]
        assert platform.posts(), "she answers it"
    finally:
        await second.app.stop()


async def test_a_restart_does_not_make_personas_speak_unprompted(tmp_path: Path) -> None:
    first = await start_bot(demo_settings(tmp_path, default_exchanges=0))
    await first.command("start Team room")
    await first.command("persona add Priya Nair")
    await first.command("persona add Henrik Lindqvist")
    await first.say("Morning both, how was the weekend?")
    answered = len(first.adapter.posts())
    assert answered == 2
    await first.app.stop()
    second = await start_bot(demo_settings(tmp_path, default_exchanges=0))
    try:
        await second.app.wait_idle()
        assert second.adapter.posts() == [], "nobody spoke to them since they answered"
    finally:
        await second.app.stop()


async def test_messages_received_but_not_handled_before_a_crash_are_heard_after_restart(tmp_path: Path) -> None:
    from adapters.base import IncomingMessage

    first = await start_bot(demo_settings(tmp_path))
    await first.command("start Team room")
    await first.command("persona add Priya Nair")
    await first.say("Priya, first question?")
    heard_already = first.adapter.history[-1]
    # Two messages were received (kept in the inbox) when the process died, before they were handled;
    # one of them had in fact been heard just before the crash.
    waiting = IncomingMessage(channel=first.adapter.channel("general"), user=first.adapter.user("gus"),
                              text="Priya, did you see my last message?", message_id="999001")
    await first.app.storage.inbox_add("memory:general", waiting.model_dump(mode="json"))
    await first.app.storage.inbox_add("memory:general", heard_already.model_dump(mode="json"))
    await first.app.stop()
    second = await start_bot(demo_settings(tmp_path), MemoryAdapter())
    try:
        await second.app.wait_idle()
        world = second.app.sessions.get("memory:general").world
        heard = [e.content for e in world.events if e.kind.value == "stimulus"]
        assert heard == ["Priya, first question?", "Priya, did you see my last message?"]
        assert await second.app.storage.inbox_pending() == []
        assert [p.identity for p in second.adapter.posts()] == ["Priya Nair"]
    finally:
        await second.app.stop()


async def test_a_post_cut_short_in_this_run_is_looked_for_before_it_is_sent_again(tmp_path: Path) -> None:
    bot = await start_bot(demo_settings(tmp_path))
    try:
        await bot.command("start Team room")
        await bot.command("persona add Priya Nair")
        bot.adapter.crash_after_post(1)  # the post lands, then the task posting it dies
        await bot.say("Priya, what's the plan for today?")
        await bot.say("Priya, and for tomorrow?")
        texts = [p.text for p in bot.adapter.posts()]
        assert len(texts) == 2 and len(set(texts)) == 2, texts
        session = bot.app.sessions.get("memory:general")
        entries = await bot.app.storage.outbox_entries(session.record.id)
        assert [e.status for e in entries] == [OutboxStatus.POSTED, OutboxStatus.POSTED]
        assert entries[0].platform_message_id == bot.adapter.posts()[0].message_id
    finally:
        await bot.app.stop()


async def test_a_failed_post_keeps_its_place_ahead_of_later_ones(tmp_path: Path) -> None:
    bot = await start_bot(demo_settings(tmp_path))
    try:
        await bot.command("start Team room")
        await bot.command("persona add Priya Nair")
        await bot.command("persona add Tomasz Kowalski")
        bot.adapter.fail_next_posts(1)  # the platform refuses the first answer for a moment
        bot.adapter.push_message("Priya and Tomasz, what do you both think of the plan?")
        posts = [await bot.adapter.pop("post", timeout=10) for _ in range(2)]
        await bot.app.wait_idle()  # the last post is marked posted after the platform took it
        world_id = bot.app.sessions.get("memory:general").record.id
        entries = await bot.app.storage.outbox_entries(world_id)
        assert [p.text for p in posts] == [e.text for e in sorted(entries, key=lambda e: e.id)]
        assert entries[0].attempts == 1 and all(e.status is OutboxStatus.POSTED for e in entries)
        assert len(bot.adapter.posts()) == 2, "nothing is posted twice"
    finally:
        await bot.app.stop()


async def _outbox_with_one_entry(tmp_path: Path) -> tuple[SQLiteStorage, MemoryAdapter, Outbox, OutboxEntry]:
    """An outbox on real storage holding one pending persona message for memory:general."""
    storage = SQLiteStorage(tmp_path / "troupe.db")
    await storage.open()
    await storage.create_world(WorldRecord(id="w1", channel_key="memory:general", name="Room"))
    adapter = MemoryAdapter()
    outbox = Outbox(storage, {"memory": adapter}, retry_delays=(60.0,))  # retries stay out of the way
    [stored] = await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
        world_id="w1", channel_key="memory:general", event_id=1, persona="Priya Nair",
        identity={"name": "Priya Nair"}, text="Let's ship on Friday.")]))
    return storage, adapter, outbox, stored


def _answer_lost(record: Sent) -> None:
    raise AdapterError("Server disconnected", retryable=True)


async def test_a_post_found_after_its_answer_was_lost_is_not_sent_again_by_a_delivery_queued_earlier(
        tmp_path: Path) -> None:
    """The platform took the post but the answer was lost; a later look finds it. A delivery queued
    behind those two, still holding the entry as it was stored, must not post it a second time."""
    storage, adapter, outbox, stored = await _outbox_with_one_entry(tmp_path)
    try:
        adapter.crash_after_post(1, _answer_lost)
        assert await outbox.deliver("memory:general") is False  # posted, but the bot never heard back
        assert await outbox.deliver("memory:general") is True  # looks in the channel: it is there
        assert await outbox.deliver("memory:general", [stored]) is True  # the turn's own delivery, queued earlier
        assert len(adapter.posts()) == 1, [p.text for p in adapter.posts()]
        [entry] = await storage.outbox_entries("w1")
        assert entry.status is OutboxStatus.POSTED and entry.platform_message_id == adapter.posts()[0].message_id
    finally:
        outbox.close()
        await storage.close()


async def test_a_delivery_cut_short_after_the_platform_took_its_post_leaves_the_next_one_to_look(
        tmp_path: Path) -> None:
    """The task posting a message dies once the platform has it, before it is noted. The next turn's
    delivery, which would post only its own entries, reads what is pending instead: the first one is
    found in the channel and marked posted, not left pending until a restart, nor posted twice."""
    storage, adapter, outbox, _ = await _outbox_with_one_entry(tmp_path)
    try:
        adapter.crash_after_post(1)
        with pytest.raises(SimulatedCrash):
            await outbox.deliver("memory:general")
        [later] = await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
            world_id="w1", channel_key="memory:general", event_id=2, persona="Priya Nair",
            identity={"name": "Priya Nair"}, text="And review on Monday.")]))
        assert await outbox.deliver("memory:general", [later]) is True
        assert [p.text for p in adapter.posts()] == ["Let's ship on Friday.", "And review on Monday."]
        await _posted(storage, 2)
    finally:
        outbox.close()
        await storage.close()


async def test_a_post_refused_for_good_is_not_sent_by_a_delivery_queued_earlier(tmp_path: Path) -> None:
    storage, adapter, outbox, stored = await _outbox_with_one_entry(tmp_path)
    try:
        adapter.fail_next_posts(1, retryable=False)
        assert await outbox.deliver("memory:general") is True
        assert await outbox.deliver("memory:general", [stored]) is True
        assert adapter.posts() == [] and adapter.post_attempts == 1
        [entry] = await storage.outbox_entries("w1")
        assert entry.status is OutboxStatus.FAILED
    finally:
        outbox.close()
        await storage.close()


async def test_after_a_restart_the_bot_listens_while_what_it_owes_is_still_being_posted(tmp_path: Path) -> None:
    """A platform allows one post a second: a backlog at start-up must not keep the bot deaf meanwhile.
    The owed posts still come first in their channel, in order, once each."""
    first = await start_bot(demo_settings(tmp_path, default_exchanges=0))
    await first.command("start Team room")
    for name in ("Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist"):
        await first.command(f"persona add {name}")
    first.adapter.fail_next_posts(1000)  # the platform is down: three answers stay owed
    first.adapter.push_message("Morning all, what's on your plate?")
    world_id = first.app.sessions.get("memory:general").record.id
    for _ in range(200):
        owed = [e for e in await first.app.storage.outbox_entries(world_id) if e.status is OutboxStatus.PENDING]
        if len(owed) == 3:
            break
        await asyncio.sleep(0.02)
    await first.app.stop(timeout=0.5)
    assert len(owed) == 3

    platform = MemoryAdapter()
    platform.post_interval_s = 0.4
    second = await start_bot(demo_settings(tmp_path, default_exchanges=0), platform)
    try:
        platform.push_command("status")
        await platform.pop("reply", timeout=5)
        assert len(platform.posts()) < 3, "the bot answered only after posting its whole backlog"
        await second.app.wait_idle()
        assert [p.text for p in platform.posts()] == [e.text for e in sorted(owed, key=lambda e: e.id)]
        entries = await second.app.storage.outbox_entries(world_id)
        assert all(e.status is OutboxStatus.POSTED for e in entries)
    finally:
        await second.app.stop()


async def test_after_a_restart_channels_catch_up_a_few_at_a_time(tmp_path: Path) -> None:
    """Reading twelve channels' histories one after another would keep the bot deaf for twelve round
    trips; they are read side by side, at most eight at once, and every missed message is heard."""
    from adapters.base import ChannelRef, IncomingMessage

    class SlowHistory(MemoryAdapter):
        def __init__(self) -> None:
            super().__init__()
            self.reading = self.most = 0

        async def catch_up(self, channel: ChannelRef, after: str) -> list[IncomingMessage]:
            self.reading += 1
            self.most = max(self.most, self.reading)
            await asyncio.sleep(0.05)  # a round trip to the platform
            self.reading -= 1
            return await super().catch_up(channel, after)

    rooms = [f"room{n}" for n in range(12)]
    first = await start_bot(demo_settings(tmp_path, default_exchanges=0))
    for room in rooms:
        await first.command("start Team room", channel=room)
        await first.command("persona add Priya Nair", channel=room)
        await first.say(f"Priya, hello from {room}?", channel=room)
    await first.app.stop()

    platform = SlowHistory()
    platform.history = list(first.adapter.history)
    for room in rooms:
        platform.write_while_away(f"Priya, anything new in {room}?", channel=room)
    second = await start_bot(demo_settings(tmp_path, default_exchanges=0), platform)
    try:
        await second.app.wait_idle()
        assert 1 < platform.most <= 8
        for room in rooms:
            world = second.app.sessions.get(f"memory:{room}").world
            heard = [e.content for e in world.events if e.kind.value == "stimulus"]
            assert heard[-1] == f"Priya, anything new in {room}?"
        assert len(platform.posts()) == len(rooms), "each channel's missed message is answered"
    finally:
        await second.app.stop()


async def _outbox_with_the_same_words_twice(tmp_path: Path) -> tuple[SQLiteStorage, MemoryAdapter, list[OutboxEntry]]:
    """Two pending entries in which a persona says the very same words (two messages, not one)."""
    storage = SQLiteStorage(tmp_path / "troupe.db")
    await storage.open()
    await storage.create_world(WorldRecord(id="w1", channel_key="memory:general", name="Room"))
    stored = await storage.write_step(StepWrite(world_id="w1", outbox=[OutboxEntry(
        world_id="w1", channel_key="memory:general", event_id=n, persona="Priya Nair",
        identity={"name": "Priya Nair"}, text="Agreed.") for n in (1, 2)]))
    return storage, MemoryAdapter(), stored


def _second_post_fails(adapter: MemoryAdapter) -> None:
    """The first post goes through; the platform refuses the next one for a moment (nothing posted)."""
    adapter.crash_after_post(1, lambda record: adapter.fail_next_posts(1))


async def _posted(storage: SQLiteStorage, count: int) -> None:
    for _ in range(200):  # a post's mark is written in the background
        if sum(e.status is OutboxStatus.POSTED for e in await storage.outbox_entries("w1")) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} entries were never marked posted")


async def test_a_message_left_unposted_is_not_taken_for_an_earlier_post_of_the_same_words(tmp_path: Path) -> None:
    """Priya says "Agreed." twice. The first is posted; the second's post fails, so it is looked for
    before it is tried again, and the first one's post is not it: it is posted, in this run and
    after a restart."""
    for restart in (False, True):
        storage, adapter, _ = await _outbox_with_the_same_words_twice(tmp_path / str(restart))
        outbox = Outbox(storage, {"memory": adapter}, retry_delays=(60.0,))
        try:
            _second_post_fails(adapter)
            assert await outbox.deliver("memory:general") is False
            assert len(adapter.posts()) == 1
            if restart:  # the process dies; only storage remembers the first post
                await _posted(storage, 1)
                outbox.close()
                outbox = Outbox(storage, {"memory": adapter}, retry_delays=(60.0,))
            assert await outbox.deliver("memory:general") is True
            assert [p.text for p in adapter.posts()] == ["Agreed.", "Agreed."], f"restart={restart}: one never shown"
            await _posted(storage, 2)
            entries = await storage.outbox_entries("w1")
            assert [e.platform_message_id for e in entries] == [p.message_id for p in adapter.posts()]
        finally:
            outbox.close()
            await storage.close()


async def test_two_posts_of_the_same_words_found_after_a_crash_are_matched_one_each_in_order(tmp_path: Path) -> None:
    """Both were posted and neither was marked: each entry is matched with its own post, oldest first."""
    storage, adapter, stored = await _outbox_with_the_same_words_twice(tmp_path)
    for entry in stored:  # the platform shows both; storage knows of neither
        await adapter.post(adapter.channel("general"), Identity(name="Priya Nair"), entry.text)
    restarted = Outbox(storage, {"memory": adapter}, retry_delays=(60.0,))
    try:
        assert await restarted.deliver("memory:general") is True
        assert len(adapter.posts()) == 2, "nothing was posted again"
        await _posted(storage, 2)
        entries = await storage.outbox_entries("w1")
        assert [e.platform_message_id for e in entries] == [p.message_id for p in adapter.posts()]
    finally:
        restarted.close()
        await storage.close()


async def test_what_another_worker_left_in_doubt_is_looked_for_as_soon_as_its_channel_is_taken(tmp_path: Path) -> None:
    """A worker that takes a channel over may post there at once (its world answers as it is loaded):
    an entry the last worker posted but never marked is looked for first, not posted again."""
    bot = await start_bot(demo_settings(tmp_path))
    try:
        # Another worker ran #general: it stored an answer, posted it and died before marking it.
        await bot.app.storage.create_world(WorldRecord(id="gone", channel_key="memory:general", name="Room"))
        [left] = await bot.app.storage.write_step(StepWrite(world_id="gone", outbox=[OutboxEntry(
            world_id="gone", channel_key="memory:general", event_id=1, persona="Priya Nair",
            identity={"name": "Priya Nair"}, text="Posted by the worker that died.")]))
        await bot.adapter.post(bot.adapter.channel("general"), Identity(name="Priya Nair"), left.text)

        assert await bot.app.ownership.acquire("memory:general")
        assert await bot.app.outbox.deliver("memory:general") is True  # before anything else here
        await bot.app.wait_idle()
        assert [p.text for p in bot.adapter.posts()] == [left.text], "posted once, by the worker that died"
        [entry] = await bot.app.storage.outbox_entries("gone")
        assert entry.status is OutboxStatus.POSTED
    finally:
        await bot.app.stop()
