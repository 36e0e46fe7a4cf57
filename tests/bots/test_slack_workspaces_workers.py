"""Two ``troupe slack --http`` workers behind a load balancer, on one PostgreSQL database, serving a Slack
app installed in two workspaces through the OAuth flow: each workspace's messages are answered once,
by its own personas, with its own workspace's token; when one worker is killed mid-conversation the
other carries on with both workspaces."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.slack_server import FakeSlack
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.slack_workspaces import ALPHA, BETA, PEOPLE, install, moderators, scoped, two_workspaces
from tests.support.turns import TurnRule
from tests.support.waiting import until
from tests.support.workers import slack_worker_env, stop_all

LEASE_S = 2
#: Each workspace's world and its persona.
PERSONA = {ALPHA: "Priya Nair", BETA: "Tomasz Kowalski"}


class Balancer:
    """Each request to the next worker in turn; a worker that refuses the connection is taken out of
    the rotation and the request goes to the next (as a load balancer's health check would)."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = list(roots)
        self._turn = itertools.count()
        #: Seconds each request took to be acknowledged.
        self.took: list[float] = []

    async def send(self, request: Callable[[str], Awaitable[tuple[int, str]]]) -> None:
        while self.roots:
            root = self.roots[next(self._turn) % len(self.roots)]
            started = time.monotonic()
            try:
                status, body = await request(root)
            except OSError:
                self.roots.remove(root)
                continue
            self.took.append(time.monotonic() - started)
            assert status == 200, (status, body)
            return
        raise AssertionError("no worker left to take the request")


def answers(slack: FakeSlack, team: str) -> list[dict[str, Any]]:
    return [p for p in slack.posts if p["channel"] == PEOPLE[team][0] and p.get("username")]


async def test_two_workspaces_on_two_workers_each_answered_once_with_its_own_token_through_a_worker_kill(
        tmp_path: Path, postgres_url: str) -> None:
    async with two_workspaces() as slack, FakeOpenAIServer() as model:
        model.responder = TurnRule()
        ports = [free_port(), free_port()]
        roots = [f"http://127.0.0.1:{port}" for port in ports]
        workers = []
        for name, port in zip(("one", "two"), ports, strict=True):
            env = slack_worker_env(
                tmp_path, name, database_url=postgres_url, slack=slack, model_url=model.base_url, lease_s=LEASE_S,
                moderator="", TROUPE_BOT_MODERATOR_USER_IDS=json.dumps(moderators()),
                TROUPE_SLACK_CLIENT_ID=slack.client_id, TROUPE_SLACK_CLIENT_SECRET=slack.client_secret,
                TROUPE_SLACK_SIGNING_SECRET=slack.signing_secret, TROUPE_SLACK_AUTHORIZE_URL=slack.authorize_url,
                TROUPE_SLACK_HTTP_HOST="127.0.0.1")
            env.pop("TROUPE_SLACK_BOT_TOKEN")
            env.pop("TROUPE_SLACK_APP_TOKEN")
            workers.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bots.cli", "slack", "--http", str(port), cwd=ROOT, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=open(tmp_path / f"{name}.log", "wb")))  # noqa: SIM115
        db = await asyncpg.connect(postgres_url)
        balancer = Balancer(roots)
        events = itertools.count(1)

        async def command(team: str, text: str) -> None:
            channel, moderator, _ = PEOPLE[team]
            await balancer.send(lambda root: slack.http_slash_command(
                f"{root}/slack/events", text, user_id=moderator, channel_id=channel))

        async def say(team: str, text: str) -> None:
            channel, _, guest = PEOPLE[team]
            n = next(events)
            event = {"type": "message", "channel": channel, "user": guest, "text": text,
                     "ts": f"{int(time.time())}.{n:06d}", "channel_type": "channel"}
            # Sent again to the next worker, the same event (its id) as Slack's retry would be.
            await balancer.send(lambda root: slack.http_event(f"{root}/slack/events", event, event_id=f"Ev{n:09d}"))

        def answered(team: str, question: str) -> Callable[[], Awaitable[bool]]:
            """Whether ``question`` was answered (questions heard during one turn get one answer,
            to the last of them, as a person in a chat would give)."""
            async def check() -> bool:
                return any(question in p["text"] for p in answers(slack, team))
            return check

        def rows(sql: str, count: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return await db.fetchval(sql) == count
            return check

        try:
            async def listening() -> bool:
                for root in roots:
                    try:
                        if (await slack.http_url_verification(f"{root}/slack/events"))[0] != 200:
                            return False
                    except OSError:
                        return False
                return True

            await until(listening, 60, "both workers to listen")
            # Each installation starts at one worker and comes back from Slack to the other.
            for team, (start, back) in ((ALPHA, roots), (BETA, roots[::-1])):
                slack.redirect_urls = [f"{back}/slack/oauth_redirect"]
                status, page = await install(slack, team, f"{start}/slack/install")
                assert status == 200 and "Troupe is installed" in page, page
            assert len({slack.token_of(ALPHA), slack.token_of(BETA)}) == 2

            for number, team in enumerate((ALPHA, BETA), start=1):
                await command(team, f"start {team} room")
                await until(rows("SELECT count(*) FROM worlds", number), 30, f"the world of {team}")
                await command(team, f"persona add {PERSONA[team]}")
                await until(rows("SELECT count(*) FROM personas", number), 30, f"the persona of {team}")

            asked: dict[str, list[str]] = {ALPHA: [], BETA: []}
            for n in range(1, 4):
                for team in (ALPHA, BETA):
                    question = f"{PERSONA[team].split()[0]}, {team} question {n}?"
                    asked[team].append(question)
                    await say(team, question)
            for team in (ALPHA, BETA):
                await until(answered(team, asked[team][-1]), 30, f"the answers in {team}")

            # The worker running Alpha's channel is killed as a question reaches it.
            owner = await db.fetchval("SELECT worker FROM leases WHERE channel_key = $1", f"slack:{scoped(ALPHA)}")
            victim = next(w for w in workers if f":{w.pid}:" in owner)
            survivor = next(w for w in workers if w is not victim)
            late = f"{PERSONA[ALPHA].split()[0]}, {ALPHA} are you still there?"
            asked[ALPHA].append(late)
            await say(ALPHA, late)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            for team in (BETA, ALPHA):
                question = f"{PERSONA[team].split()[0]}, {team} after the crash?"
                asked[team].append(question)
                await say(team, question)
            for team in (ALPHA, BETA):
                await until(answered(team, asked[team][-1]), 30, f"the answers in {team} after the kill")

            await asyncio.sleep(LEASE_S)  # an answer posted twice would show by now
            for team in (ALPHA, BETA):
                said = answers(slack, team)
                # Each answer to a question of its own workspace, and no question answered twice.
                replied = [next((q for q in asked[team] if q in p["text"]), None) for p in said]
                assert None not in replied and len(set(replied)) == len(replied), [p["text"] for p in said]
                # Each workspace's own persona, posting with its own workspace's token.
                assert {p["username"] for p in said} == {PERSONA[team]}
                assert {p["team"] for p in said} == {team}
                heard = [r[0] for r in await db.fetch(
                    "SELECT e.content FROM events e JOIN worlds w ON w.id = e.world_id "
                    "WHERE e.kind = 'stimulus' AND w.channel_key = $1 ORDER BY e.id", f"slack:{scoped(team)}")]
                assert heard == asked[team]
                owner = await db.fetchval("SELECT worker FROM leases WHERE channel_key = $1", f"slack:{scoped(team)}")
                assert f":{survivor.pid}:" in owner
            assert {p["channel"] for p in slack.posts} == {PEOPLE[ALPHA][0], PEOPLE[BETA][0]}
            assert max(balancer.took) < 3.0, balancer.took
            assert await db.fetchval("SELECT count(*) FROM inbox") == 0
            assert await db.fetchval("SELECT count(*) FROM outbox WHERE status <> 'posted'") == 0
        finally:
            await db.close()
            await stop_all(workers)
