"""Who is a moderator: listed user ids (bare or ``platform:ID``), listed roles, channel managers
unless the settings say otherwise, and never a bot account, whatever rights it has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bots.commands import SPECS
from tests.bots.test_permissions_all_commands import EXAMPLES, snapshot
from tests.support.testbot import TestBot, demo_settings, start_bot

MODERATOR_ONLY = sorted(n for n, s in SPECS.items() if s.moderator_only)

#: Bot accounts that would be moderators if they were people: one the platform lets manage the
#: channel, one with a moderator role, one whose id is listed.
BOT_ACCOUNTS = (
    {"user": "helper-bot", "user_is_moderator": True},
    {"user": "role-bot", "user_is_moderator": False, "roles": ("R-MOD",)},
    {"user": "listed-bot", "user_is_moderator": False},
)


async def team_room(tmp_path: Path, **bot_settings: object) -> TestBot:
    bot = await start_bot(demo_settings(tmp_path, **bot_settings))
    await bot.command("start Team room")
    await bot.command("persona add Priya Nair")
    await bot.say("Morning Priya, how are things?")
    await bot.app.wait_idle()
    return bot


def refused(sent: list) -> bool:
    return [s.kind for s in sent] == ["private"] and "Only moderators" in sent[0].text


@pytest.mark.parametrize("name", MODERATOR_ONLY)
async def test_a_bot_account_is_never_a_moderator(tmp_path: Path, name: str) -> None:
    bot = await team_room(tmp_path, moderator_roles=["R-MOD"], moderator_user_ids=["memory:listed-bot"])
    try:
        before = snapshot(tmp_path / "troupe.db")
        for account in BOT_ACCOUNTS:
            sent = await bot.command(EXAMPLES[name], is_bot=True, **account)
            await bot.app.wait_idle()
            assert refused(sent), (account, sent)
        assert snapshot(tmp_path / "troupe.db") == before
        session = bot.app.sessions.get("memory:general")
        assert session is not None and [a.name for a in session.world.agents] == ["Priya Nair"]
        assert not session.paused
    finally:
        await bot.app.stop()


async def test_the_same_accounts_as_people_are_moderators(tmp_path: Path) -> None:
    """The refusals above are about being a bot: the same rights held by people are enough."""
    bot = await team_room(tmp_path, moderator_roles=["R-MOD"], moderator_user_ids=["memory:listed-bot"])
    try:
        for account, persona in zip(BOT_ACCOUNTS, ("Tomasz Kowalski", "Henrik Lindqvist", "Amara Okafor")):
            sent = await bot.command(f"persona add {persona}", **account)
            assert not any("Only moderators" in s.text for s in sent), (account, sent)
        session = bot.app.sessions.get("memory:general")
        assert session is not None and len(session.world.agents) == 4
    finally:
        await bot.app.stop()


@pytest.mark.parametrize("name", MODERATOR_ONLY)
async def test_without_managers_are_moderators_a_channel_manager_is_refused(tmp_path: Path, name: str) -> None:
    bot = await team_room(tmp_path, managers_are_moderators=False, moderator_user_ids=["mod"])
    try:
        before = snapshot(tmp_path / "troupe.db")
        sent = await bot.command(EXAMPLES[name], user="manager", user_is_moderator=True)
        await bot.app.wait_idle()
        assert refused(sent), sent
        assert snapshot(tmp_path / "troupe.db") == before
    finally:
        await bot.app.stop()


async def test_moderators_by_id_platform_id_and_role_when_managers_are_not(tmp_path: Path) -> None:
    settings = {
        "managers_are_moderators": False,
        # Written as people write lists in YAML: stray spaces around an entry do not matter.
        "moderator_user_ids": ["alice", " memory:bob ", "slack:carol", "discord:memory:erin"],
        "moderator_roles": ["R-MOD", " R-LEADS "],
    }
    bot = await start_bot(demo_settings(tmp_path, **settings))
    try:
        ordinary = {"user_is_moderator": False}
        assert not refused(await bot.command("start Team room", user="alice", **ordinary))  # bare id
        assert not refused(await bot.command("persona add Priya Nair", user="bob", **ordinary))  # memory:ID
        assert not refused(await bot.command("persona add Tomasz Kowalski", user="dana", roles=("R-MOD",),
                                             **ordinary))
        assert not refused(await bot.command("persona add Henrik Lindqvist", user="fay",
                                             roles=("R-GUESTS", "R-LEADS"), **ordinary))
        session = bot.app.sessions.get("memory:general")
        assert session is not None and len(session.world.agents) == 3

        # Another platform's id, a look-alike, an unlisted role, or managing the channel: not moderators.
        for user, extra in (
            ("carol", ordinary),
            ("erin", ordinary),
            ("ALICE", ordinary),
            ("gus", {"user_is_moderator": False, "roles": ("R-GUESTS",)}),
            ("manager", {"user_is_moderator": True}),
        ):
            assert refused(await bot.command("pause", user=user, **extra)), user
        assert not session.paused
        assert not refused(await bot.command("pause", user="alice", **ordinary))
        assert session.paused
    finally:
        await bot.app.stop()


async def test_by_default_a_channel_manager_is_a_moderator(tmp_path: Path) -> None:
    bot = await start_bot(demo_settings(tmp_path))
    try:
        assert not refused(await bot.command("start Team room", user="manager", user_is_moderator=True))
        refusal = await bot.command("pause", user="guest", user_is_moderator=False)
        assert refused(refusal)
        assert refusal[0].text == (
            "Only moderators can use `pause`. Ask a moderator, or have an admin add your user id "
            "(`memory:guest`) to bot.moderator_user_ids (or one of your roles to bot.moderator_roles) in troupe.yaml."
        )
        assert bot.app.sessions.get("memory:general") is not None
    finally:
        await bot.app.stop()


async def test_a_moderators_export_has_thoughts_and_memories_and_a_managers_does_not(tmp_path: Path) -> None:
    """``export`` is open to everyone; the personas' thoughts and memories go to moderators only."""
    bot = await team_room(tmp_path, managers_are_moderators=False, moderator_user_ids=["mod"])
    bot.adapter.uploads = True
    try:
        await bot.say("What do you think of the release, Priya?")

        async def export(**user: object) -> dict:
            files = [s.file for s in await bot.command("export json", **user) if s.file]
            assert len(files) == 1
            return json.loads(files[0][1])

        mine = await export()
        theirs = await export(user="manager", user_is_moderator=True)
        assert any(e["type"] == "THINK" for e in mine["events"])
        assert not any(e["type"] == "THINK" for e in theirs["events"])
        assert len(mine["agents"][0]) > 1 and theirs["agents"] == [{"name": "Priya Nair"}]
    finally:
        await bot.app.stop()


# -- on Discord: ids as Discord sends them, the guild owner as the channel manager ----------------


async def test_on_discord_a_member_listed_as_discord_id_or_bare_id_is_a_moderator(tmp_path: Path) -> None:
    from tests.adapters.test_discord import start_bot as start_discord_bot
    from tests.fakes.discord_server import FakeDiscord

    async with FakeDiscord() as fake:
        prefixed, bare, elsewhere = fake.add_user("ana"), fake.add_user("ben"), fake.add_user("cy")
        ids = [f"discord:{prefixed.id}", str(bare.id), f"slack:{elsewhere.id}"]
        bot = await start_discord_bot(tmp_path, fake, bot={"moderator_user_ids": ids, "managers_are_moderators": False})
        try:
            started = await bot.command("troupe start", {"name": "Team room"}, user=prefixed)
            assert "Started the world “Team room”" in started.content
            added = await bot.command("troupe persona add", {"source": "Priya Nair"}, user=bare)
            assert "Priya Nair" in added.content and "Only moderators" not in added.content
            for refused_user in (elsewhere, fake.owner_user, fake.guest):
                refusal = await bot.command("troupe pause", user=refused_user)
                assert refusal.ephemeral and "Only moderators" in refusal.content, refused_user.name
            # The role from the settings still makes a moderator.
            paused = await bot.command("troupe pause", user=fake.moderator)
            assert "Only moderators" not in paused.content
        finally:
            await bot.app.stop()


async def test_on_discord_the_guild_owner_manages_channels_and_so_moderates_by_default(tmp_path: Path) -> None:
    from tests.adapters.test_discord import start_bot as start_discord_bot
    from tests.fakes.discord_server import FakeDiscord

    async with FakeDiscord() as fake:
        helper = fake.add_user("helper", bot=True, role_ids=[fake.moderator_role.id])
        bot = await start_discord_bot(tmp_path, fake, bot={"moderator_user_ids": [f"discord:{helper.id}"]})
        try:
            started = await bot.command("troupe start", {"name": "Team room"}, user=fake.owner_user)
            assert "Started the world “Team room”" in started.content
            refusal = await bot.command("troupe pause", user=helper)
            assert refusal.ephemeral and "Only moderators" in refusal.content
        finally:
            await bot.app.stop()
