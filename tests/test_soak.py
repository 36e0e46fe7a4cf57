"""A short soak (``tests/bench/soak.py``): faults, kill -9 and restarts lose and double nothing.

The soak runs once for the module (about 30 s: 4 channels on the console, Discord and Slack, 2
personas each, 20 s of traffic, the bot killed twice); the tests below read its figures. A second
short soak runs two workers on PostgreSQL (4 Slack channels, each worker killed in turn, a 3-second
lease). Then the
random fault injection of the fakes is checked on its own, and the faults the soak once found in the
bot (two ways it posted twice, one way it lost people's messages) are pinned down deterministically.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.base import Adapter, AdapterError, ChannelRef, Identity
from adapters.discord import DiscordAdapter
from adapters.memory import MemoryAdapter
from adapters.slack import SlackAdapter
from config.settings import Settings
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.slack_server import FakeSlack
from tests.support.paths import ROOT
from tests.support.testbot import demo_settings, start_bot

SOAK_ARGS = ["--seconds", "20", "--channels", "4", "--personas", "2", "--kills", "2", "--seed", "3", "--drain", "30"]

#: Duplicates whose cause is known and reported (see the xfail tests at the end). While they are
#: not fixed, the soak's ``duplicated == 0`` check is an xfail when every duplicate has one of these
#: causes, and a failure otherwise. Set to False to make it a hard failure.
XFAIL_KNOWN_DUPLICATES = False
#: Same for people's messages lost because a catch-up at restart failed (a 503 reading the history).
XFAIL_KNOWN_LOSSES = False
KNOWN_DUPLICATE_CAUSES = {
    "slack_client_library_resent_a_dropped_post",
    "outbox_posted_again_after_a_failed_history_check",
    # By design (tests/bots/test_outbox_exactly_once.py): a platform that cannot tell gets the post again.
    "console_posted_again_after_a_crash_it_cannot_check",
}


WORKER_SOAK_ARGS = ["--workers", "2", "--lease-s", "3", "--seconds", "20", "--channels", "4", "--personas", "2",
                    "--kills", "2", "--seed", "4", "--drain", "30"]


def _run_soak(args: list[str]) -> dict[str, Any]:
    """Run the soak as ``python -m tests.bench.soak`` and return its summary and details."""
    done = subprocess.run([sys.executable, "-m", "tests.bench.soak", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    details = json.loads(lines[-2])["details"]
    print(lines[-1])
    return {"summary": summary, "details": details, "stderr": done.stderr}


@pytest.fixture(scope="module")
def soak() -> dict[str, Any]:
    return _run_soak(SOAK_ARGS)


@pytest.fixture(scope="module")
def worker_soak() -> dict[str, Any]:
    return _run_soak(WORKER_SOAK_ARGS)


def test_soak_prints_the_summary_line(soak: dict[str, Any]) -> None:
    summary = soak["summary"]
    assert list(summary) == ["rounds", "model_calls", "faults_injected", "kills", "posts_expected", "posted",
                             "lost", "duplicated", "human_messages_lost", "p99_post_latency_ms"]
    assert summary["kills"] == 2
    assert summary["rounds"] > 10 and summary["posts_expected"] > 50
    assert summary["faults_injected"] > 0 and summary["model_calls"] > summary["posts_expected"]
    details = soak["details"]
    assert details["final_sigterm_exit_codes"] == [0]
    assert details["still_pending"] == 0


def test_soak_loses_no_post(soak: dict[str, Any]) -> None:
    summary, details = soak["summary"], soak["details"]
    assert summary["lost"] == 0, details["lost_entries"]
    assert summary["posted"] >= summary["posts_expected"]
    assert details["posts_not_in_outbox"] == 0


def test_soak_posts_nothing_twice(soak: dict[str, Any]) -> None:
    summary, details = soak["summary"], soak["details"]
    if summary["duplicated"] == 0:
        return
    causes = details["duplicates_by_cause"]
    unknown = {cause: n for cause, n in causes.items() if cause not in KNOWN_DUPLICATE_CAUSES}
    assert not unknown, (unknown, details["duplicated_posts"])
    if XFAIL_KNOWN_DUPLICATES:
        pytest.xfail(f"{summary['duplicated']} duplicate post(s), all of known causes {causes}: "
                     "see test_a_dropped_slack_post_is_not_sent_again_by_the_client_library and "
                     "test_a_failed_history_check_does_not_post_again")
    raise AssertionError((causes, details["duplicated_posts"]))


def _catch_up_implemented(adapter: type[Adapter]) -> bool:
    implemented = getattr(adapter, "catch_up", None)
    return implemented is not None and implemented is not getattr(Adapter, "catch_up", None)


def test_soak_hears_every_message_written_on_discord_and_slack(soak: dict[str, Any]) -> None:
    """Messages written while the bot was down reach it at restart through ``Adapter.catch_up``."""
    if not (_catch_up_implemented(DiscordAdapter) and _catch_up_implemented(SlackAdapter)):
        pytest.xfail("Adapter.catch_up is not implemented for Discord and Slack yet: messages written while "
                     "the bot is down are never heard")
    details = soak["details"]
    assert details["human_messages_heard_twice"] == 0
    lost = details["human_messages_lost_by_platform"]
    explained = details["human_messages_lost_in_a_channel_whose_catch_up_failed"]
    for platform in ("discord", "slack"):
        assert lost.get(platform, 0) <= explained.get(platform, 0), details
    if any(lost.get(platform, 0) for platform in ("discord", "slack")):
        if XFAIL_KNOWN_LOSSES:
            pytest.xfail(f"messages lost in channels whose catch-up failed at a restart ({details['catch_up_failures']}):"
                         " see test_a_failed_catch_up_is_tried_again")
        raise AssertionError(details)


def test_soak_console_lines_typed_while_the_bot_ran_are_heard(soak: dict[str, Any]) -> None:
    """The console has no history to catch up from: a line read but not yet heard when the bot is killed
    -9 is gone. Nothing is typed while the bot is down; the count is reported, not hidden."""
    lost = soak["details"]["human_messages_lost_by_platform"].get("console", 0)
    assert lost == 0, f"{lost} console line(s) read from standard input were lost by kill -9"


def test_two_workers_on_postgresql_each_killed_in_turn_lose_and_double_nothing(worker_soak: dict[str, Any]) -> None:
    summary, details = worker_soak["summary"], worker_soak["details"]
    assert details["workers"] == 2 and details["database"] == "postgresql"
    assert details["channels"] == {"console": 0, "discord": 0, "slack": 4}
    assert summary["kills"] == 2 and sum(details["bot_runs"]) == 4
    assert summary["rounds"] > 10 and summary["posts_expected"] > 50 and summary["faults_injected"] > 0
    assert summary["lost"] == 0, details["lost_entries"]
    assert summary["duplicated"] == 0, details["duplicated_posts"]
    assert summary["human_messages_lost"] == 0, details
    assert details["human_messages_heard_twice"] == 0
    assert details["posts_not_in_outbox"] == 0 and details["still_pending"] == 0
    assert details["final_sigterm_exit_codes"] == [0, 0]


# -- the fakes' random faults ---------------------------------------------------------------------


async def test_fake_model_chaos_answers_a_share_of_requests_with_random_faults() -> None:
    async with FakeOpenAIServer() as server, aiohttp.ClientSession() as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        url = server.base_url + "/chat/completions"
        server.chaos(1.0, seed=5, kinds=("server_error_503", "rate_limit"), retry_after=0.5)
        statuses = []
        for _ in range(12):
            async with http.post(url, json=body) as response:
                statuses.append(response.status)
                if response.status == 429:
                    assert response.headers["retry-after-ms"] == "500"
        assert set(statuses) == {503, 429}
        assert sum(server.faults_injected.values()) == 12
        assert set(server.faults_injected) == {"server_error_503", "rate_limit"}
        server.chaos(1.0, kinds=("hang",), hang_s=0.3)
        with pytest.raises(asyncio.TimeoutError):
            async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=0.1)):
                pass
        server.chaos(0)
        async with http.post(url, json=body) as response:
            assert response.status == 200
        server.chaos(0.3, seed=1, hang_s=0.2)
        for _ in range(40):
            try:
                async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    await response.read()
            except (TimeoutError, aiohttp.ClientError):
                pass
        assert 4 <= sum(server.faults_injected.values()) - 13 <= 25


async def test_fake_discord_chaos_drops_a_post_after_creating_it() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        general = fake.channel_id("general")
        url = f"{fake.api_base}/channels/{general}/messages"
        headers = {"Authorization": f"Bot {fake.token}"}
        fake.chaos(1.0, kinds=("drop",))
        with pytest.raises(aiohttp.ClientError):
            async with http.post(url, json={"content": "hello"}, headers=headers) as response:
                await response.read()
        assert [m.content for m in fake.channel_messages(general)] == ["hello"]
        assert fake.faults_injected == {"drop": 1}
        assert fake.injected[-1][3] == fake.channel_messages(general)[0].id
        # Only message posts are dropped; other calls get the other kinds, here none is left.
        async with http.get(f"{fake.api_base}/channels/{general}", headers=headers) as response:
            assert response.status == 200
        fake.chaos(1.0, kinds=("rate_limit",), retry_after=0.25)
        async with http.get(f"{fake.api_base}/channels/{general}", headers=headers) as response:
            assert response.status == 429
            assert response.headers["Via"] and response.headers["Retry-After"]
            assert response.headers["X-RateLimit-Reset-After"] == "0.250"
            assert (await response.json())["retry_after"] == 0.25
        fake.chaos(1.0, kinds=("server_error_500", "server_error_503"), seed=2)
        seen = set()
        for _ in range(10):
            async with http.get(f"{fake.api_base}/channels/{general}", headers=headers) as response:
                seen.add(response.status)
        assert seen == {500, 503}
        fake.chaos(0)
        async with http.get(f"{fake.api_base}/channels/{general}", headers=headers) as response:
            assert response.status == 200


async def test_fake_slack_chaos_drops_a_post_after_storing_it() -> None:
    async with FakeSlack() as fake, aiohttp.ClientSession() as http:
        fake.add_channel("C0GENERAL", "general")
        headers = {"Authorization": f"Bearer {fake.bot_token}"}
        fake.chaos(1.0, kinds=("drop",), methods={"chat.postMessage"})
        with pytest.raises(aiohttp.ClientError):
            async with http.post(fake.api_base + "chat.postMessage", json={"channel": "C0GENERAL", "text": "hi"},
                                 headers=headers) as response:
                await response.read()
        assert [m["text"] for m in fake.messages_in("C0GENERAL")] == ["hi"]
        assert fake.faults_injected == {"drop": 1} and fake.injected[0][2] == fake.posts[0]["ts"]
        async with http.post(fake.api_base + "auth.test", headers=headers) as response:
            assert (await response.json())["ok"]  # not a post, not in ``methods``
        fake.chaos(1.0, kinds=("rate_limit",), retry_after=2)
        async with http.post(fake.api_base + "auth.test", headers=headers) as response:
            assert response.status == 429 and response.headers["Retry-After"] == "2"
        fake.chaos(0)
        # A person's message is kept while the app is away, with ``offline_ok``.
        fake.add_user("U0HANA", "hana")
        await fake.send_message("C0GENERAL", "U0HANA", "anyone here?", offline_ok=True)
        assert fake.messages_in("C0GENERAL")[-1]["text"] == "anyone here?"
        assert fake.undelivered[-1]["event"]["text"] == "anyone here?"


# -- duplicates the soak found, pinned down ---------------------------------------------------------


async def test_a_dropped_slack_post_is_not_sent_again_by_the_client_library(tmp_path: Path) -> None:
    async with FakeSlack() as fake:
        fake.add_channel("C0GENERAL", "general")
        settings = Settings(data_dir=tmp_path, llm={"provider": "demo"},
                            slack={"bot_token": fake.bot_token, "app_token": fake.app_token,
                                   "api_base": fake.api_base, "ping_interval_s": 0.5})
        adapter = SlackAdapter(settings)
        await adapter.connect()
        try:
            fake.chaos(1.0, kinds=("drop",), methods={"chat.postMessage"})
            with pytest.raises(AdapterError):
                await adapter.post(ChannelRef(platform="slack", id="C0GENERAL"), Identity(name="Priya Nair"), "Hello")
        finally:
            fake.chaos(0)
            await adapter.disconnect()
        copies = [m for m in fake.messages_in("C0GENERAL") if m["text"] == "Hello"]
        assert len(copies) == 1, f"Slack shows the post {len(copies)} times"


class _DropsThenCannotCheck(MemoryAdapter):
    """The first persona post is accepted but its answer is lost; the first look at the history fails."""

    def __init__(self) -> None:
        super().__init__()
        self.drops = 1
        self.failed_checks = 1

    async def post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None = None) -> str:
        message_id = await super().post(channel, identity, text, thread)
        if identity.name != self.bot_identity.name and self.drops:
            self.drops -= 1
            raise AdapterError("connection dropped after the platform accepted the post")
        return message_id

    async def find_post(self, *args: Any, **kwargs: Any) -> str | None:
        if self.failed_checks:
            self.failed_checks -= 1
            raise AdapterError("HTTP 503 while reading the channel's history")
        return await super().find_post(*args, **kwargs)


async def test_a_failed_history_check_does_not_post_again(tmp_path: Path) -> None:
    platform = _DropsThenCannotCheck()
    bot = await start_bot(demo_settings(tmp_path), platform)
    try:
        await bot.command("start Team room")
        await bot.command("persona add Priya Nair")
        platform.push_message("Priya, what's the plan for today?")
        await bot.app.wait_idle()
        for _ in range(40):  # the outbox retries after 0.5 s
            if not platform.drops and not platform.failed_checks and not await bot.app.storage.pending_outbox():
                break
            await asyncio.sleep(0.1)
        await bot.app.wait_idle()
        texts = [p.text for p in platform.posts() if p.identity == "Priya Nair"]
        assert texts and len(texts) == len(set(texts)), f"posted twice: {texts}"
    finally:
        await bot.app.stop()


class _CatchUpFailsOnce(MemoryAdapter):
    """The first look at a channel's history after a restart fails (a 503)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def catch_up(self, channel: ChannelRef, after: str) -> list[Any]:
        if self.failures:
            self.failures -= 1
            raise AdapterError("HTTP 503 while reading the channel's history")
        return await super().catch_up(channel, after)


async def test_a_failed_catch_up_is_tried_again(tmp_path: Path) -> None:
    first = await start_bot(demo_settings(tmp_path))
    await first.command("start Team room")
    await first.command("persona add Priya Nair")
    await first.say("Priya, first question: how are you?")
    await first.app.stop()
    platform = _CatchUpFailsOnce()
    platform.history = list(first.adapter.history)
    platform.write_while_away("Priya, are you back?")
    second = await start_bot(demo_settings(tmp_path), platform)
    try:
        await second.app.wait_idle()
        platform.push_message("Priya, anything new?")
        for _ in range(30):  # time for a retry, if there is one
            await asyncio.sleep(0.1)
            await second.app.wait_idle()
        world = second.app.sessions.get("memory:general").world
        heard = [e.content for e in world.events if e.kind.value == "stimulus"]
        assert "Priya, are you back?" in heard, heard
    finally:
        await second.app.stop()
