"""What Troupe adds to a model call: 200 channels × 5 personas through the whole bot, and the same
1,000 model calls through the model layer alone.

    python -m tests.bench.throughput [--channels N]

A round is a human message in every channel, every persona (5 a channel) answering once, every post
verified, stored and posted. The fake model (its own process, real HTTP, the real openai client)
answers after 300 ms; the model concurrency limit is raised so the model is not the bottleneck.
The same 1,000 calls (a persona turn's prompt each) are then made through the model layer alone:
the official client and our wrappers, no bot, no verification, no storage. That is the floor under
any round in one process on this machine, since the client's own CPU per call sets it.

Prints one JSON object on its last line. Its targets: ``over_model_layer`` (the bot's round ÷ the
model layer's round, from the same run) ≤ 1.2, and ``max_loop_stall_ms`` (the event loop's worst
stall during the bot's rounds) ≤ 50. ``ratio`` (to one channel's round) and ``overhead_ms_p50``
(a post's time past the model's in one channel) are reported for comparison, not held to a target.
The line before it says what the 200-channel rounds cost in CPU time per persona turn, the bot's
(its verification process's included, which the bot starts once posts come this fast) and the
fake model server's, the model layer's per call and what the bot adds to that; how
short a round could be on this machine's cores at that cost; and the CPU of the event loop's own
thread per turn (and per call of the model layer alone), which bounds a round from below in one
process however many cores there are (``loop_bound_round_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil

from adapters.memory import MemoryAdapter
from bots.app import TroupeApp
from config.settings import Settings
from simulation.actions import AgentTurn
from simulation.llm.base import ChatRequest
from simulation.llm.factory import build_model
from simulation.memory import Episode
from simulation.persona import find_bundled_persona
from simulation.prompts import turn_messages

PERSONAS = ("Priya Nair", "Tomasz Kowalski", "Amara Okafor", "Diego Hernández", "Henrik Lindqvist")
LATENCY_S = 0.3


class TimedAdapter(MemoryAdapter):
    """The in-memory platform, noting when each post arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.post_times: list[float] = []

    async def post(self, channel, identity, text, thread=None):  # type: ignore[override]
        message_id = await super().post(channel, identity, text, thread)
        self.post_times.append(time.perf_counter())
        return message_id


class StallMeter:
    """How late the event loop wakes a task that asked to sleep 5 ms: the loop's worst stall."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, loop.time() - before - 0.005)

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> float:
        assert self._task is not None
        await asyncio.sleep(0.01)  # a sleep cut short by a stall just before this is still counted
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.worst


def bench_settings(port: int, data_dir: Path, channels: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        llm={
            "model": "gpt-4o-mini",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "api_key": "sk-bench",
            "cache": False,
            "concurrency": channels * len(PERSONAS) + 10,
            "timeout_s": 30,
        },
        bot={"default_exchanges": 0},
    )


async def setup(port: int, data_dir: Path, channels: int) -> tuple[TroupeApp, TimedAdapter]:
    settings = bench_settings(port, data_dir, channels)
    adapter = TimedAdapter()
    app = TroupeApp(settings)
    await app.start([adapter])
    specs = [find_bundled_persona(name) for name in PERSONAS]
    for index in range(channels):
        session = await app.sessions.start(adapter.channel(f"c{index}"), adapter.user("mod"), f"room {index}", None)
        for spec in specs:
            await session.add_persona(spec)
    return app, adapter


async def round_trip(app: TroupeApp, adapter: TimedAdapter, channels: int, n: int) -> tuple[float, list[float]]:
    """One round; returns its wall time and, per post, its time after the message minus the model's."""
    before = len(adapter.posts())
    first_timed = len(adapter.post_times)
    started = time.perf_counter()
    for index in range(channels):
        adapter.push_message(f"Round {n}: what should we change first in the onboarding flow?", channel=f"c{index}")
    await app.wait_idle()
    elapsed = time.perf_counter() - started
    posts = adapter.posts()[before:]
    expected = channels * len(PERSONAS)
    if len(posts) != expected:
        raise SystemExit(f"expected {expected} posts in round {n}, got {len(posts)}")
    return elapsed, [t - started - LATENCY_S for t in adapter.post_times[first_timed:]]


def cpu_s(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, all threads, or of process ``pid``."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def helpers_cpu_s(fake_pid: int) -> dict[int, float]:
    """CPU time of each process this one started besides the fake model (the verification process)."""
    found = {}
    for child in psutil.Process().children(recursive=True):
        if child.pid != fake_pid:
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                found[child.pid] = times.user + times.system
    return found


async def measure(port: int, channels: int, rounds: int, fake_pid: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        app, adapter = await setup(port, Path(tmp), channels)
        try:
            await round_trip(app, adapter, channels, 0)  # warm-up: connections, caches
            meter = StallMeter()
            meter.start()
            times, overheads = [], []
            bot_cpu, fake_cpu, helpers = cpu_s(), cpu_s(fake_pid), helpers_cpu_s(fake_pid)
            loop_cpu = time.thread_time()  # this thread runs the event loop
            for n in range(1, rounds + 1):
                elapsed, post_overheads = await round_trip(app, adapter, channels, n)
                times.append(elapsed)
                overheads += post_overheads
            turns = rounds * channels * len(PERSONAS)
            loop_cpu = (time.thread_time() - loop_cpu) / turns
            helpers_cpu = sum(cpu - helpers.get(pid, 0.0) for pid, cpu in helpers_cpu_s(fake_pid).items()) / turns
            bot_cpu, fake_cpu = (cpu_s() - bot_cpu) / turns + helpers_cpu, (cpu_s(fake_pid) - fake_cpu) / turns
            stall = await meter.stop()
        finally:
            await app.stop()
    return {"round_s": statistics.median(times), "stall_s": stall, "overhead_s": statistics.median(overheads),
            "bot_cpu_s_per_turn": bot_cpu, "fake_cpu_s_per_turn": fake_cpu, "helpers_cpu_s_per_turn": helpers_cpu,
            "loop_cpu_s_per_turn": loop_cpu}


async def model_layer_alone(port: int, channels: int) -> dict[str, float]:
    """The same model calls through the model layer alone (a persona turn's prompt each): what is
    left of a round, and of a post's overhead, when the bot does nothing else.

    Returns the median wall time of a round of ``channels`` × 5 calls at once, its CPU time per call,
    and the median time past the model's latency at which one channel's 5 calls come back.
    """
    with tempfile.TemporaryDirectory() as tmp:
        stack = build_model(bench_settings(port, Path(tmp), channels))
        specs = [find_bundled_persona(name) for name in PERSONAS]
        heard = Episode(step=1, time=datetime.now(), kind="stimulus", type="CONVERSATION", source="mod",
                        content="Round 1: what should we change first in the onboarding flow?")

        async def turn(index: int, started: float) -> float:
            spec = specs[index % len(specs)]
            messages = turn_messages(name=spec.name, persona=spec.to_tinytroupe_dict(), world=f"room {index // len(specs)}",
                                     situation=None, summary="", facts=[], state={}, past=[], new=[heard])
            await stack.model.structured(ChatRequest(messages=messages, task="turn"), AgentTurn)
            return time.perf_counter() - started - LATENCY_S

        async def round_of(calls: int) -> tuple[float, list[float]]:
            started = time.perf_counter()
            overheads = await asyncio.gather(*(turn(i, started) for i in range(calls)))
            return time.perf_counter() - started, list(overheads)

        try:
            await round_of(channels * len(PERSONAS))  # warm-up: connections
            cpu, loop_cpu = cpu_s(), time.thread_time()
            many = [(await round_of(channels * len(PERSONAS)))[0] for _ in range(3)]
            cpu_per_call = (cpu_s() - cpu) / (3 * channels * len(PERSONAS))
            loop_cpu_per_call = (time.thread_time() - loop_cpu) / (3 * channels * len(PERSONAS))
            one: list[float] = []
            for _ in range(10):
                one += (await round_of(len(PERSONAS)))[1]
            return {"round_s": statistics.median(many), "overhead_s": statistics.median(one), "cpu_s_per_call": cpu_per_call,
                    "loop_cpu_s_per_call": loop_cpu_per_call}
        finally:
            await stack.aclose()


async def main(channels: int) -> dict[str, float]:
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.fake_model_process", str(LATENCY_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(fake.stdout.readline())
        single = await measure(port, 1, rounds=10, fake_pid=fake.pid)
        many = await measure(port, channels, rounds=3, fake_pid=fake.pid)
        model_only = await model_layer_alone(port, channels)
    finally:
        fake.stdin.close()
        fake.wait(timeout=10)
    # What the many-channel rounds cost in CPU, and the shortest round this machine allows at that
    # cost: every turn's CPU spread perfectly over all cores, or one channel's round if longer.
    cores = len(os.sched_getaffinity(0))
    turns = channels * len(PERSONAS)
    cpu_bound = max(turns * (many["bot_cpu_s_per_turn"] + many["fake_cpu_s_per_turn"]) / cores, single["round_s"])
    print(json.dumps({
        "cores": cores,
        "bot_cpu_ms_per_turn": round(many["bot_cpu_s_per_turn"] * 1000, 2),
        # Of which the verification process's (it checks posts beside the bot once they come fast).
        "verification_process_cpu_ms_per_turn": round(many["helpers_cpu_s_per_turn"] * 1000, 2),
        "fake_model_cpu_ms_per_turn": round(many["fake_cpu_s_per_turn"] * 1000, 2),
        "cpu_bound_round_s": round(cpu_bound, 3),
        "cpu_bound_ratio": round(cpu_bound / single["round_s"], 2),
        "model_layer_cpu_ms_per_call": round(model_only["cpu_s_per_call"] * 1000, 2),
        # The event loop's own thread: one loop cannot finish a round in less than a round of it.
        "loop_cpu_ms_per_turn": round(many["loop_cpu_s_per_turn"] * 1000, 2),
        "model_layer_loop_cpu_ms_per_call": round(model_only["loop_cpu_s_per_call"] * 1000, 2),
        "loop_bound_round_s": round(turns * many["loop_cpu_s_per_turn"], 3),
        # What the bot spends on a turn besides the model call itself.
        "added_cpu_ms_per_turn": round((many["bot_cpu_s_per_turn"] - model_only["cpu_s_per_call"]) * 1000, 2),
        "model_layer_ratio": round(model_only["round_s"] / single["round_s"], 2),
        "model_layer_overhead_ms_p50": round(model_only["overhead_s"] * 1000, 2),
    }))
    # Per post, in one channel: time from the human message to the post, minus the model's 300 ms.
    overhead_ms = single["overhead_s"] * 1000
    return {
        "channels": channels,
        "personas_per_channel": len(PERSONAS),
        "model_latency_ms": int(LATENCY_S * 1000),
        "round_s": round(many["round_s"], 3),
        "model_layer_round_s": round(model_only["round_s"], 3),
        "over_model_layer": round(many["round_s"] / model_only["round_s"], 2),
        "single_channel_round_s": round(single["round_s"], 3),
        "ratio": round(many["round_s"] / single["round_s"], 2),
        "overhead_ms_p50": round(overhead_ms, 2),
        "max_loop_stall_ms": round(many["stall_s"] * 1000, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.channels))))
