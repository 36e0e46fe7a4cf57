"""Every storage backend alike (each test runs on SQLite and on PostgreSQL): channel binding, atomic
step writes, the outbox, reset, usage, migrations, restarts and closing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bots.storage.base import (
    RECENT_EVENTS_HELD,
    AuditRecord,
    MemoryWrite,
    OutboxStatus,
    PersonaRecord,
    StepWrite,
    StorageError,
    UsageRow,
    WorldStatus,
)
from tests.bots.storage.records import T0, entry, event, memory, persona, step, world

# -- worlds and channels ----------------------------------------------------------------------


async def test_a_channel_holds_one_world_until_it_is_stopped(storage):
    await storage.create_world(world("w1", config={"talk": "room"}, clock={"step": 0}))
    assert (await storage.world_for_channel("console:main")).id == "w1"

    with pytest.raises(StorageError, match="console:main already has a world"):
        await storage.create_world(world("w2"))
    with pytest.raises(StorageError, match="already exists"):
        await storage.create_world(world("w1", channel="console:other"))

    await storage.update_world("w1", status=WorldStatus.PAUSED, name="Renamed", config={"talk": "private"})
    paused = await storage.world_for_channel("console:main")
    assert paused.status is WorldStatus.PAUSED and paused.name == "Renamed"
    assert paused.config == {"talk": "private"} and paused.clock == {"step": 0}
    assert [w.id for w in await storage.active_worlds()] == ["w1"]

    await storage.stop_world("w1")
    assert await storage.world_for_channel("console:main") is None
    assert await storage.active_worlds() == []

    await storage.create_world(world("w2"))
    assert (await storage.world_for_channel("console:main")).id == "w2"
    # The stopped world keeps its history and cannot take the channel back.
    assert (await storage.load_world("w1")).record.status is WorldStatus.STOPPED
    with pytest.raises(StorageError, match="already has another world"):
        await storage.update_world("w1", status="active")


async def test_world_errors_name_what_is_wrong(storage):
    with pytest.raises(StorageError, match="no world with id 'nope'"):
        await storage.load_world("nope")
    with pytest.raises(StorageError, match="no world with id 'nope'"):
        await storage.update_world("nope", name="x")
    with pytest.raises(StorageError, match="no world with id 'nope'"):
        await storage.stop_world("nope")
    with pytest.raises(StorageError, match="no world with id 'nope'"):
        await storage.write_step(step("nope", 1))
    with pytest.raises(StorageError, match="no world with id 'nope'"):
        await storage.write_step(step("nope", 1, world={}))  # nothing of the world's own row to update
    with pytest.raises(ValueError, match="id"):
        await storage.update_world("nope", id="other")


async def test_a_step_of_a_missing_world_written_with_others_fails_alone_and_says_why(storage):
    await storage.create_world(world("w1"), [persona("Oscar", 0)])
    results = await asyncio.gather(
        storage.write_step(step("w1", 1, world={})),
        storage.write_step(step("nope", 1, world={})),
        storage.write_step(step("w1", 2, world={})),
        return_exceptions=True,
    )
    assert [e.event_id for e in results[0]] == [1] and [e.event_id for e in results[2]] == [2]
    assert isinstance(results[1], StorageError) and "no world with id 'nope'" in str(results[1])
    assert [e.id for e in (await storage.load_world("w1")).events] == [1, 2]


async def test_personas_are_saved_replaced_and_removed_with_their_memory(storage):
    await storage.create_world(world(), [persona("Lisa", 1), persona("Oscar", 0)])
    await storage.save_persona("w1", persona("Ana", 2), memory("Ana"))
    await storage.save_persona("w1", PersonaRecord(name="Lisa", spec={"name": "Lisa", "age": 41}, position=1))

    loaded = await storage.load_world("w1")
    assert [p.name for p in loaded.personas] == ["Oscar", "Lisa", "Ana"]
    assert loaded.personas[1].spec["age"] == 41
    assert loaded.memories == {"Ana": memory("Ana")}

    await storage.write_step(StepWrite(world_id="w1", events=[event(1, source="Ana")]))
    await storage.remove_persona("w1", "Ana")
    loaded = await storage.load_world("w1")
    assert [p.name for p in loaded.personas] == ["Oscar", "Lisa"]
    assert loaded.memories == {}
    assert [e.source for e in loaded.events] == ["Ana"]  # its past stays in the log

    with pytest.raises(StorageError):
        await storage.save_persona("ghost", persona("Ana"))


async def test_personas_keep_their_order_across_a_removal_and_a_restart(storage):
    """Priya, Tomasz, Henrik; Tomasz leaves and Amara joins (in the last place, as the running world
    has her): loaded back, the order is the running world's, not Amara before Henrik."""
    await storage.create_world(world(), [persona("Priya", 0), persona("Tomasz", 1), persona("Henrik", 2)])
    await storage.remove_persona("w1", "Tomasz")
    await storage.save_persona("w1", persona("Amara", 2))  # len(agents) - 1 after she is added
    assert [p.name for p in (await storage.load_world("w1")).personas] == ["Priya", "Henrik", "Amara"]
    await storage.remove_persona("w1", "Priya")
    await storage.save_persona("w1", persona("Diego", 2))
    assert [p.name for p in (await storage.load_world("w1")).personas] == ["Henrik", "Amara", "Diego"]


# -- the step ---------------------------------------------------------------------------------


async def test_a_step_round_trips_through_load_world(storage):
    await storage.create_world(world(), [persona("Oscar")])
    write = StepWrite(
        world_id="w1",
        world={"clock": {"step": 3, "now": T0}, "policy": {"kind": "everyone"}, "situation": "Stand-up"},
        events=[
            event(3, target="Lisa", meta={"cached": True}, model="gpt-4o-mini"),
            event(1, recipients=["Oscar", "Lisa"]),
            event(2),
        ],
        memories={"Oscar": MemoryWrite.since(memory(episodes=30, unread_from=30), 0)},
        outbox=[entry("w1", 3)],
        usage=[UsageRow(persona="Oscar", calls=2, prompt_tokens=100, cost_usd=0.01), UsageRow(calls=1)],
    )
    [stored] = await storage.write_step(write)
    assert stored.id is not None and stored.event_id == 3 and stored.status is OutboxStatus.PENDING

    loaded = await storage.load_world("w1")
    assert [e.id for e in loaded.events] == [1, 2, 3]
    assert loaded.events == sorted(write.events, key=lambda e: e.id)
    assert loaded.memories == {"Oscar": memory(episodes=30, unread_from=30)}
    assert loaded.record.clock["step"] == 3 and datetime.fromisoformat(loaded.record.clock["now"]) == T0
    assert loaded.record.policy == {"kind": "everyone"} and loaded.record.situation == "Stand-up"
    assert loaded.usage == [UsageRow(persona=None, calls=1), write.usage[0]]
    assert await storage.outbox_entries("w1") == [stored]


async def test_a_step_with_a_bad_part_leaves_nothing_while_the_others_land(storage, backend):
    for i in range(5):
        await storage.create_world(world(f"w{i}", f"console:{i}"))
    bad = step("w2", 1, channel="console:2")
    bad.outbox.append(entry("ghost", 1, "console:2"))  # no such world: the foreign key refuses it
    commits = storage.commits if backend.name == "sqlite" else 0

    results = await asyncio.gather(
        *(storage.write_step(step(f"w{i}", 1, count=2, channel=f"console:{i}")) for i in (0, 1)),
        storage.write_step(bad),
        *(storage.write_step(step(f"w{i}", 1, count=2, channel=f"console:{i}")) for i in (3, 4)),
        return_exceptions=True,
    )

    assert isinstance(results[2], StorageError) and "w2" in str(results[2])
    assert all(isinstance(r, list) and len(r) == 1 for i, r in enumerate(results) if i != 2)
    if backend.name == "sqlite":
        assert storage.commits == commits + 1  # the bad write was isolated inside the same group commit
    stored_bad = await storage.load_world("w2")
    assert stored_bad.events == [] and stored_bad.memories == {} and stored_bad.record.clock == {}
    assert await storage.outbox_entries("w2") == []
    for i in (0, 1, 3, 4):
        loaded = await storage.load_world(f"w{i}")
        assert [e.id for e in loaded.events] == [1, 2] and loaded.record.clock == {"step": 2}


async def test_a_step_for_an_unknown_world_is_refused(storage):
    with pytest.raises(StorageError, match="ghost"):
        await storage.write_step(StepWrite(world_id="ghost", world={"clock": {"step": 1}}))
    with pytest.raises(StorageError, match="ghost"):
        await storage.write_step(StepWrite(world_id="ghost", events=[event(1)]))
    with pytest.raises(ValueError, match="colour"):
        await storage.write_step(StepWrite(world_id="ghost", world={"colour": "red"}))


async def test_outbox_entries_and_events_are_written_once(storage):
    await storage.create_world(world())
    [first] = await storage.write_step(step("w1", 1))

    # A replay after a crash: same events and entry, even with different text.
    replay = step("w1", 1)
    replay.events[0] = event(1, content="changed")
    replay.outbox[0] = entry("w1", 1, text="changed")
    [again] = await storage.write_step(replay)
    assert again == first

    twins = await asyncio.gather(*(storage.write_step(step("w1", 2)) for _ in range(5)))
    assert len({entries[0].id for entries in twins}) == 1

    assert [(e.event_id, e.text) for e in await storage.outbox_entries("w1")] == [(1, "message 1"), (2, "message 2")]
    assert [e.content for e in (await storage.load_world("w1")).events] == ["message 1", "message 2"]


async def test_a_write_cancelled_while_queued_is_not_applied(storage):
    await storage.create_world(world())
    task = asyncio.create_task(storage.write_step(step("w1", 1)))
    await asyncio.sleep(0)  # it is queued; the writer has not run yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await storage.write_step(step("w1", 2))
    assert [e.id for e in (await storage.load_world("w1")).events] == [2]


async def test_concurrent_steps_all_land(storage, backend):
    channels = 200
    for i in range(channels):
        await storage.create_world(world(f"w{i}", f"console:{i}"))
    commits = storage.commits if backend.name == "sqlite" else 0

    results = await asyncio.gather(
        *(storage.write_step(step(f"w{i}", 1, count=3, channel=f"console:{i}")) for i in range(channels))
    )

    if backend.name == "sqlite":
        assert storage.commits - commits <= 3  # grouped, not one commit per write
    assert len({r[0].id for r in results}) == channels
    assert len(await storage.pending_outbox()) == channels
    for i in (0, 99, 199):
        assert len((await storage.load_world(f"w{i}")).events) == 3


async def test_a_world_loads_as_one_commit_left_it_while_steps_are_written(storage):
    """Loading reads one snapshot: the clock, the events and the memory of a world being written to
    always belong to the same step, never the clock of one and the events of the next."""
    await storage.create_world(world(), [persona("Oscar")])
    written = 0

    async def write() -> None:
        nonlocal written
        for n in range(1, 61):
            await storage.write_step(step("w1", n))
            written = n

    writing = asyncio.create_task(write())
    loads = 0
    try:
        while not writing.done() or loads == 0:
            loaded = await storage.load_world("w1")
            last = len(loaded.events)
            assert loaded.record.clock == ({"step": last} if last else {})
            assert (loaded.memories["Oscar"].unread_from if last else 0) == last
            loads += 1
    finally:
        await writing
    assert written == 60 and loads > 1


# -- the outbox -------------------------------------------------------------------------------


async def test_pending_outbox_is_oldest_first_and_filters_by_channel(storage):
    await storage.create_world(world("a", "console:a"))
    await storage.create_world(world("b", "console:b"))
    for n in range(1, 4):
        await storage.write_step(step("a", n, channel="console:a"))
        await storage.write_step(step("b", n, channel="console:b"))

    pending = await storage.pending_outbox()
    assert [(e.channel_key, e.event_id) for e in pending] == [
        ("console:a", 1), ("console:b", 1), ("console:a", 2), ("console:b", 2), ("console:a", 3), ("console:b", 3)
    ]
    assert [e.id for e in pending] == sorted(e.id for e in pending)
    assert [e.event_id for e in await storage.pending_outbox("console:b")] == [1, 2, 3]

    a1, _, a2, _, a3, _ = pending
    await storage.mark_posted(a1.id, "m-1")
    await storage.set_outbox_status(a2.id, OutboxStatus.HELD)
    assert [e.event_id for e in await storage.pending_outbox("console:a")] == [3]
    await storage.set_outbox_status(a2.id, OutboxStatus.PENDING)
    assert [e.event_id for e in await storage.pending_outbox("console:a")] == [2, 3]
    await storage.set_outbox_status(a3.id, OutboxStatus.BLOCKED, "unsafe")
    assert [e.event_id for e in await storage.pending_outbox("console:a")] == [2]
    assert await storage.pending_outbox("console:none") == []


async def test_attempts_failures_and_posting_are_recorded(storage):
    await storage.create_world(world())
    [queued] = await storage.write_step(step("w1", 1))

    await storage.mark_attempt(queued.id, "rate limited")
    await storage.mark_attempt(queued.id)
    [tried] = await storage.pending_outbox()
    assert tried.attempts == 2 and tried.error == "rate limited" and tried.posted_at is None

    await storage.mark_posted(queued.id, "1234")
    [posted] = await storage.outbox_entries("w1")
    assert posted.status is OutboxStatus.POSTED and posted.platform_message_id == "1234"
    assert posted.error is None and posted.posted_at is not None and posted.attempts == 2

    await storage.set_outbox_status(queued.id, OutboxStatus.FAILED, "channel deleted")
    [failed] = await storage.outbox_entries("w1")
    assert failed.status is OutboxStatus.FAILED and failed.error == "channel deleted"

    for call in (
        storage.mark_posted(999, "x"),
        storage.mark_attempt(999),
        storage.set_outbox_status(999, OutboxStatus.POSTED),
    ):
        with pytest.raises(StorageError, match="no outbox entry with id 999"):
            await call


async def test_a_held_message_is_decided_once_and_the_decision_is_audited(storage):
    await storage.create_world(world())
    [held, other] = [(await storage.write_step(step("w1", n)))[0] for n in (1, 2)]
    await storage.set_outbox_status(held.id, OutboxStatus.HELD)
    await storage.set_outbox_status(other.id, OutboxStatus.HELD)
    assert [e.id for e in await storage.held_outbox("console:main")] == [held.id, other.id]
    assert await storage.held_outbox("console:other") == []

    audit = AuditRecord(channel_key="console:main", world_id="w1", actor="console:mod (Mod)", action="edit",
                        outbox_id=held.id, detail={"reason": "softer"})
    decided = await storage.decide_outbox(held.id, OutboxStatus.PENDING, audit, text="Edited words",
                                          identity={"name": "Oscar", "avatar": "x.png"})
    assert (decided.status, decided.text, decided.identity) == (OutboxStatus.PENDING, "Edited words",
                                                                {"name": "Oscar", "avatar": "x.png"})
    assert decided == await storage.get_outbox(held.id)
    kept = await storage.decide_outbox(other.id, OutboxStatus.BLOCKED, audit.model_copy(update={"action": "reject"}))
    assert (kept.text, kept.identity) == (other.text, other.identity), "no new text: the words stay"

    [edit, reject] = await storage.audit_log("console:main")
    assert (edit.action, edit.outbox_id, edit.detail, edit.at) == ("edit", held.id, {"reason": "softer"}, audit.at)
    assert edit.id < reject.id and reject.action == "reject"
    await storage.record_audit(AuditRecord(channel_key="console:other", actor="troupe", action="input_flagged"))
    assert [r.action for r in await storage.audit_log("console:other")] == ["input_flagged"]


async def test_posted_ids_are_the_channels_latest_since_a_moment(storage):
    await storage.create_world(world())
    entries = [(await storage.write_step(step("w1", n)))[0] for n in (1, 2, 3)]
    before = datetime.now(UTC)
    await storage.mark_posted(entries[0].id, "m-1")
    await storage.mark_posted(entries[1].id, "m-2")
    assert await storage.posted_ids("console:main", before) == {"m-1", "m-2"}
    assert await storage.posted_ids("console:main", datetime.now(UTC) + timedelta(seconds=1)) == set()
    assert await storage.posted_ids("console:other", before) == set()


async def test_held_messages_of_a_persona_who_leaves_or_of_a_reset_world_are_blocked(storage):
    await storage.create_world(world(), [persona("Oscar"), persona("Lisa", 1)])
    oscars = await storage.write_step(step("w1", 1))
    lisas = await storage.write_step(StepWrite(world_id="w1", events=[event(2, source="Lisa")],
                                               outbox=[entry("w1", 2).model_copy(update={"persona": "Lisa"})]))
    for held in (*oscars, *lisas):
        await storage.set_outbox_status(held.id, OutboxStatus.HELD)

    assert await storage.remove_persona("w1", "Oscar") == 1
    gone = await storage.get_outbox(oscars[0].id)
    assert gone.status is OutboxStatus.BLOCKED and "left the world" in gone.error
    assert await storage.reset_world("w1", clock={}, policy={}) == 1
    reset = await storage.get_outbox(lisas[0].id)
    assert reset.status is OutboxStatus.BLOCKED and "reset" in reset.error
    assert await storage.held_outbox("console:main") == []


async def test_the_inbox_keeps_what_was_received_until_it_is_handled(storage):
    first = await storage.inbox_add("console:main", {"text": "Hello", "user": {"id": "u1"}})
    second = await storage.inbox_add("console:other", {"text": "Héllo again ✓"})
    assert second > first
    assert await storage.inbox_pending() == [
        (first, "console:main", {"text": "Hello", "user": {"id": "u1"}}),
        (second, "console:other", {"text": "Héllo again ✓"}),
    ]
    await storage.inbox_done(first)
    await storage.inbox_done(first)  # twice is fine
    assert [entry_id for entry_id, _, _ in await storage.inbox_pending()] == [second]


async def test_adapter_state_is_kept_replaced_and_forgotten(storage):
    assert await storage.adapter_state("discord", "webhook:1") is None
    await storage.set_adapter_state("discord", "webhook:1", {"id": "42", "token": "t"})
    await storage.set_adapter_state("discord", "webhook:1", {"id": "43"})
    await storage.set_adapter_state("slack", "webhook:1", {"other": True})
    assert await storage.adapter_state("discord", "webhook:1") == {"id": "43"}
    await storage.set_adapter_state("discord", "webhook:1", None)
    assert await storage.adapter_state("discord", "webhook:1") is None
    assert await storage.adapter_state("slack", "webhook:1") == {"other": True}


async def test_a_value_taken_by_many_at_once_goes_to_one_of_them(storage):
    await storage.set_adapter_state("slack", "oauth_state:abc", {"expires_at": 5})
    taken = await asyncio.gather(*(storage.take_adapter_state("slack", "oauth_state:abc") for _ in range(5)))
    assert sorted(taken, key=bool) == [None] * 4 + [{"expires_at": 5}]
    assert await storage.adapter_state("slack", "oauth_state:abc") is None
    assert await storage.take_adapter_state("slack", "oauth_state:never") is None


async def test_stale_values_under_a_prefix_are_forgotten_and_nothing_else(storage):
    for key in ("oauth_state:old", "oauth_stateX", "installation:T1"):
        await storage.set_adapter_state("slack", key, {"k": key})
    await storage.set_adapter_state("discord", "oauth_state:old", {"k": "discord"})
    cut = datetime.now(UTC)
    await storage.set_adapter_state("slack", "oauth_state:new", {"k": "new"})
    await storage.forget_stale_adapter_state("slack", "oauth_state:", cut)
    assert await storage.adapter_state("slack", "oauth_state:old") is None
    assert await storage.adapter_state("slack", "oauth_state:new") == {"k": "new"}
    assert await storage.adapter_state("slack", "oauth_stateX") == {"k": "oauth_stateX"}
    assert await storage.adapter_state("slack", "installation:T1") == {"k": "installation:T1"}
    assert await storage.adapter_state("discord", "oauth_state:old") == {"k": "discord"}


async def test_worlds_are_listed_oldest_first_with_their_event_counts_and_whole_logs(storage):
    for n, created in enumerate((T0 + timedelta(minutes=2), T0, T0 + timedelta(minutes=1))):
        await storage.create_world(world(f"w{n}", f"console:{n}", created_at=created))
    await storage.write_step(step("w2", 1, count=3, channel="console:2"))
    await storage.stop_world("w0")
    assert [w.id for w in await storage.all_worlds()] == ["w1", "w2", "w0"]
    assert [w.id for w in await storage.active_worlds()] == ["w1", "w2"]
    assert await storage.event_counts() == {"w2": 3}
    assert [e.id for e in await storage.read_events("w2")] == [1, 2, 3]
    assert await storage.read_events("w1") == []


async def test_only_the_recent_part_of_a_long_log_is_loaded_the_rest_is_read_on_demand(storage):
    await storage.create_world(world())
    total = RECENT_EVENTS_HELD + 25
    await storage.write_step(StepWrite(world_id="w1", events=[event(n) for n in range(1, total + 1)]))
    loaded = await storage.load_world("w1")
    assert (loaded.events_first, loaded.events[0].id, loaded.events[-1].id) == (25, 26, total)
    assert len(await storage.read_events("w1")) == total


# -- reset and usage --------------------------------------------------------------------------


async def test_reset_forgets_events_and_memories_but_keeps_personas_and_what_is_owed(storage):
    await storage.create_world(world(clock={"step": 5}, policy={"kind": "old"}), [persona("Oscar")])
    [posted] = await storage.write_step(step("w1", 1))
    [owed] = await storage.write_step(step("w1", 2))
    await storage.mark_posted(posted.id, "m-1")

    await storage.reset_world("w1", clock={"step": 0}, policy={"kind": "everyone"})
    loaded = await storage.load_world("w1")
    assert loaded.events == [] and loaded.memories == {}
    assert [p.name for p in loaded.personas] == ["Oscar"]
    assert loaded.record.clock == {"step": 0} and loaded.record.policy == {"kind": "everyone"}
    [still_owed] = await storage.pending_outbox()
    assert still_owed.id == owed.id and still_owed.text == owed.text

    # Event ids start again at 1: a new message for event 1 is a new entry, not the old one.
    [fresh] = await storage.write_step(step("w1", 1))
    assert fresh.id not in (posted.id, owed.id) and fresh.status is OutboxStatus.PENDING
    assert [e.id for e in await storage.pending_outbox()] == [owed.id, fresh.id]

    with pytest.raises(StorageError, match="no world"):
        await storage.reset_world("ghost", clock={}, policy={})


async def test_usage_rows_are_replaced_whole(storage):
    await storage.create_world(world())
    await storage.write_step(StepWrite(world_id="w1", usage=[UsageRow(persona="Oscar", calls=1), UsageRow(calls=1)]))
    latest = UsageRow(persona="Oscar", calls=3, cached_calls=1, completion_tokens=7, cost_usd=0.5)
    await storage.write_step(StepWrite(world_id="w1", usage=[latest]))
    assert await storage.usage("w1") == [UsageRow(persona=None, calls=1), latest]
    assert await storage.usage("ghost") == []


# -- memories ---------------------------------------------------------------------------------


async def test_a_memory_write_appends_its_new_episodes_and_leaves_the_stored_ones_alone(storage, backend):
    await storage.create_world(world(), [persona("Oscar")])
    await storage.save_persona("w1", persona("Oscar"), memory(episodes=3))
    rows = []
    for stored, total in ((3, 10), (10, 40), (25, 40)):  # the last repeats episodes already stored
        state = memory(episodes=total, unread_from=total)
        await storage.write_step(StepWrite(world_id="w1", memories={"Oscar": MemoryWrite.since(state, stored)}))
        rows.append(await backend.fetchval("SELECT length(CAST(state AS text)) FROM memories"))
        episodes = await backend.fetchval("SELECT count(*) FROM episodes WHERE persona = 'Oscar'")
        assert episodes == total

    assert (await storage.load_world("w1")).memories == {"Oscar": memory(episodes=40, unread_from=40)}
    # The memory row stays the same size however long the persona's past grows.
    assert len(set(rows)) == 1 and rows[0] < 300


async def test_a_write_of_new_episodes_alone_leaves_the_memory_row_as_stored(storage):
    """A persona that only heard something: its episodes are appended, the rest of its memory stays
    what was stored (the state it was written with is not read)."""
    await storage.create_world(world(), [persona("Oscar")])
    stored = memory(episodes=3, unread_from=3)
    stored.cognitive_state.goals = "ship on Friday"
    await storage.save_persona("w1", persona("Oscar"), stored)
    heard = memory(episodes=5, unread_from=3)
    heard.cognitive_state.goals = "ship on Friday"
    await storage.write_step(StepWrite(world_id="w1", memories={"Oscar": MemoryWrite.since(heard, 3, row=False)}))
    assert (await storage.load_world("w1")).memories["Oscar"] == heard

    stale = memory(episodes=6, unread_from=6)  # not what the row says: a row-less write must not store it
    await storage.write_step(StepWrite(world_id="w1", memories={"Oscar": MemoryWrite.since(stale, 5, row=False)}))
    loaded = (await storage.load_world("w1")).memories["Oscar"]
    assert loaded.unread_from == 3 and loaded.cognitive_state.goals == "ship on Friday"
    assert loaded.episodic.count == 6


async def test_a_long_past_comes_back_from_its_unfolded_or_recent_part_only(storage, backend):
    """Episodes folded into the summary long ago stay on disk: a restored persona holds what its
    prompts and recent-past readers need, so restarts and memory do not grow with a channel's age."""
    await storage.create_world(world(), [persona("Oscar"), persona("Lisa", 1)])
    oscar = memory(episodes=600, unread_from=600)
    oscar.episodic.consolidated_until = 560
    lisa = memory("Lisa", episodes=600, unread_from=100)  # listened for long; most of it is folded
    lisa.episodic.consolidated_until = 560
    await storage.save_persona("w1", persona("Oscar"), oscar)
    await storage.save_persona("w1", persona("Lisa", 1), lisa)

    loaded = (await storage.load_world("w1")).memories
    held = loaded["Oscar"].episodic
    assert (held.first, held.count, len(held.episodes)) == (400, 600, 200)
    assert held.episodes == oscar.episodic.episodes[400:] and held.unconsolidated() == oscar.episodic.episodes[560:]
    assert loaded["Lisa"].episodic.first == 400, "what she heard and folded is her summary now"
    assert loaded["Lisa"].unread_from == 100

    # Life goes on from the held part: the next episode is stored after the 600th, nothing is lost.
    state = loaded["Oscar"]
    state.episodic.add(oscar.episodic.episodes[0].model_copy(update={"content": "new", "step": 600}))
    await storage.write_step(StepWrite(world_id="w1", memories={"Oscar": MemoryWrite.since(state, 600)}))
    await storage.save_persona("w1", persona("Oscar"), state)  # a whole save keeps the episodes not held
    again = (await storage.load_world("w1")).memories["Oscar"].episodic
    assert (again.first, again.count, again.episodes[-1].content) == (401, 601, "new")
    assert await backend.fetchval("SELECT count(*) FROM episodes WHERE persona = 'Oscar'") == 601
    with pytest.raises(ValueError, match="not held"):
        MemoryWrite.since(state, 10)


async def test_a_missing_episode_is_reported_when_the_world_loads(storage, backend):
    await storage.create_world(world(), [persona("Oscar")])
    await storage.save_persona("w1", persona("Oscar"), memory(episodes=5))
    await backend.execute("DELETE FROM episodes WHERE seq = 2")
    with pytest.raises(StorageError, match="episode 2 of 'Oscar' is missing"):
        await storage.load_world("w1")


# -- opening, migrations, restarts ------------------------------------------------------------


async def test_the_schema_is_created_once(backend):
    store = backend.storage()
    await store.open()
    await store.open()  # a second call does nothing
    await store.create_world(world())
    await store.close()
    assert await backend.schema_version() == len(backend.schema.MIGRATIONS)

    async with backend.storage() as again:
        assert (await again.world_for_channel("console:main")).id == "w1"
    assert await backend.schema_version() == len(backend.schema.MIGRATIONS)


async def test_a_newer_database_is_refused(backend):
    async with backend.storage():
        pass
    await backend.set_schema_version(len(backend.schema.MIGRATIONS) + 1)
    with pytest.raises(StorageError, match=f"schema version {len(backend.schema.MIGRATIONS) + 1}, newer .* upgrade Troupe"):
        await backend.storage().open()


async def test_a_failing_migration_changes_nothing(backend, monkeypatch):
    async with backend.storage():
        pass
    released = backend.schema.MIGRATIONS
    broken = "CREATE TABLE extra (x INTEGER);\nINSERT INTO nowhere VALUES (1);\n"
    monkeypatch.setattr(backend.schema, "MIGRATIONS", (*released, broken))
    with pytest.raises(StorageError, match=f"schema version {len(released) + 1}"):
        await backend.storage().open()
    monkeypatch.setattr(backend.schema, "MIGRATIONS", released)
    assert await backend.schema_version() == len(released)
    with pytest.raises(Exception, match="extra"):
        await backend.fetch("SELECT * FROM extra")


async def test_a_restart_gives_back_the_same_state(backend):
    store = backend.storage()
    await store.open()
    await store.create_world(world(config={"observers": ["u1"]}), [persona("Oscar"), persona("Lisa", 1)])
    for n in range(1, 10, 3):
        await store.write_step(step("w1", n, count=3, usage=[UsageRow(persona="Oscar", calls=n)]))
    before = await store.load_world("w1")
    outbox = await store.outbox_entries("w1")
    await store.close()

    async with backend.storage() as again:
        assert await again.load_world("w1") == before
        assert await again.outbox_entries("w1") == outbox
        assert len(before.events) == 9


async def test_close_applies_queued_writes_and_then_refuses_use(backend):
    store = backend.storage()
    with pytest.raises(StorageError, match="not open"):
        await store.pending_outbox()
    await store.open()
    await store.create_world(world())
    tasks = [asyncio.create_task(store.write_step(step("w1", n))) for n in range(1, 21)]
    await asyncio.sleep(0)
    await store.close()
    assert all(task.done() and not task.exception() for task in tasks)

    with pytest.raises(StorageError, match="closed"):
        await store.write_step(step("w1", 99))
    with pytest.raises(StorageError, match="closed"):
        await store.load_world("w1")
    with pytest.raises(StorageError, match="closed"):
        await store.open()
    async with backend.storage() as again:
        assert len((await again.load_world("w1")).events) == 20
