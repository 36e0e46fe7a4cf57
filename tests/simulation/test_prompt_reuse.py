"""A persona's prompt pieces kept from one of its turns to the next are exactly what building them
afresh gives: the lines of its conversation, seen as that persona, and its persona text."""

from __future__ import annotations

import json
from datetime import datetime

from simulation.memory import Episode
from simulation.persona import find_bundled_persona
from simulation.prompts import TURN_RULES, WORDS_RULES, PromptPieces, render_episode, system_prompt, turn_messages

T = datetime(2026, 12, 7, 9, 30)


def said(source: str, content: str, target: str | None = None) -> Episode:
    return Episode(step=1, time=T, kind="stimulus", type="CONVERSATION", source=source, content=content, target=target)


def prompt(past: list[Episode], new: list[Episode], lines: PromptPieces | None) -> list[str]:
    spec = find_bundled_persona("Priya Nair")
    messages = turn_messages(name=spec.name, persona=spec.to_tinytroupe_dict(), world="Planning", situation=None,
                             summary="", facts=[], state={}, past=past, new=new, pieces=lines)
    return [m.content for m in messages]


def test_prompts_built_from_kept_lines_are_the_prompts_built_afresh_turn_after_turn():
    lines = PromptPieces()
    conversation: list[Episode] = []
    for turn in range(6):
        new = [said("Tomasz Kowalski", f"Point {turn}: the onboarding\nflow is long", target="Priya Nair" if turn % 2 else None),
               said("Amara Okafor", f"Reply {turn}")]
        assert prompt(conversation, new, lines) == prompt(conversation, new, None)
        conversation += new


def test_the_same_moments_read_by_another_persona_are_rendered_for_that_persona():
    lines = PromptPieces()
    moment = said("Tomasz Kowalski", "Can you check the numbers?", target="Priya Nair")
    assert lines.lines([moment], "Priya Nair") == [render_episode(moment, "Priya Nair")]
    assert "(to you)" in lines.lines([moment], "Priya Nair")[0]
    as_amara = lines.lines([moment], "Amara Okafor")
    assert as_amara == [render_episode(moment, "Amara Okafor")] and "(to you)" not in as_amara[0]


def test_an_equal_but_different_moment_is_rendered_as_itself():
    """Lines are kept by the episode itself, not by what it looks like at first sight."""
    lines = PromptPieces()
    first = said("Tomasz Kowalski", "Shall we ship on Friday?")
    lines.lines([first], "Priya Nair")
    later = first.model_copy(update={"content": "Shall we ship on Monday?"})
    kept, fresh = lines.lines([first, later], "Priya Nair")
    assert "Friday" in kept and "Monday" in fresh and "Friday" not in fresh


def test_only_the_last_prompts_lines_are_kept():
    lines = PromptPieces()
    many = [said("Tomasz Kowalski", f"Message {n}") for n in range(200)]
    lines.lines(many, "Priya Nair")
    assert len(lines._kept) == 200
    lines.lines(many[-3:], "Priya Nair")
    assert len(lines._kept) == 3  # a persona holds one prompt's lines, however long it has talked


def test_a_persona_given_as_json_gets_the_system_prompt_given_as_fields():
    data = find_bundled_persona("Diego Hernández").to_tinytroupe_dict()
    encoded = json.dumps(data, ensure_ascii=False)
    assert system_prompt("Diego Hernández", encoded, "Planning", "Launch week") == \
        system_prompt("Diego Hernández", data, "Planning", "Launch week")


def test_a_kept_system_prompt_follows_the_world_the_situation_the_rules_and_the_persona():
    pieces = PromptPieces()
    data = find_bundled_persona("Diego Hernández").to_tinytroupe_dict()
    encoded = json.dumps(data, ensure_ascii=False)
    for world, situation, rules in [("Planning", None, TURN_RULES), ("Planning", "Launch week", TURN_RULES),
                                    ("Retro", "Launch week", TURN_RULES), ("Retro", "Launch week", WORDS_RULES),
                                    ("Planning", None, TURN_RULES)]:
        assert pieces.system("Diego Hernández", encoded, world, situation, rules) == \
            system_prompt("Diego Hernández", data, world, situation, rules)
    older = json.dumps({**data, "age": 61}, ensure_ascii=False)
    assert "61" in pieces.system("Diego Hernández", older, "Retro", None, TURN_RULES)
