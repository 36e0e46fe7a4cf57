"""Persona and scenario files built to read the host's secrets or to exhaust the bot.

A scenario reaches no file outside the readable folders, and a refusal reads the same whether the
file exists or not. A billion-laughs YAML, JSON nested 600 deep, a field nested 300 deep or a
scenario of 300 personas each get a clear refusal, wherever a persona enters, while the bot keeps
answering other channels and keeps everything it had stored.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from simulation.persona import (
    PersonaError,
    PersonaSpec,
    load_persona,
    load_population_description,
    parse_persona_text,
)
from simulation.scenario import ScenarioError, load_scenario
from tests.support.testbot import demo_settings, start_bot

SECRET = {"name": "Creds Carl", "age": 40, "db_password": "hunter2-PROD", "api_key": "sk-live-0123456789abcdef"}

#: The classic "billion laughs": nine levels of nine aliases, under 400 bytes standing for 9^9 strings.
BILLION_LAUGHS = "name: Laughing Larry\nage: 30\n" + "a: &a [" + ",".join(['"lol"'] * 9) + "]\n" + "".join(
    f"{level}: &{level} [" + ",".join([f"*{below}"] * 9) + "]\n" for below, level in zip("abcdefgh", "bcdefghi")
)

#: A persona pasted as JSON with a field 600 lists deep.
DEEP_600 = '{"name": "Deep Dan", "age": 30, "notes": ' + "[" * 600 + "]" * 600 + "}"


def deep_field(levels: int) -> dict:
    value: object = "the bottom"
    for _ in range(levels):
        value = [value]
    return {"name": "Nested Nora", "age": 30, "notes": value}


def personas_in(tmp_path: Path, world: str) -> list[str]:
    with sqlite3.connect(tmp_path / "troupe.db") as db:
        rows = db.execute("SELECT p.name FROM personas p JOIN worlds w ON w.id = p.world_id WHERE w.name = ? "
                          "ORDER BY p.position", (world,)).fetchall()
    return [name for (name,) in rows]


# -- files a scenario names ------------------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """``allowed/`` (bot.file_dirs) and, beside it, ``secret/`` holding credentials."""
    allowed, secret = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    secret.mkdir()
    (secret / "creds.json").write_text(json.dumps(SECRET))
    (secret / "extra.fragment.json").write_text(json.dumps({"type": "Fragment", "persona": {"db_password": "x"}}))
    (allowed / "ana.json").write_text(json.dumps({"name": "Ana Souza", "age": 29}))
    (allowed / "link.json").symlink_to(secret / "creds.json")
    return allowed, secret


@pytest.fixture
async def folder_bot(tmp_path: Path, folders):
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[folders[0]]))
    yield bot
    await bot.app.stop()


@pytest.mark.parametrize("entry", [
    "../secret/creds.json",  # out of the folder by ..
    "{secret}/creds.json",  # by an absolute path
    "link.json",  # by a symlink inside the folder
    "{{file: ana.json, fragments: [../secret/extra.fragment.json]}}",  # a fragment outside
])
async def test_a_scenario_reads_no_file_outside_the_readable_folders(folder_bot, folders, entry: str) -> None:
    allowed, secret = folders
    scenario = allowed / "team.yaml"
    scenario.write_text(f"name: Team\npersonas:\n  - Priya Nair\n  - {entry.format(secret=secret)}\n")
    text = await folder_bot.reply(f"start --scenario {scenario}")
    assert "is not a file Troupe may read here" in text and "bot.file_dirs" in text, text
    assert "hunter2" not in text and "sk-live" not in text and "Creds Carl" not in text
    assert "No world in this channel" in await folder_bot.reply("status")


async def test_a_refused_file_reads_the_same_whether_it_exists_or_not(folder_bot, folders) -> None:
    allowed, _ = folders
    replies = []
    for name in ("creds.json", "nothing-here.json"):
        scenario = allowed / "team.yaml"
        scenario.write_text(f"name: Team\npersonas:\n  - ../secret/{name}\n")
        replies.append((await folder_bot.reply(f"start --scenario {scenario}")).replace(name, "NAME"))
    assert replies[0] == replies[1], replies


async def test_a_scenario_reads_the_files_it_names_inside_the_folders(folder_bot, folders) -> None:
    allowed, _ = folders
    (allowed / "people").mkdir()
    (allowed / "people" / "ben.json").write_text(json.dumps({"name": "Ben Ortiz", "age": 41}))
    scenario = allowed / "team.yaml"
    scenario.write_text("name: Team\npersonas:\n  - ana.json\n  - people/../people/ben.json\n")
    text = await folder_bot.reply(f"start --scenario {scenario}")
    assert "Personas: Ana Souza, Ben Ortiz." in text, text


async def test_only_moderators_see_a_persona_description(folder_bot) -> None:
    await folder_bot.command("start Team")
    assert "Creds Carl joined" in await folder_bot.reply("persona add " + json.dumps(SECRET))
    guest = await folder_bot.reply("persona show Creds Carl", user="guest", user_is_moderator=False)
    assert "Only moderators" in guest and "hunter2" not in guest and "sk-live" not in guest
    assert "hunter2-PROD" in await folder_bot.reply("persona show Creds Carl")  # the moderator's own view
    listed = await folder_bot.reply("persona list", user="guest", user_is_moderator=False)
    assert "Creds Carl, 40" in listed and "hunter2" not in listed


def test_yaml_errors_say_where_but_not_what_the_file_holds(tmp_path: Path) -> None:
    scenario = tmp_path / "notes.yaml"
    scenario.write_text("name: Team\npersonas: [Priya Nair\ndb_password: hunter2-PROD\n")
    with pytest.raises(ScenarioError) as error:
        load_scenario(scenario)
    assert "not valid YAML at line" in str(error.value) and "hunter2" not in str(error.value), str(error.value)


# -- documents built to exhaust the reader -----------------------------------------------------------------


@pytest.fixture
async def two_channels(tmp_path: Path):
    """A bot with a world in #general (Priya Nair, already talking) and one in #hostile."""
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]))
    await bot.command("start General room")
    await bot.command("persona add Priya Nair")
    await bot.say("Morning Priya!")
    await bot.command("start Hostile room", channel="hostile")
    await bot.command("persona add Henrik Lindqvist", channel="hostile")
    yield bot
    await bot.app.stop()


async def hostile_command_while_general_talks(bot, command: str) -> tuple[str, list, float]:
    """Run ``command`` in #hostile while someone talks in #general: (its answer, what was sent, seconds)."""
    started = time.monotonic()
    bot.adapter.push_command(command, channel="hostile")
    bot.adapter.push_message("Priya, what do you think of the plan?", channel="general")
    await bot.app.wait_idle()
    seconds = time.monotonic() - started
    sent = [s for s in bot._new() if s.kind not in ("typing", "stopped_typing")]
    answers = [s.text for s in sent if s.channel == "hostile" and s.kind in ("private", "reply")]
    assert len(answers) == 1, sent
    assert [s.identity for s in sent if s.channel == "general" and s.kind == "post"] == ["Priya Nair"]
    return answers[0], sent, seconds


@pytest.mark.parametrize(("name", "content", "says"), [
    ("laughs.yaml", BILLION_LAUGHS, "uses the YAML alias *a"),
    ("deep.json", DEEP_600, "nested more than 24 levels deep"),
    ("deep.yaml", "name: Deep Dan\nnotes: " + "[" * 600 + "]" * 600 + "\n", "nested more than 24 levels deep"),
    ("field.json", json.dumps(deep_field(300)), "field 'notes' is nested more than 24 levels deep"),
])
async def test_a_hostile_persona_file_is_refused_quickly_and_other_channels_answer(two_channels, tmp_path: Path,
                                                                                   name: str, content: str,
                                                                                   says: str) -> None:
    (tmp_path / name).write_text(content)
    answer, _, seconds = await hostile_command_while_general_talks(two_channels, f"persona add {tmp_path / name}")
    assert says in answer, answer
    assert seconds < 10, f"took {seconds:.1f} s"
    assert personas_in(tmp_path, "Hostile room") == ["Henrik Lindqvist"]
    assert personas_in(tmp_path, "General room") == ["Priya Nair"]


async def test_pasted_json_600_deep_and_a_field_300_deep_are_refused_and_exports_keep_working(two_channels,
                                                                                              tmp_path: Path) -> None:
    bot = two_channels
    answer, _, _ = await hostile_command_while_general_talks(bot, "persona add " + DEEP_600)
    assert "pasted persona: field 'notes' is nested more than 24 levels deep" in answer, answer
    answer, _, _ = await hostile_command_while_general_talks(bot, "persona add " + json.dumps(deep_field(300)))
    assert "pasted persona: field 'notes' is nested more than 24 levels deep" in answer, answer
    assert personas_in(tmp_path, "Hostile room") == ["Henrik Lindqvist"]
    bot.adapter.uploads = True
    shared = [s for s in await bot.command("export json", channel="hostile") if s.kind == "file"]
    assert len(shared) == 1 and json.loads(shared[0].file[1])["name"] == "Hostile room", shared


async def test_a_big_persona_file_is_read_off_the_event_loop(two_channels, tmp_path: Path) -> None:
    """Reading a file near the size limit takes a while; #general answers before it is done."""
    facts = "".join(f"  - fact number {i} about a long and uneventful life in a small town\n" for i in range(13_000))
    big = tmp_path / "big.yaml"
    big.write_text("name: Big Bea\nage: 50\nother_facts:\n" + facts)
    assert big.stat().st_size < 1_000_000
    answer, sent, _ = await hostile_command_while_general_talks(two_channels, f"persona add {big}")
    assert "characters long; keep it under 100,000" in answer, answer
    order = [s.channel for s in sent if (s.channel, s.kind) in {("general", "post"), ("hostile", "private")}]
    assert order == ["general", "hostile"], "#general waited for the file to be read"


async def test_a_billion_laughs_scenario_is_refused(two_channels, tmp_path: Path) -> None:
    scenario = tmp_path / "laughs-scenario.yaml"
    scenario.write_text("name: Laughs\nsituation: &s [lol, lol]\npersonas: [*s, *s]\n")
    text = await two_channels.reply(f"start --scenario {scenario}", channel="elsewhere")
    assert "uses the YAML alias *s at line 3" in text, text


async def test_a_scenario_cannot_bring_more_personas_than_a_world_may_have(two_channels, tmp_path: Path) -> None:
    bot = two_channels
    crowd = tmp_path / "crowd.yaml"
    people = "".join(f"  - {{name: Person {i}, age: 30}}\n" for i in range(300))
    crowd.write_text("name: Crowd\nopening: Hello everyone!\npersonas:\n" + people)
    text = await bot.reply(f"start --scenario {crowd}", channel="crowd")
    assert "lists 300 personas, but a world here has at most 12 (bot.max_personas)" in text, text
    assert "No world in this channel" in await bot.reply("status", channel="crowd")
    assert not [s for s in bot.adapter.sent if s.channel == "crowd" and s.kind == "post"]


async def test_a_stored_persona_past_the_limits_keeps_its_world_out_and_its_rows_as_they_were(tmp_path: Path,
                                                                                              caplog) -> None:
    """Worlds stored by a version that admitted a field 300 deep: a restart says why one cannot come
    back and restores the other channels; reopening a stopped one says why and leaves it stopped;
    no stored row changes."""
    bot = await start_bot(demo_settings(tmp_path))
    for channel, persona in (("general", "Priya Nair"), ("old", "Henrik Lindqvist"), ("archive", "Amara Okafor")):
        await bot.command(f"start {channel.title()} room", channel=channel)
        await bot.command(f"persona add {persona}", channel=channel)
    await bot.command("stop confirm", channel="archive")
    await bot.app.stop()
    with sqlite3.connect(tmp_path / "troupe.db") as db:
        for name in ("Henrik Lindqvist", "Amara Okafor"):
            db.execute("UPDATE personas SET spec = ? WHERE name = ?", (json.dumps({**deep_field(300), "name": name}), name))
        before = [db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in ("worlds", "personas")]
    with caplog.at_level(logging.ERROR):
        bot = await start_bot(demo_settings(tmp_path))
    try:
        assert "could not restore the world of memory:old" in caplog.text
        assert "field 'notes' is nested more than 24 levels deep" in caplog.text
        assert bot.app.sessions.get("memory:general") is not None
        for _ in range(2):
            reopen = await bot.reply("start --reopen", channel="archive")
            assert "field 'notes' is nested more than 24 levels deep" in reopen, reopen
        assert "No world in this channel" in await bot.reply("status", channel="archive")
        with sqlite3.connect(tmp_path / "troupe.db") as db:
            after = [db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in ("worlds", "personas")]
        assert after == before
    finally:
        await bot.app.stop()


# -- every way a persona enters ---------------------------------------------------------------------------


def shared_laughs() -> dict:
    """The billion laughs as a Python object whose parts are shared, as a model's or a library's data can be."""
    level: object = ["lol"] * 9
    for _ in range(8):
        level = [level] * 9
    return {"name": "Laughing Larry", "age": 30, "notes": level}


def containing_itself() -> dict:
    notes: list = ["a note"]
    notes.append(notes)
    return {"name": "Loopy Lou", "notes": notes}


@pytest.mark.parametrize(("enter", "says"), [
    (lambda tmp: load_persona(write(tmp, "p.yaml", BILLION_LAUGHS)), "alias"),
    (lambda tmp: parse_persona_text(BILLION_LAUGHS, "pasted"), "alias"),
    (lambda tmp: parse_persona_text(DEEP_600, "pasted"), "nested more than 24 levels deep"),
    (lambda tmp: load_population_description(write(tmp, "pop.yaml", BILLION_LAUGHS.replace("name:", "title:")
                                                   + "description: x\ncontent: *i\n")), "alias"),
    (lambda tmp: load_persona(write(tmp, "p.json", json.dumps(SECRET))).apply_fragment(
        write(tmp, "f.json", '{"type": "Fragment", "persona": {"notes": ' + "[" * 600 + "]" * 600 + "}}")),
     "nested more than 24 levels deep"),
    (lambda tmp: PersonaSpec.from_data(shared_laughs(), "persona factory"), "more than 100,000 characters"),
    (lambda tmp: PersonaSpec.from_data(deep_field(300), "saved world"), "field 'notes' is nested more than 24"),
    (lambda tmp: PersonaSpec.from_data(containing_itself(), "library"), "field 'notes' is nested more than 24"),
    (lambda tmp: load_scenario(write(tmp, "s.yaml", "name: S\npersonas:\n  - " + "[" * 600 + "]" * 600 + "\n")),
     "nested more than 24 levels deep"),
], ids=["file", "pasted-yaml", "pasted-json", "population", "fragment", "factory", "storage", "cycle", "scenario"])
def test_every_way_in_refuses_documents_past_the_limits_quickly(tmp_path: Path, enter, says: str) -> None:
    started = time.monotonic()
    with pytest.raises((PersonaError, ScenarioError)) as error:
        enter(tmp_path)
    assert says in str(error.value), str(error.value)
    assert time.monotonic() - started < 5


def test_numbers_longer_than_python_reads_are_a_clear_error() -> None:
    for text in ('{"name": "Big Num", "age": ' + "9" * 5000 + "}", "name: Big Num\nage: " + "9" * 5000 + "\n"):
        with pytest.raises(PersonaError, match="holds a number too long to read .* Write it in quotes"):
            parse_persona_text(text, "pasted")


def write(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text)
    return folder / name


def test_a_persona_entry_applies_at_most_20_fragments(tmp_path: Path) -> None:
    """Each fragment is a file read and a merge of the whole persona: a list of thousands is refused."""
    write(tmp_path, "f.json", '{"type": "Fragment", "persona": {"hobbies": ["chess"]}}')
    write(tmp_path, "s.yaml", "name: S\npersonas:\n  - bundled: Priya Nair\n    fragments: [" + ", ".join(["f.json"] * 5000) + "]\n")
    with pytest.raises(ScenarioError, match="personas.0.fragments: List should have at most 20 items"):
        load_scenario(tmp_path / "s.yaml")


# -- a file's words in the bot's answer ----------------------------------------------------------------

#: Words a shared persona file may hold where a field name or value belongs: a link dressed as text, a
#: role mention, and a line break before a line that reads like the bot's.
POSING = "<@&42> [the checklist](https://evil.example/x)\n09:01 Troupe: all clear"


@pytest.mark.parametrize(("fields", "says"), [
    ({"name": "Ann Lee", "age": 30, "preferences": {POSING: "I will harass and bully the moderators"}},
     "Ann Lee cannot join: the persona is written to do harm"),
    ({"name": "Ann Lee", "age": POSING}, "field 'age' must be a number of years, got"),
    ({"type": POSING, "persona": {"name": "Ann Lee"}}, "but a persona file has type 'TinyPerson'"),
], ids=["field-name", "value", "type"])
async def test_a_refusal_quotes_a_files_words_without_their_links_mentions_or_lines(tmp_path: Path, fields, says) -> None:
    (tmp_path / "ann.json").write_text(json.dumps(fields))
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]))
    try:
        await bot.command("start Shared files")
        sent = await bot.command(f"persona add {tmp_path / 'ann.json'}")
        (reply,) = sent
        assert reply.kind == "private" and says in reply.text, reply.text
        assert "\n09:01 Troupe" not in reply.text, "no line of the file's stands as a line of the bot's"
        assert "](https://" not in reply.text and "<@&42>" not in reply.text, reply.text
        assert "the checklist" in reply.text, "the words are still shown, as written"
        assert "ann.json" in reply.text or "Ann Lee" in reply.text
    finally:
        await bot.app.stop()
