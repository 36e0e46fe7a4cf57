"""A saved and restored world continues exactly as if it had never stopped."""

from __future__ import annotations

import json
import sqlite3

import pytest

from simulation.world import TinyWorld, WorldError
from tests.support.worlds import make_world, stack_for


def dump(world: TinyWorld) -> list[dict]:
    return [e.model_dump(mode="json") for e in world.events]


async def test_restore_and_continue_equals_never_stopping_with_the_cache(server, tmp_path):
    cache = tmp_path / "cache.sqlite3"
    server.responder.talk_to["Lisa Carter"] = "Oscar"

    straight_stack = stack_for(server, tmp_path, cache=True, cache_path=cache)
    straight = make_world(straight_stack.model, targeted_talk="room")
    await straight.broadcast("Speaker or vacuum?")
    await straight.run(4)
    await straight_stack.model.aclose()
    calls_first_run = len(server.requests)
    assert calls_first_run > 6

    first_stack = stack_for(server, tmp_path, cache=True, cache_path=cache)
    first = make_world(first_stack.model, targeted_talk="room")
    await first.broadcast("Speaker or vacuum?")
    await first.run(2)
    saved = tmp_path / "world.json"
    first.save(saved)
    await first_stack.model.aclose()

    second_stack = stack_for(server, tmp_path, cache=True, cache_path=cache)
    restored = TinyWorld.load(saved, second_stack.model)
    await restored.run(2)
    await second_stack.model.aclose()

    assert dump(restored) == dump(straight)
    assert restored.clock == straight.clock
    assert [a.state() for a in restored.agents] == [a.state() for a in straight.agents]
    assert len(server.requests) == calls_first_run, "the replay was served entirely from the cache"


async def test_saved_world_is_plain_json_with_everything(server, tmp_path):
    stack = stack_for(server, tmp_path)
    world = make_world(stack.model, policy="round_robin")
    await world.broadcast("Hello")
    await world.run(2)
    data = json.loads(world.to_json())
    assert data["name"] == "research" and data["policy"] == {"kind": "round_robin", "cursor": 2, "kept_place": None}
    assert len(data["agents"]) == 3 and data["agents"][0]["persona"]["name"] == "Lisa Carter"
    assert data["clock"]["step"] == 2 and len(data["events"]) == len(world.events)
    restored = TinyWorld.from_json(world.to_json(), stack.model)
    assert restored.policy.cursor == 2
    await stack.model.aclose()


async def test_loading_garbage_is_a_clear_error(server, tmp_path):
    stack = stack_for(server, tmp_path)
    with pytest.raises(WorldError, match="not a saved Troupe world"):
        TinyWorld.from_json('{"name": 3}', stack.model)
    with pytest.raises(WorldError, match="not a saved Troupe world"):
        TinyWorld.from_json("{truncated", stack.model)
    await stack.model.aclose()


async def test_a_restarted_persona_holds_its_recent_past_and_lives_on(tmp_path):
    """After a long conversation a running persona, and a restarted one, hold the summary and the
    recent past, not every episode ever lived; every episode is stored; the persona answers and its
    memory keeps being stored where it left off."""
    from tests.support.testbot import demo_settings, start_bot

    settings = demo_settings(tmp_path, default_exchanges=0)
    first = await start_bot(settings)
    await first.command("start Team room")
    await first.command("persona add Priya Nair")
    for n in range(150):
        await first.say(f"Priya, update number {n}: how is the launch going?")
    before = first.app.sessions.get("memory:general").world.find("Priya Nair")
    await before.settle()
    await first.app.wait_idle()
    await first.app.stop()
    lived, summary = before.episodic.count, before.episodic.summary
    assert lived > 400 and summary
    # Running, she let go of what was stored and folded long ago, as a restart would.
    assert before.episodic.first > 0 and len(before.episodic.episodes) < 400
    with sqlite3.connect(settings.database_path) as db:
        assert db.execute("SELECT count(*), max(seq) + 1 FROM episodes WHERE persona = 'Priya Nair'").fetchone() == (lived, lived)

    second = await start_bot(settings)
    try:
        priya = second.app.sessions.get("memory:general").world.find("Priya Nair")
        assert priya.episodic.count == lived and priya.episodic.summary == summary
        assert priya.episodic.first > 0 and len(priya.episodic.episodes) <= 250
        answers = await second.say("Priya, are you back with us?")
        assert [p.identity for p in answers if p.kind == "post"] == ["Priya Nair"]
    finally:
        await second.app.stop()
    third = await start_bot(settings)
    try:
        again = third.app.sessions.get("memory:general").world.find("Priya Nair")
        assert again.episodic.count == priya.episodic.count > lived
    finally:
        await third.app.stop()


async def test_a_long_event_log_is_held_in_part_exported_whole_and_numbered_on(tmp_path):
    """A channel with thousands of events: a restarted bot and a running one hold the log's recent
    part, exports still carry every event, and new events continue its numbering with no gap."""
    import csv
    import io

    from bots.storage import RECENT_EVENTS_HELD, StepWrite
    from bots.storage.sqlite import SQLiteStorage
    from simulation.events import Event, EventKind
    from tests.support.testbot import demo_settings, start_bot

    settings = demo_settings(tmp_path, default_exchanges=0)
    first = await start_bot(settings)
    await first.command("start Long room")
    for name in ("Priya Nair", "Tomasz Kowalski", "Amara Okafor", "Diego Hernández", "Henrik Lindqvist"):
        await first.command(f"persona add {name}")
    await first.say("Kick-off: what should we build first?")
    world_id = first.app.sessions.get("memory:general").record.id
    await first.app.stop()
    # Months of talk among the people in the channel, as the log holds it.
    storage = SQLiteStorage(settings.database_path)
    await storage.open()
    last = (await storage.load_world(world_id)).events[-1]
    history = [Event(id=last.id + n, kind=EventKind.STIMULUS, step=last.step, time=last.time, source="Sam",
                     type="CONVERSATION", content=f"Old message {n}") for n in range(1, 2000)]
    await storage.write_step(StepWrite(world_id=world_id, events=history))
    await storage.close()
    total = history[-1].id

    second = await start_bot(settings)
    try:
        world = second.app.sessions.get("memory:general").world
        # Loaded: the last 1,000 events (the answer owed to the last message is added after them).
        assert world.events_first == total - RECENT_EVENTS_HELD and world.events[0].content == "Old message 1000"
        await second.app.wait_idle()
        assert f"{world.event_count} events" in await second.reply("status")
        for n in range(25):
            await second.say(f"Back again, round {n}: where did we land?")
        assert world.event_count > total + 250
        assert len(world.events) < RECENT_EVENTS_HELD * 5 // 4, "the running bot let go of its stored past"
        assert [e.id for e in world.events] == list(range(world.events_first + 1, world.event_count + 1))
        second.adapter.uploads = True
        (shared,) = [s for s in await second.command("export csv") if s.kind == "file"]
        assert f"({world.event_count} events)" in shared.text
        exported = shared.file[1].decode()
        rows = list(csv.reader(io.StringIO(exported), strict=True))[1:]  # the header is line 1
        assert [int(r[0]) for r in rows] == list(range(1, world.event_count + 1))
        assert rows[last.id][7] == "Old message 1" and rows[-1][7] == world.events[-1].content
        count = world.event_count
    finally:
        await second.app.stop()
    third = await start_bot(settings)
    try:
        again = third.app.sessions.get("memory:general").world
        assert again.event_count == count and len(again.events) == RECENT_EVENTS_HELD
        await third.app.wait_idle()
        reply = [p for p in await third.say("Priya, anything to add?") if p.kind == "post"]
        assert reply and again.events[-1].id > count
    finally:
        await third.app.stop()
