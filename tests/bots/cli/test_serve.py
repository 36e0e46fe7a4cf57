"""``troupe serve``: every configured platform in one process, and a graceful stop on SIGTERM.

The end-to-end case runs ``troupe serve --console`` as a child process against the fake model, the
fake Discord and the fake Slack, sends SIGTERM while personas are still answering, and checks that it
exits 0 in time with nothing in the outbox that a restart would post a second time.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import pytest

from bots.cli import NOTHING_TO_SERVE, main
from tests.bench.soak_support import (
    HUMAN_TOKEN,
    SLACK_PERSON,
    BotProcess,
    Channel,
    SoakResponder,
    SqliteDatabase,
    bind,
    bot_command,
    discord_persona_posts,
    persona_of,
    serve_env,
    slack_persona_posts,
    user_text,
)
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.slack_server import FakeSlack
from tests.support.waiting import until

PERSONAS = ("Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist")


def test_serve_with_nothing_configured_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("TROUPE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TROUPE_DATA_DIR", str(tmp_path))
    assert main(["serve"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert " ".join(NOTHING_TO_SERVE.split()) in out
    assert not (tmp_path / "troupe.db").exists()


def test_serve_console_alone_answers_standard_input_and_ends_with_it(tmp_path: Path) -> None:
    """Only ``--console``: lines from a pipe are commands and messages; end of input ends the run (exit 0)."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_")}
    env.update(TROUPE_DATA_DIR=str(tmp_path / "data"), TROUPE_LLM_PROVIDER="demo", PYTHONIOENCODING="utf-8")
    lines = "/start Porch\n/persona add Priya Nair\nMorning, how was the weekend?\n"
    done = subprocess.run(bot_command(), input=lines, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "in the console channel (standard input)" in done.stdout
    assert "Started the world “Porch”" in done.stdout
    assert "Priya Nair (demo model): " in done.stdout


class _Paced(SoakResponder):
    """Persona turns that take a while (Henrik's longest); ``stuck`` personas' turns never end in the test."""

    DELAYS = {"Priya Nair": 0.1, "Tomasz Kowalski": 0.3, "Henrik Lindqvist": 0.8}

    def __init__(self) -> None:
        super().__init__()
        self.stuck: set[str] = set()
        #: (persona, newest human token it saw) of every turn asked for.
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, body: dict) -> str:  # type: ignore[override]
        name = persona_of(body) or ""
        tokens = HUMAN_TOKEN.findall(user_text(body))
        if name and tokens:
            channel, seq = max((int(c), int(q)) for c, q in tokens)
            self.asked.append((name, f"x{seq}"))
        if name in self.stuck:
            await asyncio.sleep(60)
        await asyncio.sleep(self.DELAYS.get(name, 0.0))
        return super().__call__(body)

    def asked_for(self, seq: int, name: str | None = None) -> int:
        return sum(1 for who, token in self.asked if token == f"x{seq}" and name in (None, who))


async def test_sigterm_mid_conversation_stops_in_time_and_nothing_is_posted_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    responder = _Paced()
    async with FakeOpenAIServer() as model, FakeDiscord() as discord, FakeSlack() as slack:
        model.responder = responder
        slack.add_user("U0MOD", "mona")
        slack.add_user(SLACK_PERSON, "hana")
        slack.add_channel("C0TEAM", "team")
        rooms = [Channel(0, "console", "main"), Channel(1, "discord", discord.channel_id("general")),
                 Channel(2, "slack", "C0TEAM")]
        env = serve_env(data, model.base_url, discord, slack, llm_timeout_s=30)
        bot = BotProcess(bot_command(), env, tmp_path, tmp_path / "bot.log", PERSONAS)
        db = SqliteDatabase(data / "troupe.db")

        async def say(seq: int) -> None:
            await bot.write_line(f"q0x{seq} what should we ship first?")
            await discord.user_says(rooms[1].native, f"q1x{seq} what should we ship first?")
            await slack.send_message("C0TEAM", SLACK_PERSON, f"q2x{seq} what should we ship first?")

        def answers(seq: int) -> list[tuple[str, str]]:
            return [(key, text) for key, text in _shown(discord, slack, bot, rooms) if re.search(rf"\bq\dx{seq},", text)]

        try:
            await bot.start()
            assert await bot.wait_ready(30), _tail(tmp_path / "bot.log")
            started = "\n".join(bot.lines)
            assert "on Discord as" in started and "on Slack (Socket Mode)" in started
            assert "in the console channel (standard input)" in started
            await bind(rooms, PERSONAS, db=db, discord=discord, slack=slack, bot=bot, timeout=30)

            # A first round lets the model layer learn the server's structured-output mode (its very
            # first call goes alone), so the next round's turns are all in flight at once.
            await say(0)
            await until(lambda: len(answers(0)) == 9, 30, "the first round's answers")

            # SIGTERM while every channel's personas are still thinking: their answers are posted before
            # the process exits.
            await say(1)
            await until(lambda: responder.asked_for(1) >= 9, 20, "the personas to be asked")
            assert not answers(1), "the conversation was over before SIGTERM"
            code, took = await bot.terminate(15)
            assert code == 0, _tail(tmp_path / "bot.log")
            assert took < 10
            assert any("SIGTERM: stopping" in line for line in bot.lines)
            assert len(answers(1)) == 9, f"in-flight turns were not drained before the exit: {answers(1)}"
            await _check_outbox(db, discord, slack, bot, rooms)

            # A turn that hangs (a model call that never ends): the others' answers do not wait for it;
            # SIGTERM cuts it short after --stop-timeout, exit code 0, and nothing is stored that the
            # next start would post a second time.
            bot.command = [*bot_command(), "--stop-timeout", "1.5"]
            await bot.start()
            assert await bot.wait_ready(30), _tail(tmp_path / "bot.log")
            await _quiet(responder, 0.6)  # a world whose personas have unread posts takes a step at start
            responder.stuck = {"Henrik Lindqvist"}
            await say(2)
            await until(lambda: responder.asked_for(2, "Henrik Lindqvist") >= 3 and responder.asked_for(2) >= 9, 20,
                         "the personas to be asked again")
            code, took = await bot.terminate(15)
            assert code == 0, _tail(tmp_path / "bot.log")
            assert took < 6
            late = answers(2)
            assert late and not any("Henrik" in text for _, text in late), late
            assert len(late) == len(set(late)), late
            await _check_outbox(db, discord, slack, bot, rooms)
        finally:
            bot.kill_now()
            await bot.kill()


async def _check_outbox(db: SqliteDatabase, discord: FakeDiscord, slack: FakeSlack, bot: BotProcess,
                        rooms: list[Channel]) -> None:
    """Every entry marked posted is shown exactly once; every pending one is not shown yet (the next
    start posts it once); no post is shown that the outbox does not know."""
    rows = await db.outbox_rows()
    assert rows and {r.status for r in rows} <= {"posted", "pending"}
    shown = _shown(discord, slack, bot, rooms)
    for row in rows:
        if row.status == "posted":
            assert shown.count((row.channel_key, row.text)) == 1, row
        else:
            assert (row.channel_key, row.text) not in shown, row
    assert set(shown) <= {(r.channel_key, r.text) for r in rows}


def _shown(discord: FakeDiscord, slack: FakeSlack, bot: BotProcess, rooms: list[Channel]) -> list[tuple[str, str]]:
    """(channel key, text) of every persona post the platforms show, repeats included."""
    shown = [(rooms[1].key, m.content) for m in discord_persona_posts(discord, rooms[1].native)]
    shown += [(rooms[2].key, p["text"]) for p in slack_persona_posts(slack, rooms[2].native)]
    shown += [(rooms[0].key, p.text) for p in bot.console_posts]
    return shown



async def _quiet(responder: _Paced, seconds: float, timeout: float = 15) -> None:
    """Until the model has been asked nothing for ``seconds``."""
    deadline = time.monotonic() + timeout
    seen, since = len(responder.asked), time.monotonic()
    while time.monotonic() - since < seconds and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if len(responder.asked) != seen:
            seen, since = len(responder.asked), time.monotonic()


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return f"(no log at {path})"


if sys.platform == "win32":  # pragma: no cover - SIGTERM and SIGKILL are POSIX
    pytestmark = pytest.mark.skip("needs POSIX signals")
