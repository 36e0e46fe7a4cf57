"""Sharded Discord: a process runs some shards of the deployment and hears only their guilds; only
the process running shard 0 registers the slash commands. Real discord.py against the fake Discord,
which paces IDENTIFYs by rate-limit bucket as Discord does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.base import AdapterError, AdapterEvent, ChannelRef, CommandInvocation, Identity, IncomingMessage
from adapters.discord import DiscordAdapter
from tests.adapters.platforms import discord_settings, standalone_discord
from tests.fakes.discord_server import IDENTIFY_INTERVAL_S, FakeDiscord, shard_of

pytestmark = pytest.mark.timeout(60)

PERSONA = Identity(name="Priya Nair", tag="demo model")


def three_guilds(fake: FakeDiscord) -> dict[str, int]:
    """The fake's own guild (#general) and one more on each shard of two: channel name → id."""
    fake.add_guild("Zero", channels=["zero-chat"], shard=(0, 2))
    fake.add_guild("One", channels=["one-chat"], shard=(1, 2))
    return {name: fake.channel_id(name) for name in ("general", "zero-chat", "one-chat")}


def shard_of_channel(fake: FakeDiscord, channel_id: int) -> int:
    guild = fake.guild_of(channel_id)
    assert guild is not None
    return shard_of(guild, 2)


@contextlib.asynccontextmanager
async def sharded(tmp_path: Path, fake: FakeDiscord, shards: str) -> AsyncIterator[DiscordAdapter]:
    """An adapter running ``shards`` of two, registering commands in every guild of the fake."""
    async with standalone_discord(tmp_path / shards, fake, shard_count=2, shard_ids=shards,
                                  guild_ids=list(fake.guilds)) as adapter:
        yield adapter


async def next_event(adapter: DiscordAdapter, timeout: float = 5.0) -> AdapterEvent:
    listening = adapter.listen()
    try:
        return await asyncio.wait_for(anext(listening), timeout)
    finally:
        await listening.aclose()


async def nothing_heard(adapter: DiscordAdapter, wait: float = 0.3) -> bool:
    await asyncio.sleep(wait)
    return adapter._events.empty()


async def test_one_adapter_with_both_shards_hears_and_posts_in_every_guild(tmp_path: Path) -> None:
    async with FakeDiscord(max_concurrency=2, identify_interval=IDENTIFY_INTERVAL_S) as fake:
        channels = three_guilds(fake)
        started = time.monotonic()
        async with sharded(tmp_path, fake, "0-1") as adapter:
            # Two buckets (max_concurrency 2): both shards IDENTIFY at once, none is refused.
            assert time.monotonic() - started < IDENTIFY_INTERVAL_S
            assert fake.connected_shards() == [(0, 2), (1, 2)] and fake.refused_identifies == []
            assert "shards 0, 1 of 2" in adapter.where
            for name, channel_id in channels.items():
                said = await fake.user_says(channel_id, f"hello from {name}")
                heard = await next_event(adapter)
                assert isinstance(heard, IncomingMessage) and heard.message_id == str(said.id)
                assert heard.channel.id == str(channel_id) and heard.text == f"hello from {name}"
                await adapter.post(heard.channel, PERSONA, f"answering {name}")
                posted = fake.channel_messages(channel_id)[-1]
                assert posted.content == f"answering {name}" and posted.author_name == "Priya Nair (demo model)"
            assert sorted(c for c, _ in fake.command_syncs) == sorted(fake.guilds)


async def test_two_adapters_each_hear_only_their_shards_guilds(tmp_path: Path) -> None:
    async with FakeDiscord(max_concurrency=2, identify_interval=IDENTIFY_INTERVAL_S) as fake:
        channels = three_guilds(fake)
        async with sharded(tmp_path, fake, "1") as one:
            assert fake.command_syncs == []  # not shard 0's process: leaves the commands alone
            async with sharded(tmp_path, fake, "0") as zero:
                assert sorted(c for c, _ in fake.command_syncs) == sorted(fake.guilds)
                assert fake.connected_shards() == [(0, 2), (1, 2)]
                workers = {0: zero, 1: one}
                for channel_id in channels.values():
                    hearing = workers[shard_of_channel(fake, channel_id)]
                    deaf = workers[1 - shard_of_channel(fake, channel_id)]
                    said = await fake.user_says(channel_id, "who hears this?")
                    heard = await next_event(hearing)
                    assert isinstance(heard, IncomingMessage) and heard.message_id == str(said.id)
                    assert await nothing_heard(deaf)

                # A slash command in a guild of shard 1 reaches that worker, which answers it.
                interaction = await fake.run_slash_command("troupe help", {}, user=fake.moderator,
                                                           channel_id=channels["one-chat"])
                invoked = await next_event(one)
                assert isinstance(invoked, CommandInvocation)
                assert invoked.channel == ChannelRef(platform="discord", id=str(channels["one-chat"]),
                                                     name="one-chat")
                await one.reply(invoked, "Here is the help.")
                assert (await interaction.message()).content == "Here is the help."
                assert await nothing_heard(zero)


async def test_shards_in_one_bucket_identify_five_seconds_apart(tmp_path: Path) -> None:
    """Most bots may start one shard per 5 s: the second waits its turn instead of being refused."""
    async with FakeDiscord(max_concurrency=1, identify_interval=IDENTIFY_INTERVAL_S) as fake:
        three_guilds(fake)
        async with sharded(tmp_path, fake, "0-1") as adapter:
            assert fake.connected_shards() == [(0, 2), (1, 2)] and fake.refused_identifies == []
            said = await fake.user_says(fake.channel_id("one-chat"), "late shard")
            heard = await next_event(adapter)
            assert isinstance(heard, IncomingMessage) and heard.message_id == str(said.id)


async def test_too_few_shards_for_the_guilds_is_refused_with_what_to_set(tmp_path: Path) -> None:
    async with FakeDiscord(max_guilds_per_shard=2, recommended_shards=2) as fake:
        three_guilds(fake)
        adapter = DiscordAdapter(discord_settings(tmp_path, fake, discord={"shard_count": 1}))
        with pytest.raises(AdapterError) as refused:
            await adapter.connect()
        assert not refused.value.retryable
        assert "--shard-count" in str(refused.value) and "recommended 2" in str(refused.value)


async def test_without_shard_settings_the_recommended_count_runs_here(tmp_path: Path) -> None:
    async with FakeDiscord(recommended_shards=2, max_concurrency=2) as fake:
        channels = three_guilds(fake)
        async with standalone_discord(tmp_path, fake) as adapter:
            assert fake.connected_shards() == [(0, 2), (1, 2)]
            assert fake.command_syncs  # it runs shard 0
            said = await fake.user_says(channels["one-chat"], "anyone?")
            heard = await next_event(adapter)
            assert isinstance(heard, IncomingMessage) and heard.message_id == str(said.id)
