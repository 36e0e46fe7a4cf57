"""The Discord adapter: its pure pieces, then real discord.py against a local stand-in for Discord."""

from __future__ import annotations

import shlex

import pytest

import asyncio

from adapters.base import AdapterError, ChannelRef, Identity
from adapters.discord import DiscordAdapter, command_text, fallback_prefix, quote_word, webhook_username
from bots.commands import parse_command
from config.settings import Settings

# -- webhook usernames ----------------------------------------------------------------------------


def test_username_carries_the_tag() -> None:
    assert webhook_username(Identity(name="Priya Nair", tag="demo model")) == "Priya Nair (demo model)"
    assert webhook_username(Identity(name="Priya Nair")) == "Priya Nair"


def test_long_username_is_cut_but_keeps_the_tag() -> None:
    name = webhook_username(Identity(name="A" * 120, tag="red-team simulation, demo model"))
    assert len(name) <= 80
    assert name.endswith("(red-team simulation, demo model)")


def test_username_avoids_words_discord_refuses() -> None:
    name = webhook_username(Identity(name="Clyde the Discord fan"))
    assert "clyde" not in name.casefold() and "discord" not in name.casefold()
    assert len(name) == len("Clyde the Discord fan")


def test_empty_username_gets_a_placeholder() -> None:
    assert webhook_username(Identity(name=" \n\t")) == "Persona"
    assert 1 <= len(webhook_username(Identity(name="x\u0000"))) <= 80


def test_fallback_prefix() -> None:
    assert fallback_prefix(Identity(name="Priya Nair", tag="demo model")) == "**Priya Nair (demo model):** "


# -- command lines from slash commands ------------------------------------------------------------


def test_quote_word() -> None:
    assert quote_word("Priya") == "Priya"
    assert quote_word("Priya Nair") == '"Priya Nair"'
    assert shlex.split(quote_word('say "hi" now')) == ['say "hi" now']


@pytest.mark.parametrize(
    ("name", "options", "expected_name", "expected_args"),
    [
        ("persona add", {"source": "Priya Nair"}, "persona add", {"bundled": "Priya Nair"}),
        ("persona remove", {"name": "Priya Nair"}, "persona remove", {"name": "Priya Nair"}),
        ("observe", {"name": "Priya Nair", "state": "on"}, "observe", {"name": "Priya Nair", "on": True}),
        ("ask", {"name": "Henrik Lindqvist", "question": "Isn't it late?"}, "ask",
         {"name": "Henrik Lindqvist", "text": "Isn't it late?"}),
        ("policy", {"policy": "round_robin", "exchanges": 2}, "policy", {"policy": "round_robin", "exchanges": 2}),
        ("policy", {"policy": None, "exchanges": None}, "policy", {}),
        ("pick", {"names": ["Priya Nair", None, "Henrik"]}, "pick", {"names": ["Priya Nair", "Henrik"]}),
        ("start", {"name": "Team room", "situation": "It's Monday", "scenario": None}, "start",
         {"name": "Team room", "situation": "It's Monday"}),
        ("run", {"steps": 3}, "run", {"steps": 3}),
        ("approve", {"id": 7}, "approve", {"id": 7}),
        ("edit", {"id": 7, "text": "Better words"}, "edit", {"id": 7, "text": "Better words"}),
        ("export", {"format": "md"}, "export", {"format": "md"}),
        ("safety", {"mode": "red-team"}, "safety", {"mode": "red-team"}),
        ("help", {"command": None}, "help", {"topic": None}),
        ("review", {}, "review", {}),
    ],
)
def test_command_text_parses_back(name: str, options: dict, expected_name: str, expected_args: dict) -> None:
    command = parse_command(command_text(name, **options))
    assert command.name == expected_name
    assert command.args == expected_args


def test_pasted_json_is_passed_as_typed() -> None:
    text = command_text("persona add", source='{"name": "Ada"}')
    assert parse_command(text).args == {"json": '{"name": "Ada"}'}


# -- the command tree -----------------------------------------------------------------------------


def test_slash_commands_mirror_the_moderator_commands() -> None:
    adapter = DiscordAdapter(Settings(discord={"token": "x"}))
    group = adapter.tree.get_command("troupe")
    names = {c.qualified_name.removeprefix("troupe ") for c in group.walk_commands()}
    from bots.commands import SPECS

    assert set(SPECS) <= names | {"persona"}
    assert "interview" in names
    payload = group.to_dict(adapter.tree)
    policy = next(o for o in payload["options"] if o["name"] == "policy")
    choices = [c["value"] for c in policy["options"][0]["choices"]]
    assert choices == ["everyone", "addressed", "round_robin", "moderator", "model"]


async def test_missing_token_is_a_clear_error(tmp_path) -> None:
    adapter = DiscordAdapter(Settings(data_dir=tmp_path, discord={}))
    with pytest.raises(AdapterError, match="TROUPE_DISCORD_TOKEN") as caught:
        await adapter.connect()
    assert not caught.value.retryable


# -- end to end: real discord.py against the local stand-in ---------------------------------------

import json  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bots.app import TroupeApp  # noqa: E402
from simulation.events import EventKind  # noqa: E402
from tests.fakes.discord_server import FakeDiscord, SentMessage  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.sim_support import kind_of, persona_of  # noqa: E402

PERSONAS = ("Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist")


@dataclass
class Bot:
    fake: FakeDiscord
    app: TroupeApp
    adapter: DiscordAdapter

    @property
    def general(self) -> int:
        return self.fake.channel_id("general")

    async def command(self, name: str, options: dict[str, Any] | None = None, *, user: Any = None) -> SentMessage:
        """Run a slash command and return what its caller sees first."""
        interaction = await self.fake.run_slash_command(name, options, user=user or self.fake.moderator,
                                                        channel_id=self.general)
        return await interaction.message(timeout=10)

    def persona_posts(self, channel_id: int | None = None) -> list[SentMessage]:
        return [m for m in self.fake.channel_messages(channel_id or self.general) if m.webhook_id is not None
                and m.interaction_id is None]

    async def say(self, text: str, *, expect: int) -> list[SentMessage]:
        """A guest speaks; wait until ``expect`` new persona posts arrived and the bot is idle."""
        before = len(self.persona_posts())
        await self.fake.user_says(self.general, text)
        await self.fake.wait_for(lambda: len(self.persona_posts()) >= before + expect, timeout=15)
        await self.app.wait_idle()
        return self.persona_posts()[before:]


def discord_settings(tmp_path: Path, fake: FakeDiscord, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        llm=extra.pop("llm", {"provider": "demo"}),
        bot={"moderator_roles": [str(fake.moderator_role.id)], **extra.pop("bot", {})},
        discord={"token": fake.token, "api_base": fake.api_base, "gateway_url": fake.gateway_url,
                 "guild_ids": [fake.guild_id], **extra.pop("discord", {})},
    )


async def start_bot(tmp_path: Path, fake: FakeDiscord, **extra: Any) -> Bot:
    settings = discord_settings(tmp_path, fake, **extra)
    app = TroupeApp(settings)
    adapter = DiscordAdapter(settings)
    adapter.persona_names = lambda key: [a.name for a in s.world.agents] if (s := app.sessions.get(key)) else []
    await app.start([adapter])
    return Bot(fake, app, adapter)


async def with_team(bot: Bot, personas: tuple[str, ...] = PERSONAS) -> None:
    started = await bot.command("troupe start", {"name": "Team room"})
    assert "Started the world “Team room”" in started.content and not started.ephemeral
    for name in personas:
        added = await bot.command("troupe persona add", {"source": name})
        assert name in added.content, added.content
    await bot.app.wait_idle()


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with FakeDiscord() as fake:
        started = await start_bot(tmp_path, fake)
        try:
            yield started
        finally:
            await started.app.stop()


async def test_personas_answer_under_their_own_names_and_avatars(bot: Bot) -> None:
    assert [c["name"] for c in bot.fake.guild_commands()] == ["troupe"]
    await with_team(bot)
    posts = await bot.say("Morning all, how is the release looking?", expect=3)
    names = {p.author_name for p in posts}
    assert {f"{n} (demo model)" for n in PERSONAS} <= names
    assert len({p.webhook_id for p in posts}) == 1  # one webhook per channel
    for post in posts:
        assert post.avatar_url and post.avatar_url.startswith("https://")
        assert post.allowed_mentions == {"parse": []}
    assert bot.fake.typing  # persona turns show the typing indicator


async def test_a_non_moderator_is_refused_privately(bot: Bot) -> None:
    await with_team(bot, ())
    refusal = await bot.command("troupe persona add", {"source": "Priya Nair"}, user=bot.fake.guest)
    assert refusal.ephemeral and "Only moderators" in refusal.content
    assert refusal in bot.fake.ephemeral(bot.fake.guest.id)
    assert not any("Only moderators" in m.content for m in bot.fake.channel_messages(bot.general))


async def test_observe_sends_thoughts_privately(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:1])
    answer = await bot.command("troupe observe", {"name": "Priya Nair", "state": "on"})
    assert answer.ephemeral and "privately see what Priya Nair thinks" in answer.content
    await bot.say("What do you think about the new design?", expect=1)
    mod = bot.fake.moderator.id
    await bot.fake.wait_for(lambda: any("Priya Nair thinks" in m.content for m in bot.fake.ephemeral(mod)))
    assert not any("thinks" in m.content for m in bot.fake.channel_messages(bot.general))


async def test_a_deleted_webhook_is_recreated(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:1])
    first = await bot.say("Priya, how is the design going?", expect=1)
    await bot.fake.delete_webhook(first[0].webhook_id)
    second = await bot.say("Priya, what should we test first?", expect=1)
    assert second[0].webhook_id != first[0].webhook_id
    assert second[0].author_name == "Priya Nair (demo model)"
    assert len(bot.fake.webhooks) == 1


async def test_a_rate_limited_webhook_post_is_retried(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:1])
    await bot.say("Priya, what do you think of the plan?", expect=1)
    bot.fake.rate_limit("/webhooks/", times=1, method="POST", retry_after=0.3)
    posts = await bot.say("Priya, are we on track for the release?", expect=1)
    assert bot.fake.rate_limited
    assert len(posts) == len({p.content for p in posts})


async def test_a_gateway_drop_mid_round_loses_and_doubles_nothing(bot: Bot) -> None:
    await with_team(bot)
    before = len(bot.persona_posts())
    await bot.fake.user_says(bot.general, "Quick poll: ship on Friday?")
    await bot.fake.wait_for(lambda: len(bot.persona_posts()) > before, timeout=15)
    await bot.fake.drop_gateway(4000)
    await bot.fake.user_says(bot.general, "Anyone against?")  # said while the bot is reconnecting
    await bot.fake.wait_until_ready(timeout=15)
    await bot.fake.wait_for(lambda: bool(bot.fake.resumes), timeout=15)
    await asyncio.sleep(0.5)
    await bot.app.wait_idle()
    world = bot.app.sessions.get(f"discord:{bot.general}").world
    heard = [e.content for e in world.events if e.kind is EventKind.STIMULUS]
    assert heard.count("Quick poll: ship on Friday?") == 1
    assert heard.count("Anyone against?") == 1
    posts = bot.persona_posts()[before:]
    ids = [p.id for p in posts]
    assert len(ids) == len(set(ids))
    stored = await bot.app.storage.pending_outbox(f"discord:{bot.general}")
    assert stored == []


async def test_without_manage_webhooks_personas_post_through_the_bot(tmp_path: Path) -> None:
    async with FakeDiscord(manage_webhooks=False) as fake:
        bot = await start_bot(tmp_path, fake)
        try:
            await with_team(bot, PERSONAS[:1])
            await fake.user_says(bot.general, "Hello?")
            prefix = "**Priya Nair (demo model):** "
            await fake.wait_for_message(bot.general, lambda m: m.content.startswith(prefix), timeout=15)
            await bot.app.wait_idle()
            await fake.user_says(bot.general, "Hello again?")
            await fake.wait_for(lambda: sum(m.content.startswith(prefix) for m in fake.channel_messages(bot.general))
                                >= 2, timeout=15)
            await bot.app.wait_idle()
            messages = fake.channel_messages(bot.general)
            assert not fake.webhooks
            notices = [m for m in messages if "Manage Webhooks" in m.content]
            assert len(notices) == 1
        finally:
            await bot.app.stop()


def scripted(lines: dict[str, str]):
    def respond(body: dict[str, Any]) -> str:
        if kind_of(body) != "agent_turn":
            return json.dumps({"summary": "", "facts": []})
        text = lines.get(persona_of(body) or "", "Fine by me.")
        return json.dumps({
            "actions": [{"type": "TALK", "content": text, "target": None},
                        {"type": "DONE", "content": "", "target": None}],
            "cognitive_state": {"goals": "", "attention": "", "emotions": ""},
        })

    return respond


async def test_a_mass_mention_pings_nobody(tmp_path: Path) -> None:
    async with FakeOpenAIServer() as server, FakeDiscord() as fake:
        server.responder = scripted({"Priya Nair": "@everyone the roadmap is up"})
        llm = {"model": "gpt-4o-mini", "base_url": server.base_url, "api_key": "sk-test", "cache": False}
        bot = await start_bot(tmp_path, fake, llm=llm, bot={"default_exchanges": 0})
        try:
            await with_team(bot, PERSONAS[:1])
            (post,) = await bot.say("Any news?", expect=1)
            assert "@everyone" not in post.content and "roadmap is up" in post.content
            assert post.allowed_mentions == {"parse": []} and not post.pinged_user_ids
            assert not post.payload["mention_everyone"]
            # Even text that slips past the checks cannot ping: the adapter allows no mentions.
            channel = ChannelRef(platform="discord", id=str(bot.general))
            await bot.adapter.post(channel, Identity(name="Priya Nair"), f"@everyone <@{fake.guest.id}> hi")
            raw = bot.persona_posts()[-1]
            assert raw.allowed_mentions == {"parse": []} and raw.pinged_user_ids == []
        finally:
            await bot.app.stop()


async def test_an_interview_thread_talks_with_one_persona(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:2])
    opened = await bot.command("troupe interview", {"name": "Priya Nair"})
    assert opened.ephemeral and "Opened" in opened.content
    thread = bot.fake.channel_id("Interview with Priya Nair")
    await bot.fake.user_says(thread, "What worries you most about the launch?", user=bot.fake.moderator)
    await bot.fake.wait_for(lambda: any(m.webhook_id for m in bot.fake.channel_messages(thread)), timeout=15)
    await bot.app.wait_idle()
    answers = [m for m in bot.fake.channel_messages(thread) if m.webhook_id]
    assert answers[0].author_name == "Priya Nair (demo model)"
    world = bot.app.sessions.get(f"discord:{bot.general}").world
    assert any(e.content == "What worries you most about the launch?" for e in world.events)


def test_the_cli_needs_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from bots.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TROUPE_DISCORD_TOKEN", raising=False)
    monkeypatch.delenv("TROUPE_CONFIG", raising=False)
    assert main(["discord"]) == 2
    assert "TROUPE_DISCORD_TOKEN" in capsys.readouterr().out


def test_the_cli_reports_a_rejected_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A wrong token is refused at login: one clear line, exit code 2, no traceback."""
    from bots.cli import main

    async def serve_and_run() -> int:
        async with FakeDiscord() as fake:
            monkeypatch.setenv("TROUPE_DISCORD_API_BASE", fake.api_base)
            monkeypatch.setenv("TROUPE_DISCORD_GATEWAY_URL", fake.gateway_url)
            return await asyncio.to_thread(main, ["discord"])

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TROUPE_CONFIG", raising=False)
    monkeypatch.setenv("TROUPE_DISCORD_TOKEN", "not-the-token")
    monkeypatch.setenv("TROUPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TROUPE_LLM_PROVIDER", "demo")
    assert asyncio.run(serve_and_run()) == 2
    out = capsys.readouterr().out
    assert "rejected the bot token" in out and "Traceback" not in out


async def test_slow_answers_are_deferred_and_keep_their_visibility(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        bot = await start_bot(tmp_path, fake, discord={"defer_after_s": 0.05})
        handle = bot.app.moderation.handle

        async def slowly(invocation):
            await asyncio.sleep(0.4)
            return await handle(invocation)

        bot.app.moderation.handle = slowly
        try:
            interaction = await fake.run_slash_command("troupe start", {"name": "Slow room"}, user=fake.moderator)
            callback = await interaction.response()
            assert callback.deferred and callback.ephemeral and callback.elapsed < 3
            public = await fake.wait_for_message(bot.general, lambda m: "Started the world" in m.content, timeout=10)
            assert not public.ephemeral
            assert (await interaction.message()).content == "Answered in the channel."

            refused = await fake.run_slash_command("troupe persona add", {"source": "Priya Nair"}, user=fake.guest)
            assert (await refused.response()).deferred
            message = await refused.message(timeout=10)
            assert message.ephemeral and "Only moderators" in message.content
            assert not refused.rejected
        finally:
            await bot.app.stop()


async def test_export_answers_with_a_file(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:1])
    await bot.say("Priya, what do you think of the plan?", expect=1)
    interaction = await bot.fake.run_slash_command("troupe export", {"format": "md"}, user=bot.fake.guest,
                                                   channel_id=bot.general)
    callback = await interaction.response(timeout=10)
    assert callback.type == 4 and not callback.ephemeral
    await bot.app.wait_idle()
    (request,) = [r for r in bot.fake.requests if r[1].endswith("/callback") and r[1].startswith(f"/interactions/{interaction.id}")]
    assert request[3]["data"]["attachments"][0]["filename"].endswith(".md")


async def test_the_channel_webhook_is_kept_across_a_restart(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        first = await start_bot(tmp_path, fake)
        await with_team(first, PERSONAS[:1])
        before = await first.say("Priya, how is the design going?", expect=1)
        await first.app.stop()
        lists_before = [r for r in fake.requests if r[0] == "GET" and r[1].endswith("/webhooks")]

        second = await start_bot(tmp_path, fake)
        try:
            after = await second.say("Priya, and after the restart?", expect=1)
        finally:
            await second.app.stop()
    assert after[0].webhook_id == before[0].webhook_id, "the stored webhook is used again"
    assert len(fake.webhooks) == 1, "no second webhook was created"
    lists_after = [r for r in fake.requests if r[0] == "GET" and r[1].endswith("/webhooks")]
    assert lists_after == lists_before, "Discord was not asked for the channel's webhooks again"
