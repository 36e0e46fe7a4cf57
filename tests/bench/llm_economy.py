"""How economical is one agent turn? Calls, prompt tokens, persona coverage, prompt growth, overhead.

    python -m tests.bench.llm_economy

Runs against the fake model server on loopback (zero model latency) with the real openai client.
Scenario A: Lisa, Oscar and Marcos (TinyTroupe's own files, unchanged) answer one broadcast.
Scenario B: one persona in a 200-turn conversation; prompt size at turn 200 over turn 10.
Prints one JSON object on its last line.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from config.settings import Settings
from simulation.agent import TinyPerson
from simulation.llm.factory import build_model
from simulation.llm.tokens import count_request_tokens
from simulation.persona import load_persona
from simulation.world import TinyWorld
from tests.fakes.openai_server import FakeOpenAIServer
from tests.sim_support import TurnRule, kind_of

AGENTS = Path(__file__).resolve().parents[3] / "shared" / "tinytroupe" / "agents"
QUESTION = "Which would you rather buy for your home: a $300 smart speaker or a $300 robot vacuum? Why?"


def leaves(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [x for v in data.values() for x in leaves(v)]
    if isinstance(data, list):
        return [x for v in data for x in leaves(v)]
    if isinstance(data, (str, int, float)) and not isinstance(data, bool):
        return [str(data)]
    return []


def request_tokens(body: dict[str, Any]) -> int:
    return count_request_tokens(body["messages"], body.get("response_format"))


def stack(server: FakeOpenAIServer, data_dir: Path):
    return build_model(
        Settings(
            data_dir=data_dir,
            llm={"model": "gpt-4o-mini", "base_url": server.base_url, "api_key": "sk-bench", "cache": False},
        )
    )


async def scenario_a(server: FakeOpenAIServer, data_dir: Path) -> dict[str, float]:
    built = stack(server, data_dir)
    agents = [TinyPerson(load_persona(AGENTS / f"{n}.agent.json"), built.model) for n in ("Lisa", "Oscar", "Marcos")]
    world = TinyWorld("smart-home", agents, model=built.model)
    server.requests.clear()
    await world.broadcast(QUESTION, "moderator")
    await world.run(1)
    await built.model.aclose()
    turns = len(agents)
    tokens = [request_tokens(r.body) for r in server.requests]
    coverage = []
    for agent in agents:
        request = next(r for r in server.requests if r.body["messages"][0]["content"].startswith(f"You are {agent.name},"))
        prompt = "\n".join(m["content"] for m in request.body["messages"])
        values = leaves(agent.spec.to_tinytroupe_dict())
        coverage.append(sum(v in prompt for v in values) / len(values))
    return {
        "calls_per_agent_turn": len(server.requests) / turns,
        "prompt_tokens_per_agent_turn": round(statistics.mean(tokens), 1),
        "persona_coverage": round(min(coverage), 4),
    }


async def scenario_b(server: FakeOpenAIServer, data_dir: Path) -> dict[str, float]:
    built = stack(server, data_dir)
    lisa = TinyPerson(load_persona(AGENTS / "Lisa.agent.json"), built.model, world_name="interview")
    server.requests.clear()
    turn_tokens: list[int] = []
    overheads: list[float] = []
    for turn in range(1, 201):
        lisa.listen(
            f"Question {turn}: how would you measure whether change #{turn} to the ranking model "
            "actually helped people find what they were looking for?",
            "Sara",
        )
        before = len(server.requests)
        started = time.perf_counter()
        await lisa.act()
        elapsed = time.perf_counter() - started
        made = server.requests[before:]
        turn_request = next(r for r in made if kind_of(r.body) == "agent_turn")
        turn_tokens.append(request_tokens(turn_request.body))
        overheads.append(elapsed - sum(r.handled_s for r in made))
    await built.model.aclose()
    return {
        "growth_200_over_10": round(turn_tokens[199] / turn_tokens[9], 3),
        "overhead_ms_p50": round(statistics.median(overheads) * 1000, 2),
        "turn_10_prompt_tokens": turn_tokens[9],
        "turn_200_prompt_tokens": turn_tokens[199],
    }


async def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeOpenAIServer() as server:
            server.responder = TurnRule()
            a = await scenario_a(server, Path(tmp))
            b = await scenario_b(server, Path(tmp))
    print(f"scenario A (3 TinyTroupe personas, one broadcast, one step): {a}", file=sys.stderr)
    print(f"scenario B (one persona, 200 turns): {b}", file=sys.stderr)
    return {
        "calls_per_agent_turn": a["calls_per_agent_turn"],
        "prompt_tokens_per_agent_turn": a["prompt_tokens_per_agent_turn"],
        "persona_coverage": a["persona_coverage"],
        "growth_200_over_10": b["growth_200_over_10"],
        "overhead_ms_p50": b["overhead_ms_p50"],
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
