"""Research cards with a persona whose words verification withholds (here: it says it is an AI).

Its answers are never shown as if posted: every card names it, says why and what to do, and the
other personas' results are delivered as usual."""

from __future__ import annotations

import json

import pytest

from tests.support.testbot import TEAM

ROB = {"name": "Rob Ott", "age": 40, "occupation": "tester",
       "beliefs": ["As an AI language model I cannot have opinions"]}
#: Which check stopped his words, never what it found in them (which quotes them).
WITHHELD = "withheld by verification (held by the leakage check)"


@pytest.fixture
async def yes_no(research_room):
    return await research_room("Should we ship the new onboarding flow on Friday?", more=(ROB,))


@pytest.fixture
async def open_question(research_room):
    return await research_room("What do you think of the new pricing page?", more=(ROB,))


def card_of(sent):
    return next(s.card for s in sent if s.kind == "card")


def assert_rob_withheld(card) -> None:
    """Rob appears once, as withheld with why and what to do; no line of the card gives his words."""
    rob = [f for f in card.fields if f.name.startswith("Rob Ott")]
    assert len(rob) == 1 and rob[0].value.startswith("answers " + WITHHELD), rob
    assert "`persona remove Rob Ott`" in rob[0].value
    for line in card.text.splitlines()[1:]:
        assert "Rob" not in line and "withheld by verification" not in line or "left out" in line, line
    assert {f.name for f in card.fields} == {*TEAM, "Rob Ott"}


async def test_summary_names_the_withheld_persona_and_lists_it_under_no_stance(yes_no) -> None:
    assert_rob_withheld(card_of(await yes_no.command("summary")))


async def test_summary_quotes_nothing_from_a_message_verification_held(open_question) -> None:
    """A first sentence of a held message passes verification on its own; it is still no quote."""
    assert_rob_withheld(card_of(await open_question.command("summary")))


async def test_summary_leaves_out_a_withheld_key_point_with_a_count_never_a_nameless_bullet(open_question) -> None:
    card = card_of(await open_question.command('focus "What do you think of remote work?"')
                   + open_question._new())
    assert not any(line.startswith("• (withheld") for line in card.text.splitlines()), card.text
    assert "(1 key point left out" in card.text
    assert_rob_withheld(card)


async def test_focus_card_does_not_put_a_held_persona_under_a_stance(yes_no) -> None:
    card = card_of(await yes_no.command('focus "Should we ship on Friday?"') + yes_no._new())
    assert_rob_withheld(card)
    assert not any("Rob" in line for line in card.text.splitlines() if line.startswith("• "))


async def test_extract_delivers_the_other_records_and_names_the_withheld_one(yes_no) -> None:
    sent = await yes_no.command("extract stance")
    reply = next(s for s in sent if s.file)
    assert reply.text.startswith("Extracted 3 persona record(s).")
    assert f"Rob Ott: record {WITHHELD}" in reply.text and "`persona remove Rob Ott`" in reply.text
    records = json.loads(reply.file[1])["records"]
    assert set(records) == set(TEAM)


async def test_poll_does_not_count_a_vote_whose_reason_is_withheld(open_question) -> None:
    card = card_of(await open_question.command('poll "Which plan?" basic pro'))
    votes = {line.split(":")[0]: int(line.split(":")[1].split()[0]) for line in card.text.splitlines()[1:]}
    assert sum(votes.values()) == len(TEAM)
    assert "Rob" not in card.text
    rob = [f for f in card.fields if f.name.startswith("Rob Ott")]
    assert [f.name for f in rob] == ["Rob Ott: not counted"]
    assert rob[0].value.startswith("vote and reason " + WITHHELD)
