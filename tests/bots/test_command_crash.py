"""A command that fails in a way nobody foresaw still gets an answer, and counts as not done.

Its handler raising something unexpected (here a storage backend with a bug, raising what no storage
error is) is answered privately with a short explanation, while the traceback goes to the log; the
adapter is told the command failed (a console script exits 1 for it), nothing is half-changed, and
the channel keeps answering. Files a command reads are refused when they are larger than allowed,
whatever the platform.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from adapters.base import CommandInvocation
from adapters.memory import MemoryAdapter
from bots.app import TroupeApp
from bots.storage import PersonaRecord
from bots.storage.sqlite import SQLiteStorage
from simulation.agent import AgentState
from tests.support.testbot import TestBot, demo_settings, start_bot


class CountingAdapter(MemoryAdapter):
    """The in-memory platform, keeping the commands it was told could not be done."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: list[str] = []

    def command_failed(self, invocation: CommandInvocation) -> None:
        self.failed.append(invocation.text)


class BuggyBackend(SQLiteStorage):
    """A storage backend with a bug: saving a persona raises an error that is no ``StorageError``."""

    async def save_persona(self, world_id: str, record: PersonaRecord, state: AgentState) -> None:
        raise RuntimeError("driver bug: cursor already closed (internal detail)")


def personas_in(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [name for (name,) in db.execute("SELECT name FROM personas ORDER BY position")]


@pytest.fixture
async def buggy_bot(tmp_path: Path):
    adapter = CountingAdapter()
    app = TroupeApp(demo_settings(tmp_path), storage=BuggyBackend(tmp_path / "troupe.db"))
    await app.start([adapter])
    bot = TestBot(app, adapter)
    yield bot
    await app.stop()


async def test_an_unexpected_error_is_answered_and_counted_as_failed(buggy_bot: TestBot, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    bot = buggy_bot
    assert adapter_failed(bot) == []
    await bot.command("start Room")
    assert adapter_failed(bot) == []
    with caplog.at_level(logging.ERROR, logger="bots.app"):
        sent = await bot.command("persona add Priya Nair")
    answers = [s for s in sent if s.kind in ("private", "reply", "card")]
    assert len(answers) == 1, sent
    (answer,) = answers
    assert answer.kind == "private"
    assert "could not be done: an unexpected error (RuntimeError) stopped it" in answer.text, answer.text
    assert "`status`" in answer.text
    assert "driver bug" not in answer.text and "Traceback" not in answer.text, "internals stay in the log"
    assert adapter_failed(bot) == ["persona add Priya Nair"]
    # The log keeps the whole story for whoever runs the bot.
    logged = [r for r in caplog.records if r.name == "bots.app" and r.exc_info]
    assert logged and "driver bug" in str(logged[0].exc_info[1])
    # Nothing was half-done, and the channel keeps answering.
    assert "No personas yet" in await bot.reply("persona list")
    assert personas_in(tmp_path / "troupe.db") == []
    assert "World “Room”" in await bot.reply("status")
    assert adapter_failed(bot) == ["persona add Priya Nair"]


async def test_ordinary_refusals_are_still_counted_once(buggy_bot: TestBot) -> None:
    bot = buggy_bot
    await bot.command("start Room")
    await bot.reply("persona add Nobody At All")  # no bundled persona of that name
    assert adapter_failed(bot) == ["persona add Nobody At All"]


def adapter_failed(bot: TestBot) -> list[str]:
    assert isinstance(bot.adapter, CountingAdapter)
    return bot.adapter.failed


# -- files over the limit, on a chat platform ------------------------------------------------------------


async def test_persona_and_schema_files_over_the_limit_are_refused_clearly(tmp_path: Path) -> None:
    adapter = CountingAdapter()
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]), adapter)
    try:
        await bot.command("start Room")
        await bot.command("persona add Priya Nair")
        huge = tmp_path / "huge.agent.json"
        huge.write_text(json.dumps({"type": "TinyPerson", "persona": {"name": "Huge Hal", "notes": "x" * 1_000_000}}))
        answer = await bot.reply(f"persona add {huge}")
        assert answer == f"{huge.resolve()}: is 1.0 MB; a persona file is at most 1 MB. Is it the right file?", answer
        schema = tmp_path / "schema.json"
        schema.write_text(json.dumps({"properties": {"stance": {"type": "string", "description": "x" * 1_000_000}}}))
        answer = await bot.reply(f"extract --schema {schema}")
        assert answer == f"{schema}: is 1.0 MB; a schema file is at most 1 MB. Is it the right file?", answer
        assert adapter.failed == [f"persona add {huge}", f"extract --schema {schema}"]
        assert personas_in(tmp_path / "troupe.db") == ["Priya Nair"]
    finally:
        await bot.app.stop()
