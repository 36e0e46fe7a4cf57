"""How economical is one agent turn? Calls, prompt tokens, persona coverage, prompt growth, overhead.

    python -m tests.bench.llm_economy

Runs against the fake model server on loopback (zero model latency) with the real openai client.
Scenario A: Lisa, Oscar and Marcos (TinyTroupe's own files, unchanged) answer one broadcast.
Scenario B: one persona in a 200-turn conversation; prompt size at turn 200 over turn 10, and the
share of each turn's prompt that repeats the previous turn's from the start (``stable_prefix_share``:
what providers' prompt caches bill at a fraction).
Scenario C: one persona of about 5,000 tokens of nested JSON (TinyTroupe's newer files), one turn.
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
from simulation.llm.tokens import count_request_tokens, count_tokens
from simulation.persona import load_persona
from simulation.untrusted import printable
from simulation.world import TinyWorld
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.turns import TurnRule, kind_of

AGENTS = Path(__file__).resolve().parents[3] / "shared" / "tinytroupe" / "agents"
LARGE = Path(__file__).resolve().parents[1] / "data" / "tinytroupe" / "large" / "Oluwaseun Adeyemi-Brandt.agent.json"
QUESTION = "Which would you rather buy for your home: a $300 smart speaker or a $300 robot vacuum? Why?"


def leaves(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [x for v in data.values() for x in leaves(v)]
    if isinstance(data, list):
        return [x for v in data for x in leaves(v)]
    if isinstance(data, (str, int, float)) and not isinstance(data, bool):
        return [printable(str(data), one_line=True)]  # as a prompt shows text: controls out, one line
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
    prefix_shares: list[float] = []
    previous: str | None = None
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
        prompt = "\n".join(m["content"] for m in turn_request.body["messages"])
        if previous is not None:
            prefix_shares.append(count_tokens(_common_prefix(previous, prompt)) / count_tokens(prompt))
        previous = prompt
        overheads.append(elapsed - sum(r.handled_s for r in made))
    await built.model.aclose()
    return {
        "growth_200_over_10": round(turn_tokens[199] / turn_tokens[9], 3),
        "overhead_ms_p50": round(statistics.median(overheads) * 1000, 2),
        "turn_10_prompt_tokens": turn_tokens[9],
        "turn_200_prompt_tokens": turn_tokens[199],
        "stable_prefix_share": round(statistics.mean(prefix_shares), 3),
    }


def _common_prefix(a: str, b: str) -> str:
    """The longest start ``a`` and ``b`` share: what a provider's prompt cache bills at a fraction."""
    size = 0
    for x, y in zip(a, b):
        if x != y:
            break
        size += 1
    return b[:size]


async def scenario_c(server: FakeOpenAIServer, data_dir: Path) -> dict[str, float]:
    """A persona of about 5,000 tokens of nested JSON, as TinyTroupe's newer factory writes them."""
    built = stack(server, data_dir)
    spec = load_persona(LARGE)
    person = TinyPerson(spec, built.model, world_name="interview")
    server.requests.clear()
    person.listen(QUESTION, "moderator")
    await person.act()
    await built.model.aclose()
    turn = next(r for r in server.requests if kind_of(r.body) == "agent_turn")
    compact = json.dumps(spec.to_tinytroupe_dict(), ensure_ascii=False, separators=(",", ":"))
    prompt = "\n".join(m["content"] for m in turn.body["messages"])
    values = leaves(spec.to_tinytroupe_dict())
    return {
        "large_persona_json_tokens": count_tokens(compact),
        "large_persona_prompt_tokens": request_tokens(turn.body),
        "large_persona_coverage": round(sum(v in prompt for v in values) / len(values), 4),
    }


async def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeOpenAIServer() as server:
            server.responder = TurnRule()
            a = await scenario_a(server, Path(tmp))
            b = await scenario_b(server, Path(tmp))
            c = await scenario_c(server, Path(tmp))
    print(f"scenario A (3 TinyTroupe personas, one broadcast, one step): {a}", file=sys.stderr)
    print(f"scenario B (one persona, 200 turns): {b}", file=sys.stderr)
    print(f"scenario C (one persona of ~5,000 tokens of nested JSON, one turn): {c}", file=sys.stderr)
    return {
        "calls_per_agent_turn": a["calls_per_agent_turn"],
        "prompt_tokens_per_agent_turn": a["prompt_tokens_per_agent_turn"],
        "persona_coverage": a["persona_coverage"],
        "growth_200_over_10": b["growth_200_over_10"],
        "overhead_ms_p50": b["overhead_ms_p50"],
        "stable_prefix_share": b["stable_prefix_share"],
        "large_persona_json_tokens": c["large_persona_json_tokens"],
        "large_persona_prompt_tokens": c["large_persona_prompt_tokens"],
        "large_persona_coverage": c["large_persona_coverage"],
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
