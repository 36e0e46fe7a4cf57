"""Two ``troupe slack`` processes on one PostgreSQL database, both connected to Slack (which gives each
event to one of them at random): every message is answered once, by the channel's owner; when the
owner is killed with ``kill -9``, the other takes its channel over within the lease and nothing is
lost or posted twice."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import asyncpg

from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.slack_server import FakeSlack
from tests.support.paths import ROOT
from tests.support.turns import TurnRule
from tests.support.waiting import until
from tests.support.workers import slack_worker_env, stop_all

MODERATOR, PERSON, CHANNEL = "U0MOD", "U0HANA", "C0FAIL"
LEASE_S = 2


def worker_env(tmp_path: Path, name: str, url: str, slack: FakeSlack, model: FakeOpenAIServer) -> dict[str, str]:
    return slack_worker_env(tmp_path, name, database_url=url, slack=slack, model_url=model.base_url,
                            lease_s=LEASE_S, moderator=MODERATOR)



def answers(slack: FakeSlack) -> list[dict]:
    return [p for p in slack.posts if p["channel"] == CHANNEL and p.get("username")]


async def test_a_killed_worker_s_channel_goes_on_in_the_other_with_nothing_lost_or_posted_twice(tmp_path, postgres_url):
    async with FakeSlack(auto_retry=True) as slack, FakeOpenAIServer() as model:
        model.responder = TurnRule()
        slack.add_user(MODERATOR, "mona")
        slack.add_user(PERSON, "hana")
        slack.add_channel(CHANNEL, "failover")
        workers = {}
        for name in ("one", "two"):
            workers[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bots.cli", "slack", cwd=ROOT,
                env=worker_env(tmp_path, name, postgres_url, slack, model),
                stdout=asyncio.subprocess.DEVNULL, stderr=open(tmp_path / f"{name}.log", "wb"))  # noqa: SIM115
        db = await asyncpg.connect(postgres_url)
        try:
            await slack.wait_connected(2, timeout=60)

            def rows(table: str, count: int):
                async def check() -> bool:
                    return await db.fetchval(f"SELECT count(*) FROM {table}") == count
                return check

            def answered(count: int):
                async def check() -> bool:
                    return len(answers(slack)) >= count
                return check

            await slack.send_slash_command("start Failover room", user_id=MODERATOR, channel_id=CHANNEL)
            await until(rows("worlds", 1), 30, "the world")
            await slack.send_slash_command("persona add Priya Nair", user_id=MODERATOR, channel_id=CHANNEL)
            await until(rows("personas", 1), 30, "the persona")

            await slack.send_message(CHANNEL, PERSON, "Priya, first question?")
            await until(answered(1), 30, "the first answer")
            owner = await db.fetchval("SELECT worker FROM leases WHERE channel_key = $1", f"slack:{CHANNEL}")
            victim = next(name for name, process in workers.items() if f":{process.pid}:" in owner)
            workers[victim].send_signal(signal.SIGKILL)
            await workers[victim].wait()
            await slack.wait_for(lambda: sum(c.live for c in slack.connections) == 1, timeout=10)

            killed = time.monotonic()
            await slack.send_message(CHANNEL, PERSON, "Priya, are you still with us?")
            await until(answered(2), 30, "the answer after the kill")
            failover = time.monotonic() - killed
            assert failover < LEASE_S + 6, failover
            survivor = next(process for name, process in workers.items() if name != victim)
            owner = await db.fetchval("SELECT worker FROM leases WHERE channel_key = $1", f"slack:{CHANNEL}")
            assert f":{survivor.pid}:" in owner

            await asyncio.sleep(LEASE_S)
            texts = [p["text"] for p in answers(slack)]
            assert len(texts) == 2 and len(set(texts)) == 2, texts
            heard = [r[0] for r in await db.fetch("SELECT content FROM events WHERE kind = 'stimulus' ORDER BY id")]
            assert heard == ["Priya, first question?", "Priya, are you still with us?"]
            assert await db.fetchval("SELECT count(*) FROM inbox") == 0
            assert await db.fetchval("SELECT count(*) FROM outbox WHERE status <> 'posted'") == 0
        finally:
            await db.close()
            await stop_all(workers.values())
