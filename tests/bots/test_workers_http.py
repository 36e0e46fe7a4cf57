"""Two ``troupe slack --http`` workers behind a load balancer, on one PostgreSQL database: whichever
worker Slack's request reaches acknowledges it within Slack's 3 seconds and hands it to the worker
that runs the channel; every message is answered once, by that worker."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path

import asyncpg

from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.slack_server import FakeSlack
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.turns import TurnRule
from tests.support.waiting import until
from tests.support.workers import slack_worker_env, stop_all

MODERATOR, PERSON, CHANNEL = "U0MOD", "U0HANA", "C0HTTP"




def answers(slack: FakeSlack) -> list[str]:
    return [p["text"] for p in slack.posts if p["channel"] == CHANNEL and p.get("username")]


async def test_any_worker_takes_any_request_and_the_channels_owner_answers_it_once(tmp_path: Path, postgres_url):
    async with FakeSlack() as slack, FakeOpenAIServer() as model:
        model.responder = TurnRule()
        slack.add_user(MODERATOR, "mona")
        slack.add_user(PERSON, "hana")
        slack.add_channel(CHANNEL, "behind-a-balancer")
        ports = [free_port(), free_port()]
        urls = [f"http://127.0.0.1:{port}/slack/events" for port in ports]
        workers = []
        for name, port in zip(("one", "two"), ports, strict=True):
            env = slack_worker_env(tmp_path, name, database_url=postgres_url, slack=slack, model_url=model.base_url,
                                   lease_s=5, moderator=MODERATOR, TROUPE_SLACK_SIGNING_SECRET=slack.signing_secret,
                                   TROUPE_SLACK_HTTP_HOST="127.0.0.1")
            env.pop("TROUPE_SLACK_APP_TOKEN")
            workers.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bots.cli", "slack", "--http", str(port), cwd=ROOT, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=open(tmp_path / f"{name}.log", "wb")))  # noqa: SIM115
        db = await asyncpg.connect(postgres_url)
        # The load balancer: each request to the next worker in turn.
        balancer = itertools.cycle(urls)
        took: list[float] = []

        async def deliver(send) -> None:
            started = time.monotonic()
            status, _ = await send(next(balancer))
            took.append(time.monotonic() - started)
            assert status == 200, status

        try:
            async def listening() -> bool:
                for url in urls:
                    try:
                        status, _ = await slack.http_url_verification(url)
                    except OSError:
                        return False
                    if status != 200:
                        return False
                return True

            await until(listening, 60, "both workers to listen")
            await deliver(lambda url: slack.http_slash_command(url, "start Balanced room", user_id=MODERATOR,
                                                               channel_id=CHANNEL))

            async def count(table: str, want: int):
                return await db.fetchval(f"SELECT count(*) FROM {table}") == want

            await until(lambda: count("worlds", 1), 30, "the world")
            await deliver(lambda url: slack.http_slash_command(url, "persona add Priya Nair", user_id=MODERATOR,
                                                               channel_id=CHANNEL))
            await until(lambda: count("personas", 1), 30, "the persona")

            questions = [f"Priya, question {n}: what should we ship first?" for n in range(1, 7)]
            for n, text in enumerate(questions):
                event = {"type": "message", "channel": CHANNEL, "user": PERSON, "text": text,
                         "ts": f"{int(time.time())}.{n:06d}", "channel_type": "channel"}
                await deliver(lambda url, event=event: slack.http_event(url, event))

            def replied_to(answer: str) -> int:
                """The question an answer replies to (a persona answers what reached it since its last turn)."""
                return next(n for n, question in enumerate(questions) if question in answer.split("replies to", 1)[-1])

            async def answered() -> bool:
                said = answers(slack)
                return bool(said) and replied_to(said[-1]) == len(questions) - 1

            try:
                await until(answered, 30, "the answer to the last question")
            except AssertionError:
                rows = await db.fetch("SELECT kind, source, content FROM events ORDER BY id")
                raise AssertionError(([tuple(r) for r in rows], slack.http_deliveries[-1], slack.posts[-3:])) from None
            await asyncio.sleep(1)  # an answer posted twice would show by now
            said = [replied_to(answer) for answer in answers(slack)]
            # Questions that came in while a turn was being taken are answered together, once.
            assert said == sorted(set(said)), said
            heard = [r[0] for r in await db.fetch("SELECT content FROM events WHERE kind = 'stimulus' ORDER BY id")]
            assert heard == questions
            # Half of the requests reached the worker that does not run the channel; all were
            # acknowledged well within Slack's 3 seconds.
            assert max(took) < 3.0, took
            owner = await db.fetchval("SELECT worker FROM leases WHERE channel_key = $1", f"slack:{CHANNEL}")
            assert sum(f":{worker.pid}:" in owner for worker in workers) == 1
            assert await db.fetchval("SELECT count(*) FROM inbox") == 0
        finally:
            await db.close()
            await stop_all(workers)
