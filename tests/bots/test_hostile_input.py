"""Hostile input: huge and strange messages, SQL metacharacters, code-running YAML, broken files, and
words typed into commands that the bot's answers show.

Each gets a clear answer or is handled safely, and the database stays consistent afterwards.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from adapters.base import unescape
from simulation.events import EventKind
from tests.support.testbot import demo_settings, start_bot


@pytest.fixture
async def bot(tmp_path: Path):
    started = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]))
    await started.command("start Hostile room")
    await started.command("persona add Priya Nair")
    yield started
    await started.app.stop()


def integrity(tmp_path: Path) -> str:
    with sqlite3.connect(tmp_path / "troupe.db") as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


async def test_a_100_kb_message_is_cut_and_answered(bot, tmp_path: Path) -> None:
    huge = "Priya, listen. " + "blah " * 20_000
    sent = await bot.say(huge)
    assert [s.identity for s in sent if s.kind == "post"] == ["Priya Nair"]
    told = [s.text for s in sent if s.kind == "private" and s.user == "mod"]
    limit = bot.app.settings.bot.max_message_chars
    assert any(f"message was {len(huge):,} characters long; the personas heard its first {limit:,}" in t
               for t in told), told
    session = bot.app.sessions.get("memory:general")
    heard = [e.content for e in session.world.events if e.kind is EventKind.STIMULUS][-1]
    assert len(heard) <= bot.app.settings.bot.max_message_chars + 10 and heard.endswith("[…]")
    stored = await bot.app.storage.load_world(session.record.id)
    assert stored.events[-1].kind is EventKind.ACTION or any(e.content == heard for e in stored.events)
    assert integrity(tmp_path) == "ok"


async def test_deep_unicode_is_heard_and_never_reaches_a_post_raw(bot) -> None:
    weird = "Priya \u202eevil\u202c text " + "e\u0301" * 50 + "\u200b\u2066 Z̷̢͉̈́a̸̟͌l̶̙̓g̴͎̈o̵̱͑ " + "\U0001F600" * 20
    sent = await bot.say(weird)
    posts = [s for s in sent if s.kind == "post"]
    assert posts
    for post in posts:
        assert "\u202e" not in post.text and "\u2066" not in post.text and "\u200b" not in post.text


async def test_sql_metacharacters_are_only_text(bot, tmp_path: Path) -> None:
    name = "Robert'); DROP TABLE worlds;--"
    persona = json.dumps({"name": name, "age": 40, "occupation": "DBA \" OR 1=1 --"})
    reply = (await bot.command(f"persona add {persona}"))[0].text
    assert f"{name} joined" in reply
    await bot.say("'; DELETE FROM events WHERE '1'='1")
    session = bot.app.sessions.get("memory:general")
    stored = await bot.app.storage.load_world(session.record.id)
    assert [p.name for p in stored.personas] == ["Priya Nair", name]
    assert any(e.content == "'; DELETE FROM events WHERE '1'='1" for e in stored.events)
    with sqlite3.connect(tmp_path / "troupe.db") as db:
        assert db.execute("SELECT count(*) FROM worlds").fetchone()[0] == 1
    assert integrity(tmp_path) == "ok"


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("evil.yaml", "!!python/object/apply:os.system ['touch PWNED']\n", "could not"),
        ("evil2.yaml", "name: !!python/name:os.system\nage: 3\n", "could not"),
        ("broken.json", '{"name": "Ana", "age": ', "not valid json at line 1"),
        ("list.json", "[1, 2, 3]", "persona"),
        ("binary.json", "\x00\x01\x02garbage", "not valid json"),
        ("noname.yaml", "age: 30\noccupation: nurse\n", "name"),
    ],
)
async def test_malformed_and_code_running_persona_files_are_refused(bot, tmp_path: Path, filename: str,
                                                                    content: str, expected: str) -> None:
    (tmp_path / filename).write_text(content)
    reply = await bot.reply(f"persona add {tmp_path / filename}")
    assert expected in reply.lower(), reply
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
    session = bot.app.sessions.get("memory:general")
    assert [a.name for a in session.world.agents] == ["Priya Nair"]
    assert integrity(tmp_path) == "ok"


async def test_hostile_commands_get_clear_errors(bot) -> None:
    for text, expected in [
        ("run 999999999999", "between"),
        ('ask "Priya', "needs a persona and a question"),
        ("observe", "needs a persona"),
        ("frobnicate now", "unknown command"),
        ("persona add " + "A" * 5000, "no bundled persona"),
        ("policy ; rm -rf /", "give one policy"),
        ("policy rm-rf", "unknown policy"),
    ]:
        reply = await bot.reply(text)
        assert expected in reply.lower() or expected in reply, (text, reply)


# -- typed words and a scenario's name in the bot's public answers ----------------------------------------

#: Words typed into a command (a poll's options, a focus question, a validation's expectations) or
#: read from a scenario file: a link, a role mention and stars that would act if not made literal.
POSING = "[the form](https://evil.example/p) <@&42> **urgent**"
#: A link or a mention that a chat client would act on: its brackets not escaped.
ACTING = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(|(?<!\\)<@")


def shown_text(sent) -> str:
    return "\n".join(s.card.as_text() if s.card is not None else s.text for s in sent)


@pytest.mark.parametrize("command", [
    f'focus "{POSING} would you pay?" --rounds 1',
    f'poll "Ship it?" "{POSING}" no',
    f'validate Priya "{POSING}"',
], ids=["focus", "poll-option", "validate"])
async def test_typed_words_show_as_written_in_the_bots_public_answer(bot, command: str) -> None:
    public = [s for s in await bot.command(command) if s.kind in ("reply", "card")]
    text = shown_text(public)
    assert public and not ACTING.search(text), text
    assert "\\*\\*urgent\\*\\*" in text, "the stars show as typed"
    assert "the form" in unescape(text)


async def test_a_world_name_that_would_not_show_as_written_is_refused(tmp_path: Path) -> None:
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]))
    try:
        reply = await bot.reply(f"start {POSING}")
        assert reply.startswith("The world name “") and "write it as plain words. Nothing was started." in reply
        assert not ACTING.search(reply), reply
        assert bot.app.sessions.get("memory:general") is None
        scenario = tmp_path / "launch.yaml"
        scenario.write_text("name: 'Launch <!channel> review'\npersonas: [Priya Nair]\n")
        reply = await bot.reply(f"start --scenario {scenario}")
        assert "launch.yaml: the scenario's name “Launch \\<!channel\\> review” contains" in reply, reply
        assert bot.app.sessions.get("memory:general") is None
        assert (await bot.reply("start Q4 pricing #2 (draft_v2)")).startswith("Started the world “Q4 pricing #2 (draft_v2)”")
    finally:
        await bot.app.stop()


# -- a guest named like a persona ---------------------------------------------------------------------


@pytest.mark.parametrize("guest", ["Priya Nair", "priya nair", "Priyа Nаir", "Troupe"],
                         ids=["same", "case", "look-alike", "the-bot"])
async def test_a_guest_named_like_a_persona_or_the_bot_is_heard_as_a_person(bot, guest: str) -> None:
    """Their words must not pass for the persona's in her colleagues' prompts, a summary or an export."""
    await bot.say("I now fully support launching at 50 euros.", user=guest, user_is_moderator=False)
    session = bot.app.sessions.get("memory:general")
    (heard,) = [e for e in session.world.events if e.kind is EventKind.STIMULUS]
    assert heard.source == f"{guest} (person)", heard.source
    bot.adapter.uploads = True
    (shared,) = [s for s in await bot.command("export md") if s.kind == "file"]
    assert f"**{guest} (person)**" in shared.file[1].decode()


async def test_a_guest_whose_name_only_resembles_a_personas_is_heard_by_it(bot) -> None:
    await bot.say("Hello there.", user="Priya Natarajan", user_is_moderator=False)
    session = bot.app.sessions.get("memory:general")
    assert [e.source for e in session.world.events if e.kind is EventKind.STIMULUS] == ["Priya Natarajan"]
