"""Forking a world: a control and an intervention run side by side from one shared past."""

from __future__ import annotations

import pytest

from simulation.events import EventKind
from simulation.world import TinyWorld, WorldError
from tests.support.worlds import make_world, stack_for


def dump(world: TinyWorld) -> list[dict]:
    return [e.model_dump(mode="json") for e in world.events]


def heard(world: TinyWorld) -> list[str]:
    return [e.content for e in world.events if e.kind is EventKind.STIMULUS]


def memories(world: TinyWorld) -> dict[str, list[str]]:
    return {a.name: [e.content for e in a.episodic.episodes] for a in world.agents}


async def test_a_fork_starts_where_its_world_is_and_then_neither_hears_the_other(server, tmp_path):
    stack = stack_for(server, tmp_path)
    try:
        world = make_world(stack.model, policy="round_robin")
        await world.broadcast("A $300 smart speaker or a $300 robot vacuum?")
        await world.run(2)
        calls = len(server.requests)
        fork = await world.fork("discount")
        assert len(server.requests) == calls, "a fork makes no model call"
        assert (fork.name, fork.id) == ("discount", "research/discount")
        assert dump(fork) == dump(world) and memories(fork) == memories(world)
        assert fork.clock == world.clock and fork.policy == world.policy
        assert [a.cognitive_state for a in fork.agents] == [a.cognitive_state for a in world.agents]
        # The personas still live where they were; what they spend is the fork's.
        assert {a.world_name for a in fork.agents} == {"research"} and {a.world_id for a in fork.agents} == {fork.id}

        await fork.broadcast("News: the speaker is now $199.")
        await world.broadcast("Nothing changed: both still cost $300.")
        assert "News: the speaker is now $199." not in heard(world)
        assert "Nothing changed: both still cost $300." not in heard(fork)
        for name, episodes in memories(world).items():
            assert not any("$199" in text for text in episodes), name
        for name, episodes in memories(fork).items():
            assert not any("Nothing changed" in text for text in episodes), name

        # Both go on from the same turn-taking state: the same persona speaks next in each.
        [original_turn] = [e for e in await world.step() if e.kind is EventKind.ACTION][:1]
        [forked_turn] = [e for e in await fork.step() if e.kind is EventKind.ACTION][:1]
        assert original_turn.source == forked_turn.source
        assert world.clock.step == fork.clock.step
    finally:
        await stack.model.aclose()


async def test_forks_of_forks_are_independent_and_a_fork_needs_a_name(server, tmp_path):
    stack = stack_for(server, tmp_path)
    try:
        world = make_world(stack.model)
        await world.broadcast("Which would you buy?")
        await world.step()
        first = await world.fork("a")
        second = await first.fork("a2")
        assert second.id == "research/a/a2"
        await second.broadcast("Only in a2.")
        await first.broadcast("Only in a.")
        assert "Only in a2." not in heard(first) and "Only in a2." not in heard(world)
        assert "Only in a." not in heard(second) and "Only in a." not in heard(world)
        with pytest.raises(WorldError, match="needs a name"):
            await world.fork("  ")
    finally:
        await stack.model.aclose()


async def test_with_the_cache_a_variant_replaying_the_shared_opening_costs_no_call(server, tmp_path):
    cache = tmp_path / "cache.sqlite3"
    first = stack_for(server, tmp_path, cache=True, cache_path=cache)
    control = make_world(first.model)
    await control.broadcast("A $300 smart speaker or a $300 robot vacuum?")
    await control.run(2)
    await first.model.aclose()
    calls = len(server.requests)

    # The intervention's run from scratch: its shared opening comes from the cache, only what
    # follows the change is asked of the model.
    second = stack_for(server, tmp_path, cache=True, cache_path=cache)
    try:
        variant = make_world(second.model)
        await variant.broadcast("A $300 smart speaker or a $300 robot vacuum?")
        await variant.run(2)
        assert len(server.requests) == calls, "the shared opening was asked again"
        assert dump(variant) == dump(control)
        await variant.broadcast("News: the speaker is now $199.")
        await variant.step()
        assert len(server.requests) > calls
    finally:
        await second.model.aclose()


async def test_a_fork_from_an_earlier_event_forgets_what_came_after_it(server, tmp_path):
    stack = stack_for(server, tmp_path)
    try:
        world = make_world(stack.model, policy="everyone")
        opening = await world.broadcast("Would you pay $300 for a smart speaker?")
        await world.step()
        later = await world.broadcast("It now comes with a free robot vacuum.")
        await world.step()
        calls = len(server.requests)
        earlier = await world.fork("no-vacuum", at=opening.id)
        assert len(server.requests) == calls, "a fork makes no model call"
        assert [e.id for e in earlier.events] == [opening.id]
        for original, copy in zip(world.agents, earlier.agents, strict=True):
            remembered = [e.content for e in copy.episodic.episodes]
            assert remembered == ["Would you pay $300 for a smart speaker?"]
            assert copy.has_unread(), f"{copy.name} still owes an answer to the opening"
            assert any(e.content == later.content for e in original.episodic.episodes)
        # The fork goes on from there: its next event follows the one it was forked at.
        assert (await earlier.broadcast("What if it were $199?")).id == opening.id + 1

        with pytest.raises(WorldError, match=r"no event #99 .* from #1 to #\d+"):
            await world.fork("nowhere", at=99)
    finally:
        await stack.model.aclose()


async def test_a_fork_from_before_what_a_memory_folded_is_refused(server, tmp_path):
    from simulation.agent import TinyPerson
    from simulation.memory import MemoryConfig
    from simulation.persona import load_persona
    from tests.support.paths import AGENTS

    stack = stack_for(server, tmp_path)
    try:
        lisa = TinyPerson(load_persona(AGENTS / "Lisa.agent.json"), stack.model,
                          memory=MemoryConfig(window=2, batch=1, listening_batch=1))
        world = TinyWorld("research", [lisa], model=stack.model)
        first = await world.broadcast("What do you make of the $300 speaker?")
        for n in range(4):
            await world.broadcast(f"Point {n}: and the vacuum?")
            await world.step()
        await world.settle()
        assert lisa.episodic.consolidated_until > 1, "her memory folded its oldest moments"
        with pytest.raises(WorldError, match=r"Lisa Carter has already folded what came after event #1 .* later event"):
            await world.fork("early", at=first.id)
        later = await world.fork("later", at=world.event_count - 1)
        assert later.event_count == world.event_count - 1
    finally:
        await stack.model.aclose()
