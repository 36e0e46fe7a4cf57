"""Long conversations: old episodes are consolidated so prompts stay bounded."""

from __future__ import annotations

import asyncio
import logging
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


async def test_a_reply_does_not_wait_for_memory_consolidation(server, tmp_path):
    """Folding old episodes runs after the turn that made it due, while later turns are answered."""
    stack = stack_for(server, tmp_path)
    rule, release = TurnRule(), asyncio.Event()

    async def responder(body):
        if kind_of(body) == "consolidate":
            await release.wait()  # a slow model, for consolidations only
        return rule(body)

    server.responder = responder
    lisa = TinyPerson(load_persona(AGENTS / "Lisa.agent.json"), stack.model, memory=MemoryConfig(window=2, batch=1))
    for turn in range(3):
        result = await asyncio.wait_for(lisa.listen_and_act(f"Message number {turn}", "Sara"), 10)
        assert f"Sara: Message number {turn}>" in result.actions[-1].content
    assert lisa.memory_work is not None and lisa.episodic.summary == ""
    assert [kind_of(r.body) for r in server.requests].count("consolidate") == 1, "one fold at a time"

    release.set()
    await lisa.settle()
    assert lisa.memory_work is None
    # The fold covers what was old when it started; turns taken meanwhile are kept verbatim.
    assert lisa.episodic.consolidated_until == 1 and lisa.episodic.summary == "I remember 1 earlier moments."
    await lisa.listen_and_act("Message number 3", "Sara")
    await lisa.settle()
    last_turn = [r for r in server.requests if kind_of(r.body) == "agent_turn"][-1]
    assert "I remember 1 earlier moments." in last_turn.body["messages"][1]["content"]
    assert lisa.episodic.consolidated_until > 1, "the next fold started after the next turn"
    await stack.model.aclose()


async def test_a_failed_consolidation_is_tried_again_after_the_next_turn(server, tmp_path, caplog):
    stack = stack_for(server, tmp_path)
    rule = TurnRule()
    failures = [2]

    def responder(body):
        if kind_of(body) == "consolidate" and failures[0] > 0:
            failures[0] -= 1
            return '{"summary": "I remember'  # cut off mid-answer, every retry too
        return rule(body)

    server.responder = responder
    lisa = TinyPerson(load_persona(AGENTS / "Lisa.agent.json"), stack.model, memory=MemoryConfig(window=2, batch=1))
    with caplog.at_level(logging.WARNING, logger="simulation.agent"):
        await lisa.listen_and_act("Message number 0", "Sara")
        await lisa.settle()
    assert "Lisa Carter: memory consolidation failed" in caplog.text
    assert lisa.episodic.consolidated_until == 0 and lisa.episodic.summary == ""

    result = await lisa.listen_and_act("Message number 1", "Sara")
    assert "Sara: Message number 1>" in result.actions[-1].content, "the turn itself is unaffected"
    await lisa.settle()
    assert lisa.episodic.consolidated_until == 4 and lisa.episodic.summary.startswith("I remember")
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
