"""The Discord adapter: its pure pieces, then real discord.py against a local stand-in for Discord."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import adapters.discord.adapter as discord_adapter
import tests.fakes.discord_server as discord_server
from adapters.base import (
    AdapterError,
    Card,
    CardField,
    ChannelRef,
    CommandInvocation,
    Identity,
    NoSuggestions,
    clip,
)
from adapters.discord import DiscordAdapter
from adapters.discord.commands import SLASH_NAMES
from adapters.discord.embeds import EMBED_TOTAL_MAX, attachment_filename, card_embed
from adapters.discord.webhooks import fallback_prefix, webhook_username
from adapters.menu import MenuCommand, Option, quote_word
from bots.app import TroupeApp
from bots.commands import MENU, SPECS, parse_command
from config.settings import Settings
from simulation.events import EventKind
from tests.adapters.platforms import discord_settings, standalone_discord
from tests.fakes.discord_server import (
    ATTACH_FILES,
    BOT_PERMISSIONS,
    EMBED_LINKS,
    FakeDiscord,
    SentMessage,
)
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.testbot import TEAM as PERSONAS
from tests.support.testbot import store_unchecked_persona
from tests.support.turns import kind_of, persona_of

# -- webhook usernames ----------------------------------------------------------------------------


def test_username_carries_the_tag() -> None:
    assert webhook_username(Identity(name="Priya Nair", tag="demo model")) == "Priya Nair (demo model)"
    assert webhook_username(Identity(name="Priya Nair")) == "Priya Nair"


def test_long_username_is_cut_but_keeps_the_tag() -> None:
    name = webhook_username(Identity(name="A" * 120, tag="red-team simulation, demo model"))
    assert len(name) <= 80
    assert name.endswith("(red-team simulation, demo model)")


def test_username_leaves_out_words_discord_refuses_without_look_alikes() -> None:
    """Discord refuses "discord" and "clyde" in webhook names: a persona stored under such a name
    posts under the rest of it, never with look-alike letters that slip past the rule."""
    assert webhook_username(Identity(name="Clyde the Discord fan")) == "the fan"
    assert webhook_username(Identity(name="DISCORD", tag="demo model")) == "Persona (demo model)"


def test_empty_username_gets_a_placeholder() -> None:
    assert webhook_username(Identity(name=" \n\t")) == "Persona"
    assert 1 <= len(webhook_username(Identity(name="x\u0000"))) <= 80


def test_fallback_prefix() -> None:
    assert fallback_prefix(Identity(name="Priya Nair", tag="demo model")) == "**Priya Nair (demo model):** "


# -- command lines from slash commands ------------------------------------------------------------


def command_text(command: str, /, **options: object) -> str:
    """The command line the slash command ``name`` stands for with ``options``."""
    return next(entry for entry in MENU if entry.name == command).line(options)


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
        ("pick", {"name": "Priya Nair", "second": None, "third": "Henrik"}, "pick", {"names": ["Priya Nair", "Henrik"]}),
        ("start", {"name": "Team room", "situation": "It's Monday", "scenario": None}, "start",
         {"name": "Team room", "situation": "It's Monday", "reopen": False}),
        ("start", {"reopen": True}, "start", {"name": None, "reopen": True}),
        ("stop", {"confirm": None}, "stop", {"confirm": False}),
        ("stop", {"confirm": True}, "stop", {"confirm": True}),
        ("reset", {"confirm": True}, "reset", {"confirm": True}),
        ("run", {"steps": 3}, "run", {"steps": 3}),
        ("approve", {"id": 7}, "approve", {"id": 7}),
        ("edit", {"id": 7, "text": "Better words"}, "edit", {"id": 7, "text": "Better words"}),
        ("export", {"format": "md"}, "export", {"format": "md"}),
        ("safety", {"mode": "red-team"}, "safety", {"mode": "red-team"}),
        ("help", {"command": None}, "help", {"topic": None}),
        ("review", {}, "review", {}),
        ("focus", {"question": "Would you pay 5 €?", "rounds": 3, "personas": "Priya, Henrik"}, "focus",
         {"question": "Would you pay 5 €?", "rounds": 3, "personas": ["Priya", "Henrik"]}),
        ("probe", {"question": "And at 10?"}, "probe", {"text": "And at 10?"}),
        ("summary", {"since": 4}, "summary", {"since": 4}),
        ("poll", {"question": "Ship Friday?", "options": "yes, no, not yet"}, "poll",
         {"question": "Ship Friday?", "options": ["yes", "no", "not yet"]}),
        ("extract", {"fields": "stance, budget", "format": "csv"}, "extract",
         {"fields": ["stance", "budget"], "schema": None, "format": "csv"}),
        ("generate", {"count": 3, "description": "nurses in Lisbon", "plan": "half under 30"}, "generate",
         {"count": 3, "description": "nurses in Lisbon", "plan": "half under 30"}),
        ("enrich", {"content": "Buy it", "requirements": "add a price"}, "enrich",
         {"content": "Buy it", "requirements": "add a price"}),
        ("story", {"action": "inject"}, "story", {"inject": True}),
        ("validate", {"name": "Priya Nair", "expectations": "a careful designer"}, "validate",
         {"name": "Priya Nair", "expectations": "a careful designer"}),
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
    adapter.attach(None, MENU, NoSuggestions())
    group = adapter.tree.get_command("troupe")
    names = {c.qualified_name.removeprefix("troupe ") for c in group.walk_commands()}
    assert {SLASH_NAMES.get(name, name) for name in SPECS} <= names
    assert "interview" in names
    assert all(len(g.commands) <= 25 for g in [group, *(c for c in group.walk_commands() if hasattr(c, "commands"))])
    payload = group.to_dict(adapter.tree)
    policy = next(o for o in payload["options"] if o["name"] == "policy")
    choices = [c["value"] for c in policy["options"][0]["choices"]]
    assert choices == ["everyone", "addressed", "round_robin", "moderator", "model"]


def test_the_slash_commands_are_built_from_the_commands_offered() -> None:
    """A command the application offers appears under /troupe with its typed options; what someone
    picks there becomes the command line the application parses."""
    survey = MenuCommand("survey", "Ask everyone one question", (
        Option("question", description="what to ask"),
        Option("rounds", int, "how many rounds", required=False, min_value=1, max_value=3, form="option"),
        Option("name", suggest="personas"),
        Option("mood", required=False, choices=("calm", "heated")),
    ))
    adapter = DiscordAdapter(Settings(discord={"token": "x"}))
    adapter.attach(None, [survey], NoSuggestions())
    (shown,) = adapter.tree.get_command("troupe").to_dict(adapter.tree)["options"]
    assert shown["name"] == "survey" and shown["description"] == "Ask everyone one question"
    assert [(o["name"], o["type"], o["required"], o["description"]) for o in shown["options"]] == [
        ("question", 3, True, "what to ask"), ("name", 3, True, "…"), ("rounds", 4, False, "how many rounds"),
        ("mood", 3, False, "…")]
    rounds, mood = shown["options"][2:]
    assert (rounds["min_value"], rounds["max_value"]) == (1, 3)
    assert [c["value"] for c in mood["choices"]] == ["calm", "heated"]
    assert shown["options"][1]["autocomplete"] is True
    assert survey.line({"question": "Ship it Friday?", "rounds": 2, "name": "Priya Nair", "mood": None}) == \
        'survey "Ship it Friday?" --rounds 2 "Priya Nair"'


async def test_missing_token_is_a_clear_error(tmp_path) -> None:
    adapter = DiscordAdapter(Settings(data_dir=tmp_path, discord={}))
    with pytest.raises(AdapterError, match="TROUPE_DISCORD_TOKEN") as caught:
        await adapter.connect()
    assert not caught.value.retryable


# -- end to end: real discord.py against the local stand-in ---------------------------------------


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


async def start_bot(tmp_path: Path, fake: FakeDiscord, **extra: Any) -> Bot:
    settings = discord_settings(tmp_path, fake, **extra)
    app = TroupeApp(settings)
    adapter = DiscordAdapter(settings)
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


async def test_a_discord_outage_at_start_up_is_waited_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Discord answers the login with a 503 (discord.py does not retry that one): the bot tries
    again a moment later instead of exiting, and then works as usual."""
    async with FakeDiscord() as fake:
        fake.chaos(1.0, kinds=["server_error_503"], routes=["/users/@me"])

        async def outage_ends() -> None:
            while not fake.faults_injected:
                await asyncio.sleep(0.01)
            fake.chaos(0)

        ending = asyncio.ensure_future(outage_ends())
        started = await start_bot(tmp_path, fake)
        try:
            await ending
            assert "could not connect to discord" in caplog.text and "trying again" in caplog.text
            await with_team(started, PERSONAS[:1])
            posts = await started.say("Morning, how is the release looking?", expect=1)
            assert posts[0].author_name.startswith(PERSONAS[0])
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
        run = bot.app.commands.run

        async def slowly(*args, **kwargs):
            await asyncio.sleep(0.4)
            return await run(*args, **kwargs)

        bot.app.commands.run = slowly
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


async def test_a_restarted_adapter_catches_up_on_threads_the_gateway_lists(tmp_path: Path) -> None:
    """After a restart the adapter knows a channel's threads only from the gateway (GUILD_CREATE lists
    the active ones, each with its last message's id): a thread written in while it was away is read,
    one with nothing new is not."""
    async with FakeDiscord() as fake:
        general = fake.channel_id("general")
        heard = await fake.user_says(general, "Before the break.")
        busy = await fake.add_thread(general, "launch")
        quiet = await fake.add_thread(general, "old news")
        await fake.user_says(quiet, "Nothing new here since.")
        heard = await fake.user_says(general, "The last thing heard.")
        await fake.user_says(busy, "Is the launch still on Friday?")
        await fake.user_says(general, "Meanwhile, in the channel.")
        async with standalone_discord(tmp_path, fake) as adapter:
            reads = len(fake.requests)
            missed = await adapter.catch_up(ChannelRef(platform="discord", id=str(general)), str(heard.id))
            read = [path for method, path, *_ in fake.requests[reads:] if method == "GET"]
    assert [(m.text, m.channel.thread) for m in missed] == [
        ("Is the launch still on Friday?", str(busy)), ("Meanwhile, in the channel.", None)]
    assert not any(f"/channels/{quiet}/" in path for path in read), "a thread with nothing new is not read"


async def test_a_restarted_adapter_catches_up_on_threads_archived_while_it_was_away(tmp_path: Path) -> None:
    """A thread is archived a while after its last message, and leaves the gateway's list: a reply
    written there while the bot was away is still read, from the threads archived since the last
    message heard. Threads archived before it, or with nothing new, are not read."""
    async with FakeDiscord() as fake:
        general = fake.channel_id("general")
        long_ago = await fake.add_thread(general, "last quarter")
        await fake.user_says(long_ago, "Old business.")
        await fake.archive_thread(long_ago)
        await asyncio.sleep(0.01)
        settled = await fake.add_thread(general, "settled")
        await fake.user_says(settled, "Agreed, done.")
        heard = await fake.user_says(general, "The last thing heard.")
        retro = await fake.add_thread(general, "retro")
        await fake.user_says(retro, "Can we move the retro to Monday?")
        await fake.archive_thread(retro)
        await fake.archive_thread(settled)
        async with standalone_discord(tmp_path, fake) as adapter:
            reads = len(fake.requests)
            missed = await adapter.catch_up(ChannelRef(platform="discord", id=str(general)), str(heard.id))
            read = [path for method, path, *_ in fake.requests[reads:] if method == "GET"]
    assert [(m.text, m.channel.thread) for m in missed] == [("Can we move the retro to Monday?", str(retro))]
    assert not any(f"/channels/{thread}/" in path for thread in (long_ago, settled) for path in read)


# -- cards as embeds ------------------------------------------------------------------------------


#: A 1×1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def embed_size(embed: dict[str, Any]) -> int:
    fields = embed.get("fields", [])
    texts = [embed.get("title", ""), embed.get("description", ""), embed.get("footer", {}).get("text", "")]
    return sum(map(len, texts)) + sum(len(f["name"]) + len(f["value"]) for f in fields)


def test_a_card_becomes_an_embed() -> None:
    card = Card(title="Focus group: pricing", text="Three personas discussed the new plan.",
                fields=(CardField(name="Priya Nair", value="For it", inline=True), CardField(name="Henrik", value="")),
                footer="Simulated answers (demo model)", colour="#1f8b4c", image=("stances chart.png", PNG))
    embed = card_embed(card).to_dict()
    assert embed["title"] == "Focus group: pricing"
    assert embed["description"] == "Three personas discussed the new plan."
    assert embed["color"] == 0x1F8B4C
    assert embed["footer"]["text"] == "Simulated answers (demo model)"
    assert embed["fields"][0] == {"name": "Priya Nair", "value": "For it", "inline": True}
    assert embed["fields"][1]["value"].strip() == "\u200b"  # Discord refuses an empty value
    assert embed["image"]["url"] == "attachment://stances_chart.png"
    FakeDiscord._validate_embeds([embed])


def test_an_oversized_card_is_cut_to_discord_limits() -> None:
    footer = "Simulated answers, not real people (demo model)"
    card = Card(title="T" * 300, text="word " * 2000, footer=footer, colour="not a colour",
                fields=tuple(CardField(name=f"Persona {i}", value="x" * 2000) for i in range(30)))
    embed = card_embed(card).to_dict()
    FakeDiscord._validate_embeds([embed])  # what Discord would accept
    assert embed_size(embed) <= EMBED_TOTAL_MAX
    assert len(embed["title"]) == 256 and embed["title"].endswith("…")
    assert embed["description"].endswith("…")
    assert embed["footer"]["text"] == footer, "the disclaimer is never cut"
    assert len(embed["fields"]) == 25
    assert [f["name"] for f in embed["fields"][:24]] == [f"Persona {i}" for i in range(24)]
    assert embed["fields"][-1]["value"] == "6 more not shown"
    assert all(f["value"].endswith("…") for f in embed["fields"][:24])
    assert "color" not in embed


def test_clip_and_attachment_names() -> None:
    assert clip("short", 10) == "short"
    assert clip("a long sentence here", 8) == "a long…"
    assert attachment_filename("my chart (v2).png") == "my_chart__v2_.png"
    assert attachment_filename("../..") == "image.png"


async def next_invocation(adapter: DiscordAdapter) -> CommandInvocation:
    event = await asyncio.wait_for(anext(adapter.listen()), timeout=5)
    assert isinstance(event, CommandInvocation)
    return event


REPORT = Card(title="Poll: ship on Friday?", text="Two of three would ship.",
              fields=(CardField(name="Yes", value="Priya Nair, Henrik Lindqvist", inline=True),
                      CardField(name="No", value="Tomasz Kowalski", inline=True)),
              footer="Simulated answers (demo model)", colour="#5865f2", image=("votes.png", PNG))


def assert_report(message: SentMessage) -> None:
    (embed,) = message.embeds
    assert embed["title"] == "Poll: ship on Friday?" and embed["color"] == 0x5865F2
    assert [f["name"] for f in embed["fields"]] == ["Yes", "No"]
    assert embed["footer"]["text"] == "Simulated answers (demo model)"
    assert embed["image"]["url"] == "attachment://votes.png"
    (attachment,) = message.attachments
    assert attachment.filename == "votes.png" and attachment.data == PNG
    shown = message.payload["embeds"][0]["image"]
    assert shown["url"] == attachment.url and (shown["width"], shown["height"]) == (1, 1)
    assert message.allowed_mentions == {"parse": []}
    assert not message.ephemeral


async def test_a_card_is_posted_in_the_channel_with_its_image(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, standalone_discord(tmp_path, fake) as adapter:
        general = fake.channel_id("general")
        posted = await adapter.post_card(ChannelRef(platform="discord", id=str(general)), REPORT)
        (message,) = fake.channel_messages(general)
        assert posted == str(message.id)
        assert_report(message)
        (request,) = [r for r in fake.requests if r[:2] == ("POST", f"/channels/{general}/messages")]
        assert request[3]["attachments"] == [{"id": 0, "filename": "votes.png"}]


async def test_without_embed_links_a_card_is_posted_as_text(tmp_path: Path) -> None:
    without_embeds = BOT_PERMISSIONS & ~EMBED_LINKS
    async with FakeDiscord(bot_permissions=without_embeds) as fake, standalone_discord(tmp_path, fake) as adapter:
        general = fake.channel_id("general")
        await adapter.post_card(ChannelRef(platform="discord", id=str(general)), REPORT)
        (message,) = fake.channel_messages(general)
        assert not message.embeds and message.content.startswith("**Poll: ship on Friday?**")
        assert message.content.endswith("_Simulated answers (demo model)_")
        assert [a.filename for a in message.attachments] == ["votes.png"]


async def test_an_oversized_card_is_truncated_not_refused(tmp_path: Path) -> None:
    card = Card(title="Focus group", text="Long discussion. " * 400, footer="Simulated answers",
                fields=tuple(CardField(name=f"Persona {i}", value="Thoughts. " * 200) for i in range(30)))
    async with FakeDiscord() as fake, standalone_discord(tmp_path, fake) as adapter:
        general = fake.channel_id("general")
        await adapter.post_card(ChannelRef(platform="discord", id=str(general)), card)
        (message,) = fake.channel_messages(general)
        (embed,) = message.embeds
        assert embed_size(embed) <= EMBED_TOTAL_MAX and len(embed["fields"]) == 25
        assert embed["description"].endswith("…") and embed["footer"]["text"] == "Simulated answers"


async def test_a_card_answers_a_waiting_command(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, standalone_discord(tmp_path, fake) as adapter:
        interaction = await fake.run_slash_command("troupe usage", user=fake.moderator)
        invocation = await next_invocation(adapter)
        posted = await adapter.post_card(invocation.channel, REPORT, invocation=invocation)
        callback = await interaction.response()
        assert callback.type == 4 and not callback.ephemeral and callback.data["embeds"][0]["title"] == REPORT.title
        original = await interaction.message()
        assert posted == str(original.id)
        assert_report(original)
        # Answered already: a second card is a public follow-up.
        again = await adapter.post_card(invocation.channel, REPORT, invocation=invocation)
        (followup,) = await interaction.followups()
        assert again == str(followup.id)
        assert_report(followup)


async def test_a_card_after_a_deferral_goes_to_the_channel(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, standalone_discord(tmp_path, fake, defer_after_s=0.05) as adapter:
        general = fake.channel_id("general")
        interaction = await fake.run_slash_command("troupe usage", user=fake.moderator)
        invocation = await next_invocation(adapter)
        callback = await interaction.response()
        assert callback.deferred and callback.ephemeral
        posted = await adapter.post_card(invocation.channel, REPORT, invocation=invocation)
        (message,) = fake.channel_messages(general)
        assert posted == str(message.id) and message.interaction_id is None
        assert_report(message)
        pointer = await interaction.message()
        assert pointer.ephemeral and pointer.content.startswith("Posted in the channel:")
        assert str(message.id) in pointer.content
        assert not pointer.embeds and not pointer.attachments


# -- status lines ---------------------------------------------------------------------------------


async def test_a_status_line_is_edited_in_place(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, standalone_discord(tmp_path, fake) as adapter:
        general = fake.channel_id("general")
        channel = ChannelRef(platform="discord", id=str(general))
        handle = await adapter.progress(channel, "Round 1/3: Priya Nair is thinking")
        assert handle is not None
        again = await adapter.progress(channel, "Round 2/3: Henrik Lindqvist is thinking", handle=handle)
        assert again == handle
        (message,) = fake.channel_messages(general)
        assert message.content == "Round 2/3: Henrik Lindqvist is thinking" and message.edits == 1
        assert [r["content"] for r in message.revisions] == ["Round 1/3: Priya Nair is thinking"]
        assert message.allowed_mentions == {"parse": []}
        assert ("PATCH", f"/channels/{general}/messages/{message.id}") in [r[:2] for r in fake.requests]

        await fake.delete_message(general, message.id)
        reposted = await adapter.progress(channel, "Round 3/3: Tomasz Kowalski is thinking", handle=handle)
        assert reposted is not None and reposted != handle
        (fresh,) = fake.channel_messages(general)
        assert fresh.content == "Round 3/3: Tomasz Kowalski is thinking" and fresh.id != message.id
        assert await adapter.progress(channel, "Done", handle=reposted) == reposted
        assert fake.channel_messages(general)[0].content == "Done"


# -- autocomplete, private messages, research results ---------------------------------------------


async def test_persona_names_are_suggested_as_one_types(bot: Bot) -> None:
    await with_team(bot)
    messages = len(bot.fake.channel_messages(bot.general))
    typing = await bot.fake.run_autocomplete("troupe ask", {"name": "pri"}, focused="name",
                                             user=bot.fake.moderator, channel_id=bot.general)
    assert await typing.choices() == [{"name": "Priya Nair", "value": "Priya Nair"}]
    everyone = await bot.fake.run_autocomplete("troupe interview", {}, focused="name", channel_id=bot.general)
    assert [c["value"] for c in await everyone.choices()] == list(PERSONAS)
    second = await bot.fake.run_autocomplete("troupe pick", {"name": "Priya Nair", "second": "LIND"},
                                             focused="second", channel_id=bot.general)
    assert [c["value"] for c in await second.choices()] == ["Henrik Lindqvist"]
    elsewhere = await bot.fake.run_autocomplete("troupe ask", {"name": "p"}, focused="name",
                                                channel_id=bot.fake.channel_id("random"))
    assert await elsewhere.choices() == []
    assert all(i.callback and i.callback.type == 8 for i in (typing, everyone, second, elsewhere))
    assert len(bot.fake.channel_messages(bot.general)) == messages, "suggesting posts nothing"


async def test_a_private_message_without_a_recent_command_is_a_dm(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    await with_team(bot, PERSONAS[:1])
    answer = await bot.command("troupe observe", {"name": "Priya Nair", "state": "on"})
    assert answer.ephemeral
    monkeypatch.setattr(discord_adapter, "INTERACTION_TTL_S", 0.0)  # the observe command's interaction expired
    mod = bot.fake.moderator.id
    ephemeral_before = len(bot.fake.ephemeral(mod))
    await bot.say("What do you think about the new design?", expect=1)
    await bot.fake.wait_for(lambda: any("Priya Nair thinks" in m.content for m in bot.fake.dms(mod)), timeout=10)
    opened = [i for i, r in enumerate(bot.fake.requests) if r[:2] == ("POST", "/users/@me/channels")]
    assert opened and int(bot.fake.requests[opened[0]][3]["recipient_id"]) == mod
    (dm_channel,) = bot.fake.dm_channels
    sent = [i for i, r in enumerate(bot.fake.requests) if r[:2] == ("POST", f"/channels/{dm_channel}/messages")]
    assert sent and sent[0] > opened[0]
    assert all(m.allowed_mentions == {"parse": []} for m in bot.fake.dms(mod))
    assert len(bot.fake.ephemeral(mod)) == ephemeral_before
    assert not any("thinks" in m.content for m in bot.fake.channel_messages(bot.general))


async def test_poll_and_focus_group_results_are_embeds(bot: Bot) -> None:
    await with_team(bot)
    await bot.say("Morning, shall we talk pricing?", expect=3)
    answer = await bot.command("troupe poll", {"question": "Ship on Friday?", "options": "yes, no, later"})
    await bot.app.wait_idle()
    embed = answer.embeds[0]
    assert embed["title"] == "Poll: Ship on Friday?" and not answer.ephemeral
    assert {f["name"].split(":")[0] for f in embed["fields"]} == set(PERSONAS)
    assert "they may not reflect what real people think" in embed["footer"]["text"]
    assert embed["image"]["url"] == "attachment://poll.png" and answer.attachments[0].filename == "poll.png"

    before = len(bot.persona_posts())
    started = await bot.command("troupe focus start", {"question": "Would you pay 5 euros a month?", "rounds": 1})
    assert "Focus group started" in started.content
    await bot.fake.wait_for(lambda: any(m.embeds and m.embeds[0]["title"].startswith("Focus group:")
                                        for m in bot.fake.channel_messages(bot.general)), timeout=20)
    await bot.app.wait_idle()
    assert len(bot.persona_posts()) - before == 3  # one answer each, under their own names
    status = [m for m in bot.fake.channel_messages(bot.general) if m.content.startswith("Focus group:")]
    assert len(status) == 1 and status[0].edits >= 3  # one progress line, edited in place
    assert status[0].content == "Focus group: focus group finished"


async def test_help_is_a_private_embed(bot: Bot) -> None:
    answer = await bot.command("troupe help", user=bot.fake.guest)
    assert answer.ephemeral and answer.embeds[0]["title"].startswith("Troupe commands")
    assert "persona add" in answer.embeds[0]["description"]


# -- names that pass for the bot or for Discord, names that look like links -----------------------


LINK_NAME = "[Reset your password](https://evil.example/reset)"


def live_links(content: str) -> list[str]:
    """What Discord would make a link of: a Markdown link with unescaped brackets, or a URL."""
    return re.findall(r"(?<!\\)\[[^\]]*(?<!\\)\]\(|https?://\S+", content)


@pytest.mark.parametrize(("name", "why"), [
    ('{"name": "Troupe", "age": 40}', "could be taken for the bot"),
    ('{"name": "Aria", "age": 40}', "could be taken for the bot (it is called Aria here)"),
    ('{"name": "Discord Support", "age": 40}', "could be taken for"),
    ('{"name": "Clydesdale Moss", "age": 40}', "it refuses “clyde” in the name of anyone who posts"),
])
async def test_persona_add_refuses_names_that_pass_for_the_bot_or_discord(tmp_path: Path, name: str, why: str) -> None:
    async with FakeDiscord(bot_name="Aria") as fake:
        bot = await start_bot(tmp_path, fake)
        try:
            await with_team(bot, ())
            refusal = await bot.command("troupe persona add", {"source": name})
            assert refusal.ephemeral and why in refusal.content and "another name" in refusal.content
            assert not bot.app.sessions.get(f"discord:{bot.general}").world.agents
        finally:
            await bot.app.stop()


async def test_a_link_for_a_persona_name_links_nowhere_also_when_a_guest_asks_status(tmp_path: Path) -> None:
    """A persona stored under a Markdown link (before names were checked): the status a guest asks
    for, and the posts the bot makes for it, show the name as text."""
    async with FakeDiscord(manage_webhooks=False) as fake:
        first = await start_bot(tmp_path, fake)
        await with_team(first, PERSONAS[:1])
        world_id = first.app.sessions.get(f"discord:{first.general}").record.id
        await first.app.stop()
        await store_unchecked_persona(first.app.settings.database_path, world_id, LINK_NAME)
        bot = await start_bot(tmp_path, fake)
        try:
            status = await bot.command("troupe status", user=fake.guest)
            assert "Reset your password" in status.content and not live_links(status.content), status.content
            channel = ChannelRef(platform="discord", id=str(bot.general))
            session = bot.app.sessions.get(channel.key)
            await bot.adapter.post(channel, session.identity(LINK_NAME), "Please sign in again.")
            (post,) = [m for m in fake.channel_messages(bot.general) if "Please sign in again." in m.content]
            assert "Reset your password" in post.content and not live_links(post.content), post.content
        finally:
            await bot.app.stop()


# -- a file Discord does not take -----------------------------------------------------------------


def _nothing_kept(tmp_path: Path, text: str) -> None:
    assert "Could not share" in text and "Nothing was kept" in text
    assert str(tmp_path) not in text and "Saved to" not in text
    assert not (tmp_path / "exports").exists(), "no file is left on the host"


async def test_an_export_too_large_for_discord_is_explained_privately_and_kept_nowhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord() as fake:
        bot = await start_bot(tmp_path, fake)
        try:
            await with_team(bot, PERSONAS[:1])
            await bot.say("Priya, what do you think of the plan?", expect=1)
            monkeypatch.setattr(discord_server, "ATTACHMENT_SIZE_LIMIT", 100)  # the export is larger
            answer = await bot.command("troupe export", {"format": "json"}, user=fake.guest)
            await bot.app.wait_idle()
            assert answer.ephemeral, "only the guest who asked is told"
            _nothing_kept(tmp_path, answer.content)
            assert not any("Could not share" in m.content for m in fake.channel_messages(bot.general))
        finally:
            await bot.app.stop()


async def test_an_export_in_a_channel_where_the_bot_may_not_attach_files_is_explained_privately(tmp_path: Path) -> None:
    async with FakeDiscord(bot_permissions=BOT_PERMISSIONS & ~ATTACH_FILES) as fake:
        # An answer after Discord's "thinking…" shares the file in the channel, which needs Attach Files.
        bot = await start_bot(tmp_path, fake, discord={"defer_after_s": 0.05})
        try:
            await with_team(bot, PERSONAS[:1])
            await bot.say("Priya, what do you think of the plan?", expect=1)
            run = bot.app.commands.run

            async def slowly(*args, **kwargs):  # a large world: the export takes longer than Discord waits
                await asyncio.sleep(0.3)
                return await run(*args, **kwargs)

            bot.app.commands.run = slowly
            interaction = await fake.run_slash_command("troupe export", {"format": "md"}, user=fake.guest,
                                                       channel_id=bot.general)
            assert (await interaction.response(timeout=10)).deferred
            answer = await interaction.message(timeout=10)
            await bot.app.wait_idle()
            assert answer.ephemeral
            _nothing_kept(tmp_path, answer.content)
            assert not any("Shared in the channel" in str(r.get("content")) for r in answer.revisions)
            assert not any("Could not share" in m.content for m in fake.channel_messages(bot.general))
        finally:
            await bot.app.stop()


async def test_a_branch_talks_in_its_thread_and_compare_posts_an_embed(bot: Bot) -> None:
    """A branch talks in a thread of its own, and its compare card is an embed with the simulated-answers line."""
    await with_team(bot, PERSONAS[:2])
    await bot.say("Would you pay $300 for the speaker?", expect=2)
    forked = await bot.command("troupe branch fork", {"name": "discount"})
    assert "Forked the branch “discount”" in forked.content
    thread = bot.fake.channel_id("Branch discount")

    await bot.fake.user_says(thread, "Priya and Tomasz, would you buy it at $199?")
    await bot.fake.wait_for(lambda: len(bot.persona_posts(thread)) >= 2, timeout=15)
    await bot.app.wait_idle()
    assert all("branch discount" in (m.author_name or "") for m in bot.persona_posts(thread))
    main = bot.app.sessions.get(f"discord:{bot.general}")
    assert all("$199" not in e.content for e in main.world.events), "the channel's world never heard the thread"

    card = await bot.command("troupe branch compare", {"first": "main", "second": "discount"})
    embed = card.embeds[0]
    assert embed["title"] == "Compare “main” and “discount”"
    assert [field["name"] for field in embed["fields"]] == list(PERSONAS[:2])
    assert "real people" in embed["footer"]["text"]
