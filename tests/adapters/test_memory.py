"""The in-memory platform: events in, records out, failures on demand."""

from __future__ import annotations

import asyncio

import pytest

from adapters.base import (
    AdapterError,
    CommandInvocation,
    Identity,
    IncomingMessage,
)
from adapters.memory import MemoryAdapter, Sent, SimulatedCrash

PRIYA = Identity(name="Priya Nair")


async def collect(adapter: MemoryAdapter) -> list:
    return [event async for event in adapter.listen()]


async def test_pushed_events_are_listened_in_order_across_channels() -> None:
    adapter = MemoryAdapter()
    await adapter.connect()
    first = adapter.push_message("hello", channel="research")
    second = adapter.push_command("persona add Priya", user="ana", user_is_moderator=False)
    third = adapter.push_message("ping", channel="ops", user="bot7", is_bot=True, thread="t1")
    adapter.push_eof()

    events = await collect(adapter)

    assert events == [first, second, third]
    assert isinstance(first, IncomingMessage) and isinstance(second, CommandInvocation)
    assert first.channel.key == "memory:research" and first.user.can_manage
    assert second.text == "persona add Priya" and second.channel.id == "general" and not second.user.can_manage
    assert second.reply_token
    assert third.user.is_bot and third.channel.thread == "t1"
    assert int(second.reply_token.split("-")[1]) > int(first.message_id)
    assert int(third.message_id) > int(first.message_id)


async def test_everything_sent_is_recorded_with_sequential_ids() -> None:
    adapter = MemoryAdapter()
    general = adapter.channel("general")
    command = adapter.push_command("help")

    first = await adapter.post(general, PRIYA, "Hi all.")
    await adapter.typing(general, PRIYA)
    await adapter.reply_private(adapter.user("mod"), general, "Priya thinks: hmm", reply_token="tok")
    await adapter.reply(command, "Commands: …")
    second = await adapter.post(adapter.channel("ops"), PRIYA, "On it.", thread="t9")

    assert int(second) > int(first)
    kinds = [s.kind for s in adapter.sent]
    assert kinds == ["post", "typing", "private", "reply", "post"]
    assert adapter.sent[0] == Sent(kind="post", channel="general", text="Hi all.", identity="Priya Nair",
                                   message_id=first)
    assert adapter.sent[1].message_id is None and adapter.sent[1].identity == "Priya Nair"
    assert adapter.sent[2].user == "mod" and adapter.sent[2].reply_token == "tok"
    assert adapter.sent[3].identity == "Troupe" and adapter.sent[3].reply_token == command.reply_token
    assert adapter.sent[4].thread == "t9"
    assert [p.text for p in adapter.posts()] == ["Hi all.", "On it."]
    assert [p.text for p in adapter.posts("ops")] == ["On it."]
    assert [p.text for p in adapter.posts(general)] == ["Hi all."]


async def test_pop_takes_records_once_filtering_by_kind_and_channel() -> None:
    adapter = MemoryAdapter()
    general, ops = adapter.channel("general"), adapter.channel("ops")
    await adapter.typing(general, PRIYA)
    await adapter.post(ops, PRIYA, "in ops")
    await adapter.post(general, PRIYA, "in general")

    assert (await adapter.pop("post", channel="general")).text == "in general"
    assert (await adapter.pop("post")).text == "in ops"
    assert (await adapter.pop()).kind == "typing"
    assert adapter.pending() == []
    with pytest.raises(TimeoutError, match="no post"):
        await adapter.pop("post", timeout=0.05)


async def test_pop_waits_for_a_record_to_arrive() -> None:
    adapter = MemoryAdapter()
    waiting = asyncio.create_task(adapter.pop("post", timeout=2))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await adapter.reply_private(adapter.user(), adapter.channel(), "not this one")
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await adapter.post(adapter.channel(), PRIYA, "this one")
    assert (await waiting).text == "this one"
    assert [r.kind for r in adapter.pending()] == ["private"]


async def test_concurrent_waiters_on_different_channels_each_get_theirs() -> None:
    adapter = MemoryAdapter()
    waiters = {name: asyncio.create_task(adapter.pop("post", channel=name)) for name in ("a", "b", "c")}
    await asyncio.sleep(0)
    await asyncio.gather(*(adapter.post(adapter.channel(name), PRIYA, f"to {name}") for name in ("c", "a", "b")))
    assert {name: (await task).text for name, task in waiters.items()} == {"a": "to a", "b": "to b", "c": "to c"}


async def test_fail_next_posts_raises_without_recording() -> None:
    adapter = MemoryAdapter()
    adapter.fail_next_posts(2, retryable=False)
    for _ in range(2):
        with pytest.raises(AdapterError) as failure:
            await adapter.post(adapter.channel(), PRIYA, "lost?")
        assert failure.value.retryable is False
    assert adapter.sent == []
    await adapter.post(adapter.channel(), PRIYA, "third time")
    assert [p.text for p in adapter.posts()] == ["third time"]
    assert adapter.post_attempts == 3


async def test_failures_are_retryable_by_default() -> None:
    adapter = MemoryAdapter()
    adapter.fail_next_posts(1)
    with pytest.raises(AdapterError) as failure:
        await adapter.post(adapter.channel(), PRIYA, "x")
    assert failure.value.retryable is True


async def test_crash_after_post_delivers_then_raises() -> None:
    adapter = MemoryAdapter()
    adapter.crash_after_post(2)
    await adapter.post(adapter.channel(), PRIYA, "one")
    with pytest.raises(SimulatedCrash):
        await adapter.post(adapter.channel(), PRIYA, "two")
    assert [p.text for p in adapter.posts()] == ["one", "two"]
    await adapter.post(adapter.channel(), PRIYA, "three")  # the hook fires once


async def test_crash_is_not_swallowed_by_except_exception() -> None:
    adapter = MemoryAdapter()
    adapter.crash_after_post(1)
    with pytest.raises(SimulatedCrash):
        try:
            await adapter.post(adapter.channel(), PRIYA, "x")
        except Exception:  # noqa: BLE001 - what recovery code typically does
            pytest.fail("a simulated crash must not look like an ordinary error")


async def test_post_hooks_may_be_sync_or_async_and_failed_posts_do_not_count() -> None:
    adapter = MemoryAdapter()
    seen: list[str] = []

    async def later(record: Sent) -> None:
        seen.append(f"async {record.text}")

    adapter.crash_after_post(1, lambda record: seen.append(f"sync {record.text}"))
    adapter.crash_after_post(2, later)
    adapter.fail_next_posts(1)
    with pytest.raises(AdapterError):
        await adapter.post(adapter.channel(), PRIYA, "failed")
    await adapter.post(adapter.channel(), PRIYA, "a")
    await adapter.post(adapter.channel(), PRIYA, "b")
    await adapter.post(adapter.channel(), PRIYA, "c")
    assert seen == ["sync a", "async b"]


async def test_replies_and_private_replies_stay_whole() -> None:
    adapter = MemoryAdapter(max_message_length=20)
    text = "line one is long\nline two is long"
    await adapter.reply(adapter.push_command("help"), text)
    await adapter.reply_private(adapter.user(), adapter.channel(), text)
    assert [(r.kind, r.text) for r in adapter.sent] == [("reply", text), ("private", text)]
