"""Two ``troupe discord`` processes on one PostgreSQL database, each running one of two shards over
three guilds: each hears only its shards' guilds, only the shard-0 process registers the commands,
and a message in a guild of either shard is answered once, by the process holding that shard."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.fakes.discord_server import IDENTIFY_INTERVAL_S, FakeDiscord, shard_of
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.paths import ROOT
from tests.support.turns import TurnRule
from tests.support.workers import stop_all

pytestmark = pytest.mark.timeout(180)


def worker_env(tmp_path: Path, shard: int, url: str, discord: FakeDiscord, model: FakeOpenAIServer) -> dict[str, str]:
    """Worker ``shard``: its own data folder, the shared database, the fake Discord and model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "TROUPE_DATA_DIR": str(tmp_path / f"shard{shard}"),
        "TROUPE_DATABASE_URL": url,
        "TROUPE_LEASE_S": "5",
        "TROUPE_LLM_MODEL": "gpt-4o-mini",
        "TROUPE_LLM_BASE_URL": model.base_url,
        "TROUPE_LLM_API_KEY": "sk-test",
        "TROUPE_LLM_CACHE": "false",
        "TROUPE_BOT_DEFAULT_EXCHANGES": "0",
        "TROUPE_BOT_MODERATOR_ROLES": json.dumps([str(discord.moderator_role.id)]),
        "TROUPE_DISCORD_TOKEN": discord.token,
        "TROUPE_DISCORD_API_BASE": discord.api_base,
        "TROUPE_DISCORD_GATEWAY_URL": discord.gateway_url,
        "TROUPE_DISCORD_GUILD_IDS": json.dumps(list(discord.guilds)),
    })
    return env


async def start_worker(tmp_path: Path, shard: int, url: str, discord: FakeDiscord,
                       model: FakeOpenAIServer) -> asyncio.subprocess.Process:
    """``troupe discord`` running ``shard`` of two, its log appended to across restarts."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "discord", "--shard-count", "2", "--shards", str(shard), cwd=ROOT,
        env=worker_env(tmp_path, shard, url, discord, model),
        stdout=asyncio.subprocess.DEVNULL, stderr=open(tmp_path / f"shard{shard}.log", "ab"))  # noqa: SIM115


def persona_posts(discord: FakeDiscord, channel_id: int) -> list:
    return [m for m in discord.channel_messages(channel_id) if m.webhook_id is not None and m.interaction_id is None]


async def test_each_worker_answers_the_guilds_of_its_shard_once(tmp_path: Path, postgres_url: str) -> None:
    async with FakeDiscord(max_concurrency=2, identify_interval=IDENTIFY_INTERVAL_S) as discord, \
            FakeOpenAIServer() as model:
        model.responder = TurnRule()
        discord.add_guild("Zero", channels=["zero-chat"], shard=(0, 2))
        discord.add_guild("One", channels=["one-chat"], shard=(1, 2))
        channels = [discord.channel_id(name) for name in ("zero-chat", "one-chat")]
        workers = {}
        for shard in (1, 0):
            workers[shard] = await start_worker(tmp_path, shard, postgres_url, discord, model)
        db = await asyncpg.connect(postgres_url)
        try:
            await discord.wait_for(lambda: discord.connected_shards() == [(0, 2), (1, 2)], timeout=90)
            await discord.wait_for(lambda: all(discord.guild_commands(g) for g in discord.guilds), timeout=30)
            assert len(discord.command_syncs) == len(discord.guilds), "registered once, by shard 0's worker"
            assert discord.refused_identifies == []

            for number, channel in enumerate(channels):
                started = await discord.run_slash_command("troupe start", {"name": f"Room {number}"},
                                                          user=discord.moderator, channel_id=channel)
                assert "Started the world" in (await started.message(timeout=20)).content
                added = await discord.run_slash_command("troupe persona add", {"source": "Priya Nair"},
                                                        user=discord.moderator, channel_id=channel)
                assert "Priya Nair" in (await added.message(timeout=20)).content
                await discord.user_says(channel, "Priya, what do you think?")
                await discord.wait_for(lambda channel=channel: bool(persona_posts(discord, channel)), timeout=30)

            await asyncio.sleep(1.0)  # a second answer, were one coming, would have come by now
            for channel in channels:
                assert len(persona_posts(discord, channel)) == 1
                guild = discord.guild_of(channel)
                assert guild is not None
                owner = await db.fetchval("SELECT worker FROM leases WHERE channel_key = $1", f"discord:{channel}")
                assert f":{workers[shard_of(guild, 2)].pid}:" in owner, owner
        finally:
            await db.close()
            await stop_all(workers.values())


async def test_a_killed_workers_guilds_wait_for_it_and_it_catches_up_when_it_is_back(tmp_path: Path,
                                                                                      postgres_url: str) -> None:
    """Only the process running a guild's shard hears it, so its channels stay there: when it is
    killed the other worker does not take them (it could not hear them), and once the process is
    back it runs them again, hears what was said meanwhile, and answers commands there."""
    async with FakeDiscord(max_concurrency=2) as discord, FakeOpenAIServer() as model:
        model.responder = TurnRule()
        discord.add_guild("Zero", channels=["zero-chat"], shard=(0, 2))
        discord.add_guild("One", channels=["one-chat"], shard=(1, 2))
        zero, one = (discord.channel_id(name) for name in ("zero-chat", "one-chat"))
        workers = {shard: await start_worker(tmp_path, shard, postgres_url, discord, model) for shard in (0, 1)}
        db = await asyncpg.connect(postgres_url)
        try:
            await discord.wait_for(lambda: discord.connected_shards() == [(0, 2), (1, 2)], timeout=90)
            await discord.wait_for(lambda: all(discord.guild_commands(g) for g in discord.guilds), timeout=30)
            for number, channel in enumerate((zero, one)):
                for command, options in (("troupe start", {"name": f"Room {number}"}),
                                         ("troupe persona add", {"source": "Priya Nair"})):
                    answer = await discord.run_slash_command(command, options, user=discord.moderator,
                                                             channel_id=channel)
                    await answer.message(timeout=20)

            async def owner(channel: int) -> str | None:
                return await db.fetchval("SELECT worker FROM leases WHERE channel_key = $1 AND worker <> '' "
                                         "AND expires_at > clock_timestamp()", f"discord:{channel}")

            # Guild One has heard nobody yet: what is said there while its worker is down is read
            # from the channel's history since its world began.
            await discord.user_says(zero, "Priya, q-before: what do you think?")
            await discord.wait_for(lambda: bool(persona_posts(discord, zero)), timeout=30)
            workers[1].send_signal(signal.SIGKILL)
            await workers[1].wait()
            await discord.user_says(one, "Priya, q-while-down: are you there?")
            await asyncio.sleep(7)  # the killed worker's 5-second lease runs out; the other reviews
            assert await owner(one) is None, "taken by a worker that cannot hear its guild"
            assert f":{workers[0].pid}:" in (await owner(zero) or "")

            workers[1] = await start_worker(tmp_path, 1, postgres_url, discord, model)
            await discord.wait_for(lambda: discord.connected_shards() == [(0, 2), (1, 2)], timeout=90)
            await discord.wait_for(lambda: any("q-while-down" in m.content for m in persona_posts(discord, one)),
                                   timeout=60)
            assert f":{workers[1].pid}:" in (await owner(one) or "")
            status = await discord.run_slash_command("troupe status", {}, user=discord.moderator, channel_id=one)
            assert "Room 1" in (await status.message(timeout=20)).content
            await asyncio.sleep(1.0)
            assert sum("q-while-down" in m.content for m in persona_posts(discord, one)) == 1
        finally:
            await db.close()
            await stop_all(workers.values())
