"""How soon does Troupe open and answer, and how soon is a long-lived bot back after a restart?

    python -m tests.bench.startup [--runs N]

Each run starts ``troupe console --script`` in a new process and a new folder, the way ``make run``
does on a fresh machine (the offline demo model). The script's first line is read the moment the
console opens, before anything has warmed up: the worst case for the first answer. Times are taken
from the lines the console prints.

Then a bot restarts over a database of 20 channels that have lived long (5 personas, 6,000 episodes
each, 1,500 events a channel): ``restart_s`` is the time its start-up takes, storage opened, every
world restored, ready to listen.

Prints one JSON object on its last line (medians over the runs, seconds):
``{"runs", "open_s", "first_answer_s", "second_answer_s", "restart_s"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TROUPE = Path(sys.executable).with_name("troupe")
SCRIPT = "What do you all think of remote work?\nAnd of four-day weeks?\n/quit\n"


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="troupe-startup-") as folder:
        Path(folder, "script.txt").write_text(SCRIPT)
        started = time.perf_counter()
        process = subprocess.Popen([str(TROUPE), "console", "--script", "script.txt"], cwd=folder, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        assert process.stdout is not None
        opened: float | None = None
        asked: list[float] = []
        answered: list[float] = []
        for line in process.stdout:
            now = time.perf_counter() - started
            if opened is None and line.startswith("troupe "):
                opened = now
            elif line.startswith("> ") and not line.startswith("> /"):
                asked.append(now)
            elif "(demo model):" in line and len(answered) < len(asked):
                answered.append(now)
        if process.wait(60) != 0 or opened is None or len(answered) != 2:
            raise SystemExit(f"the console did not open and answer twice (exit code {process.returncode})")
        return {"open_s": opened, "first_answer_s": answered[0] - asked[0], "second_answer_s": answered[1] - asked[1]}


CHANNELS, PERSONAS, EPISODES, EVENTS = 20, 5, 6000, 1500


async def long_lived_database(path: Path) -> None:
    """20 bound channels as a long-lived deployment leaves them."""
    from bots.storage import PersonaRecord, StepWrite, WorldRecord
    from bots.storage.sqlite import SQLiteStorage
    from simulation.agent import AgentState
    from simulation.events import Event, EventKind
    from simulation.memory import Episode, EpisodicMemory

    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    storage = SQLiteStorage(path)
    await storage.open()
    try:
        for c in range(CHANNELS):
            world_id = f"w{c}"
            await storage.create_world(WorldRecord(id=world_id, channel_key=f"memory:room{c}", name=f"Room {c}",
                                                   clock={"step": EVENTS}))
            names = [f"Persona {c}-{p}" for p in range(PERSONAS)]
            for position, name in enumerate(names):
                episodes = [Episode(step=i, time=start + timedelta(seconds=i), kind="stimulus" if i % 2 else "action",
                                    type="CONVERSATION" if i % 2 else "TALK", source=names[(position + 1) % PERSONAS],
                                    content=f"Message {i} about the quarterly plan and who does what next.",
                                    event_id=i) for i in range(EPISODES)]
                memory = AgentState(persona={"name": name, "age": 30 + position, "occupation": "Engineer"},
                                    episodic=EpisodicMemory(episodes=episodes, consolidated_until=EPISODES - 20,
                                                            summary="We planned the quarter together."),
                                    unread_from=EPISODES)
                await storage.save_persona(world_id, PersonaRecord(name=name, spec=memory.persona, position=position),
                                           memory)
            events = [Event(id=i + 1, kind=EventKind.ACTION, step=i, time=start + timedelta(seconds=i),
                            source=names[i % PERSONAS], type="TALK", content=f"Message {i} about the plan.")
                      for i in range(EVENTS)]
            await storage.write_step(StepWrite(world_id=world_id, events=events))
    finally:
        await storage.close()


async def restart(folder: Path) -> float:
    from adapters.memory import MemoryAdapter
    from bots.app import TroupeApp
    from config.settings import Settings

    app = TroupeApp(Settings(data_dir=folder, llm={"provider": "demo"}))
    started = time.perf_counter()
    await app.start([MemoryAdapter()])
    took = time.perf_counter() - started
    assert len(app.sessions.all()) == CHANNELS
    await app.stop()
    return took


def restart_times(runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="troupe-restart-") as folder:
        asyncio.run(long_lived_database(Path(folder) / "troupe.db"))
        return [asyncio.run(restart(Path(folder))) for _ in range(runs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    runs = [one_run() for _ in range(max(1, args.runs))]
    for index, run in enumerate(runs, 1):
        print(f"run {index}: " + ", ".join(f"{k} {v:.3f}" for k, v in run.items()), file=sys.stderr)
    restarts = restart_times(len(runs))
    print("restarts: " + ", ".join(f"{t:.3f}" for t in restarts), file=sys.stderr)
    summary = {"runs": len(runs), **{key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]},
               "restart_s": round(statistics.median(restarts), 3)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
