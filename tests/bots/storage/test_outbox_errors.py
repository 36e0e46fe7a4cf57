"""When the outbox cannot be updated, the error says which entry and what was being done to it:
an entry that does not exist, one no longer waiting for review, or a database that refuses."""

from __future__ import annotations

import pytest

from bots.storage.base import AuditRecord, NotStoredError, OutboxStatus, StorageError
from tests.bots.storage.records import step, world

#: A trigger that refuses every change of the outbox, as a database that cannot write would.
REFUSE_UPDATES = {
    "sqlite": "CREATE TRIGGER refuse BEFORE UPDATE ON outbox BEGIN SELECT RAISE(ABORT, 'the disk said no'); END",
    "postgresql": """
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the disk said no'; END $$;
        CREATE TRIGGER refuse BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION refuse();
    """,
}


def missing_entry_calls(storage):
    return [
        storage.mark_posted(999, "x"),
        storage.mark_attempt(999),
        storage.mark_attempt(999, "rate limited"),
        storage.set_outbox_status(999, OutboxStatus.FAILED, "gone"),
    ]


async def test_an_entry_that_does_not_exist_is_named(storage):
    for call in missing_entry_calls(storage):
        with pytest.raises(StorageError, match="^no outbox entry with id 999$"):
            await call
    with pytest.raises(NotStoredError, match="^no outbox entry with id 999$"):
        await storage.get_outbox(999)


async def test_a_decision_on_a_message_no_longer_held_is_refused(storage):
    await storage.create_world(world())
    [entry] = await storage.write_step(step("w1", 1))
    audit = AuditRecord(channel_key="console:main", actor="console:mod", action="approve", outbox_id=entry.id)
    with pytest.raises(StorageError, match=f"^message {entry.id} is not waiting for review any more$"):
        await storage.decide_outbox(entry.id, OutboxStatus.PENDING, audit)
    assert await storage.audit_log("console:main") == []


@pytest.mark.parametrize(
    ("change", "doing"),
    [
        (lambda s, i: s.mark_posted(i, "1234"), "mark outbox entry"),
        (lambda s, i: s.mark_attempt(i), "count an attempt of outbox entry"),
        (lambda s, i: s.mark_attempt(i, "rate limited"), "record a failure of outbox entry"),
        (lambda s, i: s.set_outbox_status(i, OutboxStatus.FAILED, "gone"), "set the status of outbox entry"),
        (lambda s, i: s.decide_outbox(i, OutboxStatus.PENDING, AuditRecord(channel_key="console:main", actor="mod",
                                                                           action="approve", outbox_id=i)),
         "decide on outbox entry"),
    ],
)
async def test_a_refused_update_says_what_it_was_doing_to_which_entry(storage, backend, change, doing):
    await storage.create_world(world())
    [entry] = await storage.write_step(step("w1", 1))
    if "decide" in doing:
        await storage.set_outbox_status(entry.id, OutboxStatus.HELD)
    await backend.execute(REFUSE_UPDATES[backend.name])
    with pytest.raises(StorageError, match=f"^could not {doing} {entry.id}: the disk said no$"):
        await change(storage, entry.id)
