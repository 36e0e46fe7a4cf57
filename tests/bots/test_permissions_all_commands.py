"""Every state-changing command from a non-moderator is refused, and the database does not change."""

from __future__ import annotations

import inspect
import sqlite3
from pathlib import Path

import pytest

from bots.commands import SPECS, parse_command
from bots.registry import HANDLERS, CommandRegistry
from tests.support.testbot import demo_settings, start_bot

#: A well-formed invocation of every command, so a refusal is about permission, not syntax.
EXAMPLES = {
    "start": "start Takeover",
    "stop": "stop confirm",
    "status": "status",
    "persona add": "persona add Henrik Lindqvist",
    "persona list": "persona list",
    "persona remove": "persona remove Priya Nair",
    "persona show": "persona show Priya Nair",
    "personas": "personas",
    "policy": "policy round_robin --exchanges 3",
    "pick": "pick Priya",
    "run": "run 3",
    "pause": "pause",
    "resume": "resume",
    "observe": "observe Priya on",
    "ask": "ask Priya what is the plan?",
    "interview": "interview Priya",
    "reset": "reset confirm",
    "review": "review",
    "approve": "approve 1",
    "edit": "edit 1 nicer words",
    "reject": "reject 1",
    "safety": "safety red-team",
    "export": "export json",
    "usage": "usage",
    "help": "help",
    "focus": 'focus "Would you pay 5 euros?" --rounds 1',
    "probe": "probe and 10 euros?",
    "summary": "summary",
    "poll": 'poll "Ship Friday?" yes no',
    "extract": "extract stance reasons",
    "generate": 'generate 2 "nurses in Lisbon"',
    "enrich": 'enrich "Buy our app" --requirements "add a price"',
    "story": "story inject",
    "validate": 'validate Priya "a pragmatic designer"',
    "fork": "fork discount --from 1",
    "branch": "branch discount and at $199?",
    "compare": 'compare main discount --question "Would you buy it?"',
}

#: Tables whose rows a refused command must leave exactly as they were.
STATE_TABLES = ("worlds", "personas", "events", "outbox", "memories", "usage", "adapter_state")


def snapshot(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}").fetchall())) for t in STATE_TABLES if t in tables}


def test_every_command_has_an_example() -> None:
    assert set(EXAMPLES) == set(SPECS), "add an example for each new command"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_command_has_a_handler_that_takes_what_it_is_given(name: str) -> None:
    command = parse_command(EXAMPLES[name])
    assert command.name == name
    inspect.signature(HANDLERS[name]).bind(None, **command.args)  # a mismatch raises TypeError


def test_a_command_without_a_handler_is_found_at_start() -> None:
    with pytest.raises(ValueError, match=r"commands without a handler: \['status'\]; handlers without a command: none"):
        CommandRegistry(None, {name: handler for name, handler in HANDLERS.items() if name != "status"})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if s.moderator_only))
async def test_non_moderators_change_nothing(tmp_path: Path, name: str) -> None:
    bot = await start_bot(demo_settings(tmp_path))
    try:
        await bot.command("start Team room")
        await bot.command("persona add Priya Nair")
        await bot.say("Morning Priya, how are things?")
        await bot.app.wait_idle()
        before = snapshot(tmp_path / "troupe.db")
        sent = await bot.command(EXAMPLES[name], user="guest", user_is_moderator=False)
        await bot.app.wait_idle()
        assert [s.kind for s in sent] == ["private"], sent
        assert "Only moderators" in sent[0].text
        assert snapshot(tmp_path / "troupe.db") == before
        session = bot.app.sessions.get("memory:general")
        assert session is not None and [a.name for a in session.world.agents] == ["Priya Nair"]
        assert not session.paused
    finally:
        await bot.app.stop()
