"""Pieces of the soak benchmark: the fake model on its own thread, the persona responder, the bot as a
child process, and the reading of the bot's database.

The soak itself (``tests/bench/soak.py``) drives these; they hold no policy of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.openai_server import FakeOpenAIServer, default_content
from tests.support.turns import kind_of, persona_of, user_text

#: A human message carries ``q<channel>x<sequence>``; a persona answer names the one it answers.
HUMAN_TOKEN = re.compile(r"\bq(\d+)x(\d+)\b")
#: A persona answer carries ``r<base36 counter>``: unique across the run, so a duplicate is visible.
REPLY_TOKEN = re.compile(r"\(r([0-9a-z]+)\)")
#: The start-up line ``troupe serve`` prints once it listens.
READY_MARK = "Ctrl-C stops"


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


# -- the fake model -----------------------------------------------------------------------------


class SoakResponder:
    """Plays agent turns (and memory consolidation, speaker picks) with answers that can be traced.

    Each TALK names the newest human message the persona saw (``q3x17``) and carries a counter unique
    to the run (``(r1f)``): the fakes can then tell which message a post answers, and any post that
    appears twice is a duplicate, not a coincidence.
    """

    def __init__(self) -> None:
        self.turns = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        kind = kind_of(body)
        if kind == "consolidate":
            episodes = user_text(body).split("Episodes:\n", 1)[-1].splitlines()
            return json.dumps({"summary": f"I remember {len(episodes)} earlier moments.",
                               "facts": [f"fact {len(episodes)}"]})
        if kind == "pick_speaker":
            listed = user_text(body).split("Candidates: ", 1)[-1].splitlines()[0].split(", ")
            return json.dumps({"next_speaker": listed[-1], "reason": "soak"})
        if kind == "other":
            return default_content(body)
        name = persona_of(body) or "Someone"
        tokens = [(int(c), int(s)) for c, s in HUMAN_TOKEN.findall(user_text(body))]
        about = f"q{max(tokens)[0]}x{max(tokens)[1]}" if tokens else "nothing yet"
        with self._lock:
            self.turns += 1
            serial = base36(self.turns)
        first = name.split()[0]
        actions = [
            {"type": "THINK", "content": f"{first} weighs {about}", "target": None},
            {"type": "TALK", "content": f"On {about}, {first} says: noted, will follow up (r{serial})", "target": None},
            {"type": "DONE", "content": "", "target": None},
        ]
        return json.dumps({"actions": actions,
                           "cognitive_state": {"goals": "answer", "attention": about, "emotions": "calm"}})


class ThreadedModel:
    """A ``FakeOpenAIServer`` on a thread of its own (its own event loop), so its work (token counting,
    JSON) does not delay the platform fakes or the clock that times the posts."""

    def __init__(self, *, flush_every_s: float = 1.0) -> None:
        self.responder = SoakResponder()
        self.server: FakeOpenAIServer | None = None
        self.port = 0
        #: Requests answered so far (the server's own list is emptied every second to save memory).
        self.calls = 0
        self._flush_every_s = flush_every_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> ThreadedModel:
        self._thread = threading.Thread(target=self._run, name="fake-model", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the fake model did not start: {self._error}")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # noqa: BLE001 - reported to the starting thread
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with FakeOpenAIServer() as server:
            server.responder = self.responder
            self.server = server
            self.port = server.port
            self._ready.set()
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._flush_every_s)
                self._flush()
            self._flush()

    def _flush(self) -> None:
        assert self.server is not None
        self.calls += len(self.server.requests)
        self.server.requests.clear()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def call(self, function: Callable[[], Any]) -> None:
        """Run ``function`` on the model's loop (set chaos, say)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(function)

    def chaos(self, rate: float, **options: Any) -> None:
        assert self.server is not None
        server = self.server
        self.call(lambda: server.chaos(rate, **options))

    def faults(self) -> dict[str, int]:
        return dict(self.server.faults_injected) if self.server is not None else {}

    def total_calls(self) -> int:
        """Requests so far, the ones not yet flushed included."""
        pending = len(self.server.requests) if self.server is not None else 0
        return self.calls + pending

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(15)


# -- the bot as a child process ------------------------------------------------------------------

_CONSOLE_POST = re.compile(r"^\d\d:\d\d (?P<name>.+?)(?: \((?P<tag>[^)]*)\))?: (?P<text>.*)$")


@dataclass
class ConsolePost:
    persona: str
    text: str
    at: float
    #: Which run of the bot printed it (1 = first start).
    run: int


@dataclass
class BotProcess:
    """``troupe serve --console`` as a child process: started, killed (-9), restarted, stopped.

    Standard input is the console channel's keyboard; standard output is read line by line, console
    persona posts are noted with their arrival time; standard error (the logs) goes to a file.
    """

    command: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    personas: tuple[str, ...]
    process: asyncio.subprocess.Process | None = None
    runs: int = 0
    console_posts: list[ConsolePost] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task | None = None
    _log: Any = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.runs += 1
        self.ready = asyncio.Event()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._log.write(f"\n==== run {self.runs} at {time.time():.3f}\n".encode())
        self._log.flush()
        self.process = await asyncio.create_subprocess_exec(
            *self.command, cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=self._log, start_new_session=True, limit=1 << 20)
        self._reader = asyncio.ensure_future(self._read(self.process, self.runs))

    async def wait_ready(self, timeout: float) -> bool:
        """True once the start-up line is printed; False if the process ended first or time ran out."""
        assert self.process is not None
        ready = asyncio.ensure_future(self.ready.wait())
        ended = asyncio.ensure_future(self.process.wait())
        try:
            done, _ = await asyncio.wait({ready, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            ended.cancel()
        return ready in done and self.ready.is_set()

    async def _read(self, process: asyncio.subprocess.Process, run: int) -> None:
        assert process.stdout is not None
        names = set(self.personas)
        while True:
            try:
                raw = await process.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue
            if not raw:
                return
            now = time.time()
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.lines.append(line)
            if READY_MARK in line:
                self.ready.set()
            match = _CONSOLE_POST.match(line)
            if match and match.group("name") in names:
                self.console_posts.append(ConsolePost(match.group("name"), match.group("text"), now, run))

    async def write_line(self, text: str) -> bool:
        """Type a line into the console channel; False if the bot is not there to read it."""
        if not self.alive or self.process is None or self.process.stdin is None:
            return False
        try:
            self.process.stdin.write(text.encode() + b"\n")
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            return False
        return True

    async def kill(self) -> None:
        """``kill -9``: no chance to finish anything."""
        if self.alive and self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        await self._reap()

    async def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM and wait: (exit code, seconds it took); killed with -9 if it takes longer than ``timeout``."""
        if not self.alive or self.process is None:
            return (self.process.returncode if self.process else None), 0.0
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            code = None
        took = time.monotonic() - started
        await self._reap()
        return code, took

    async def _reap(self) -> None:
        if self.process is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process.wait(), 10)
            if self.process.stdin is not None:
                with contextlib.suppress(Exception):
                    self.process.stdin.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
            self._reader = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill_now(self) -> None:
        """Synchronous last resort (interpreter exit, Ctrl-C): SIGKILL the child if it still runs."""
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError, OSError):
                os.kill(process.pid, signal.SIGKILL)


def bot_command() -> list[str]:
    """``troupe serve --console``, with the interpreter running this benchmark."""
    return [sys.executable, "-m", "bots.cli", "serve", "--console"]


# -- channels on the fakes, and the bot's environment --------------------------------------------

#: Who moderates on the fake Slack, and who writes there.
SLACK_MODERATOR = "U0MOD"
SLACK_PERSON = "U0HANA"


@dataclass
class Channel:
    """A channel the bot serves: on the fake Discord, the fake Slack, or the console (only ``main``)."""

    index: int
    platform: str
    #: Discord channel id, Slack channel id, or ``main`` for the console.
    native: Any

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.native}"


def serve_env(data_dir: Path, model_url: str, discord: Any, slack: Any, *, llm_timeout_s: float = 2.0,
              extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of ``troupe serve`` pointed at the fakes: every base URL and token, a temporary data
    folder, the fake model (never the demo one) with a short timeout and small retry delays. Without
    ``discord`` (None) the bot is not told about Discord at all."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_")}
    env.update({
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONPATH": os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p),
        "NO_COLOR": "1",
        "TROUPE_DATA_DIR": str(data_dir),
        "TROUPE_LOG_LEVEL": "INFO",
        "TROUPE_LLM_PROVIDER": "openai",
        "TROUPE_LLM_MODEL": "gpt-4o-mini",
        "TROUPE_LLM_BASE_URL": model_url,
        "TROUPE_LLM_API_KEY": "sk-soak-not-a-real-key-000000",
        "TROUPE_LLM_TIMEOUT_S": str(llm_timeout_s),
        "TROUPE_LLM_MAX_RETRIES": "8",
        "TROUPE_LLM_RETRY_BASE_DELAY_S": "0.05",
        "TROUPE_LLM_RETRY_MAX_DELAY_S": "0.5",
        "TROUPE_LLM_CACHE": "false",
        "TROUPE_LLM_CONCURRENCY": "64",
        "TROUPE_BOT_DEFAULT_EXCHANGES": "0",
        # One fake person writes in every channel twice a second, for a whole team.
        "TROUPE_BOT_RATE_LIMITS": json.dumps({"messages": None}),
        "TROUPE_BOT_MODERATOR_USER_IDS": json.dumps([SLACK_MODERATOR]),
        "TROUPE_SLACK_BOT_TOKEN": slack.bot_token,
        "TROUPE_SLACK_APP_TOKEN": slack.app_token,
        "TROUPE_SLACK_API_BASE": slack.api_base,
        "TROUPE_SLACK_POST_INTERVAL_S": "0.02",
        "TROUPE_SLACK_PING_INTERVAL_S": "1",
    })
    if discord is not None:
        env.update({
            "TROUPE_BOT_MODERATOR_ROLES": json.dumps([str(discord.moderator_role.id)]),
            "TROUPE_DISCORD_TOKEN": discord.token,
            "TROUPE_DISCORD_API_BASE": discord.api_base,
            "TROUPE_DISCORD_GATEWAY_URL": discord.gateway_url,
            "TROUPE_DISCORD_GUILD_IDS": json.dumps([discord.guild_id]),
        })
    env.update(extra or {})
    return env


async def run_command(room: Channel, line: str, *, discord: Any, slack: Any, bot: BotProcess) -> None:
    """A moderator's command in ``room``: a slash command on Discord or Slack, a ``/`` line on the console.

    Only ``start NAME`` and ``persona add NAME`` are mapped to Discord's typed slash commands.
    """
    if room.platform == "console":
        await bot.write_line("/" + line)
    elif room.platform == "slack":
        await slack.send_slash_command(line, user_id=SLACK_MODERATOR, channel_id=room.native)
    elif line.startswith("start "):
        await discord.run_slash_command("troupe start", {"name": line.removeprefix("start ")},
                                        user=discord.moderator, channel_id=room.native)
    elif line.startswith("persona add "):
        await discord.run_slash_command("troupe persona add", {"source": line.removeprefix("persona add ")},
                                        user=discord.moderator, channel_id=room.native)
    else:
        raise ValueError(f"no Discord slash command mapped for {line!r}")


async def wait_bound(db: BotDatabase, want: dict[str, int], timeout: float) -> None:
    """Until every channel key in ``want`` has a world with at least that many personas."""
    deadline = time.monotonic() + timeout
    while True:
        bound = await db.bound_channels()
        if all(bound.get(key, -1) >= count for key, count in want.items()):
            return
        if time.monotonic() > deadline:
            missing = {k: (bound.get(k), n) for k, n in want.items() if bound.get(k, -1) < n}
            raise TimeoutError(f"channels not bound in time (have, want): {missing}")
        await asyncio.sleep(0.2)


async def bind(rooms: list[Channel], personas: tuple[str, ...], *, db: BotDatabase, discord: Any, slack: Any,
               bot: BotProcess, timeout: float = 60) -> None:
    """``start`` in every channel, then its personas; waits until the database shows them all."""
    for room in rooms:
        await run_command(room, f"start Room {room.index}", discord=discord, slack=slack, bot=bot)
    await wait_bound(db, {room.key: 0 for room in rooms}, timeout)
    for room in rooms:
        for name in personas:
            await run_command(room, f"persona add {name}", discord=discord, slack=slack, bot=bot)
    await wait_bound(db, {room.key: len(personas) for room in rooms}, timeout)


def discord_persona_posts(discord: Any, channel_id: int) -> list[Any]:
    """Persona posts (webhook messages, not interaction answers) in a fake Discord channel."""
    return [m for m in discord.channel_messages(channel_id) if m.webhook_id is not None and m.interaction_id is None]


def slack_persona_posts(slack: Any, channel_id: str) -> list[dict[str, Any]]:
    """Persona posts (custom username) in a fake Slack channel, as recorded by ``chat.postMessage``."""
    return [p for p in slack.posts if p["channel"] == channel_id and p.get("username")]


# -- the bot's database ---------------------------------------------------------------------------


@dataclass
class OutboxRow:
    id: int
    channel_key: str
    persona: str
    text: str
    status: str
    platform_message_id: str | None
    attempts: int
    error: str | None


OUTBOX_ROWS = ("SELECT id, channel_key, persona, text, status, platform_message_id, attempts, error "
               "FROM outbox ORDER BY id")
STIMULI = ("SELECT w.channel_key, e.content FROM events e JOIN worlds w ON w.id = e.world_id "
           "WHERE e.kind = 'stimulus'")
BOUND = ("SELECT w.channel_key, count(p.name) FROM worlds w LEFT JOIN personas p "
         "ON p.world_id = w.id WHERE w.status <> 'stopped' GROUP BY w.id, w.channel_key")
PENDING = "SELECT count(*) FROM outbox WHERE status = 'pending'"


class BotDatabase:
    """What the bot stored, read from outside it: its SQLite file, or the PostgreSQL database its
    workers share. Read-only; every read is one short query on a connection of its own."""

    async def rows(self, query: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def outbox_rows(self) -> list[OutboxRow]:
        return [OutboxRow(*row) for row in await self.rows(OUTBOX_ROWS)]

    async def stimuli(self) -> list[tuple[str, str]]:
        """(channel key, content) of every stimulus event of every world."""
        return [(key, content) for key, content in await self.rows(STIMULI)]

    async def bound_channels(self) -> dict[str, int]:
        """Channel key -> number of personas, for every world not stopped ({} before the schema exists)."""
        try:
            return {key: count for key, count in await self.rows(BOUND)}
        except Exception:  # noqa: BLE001 - no database or no tables yet: nothing is bound
            return {}

    async def inbox_left(self) -> list[tuple[str, str]]:
        """(channel key, text) of every received event still waiting in the inbox (none, once drained)."""
        rows = await self.rows("SELECT channel_key, event FROM inbox ORDER BY id")
        return [(key, (json.loads(data) if isinstance(data, str) else data).get("text", "")) for key, data in rows]

    async def pending_posts(self) -> int:
        """Outbox entries still to post (-1 if the database cannot be read right now)."""
        try:
            return (await self.rows(PENDING))[0][0]
        except Exception:  # noqa: BLE001 - read again on the next poll
            return -1


class SqliteDatabase(BotDatabase):
    def __init__(self, path: Path) -> None:
        self.path = path

    async def rows(self, query: str) -> list[tuple[Any, ...]]:
        if not self.path.is_file():
            raise FileNotFoundError(self.path)
        with contextlib.closing(read_only(self.path)) as db:
            return db.execute(query).fetchall()


class PostgresDatabase(BotDatabase):
    def __init__(self, url: str) -> None:
        self.url = url

    async def rows(self, query: str) -> list[tuple[Any, ...]]:
        import asyncpg

        connection = await asyncpg.connect(self.url, timeout=10)
        try:
            return [tuple(record) for record in await connection.fetch(query)]
        finally:
            await connection.close()


def read_only(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    connection.execute("PRAGMA busy_timeout = 10000")
    return connection


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` of 1), or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * fraction))
    return ordered[min(rank, len(ordered)) - 1]
