"""Long conversations: old episodes are consolidated so prompts stay bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulation.agent import TinyPerson
from simulation.memory import MemoryConfig
from simulation.persona import load_persona
from tests.fakes.openai_server import FakeOpenAIServer, count_tokens
from tests.sim_support import TurnRule, kind_of
from tests.test_world import AGENTS, stack_for


@pytest.fixture
async def server():
    async with FakeOpenAIServer() as fake:
        fake.responder = TurnRule()
        yield fake


def prompt_tokens(request) -> int:
    return sum(count_tokens(m["content"]) for m in request.body["messages"])


async def test_consolidation_keeps_prompts_bounded_over_a_long_conversation(server, tmp_path):
    stack = stack_for(server, tmp_path)
    lisa = TinyPerson(load_persona(AGENTS / "Lisa.agent.json"), stack.model, memory=MemoryConfig(window=8, batch=8))
    for turn in range(60):
        await lisa.listen_and_act(f"Message number {turn}: tell me more about search ranking.", "Sara")
    turns = [r for r in server.requests if kind_of(r.body) == "agent_turn"]
    consolidations = [r for r in server.requests if kind_of(r.body) == "consolidate"]
    assert len(turns) == 60
    assert len(consolidations) >= 5, "old episodes are folded in regularly"
    sizes = [prompt_tokens(r) for r in turns]
    peak_early = max(sizes[:10])
    assert max(sizes[30:]) <= peak_early * 1.4, f"prompts grew: {sizes[:10]} ... {sizes[-10:]}"
    # The consolidated past and facts reach later prompts; the earliest messages do not appear verbatim.
    last_prompt = turns[-1].body["messages"][1]["content"]
    assert "Earlier (your memory):" in last_prompt and "I remember" in last_prompt
    assert "Facts you know:" in last_prompt
    assert "Message number 0:" not in last_prompt
    assert "Message number 59:" in last_prompt
    # Memory still holds every episode; only the prompt is bounded.
    assert sum(1 for e in lisa.episodic.episodes if e.kind == "stimulus") == 60
    await stack.model.aclose()


async def test_a_failed_turn_leaves_memory_unchanged(server, tmp_path):
    stack = stack_for(server, tmp_path)
    oscar = TinyPerson(load_persona(AGENTS / "Oscar.agent.json"), stack.model)
    oscar.listen("Hi Oscar", "Ana")
    server.fail("malformed_json", times=2)
    from simulation.llm.errors import StructuredOutputError

    with pytest.raises(StructuredOutputError):
        await oscar.act()
    assert [e.kind for e in oscar.episodic.episodes] == ["stimulus"]
    assert oscar.has_unread(), "the stimulus is still there to answer"
    result = await oscar.act()
    assert [a.type.value for a in result.actions] == ["THINK", "TALK"]
    await stack.model.aclose()


async def test_cognitive_state_goals_and_definitions(server, tmp_path):
    stack = stack_for(server, tmp_path)
    marcos = TinyPerson(load_persona(AGENTS / "Marcos.agent.json"), stack.model)
    marcos.internalize_goal("Convince the group to fund epilepsy research")
    marcos.define("age", 36)
    marcos.define("preferences.likes", ["Chess"])
    marcos.see("A chart of clinic waiting times")
    marcos.think("I should be concise")
    assert marcos.spec.to_tinytroupe_dict()["age"] == 36
    await marcos.act()
    prompt = server.requests[-1].body["messages"]
    assert "age: 36" in prompt[0]["content"] and "Chess" in prompt[0]["content"]
    assert "(new goal) Convince the group" in prompt[1]["content"]
    assert "(you see) A chart of clinic waiting times" in prompt[1]["content"]
    assert "(a thought) I should be concise" in prompt[1]["content"]
    assert marcos.cognitive_state.emotions == "calm"
    await stack.model.aclose()
