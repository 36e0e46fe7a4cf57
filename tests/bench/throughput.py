"""What Troupe adds to a model call: 200 channels × 5 personas through the whole bot, and the same
model calls through the model layer alone.

    python -m tests.bench.throughput [--channels N] [--rounds N]

A round is a human message in every channel, every persona (5 a channel) answering once, every post
verified, stored and posted. The fake model (its own process, real HTTP, the real openai client)
answers after 300 ms; the model concurrency limit is raised so the model is not the bottleneck.
The same calls (the very requests the bot made in that round, noted at the top of its model
stack: 1,000 persona turns, and the memory folds that came due) are also made through the model
layer alone: the official client and our wrappers, no bot, no verification, no storage. That is
the floor under any round in one process on this machine, since the client's own CPU per call
sets it. The bot's rounds and the model layer's (in a process of its own) take turns, 5 of each,
so a machine whose speed drifts while the benchmark runs (a shared host) slows both alike; the
line before the last lists every round, the loop's worst stall in each (with the loop thread's own
CPU in it, and the garbage collector's part of that: a stall with little of either was the host's)
and the loop's CPU in each (a slow round with no more CPU than the others was the host's). From
the 4th round every persona also folds its memory (a model call each, started as its turn ends
and queued behind turns, so they spill into the 5th round): those rounds make ~2,000 calls on
both sides.

Prints one JSON object on its last line. Its targets: ``over_model_layer`` (the bot's round ÷ the
model layer's round, from the same run) ≤ 1.2, and ``max_loop_stall_ms`` (the event loop's worst
stall during any of the bot's rounds) ≤ 50. ``ratio`` (to one channel's round) and ``overhead_ms_p50``
(a post's time past the model's in one channel) are reported for comparison, not held to a target.
The line before it says what the 200-channel rounds cost in CPU time per persona turn, the bot's
(its verification process's included, which the bot starts once posts come this fast) and the
fake model server's, the model layer's per call and per turn and what the bot adds to that; how
short a round could be on this machine's cores at that cost; and the CPU of the event loop's own
thread per turn (and per call of the model layer alone), which bounds a round from below in one
process however many cores there are (``loop_bound_round_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel

from adapters.memory import MemoryAdapter
from bots.app import TroupeApp
from config.settings import Settings
from simulation.actions import AgentTurn
from simulation.llm.base import ChatRequest, LanguageModel, ModelWrapper
from simulation.llm.factory import build_model
from simulation.memory import Consolidation, Episode
from simulation.persona import find_bundled_persona
from simulation.prompts import turn_messages

#: Rounds of the bot and of the model layer alone, in turn. In the 4th, every persona also folds
#: its memory (16 episodes past its window), as all 1,000 joined at once.
ROUNDS = 5
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
    """How late the event loop wakes a task that asked to sleep 5 ms: the loop's worst stall, and
    what it was made of: the loop thread's own CPU in it (of which garbage collection), the rest
    being time the host gave to other processes."""

    def __init__(self) -> None:
        self.worst = self.worst_cpu = self.worst_gc = 0.0
        self._gc = 0.0
        self._gc_started = 0.0
        self._task: asyncio.Task | None = None

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.thread_time()
        else:
            self._gc += time.thread_time() - self._gc_started

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu, collected = loop.time(), time.thread_time(), self._gc
            await asyncio.sleep(0.005)
            stall = loop.time() - before - 0.005
            if stall > self.worst:
                self.worst, self.worst_cpu, self.worst_gc = stall, time.thread_time() - cpu, self._gc - collected

    def start(self) -> None:
        self.worst = self.worst_cpu = self.worst_gc = 0.0
        gc.callbacks.append(self._on_collection)
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> tuple[float, float, float]:
        """The worst stall, the loop thread's CPU in it and the garbage collection's, in seconds."""
        assert self._task is not None
        await asyncio.sleep(0.01)  # a sleep cut short by a stall just before this is still counted
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        gc.callbacks.remove(self._on_collection)
        return self.worst, self.worst_cpu, self.worst_gc


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


#: The bot's model calls the model layer makes again: a persona's turn, and a fold of its memory.
SCHEMAS: dict[str, type[BaseModel]] = {"agent_turn": AgentTurn, "consolidate": Consolidation}


class TurnRecorder(ModelWrapper):
    """The top of the bot's model stack, noting each persona turn's request (and each memory fold's)
    as the bot made it, so the model layer alone can make the very same calls. It keeps only text
    and numbers: objects the bot let go of, kept alive here until the round ends, would cost the bot
    garbage collection."""

    def __init__(self, inner: LanguageModel) -> None:
        super().__init__(inner)
        self.turns: list[tuple[Any, ...]] = []

    async def structured(self, request: ChatRequest, schema: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if request.task in SCHEMAS:
            self.turns.append((*(text for m in request.messages for text in (m.role, m.content)), request.max_tokens,
                               request.attribution.world, request.attribution.persona, request.task, request.background))
        return await super().structured(request, schema, **kwargs)

    def take(self) -> list[dict[str, Any]]:
        """The calls noted since the last call, as ``ChatRequest`` data."""
        turns, self.turns = self.turns, []
        return [{"messages": [{"role": role, "content": content} for role, content in zip(t[0:-5:2], t[1:-5:2], strict=True)],
                 "max_tokens": t[-5], "attribution": {"world": t[-4], "persona": t[-3]}, "task": t[-2], "background": t[-1]}
                for t in turns]


async def setup(port: int, data_dir: Path, channels: int) -> tuple[TroupeApp, TimedAdapter]:
    settings = bench_settings(port, data_dir, channels)
    adapter = TimedAdapter()
    stack = build_model(settings)
    app = TroupeApp(settings, stack=replace(stack, model=TurnRecorder(stack.model)))
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


async def measure(port: int, channels: int, rounds: int, fake_pid: int) -> dict[str, Any]:
    """``rounds`` rounds of the bot with ``channels`` channels: the median round, the worst loop stall
    and a post's median time past the model's, and per turn the CPU of the bot, its helpers and the
    fake model."""
    with tempfile.TemporaryDirectory() as tmp:
        app, adapter = await setup(port, Path(tmp), channels)
        try:
            await round_trip(app, adapter, channels, 0)  # warm-up: connections, caches
            bot = BotRounds(app, adapter, channels, fake_pid)
            for n in range(1, rounds + 1):
                await bot.round(n)
        finally:
            await app.stop()
    return bot.figures()


class BotRounds:
    """The bot's rounds, timed one by one with the CPU they cost, so they can alternate with the
    model layer's: a machine whose speed drifts (a shared host) then slows both alike."""

    def __init__(self, app: TroupeApp, adapter: TimedAdapter, channels: int, fake_pid: int) -> None:
        self.app, self.adapter, self.channels, self.fake_pid = app, adapter, channels, fake_pid
        self.times: list[float] = []
        self.overheads: list[float] = []
        self.stalls: list[float] = []
        #: The loop thread's CPU in each round's worst stall, and the garbage collection's in it.
        self.stall_parts: list[tuple[float, float]] = []
        #: The event loop thread's CPU in each round: a slow round with no more of it was the host's.
        self.loop_cpus: list[float] = []
        self.cpu = self.fake_cpu = self.helpers_cpu = 0.0

    async def round(self, n: int) -> float:
        meter = StallMeter()
        meter.start()
        bot_cpu, fake_cpu, helpers = cpu_s(), cpu_s(self.fake_pid), helpers_cpu_s(self.fake_pid)
        loop_cpu = time.thread_time()  # this thread runs the event loop
        elapsed, post_overheads = await round_trip(self.app, self.adapter, self.channels, n)
        self.loop_cpus.append(time.thread_time() - loop_cpu)
        self.helpers_cpu += sum(cpu - helpers.get(pid, 0.0) for pid, cpu in helpers_cpu_s(self.fake_pid).items())
        self.cpu += cpu_s() - bot_cpu
        self.fake_cpu += cpu_s(self.fake_pid) - fake_cpu
        stall, stall_cpu, stall_gc = await meter.stop()
        self.stalls.append(stall)
        self.stall_parts.append((stall_cpu, stall_gc))
        self.times.append(elapsed)
        self.overheads += post_overheads
        return elapsed

    def figures(self) -> dict[str, Any]:
        turns = len(self.times) * self.channels * len(PERSONAS)
        return {"round_s": statistics.median(self.times), "rounds_s": self.times, "stall_s": max(self.stalls),
                "stalls_s": self.stalls, "stall_parts_s": self.stall_parts, "loop_cpus_s": self.loop_cpus,
                "overhead_s": statistics.median(self.overheads),
                "bot_cpu_s_per_turn": (self.cpu + self.helpers_cpu) / turns, "fake_cpu_s_per_turn": self.fake_cpu / turns,
                "helpers_cpu_s_per_turn": self.helpers_cpu / turns, "loop_cpu_s_per_turn": sum(self.loop_cpus) / turns}


class ModelLayerRounds:
    """The same model calls through the model layer alone (the bot's own requests of a round): what
    is left of a round, and of a post's overhead, when the bot does nothing else."""

    def __init__(self, port: int, data_dir: Path, channels: int) -> None:
        self.stack = build_model(bench_settings(port, data_dir, channels))  # (stores nothing there)
        self.channels = channels
        self.specs = [find_bundled_persona(name) for name in PERSONAS]
        self.heard = Episode(step=1, time=datetime.now(), kind="stimulus", type="CONVERSATION", source="mod",
                             content="Round 1: what should we change first in the onboarding flow?")
        self.times: list[float] = []
        self.calls = 0
        self.cpu = self.loop_cpu = 0.0

    async def _call(self, request: ChatRequest, started: float) -> float:
        await self.stack.model.structured(request, SCHEMAS[request.task or "agent_turn"])
        return time.perf_counter() - started - LATENCY_S

    async def _calls(self, requests: list[ChatRequest]) -> tuple[float, list[float]]:
        started = time.perf_counter()
        overheads = await asyncio.gather(*(self._call(request, started) for request in requests))
        return time.perf_counter() - started, list(overheads)

    async def round(self, requests: list[ChatRequest]) -> float:
        """``requests`` all at once; returns their wall time."""
        cpu, loop_cpu = cpu_s(), time.thread_time()
        elapsed, _ = await self._calls(requests)
        self.calls += len(requests)
        self.cpu += cpu_s() - cpu
        self.loop_cpu += time.thread_time() - loop_cpu
        self.times.append(elapsed)
        return elapsed

    async def one_channel_overhead(self, rounds: int = 10) -> float:
        """The median time past the model's latency at which one channel's 5 calls come back (each a
        persona's first turn)."""
        requests = [ChatRequest(messages=turn_messages(
            name=spec.name, persona=spec.to_tinytroupe_dict(), world="room 0", situation=None, summary="", facts=[],
            state={}, past=[], new=[self.heard]), task="agent_turn") for spec in self.specs]
        one: list[float] = []
        for _ in range(rounds):
            one += (await self._calls(requests))[1]
        return statistics.median(one)

    def figures(self) -> dict[str, Any]:
        turns = len(self.times) * self.channels * len(PERSONAS)
        return {"round_s": statistics.median(self.times), "rounds_s": self.times, "calls_per_turn": self.calls / turns,
                "cpu_s_per_call": self.cpu / self.calls, "cpu_s_per_turn": self.cpu / turns,
                "loop_cpu_s_per_call": self.loop_cpu / self.calls, "loop_cpu_s_per_turn": self.loop_cpu / turns}


async def side_by_side(port: int, channels: int, rounds: int, fake_pid: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``rounds`` rounds of the bot and as many of the model layer alone, one after the other in
    turn; returns the figures of each. The model layer runs in a process of its own, as it would
    without the bot: its own heap, and Python's own garbage collection settings (the bot's are its
    own work)."""
    layer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bench.throughput", "--model-layer-of", str(port), "--channels", str(channels),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert layer.stdin is not None and layer.stdout is not None

    async def ask(command: str) -> dict[str, Any]:
        assert layer.stdin is not None and layer.stdout is not None
        layer.stdin.write(f"{command}\n".encode())
        await layer.stdin.drain()
        line = await layer.stdout.readline()
        if not line:
            raise SystemExit(f"the model layer's process ended (exit code {await layer.wait()})")
        return json.loads(line)

    try:
        with tempfile.TemporaryDirectory() as tmp:
            app, adapter = await setup(port, Path(tmp), channels)
            recorder = app.stack.model
            assert isinstance(recorder, TurnRecorder)

            async def same_calls(kind: str) -> None:
                """The model layer makes the calls the bot just made (saved aside, not timed)."""
                calls = Path(tmp) / "calls.json"
                calls.write_text(json.dumps(recorder.take()))
                await ask(f"{kind} {calls}")

            try:
                await round_trip(app, adapter, channels, 0)  # warm-up: connections, caches
                await same_calls("warm-up")
                bot = BotRounds(app, adapter, channels, fake_pid)
                for n in range(1, rounds + 1):
                    await bot.round(n)
                    await same_calls("round")
            finally:
                await app.stop()
        model_layer = await ask("figures")
    finally:
        layer.stdin.close()
        await layer.wait()
    return bot.figures(), model_layer


async def serve_model_layer(port: int, channels: int) -> None:
    """The model layer alone: at each ``round FILE`` line on stdin, the requests saved in FILE all at
    once (``warm-up FILE`` the same, untimed); ``figures`` ends it. One JSON line answers each."""
    model_layer = ModelLayerRounds(port, Path(tempfile.gettempdir()), channels)
    loop = asyncio.get_running_loop()
    try:
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            command, _, path = line.partition(" ")
            if command == "figures":
                answer: dict[str, Any] = {**model_layer.figures(), "overhead_s": await model_layer.one_channel_overhead()}
            else:
                requests = [ChatRequest.model_validate(data) for data in json.loads(Path(path).read_text())]
                if command == "warm-up":
                    await model_layer._calls(requests)
                    answer = {}
                else:
                    answer = {"round_s": await model_layer.round(requests)}
            print(json.dumps(answer), flush=True)
    finally:
        await model_layer.stack.aclose()


async def main(channels: int, rounds: int = ROUNDS) -> dict[str, float]:
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.fake_model_process", str(LATENCY_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(fake.stdout.readline())
        single = await measure(port, 1, rounds=10, fake_pid=fake.pid)
        many, model_only = await side_by_side(port, channels, rounds, fake.pid)
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
        # The model calls a persona turn took: its turn's, and now and then a fold of its memory.
        "model_calls_per_turn": round(model_only["calls_per_turn"], 2),
        "model_layer_cpu_ms_per_call": round(model_only["cpu_s_per_call"] * 1000, 2),
        # The event loop's own thread: one loop cannot finish a round in less than a round of it.
        "loop_cpu_ms_per_turn": round(many["loop_cpu_s_per_turn"] * 1000, 2),
        "model_layer_loop_cpu_ms_per_call": round(model_only["loop_cpu_s_per_call"] * 1000, 2),
        "loop_bound_round_s": round(turns * many["loop_cpu_s_per_turn"], 3),
        # What the bot spends on a turn besides the model call itself.
        "added_cpu_ms_per_turn": round((many["bot_cpu_s_per_turn"] - model_only["cpu_s_per_turn"]) * 1000, 2),
        "model_layer_ratio": round(model_only["round_s"] / single["round_s"], 2),
        "model_layer_overhead_ms_p50": round(model_only["overhead_s"] * 1000, 2),
        # Each round, in the order they ran (the bot's and the model layer's took turns).
        "rounds_s": [round(t, 3) for t in many["rounds_s"]],
        "model_layer_rounds_s": [round(t, 3) for t in model_only["rounds_s"]],
        "loop_stalls_ms": [round(t * 1000, 1) for t in many["stalls_s"]],
        # Of each round's worst stall: the loop thread's own CPU, and garbage collection's part of that.
        "loop_stall_cpu_ms": [round(cpu * 1000, 1) for cpu, _ in many["stall_parts_s"]],
        "loop_stall_gc_ms": [round(collected * 1000, 1) for _, collected in many["stall_parts_s"]],
        "loop_cpu_s_by_round": [round(t, 3) for t in many["loop_cpus_s"]],
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
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help=f"rounds of each (default {ROUNDS}); from the 4th, personas fold their memories too")
    parser.add_argument("--model-layer-of", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model_layer_of:
        asyncio.run(serve_model_layer(args.model_layer_of, args.channels))
    else:
        print(json.dumps(asyncio.run(main(args.channels, args.rounds))))
