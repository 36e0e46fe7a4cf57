"""Persona factory: batches, distinct names, re-asks, typed failures and sampling quotas."""

from __future__ import annotations

import json
import re

import pytest

from simulation.factory import (
    PersonaFactory,
    PersonaFactoryError,
    SamplingCell,
    SamplingPlan,
)
from simulation.llm.demo import DemoModel
from simulation.persona import PersonaSpec
from tests.support.paths import TINYTROUPE
from tests.support.personas import batch, person

POPULATION = "Adults living in Spain: varied ages, regions, incomes and jobs."


def slots_of(body: dict) -> list[str]:
    """The per-persona constraints a factory request lists ("1. under 30; in cities")."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    count = int(re.search(r"Create exactly (\d+) personas", user).group(1))
    lines = user.split("in this order:\n", 1)[1].splitlines()
    return [line.split(". ", 1)[1] for line in lines[:count]]


class CountingResponder:
    """Answers each factory request with as many personas as asked, numbered across calls."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self, body: dict) -> str:
        people = []
        for slot in slots_of(body):
            self.made += 1
            age = 24 if slot.startswith("under 30") else 45
            people.append(person(f"Persona Number{self.made}", age, residence=slot or "anywhere"))
        return batch(*people)


def user_prompt(request) -> str:
    return next(m["content"] for m in request.body["messages"] if m["role"] == "user")


async def test_one_structured_call_gives_valid_tinytroupe_personas(model, fake_openai):
    fake_openai.script([batch(person("Lucía Romero"), person("Javier Ruiz", 29), person("Marta Navarro", 67))])

    specs = await PersonaFactory(model, context="Survey about public transport").generate(3, POPULATION)

    assert [s.name for s in specs] == ["Lucía Romero", "Javier Ruiz", "Marta Navarro"]
    assert all(isinstance(s, PersonaSpec) for s in specs)
    assert specs[1].age == 29 and specs[0].occupation_title == "Nurse"
    # Saved in TinyTroupe's layout, so generated people load like hand-written ones.
    data = specs[0].to_tinytroupe_dict()
    assert data["personality"]["traits"] == ["Calm under pressure."]
    assert data["preferences"]["likes"] == ["Paella on Sundays."]
    assert len(fake_openai.requests) == 1
    body = fake_openai.requests[0].body
    assert body["response_format"]["json_schema"]["name"] == "PersonaBatch"
    assert POPULATION in user_prompt(fake_openai.requests[0])
    assert "Survey about public transport" in body["messages"][0]["content"]


async def test_personas_come_in_batches_that_know_who_exists(model, fake_openai):
    fake_openai.responder = CountingResponder()

    specs = await PersonaFactory(model, batch_size=5).generate(7, POPULATION, existing_names=["Ana Costa"])

    assert len(specs) == 7 and len({s.name for s in specs}) == 7
    assert [len(slots_of(r.body)) for r in fake_openai.requests] == [5, 2]
    second = user_prompt(fake_openai.requests[1])
    assert "Persona Number1" in second and "Ana Costa" in second, "later batches are told the names taken"
    assert "Already created" in second


async def test_duplicate_names_are_asked_for_again_only_for_the_clashing_slots(model, fake_openai):
    fake_openai.script(
        [
            batch(person("Ana Costa"), person("Pablo Torres"), person("pablo  torres")),
            batch(person("Irene Domínguez"), person("Raúl Sánchez")),
        ]
    )

    specs = await PersonaFactory(model).generate(3, POPULATION, existing_names=["ANA COSTA"])

    assert [s.name for s in specs] == ["Irene Domínguez", "Pablo Torres", "Raúl Sánchez"]
    assert len(fake_openai.requests) == 2
    reask = user_prompt(fake_openai.requests[1])
    assert "already taken" in reask and "Create exactly 2 personas" in reask


async def test_a_name_still_taken_after_the_re_ask_is_renamed_the_same_way_every_time(model, fake_openai):
    replies = [batch(person("Ana Costa"), person("Ana Costa")), batch(person("Ana Costa"))]
    fake_openai.script(replies)
    first = await PersonaFactory(model).generate(2, POPULATION)
    fake_openai.script(replies)
    second = await PersonaFactory(model).generate(2, POPULATION)

    assert [s.name for s in first] == ["Ana Costa", "Ana A. Costa"]
    assert [s.name for s in second] == [s.name for s in first]


async def test_a_copy_of_a_persona_already_in_the_world_is_not_renamed_into_a_look_alike(model, fake_openai):
    """A small model copies the names it is told are taken; "Henrik A. Lindqvist" beside Henrik
    Lindqvist would pass for him in the channel."""
    fake_openai.script([batch(person("Henrik Lindqvist"), person("Ana Costa")), batch(person("Henrik Lindqvist"))])

    with pytest.raises(PersonaFactoryError) as caught:
        await PersonaFactory(model).generate(2, POPULATION, existing_names=["Henrik Lindqvist"])

    assert [s.name for s in caught.value.made] == ["Ana Costa"]
    assert caught.value.problems == ["persona 1: name 'Henrik Lindqvist' belongs to a persona already in the world"]


async def test_invalid_personas_twice_raise_a_typed_error_naming_the_problem(model, fake_openai):
    fake_openai.script([batch(person("Ok Person"), person("Old Person", 240)), batch(person("Old Person", -3))])

    with pytest.raises(PersonaFactoryError) as caught:
        await PersonaFactory(model).generate(2, POPULATION)

    assert len(fake_openai.requests) == 2
    assert "age 240 is not a plausible age" in user_prompt(fake_openai.requests[1])
    assert any("age -3" in p for p in caught.value.problems)
    assert [s.name for s in caught.value.made] == ["Ok Person"], "the valid one is kept for the caller"


async def test_a_batch_the_model_gets_wrong_twice_does_not_stop_the_batches_after_it(model, fake_openai):
    fake_openai.script([batch(person("First One")), batch(person("Old Person", 240)), batch(person("Old Person", 241)),
                        batch(person("Third One"))])

    with pytest.raises(PersonaFactoryError) as caught:
        await PersonaFactory(model, batch_size=1).generate(3, POPULATION)

    assert [s.name for s in caught.value.made] == ["First One", "Third One"]
    (problem,) = caught.value.problems
    assert problem.startswith("persona 2: ") and "age 241" in problem, problem


async def test_too_few_personas_are_asked_for_again(model, fake_openai):
    fake_openai.script([batch(person("Only One")), batch(person("Second One"))])

    specs = await PersonaFactory(model).generate(2, POPULATION)

    assert [s.name for s in specs] == ["Only One", "Second One"]
    assert "fewer personas than asked" in user_prompt(fake_openai.requests[1])


async def test_malformed_replies_twice_raise_persona_factory_error(model, fake_openai):
    fake_openai.fail("malformed_json", times=2)

    with pytest.raises(PersonaFactoryError) as caught:
        await PersonaFactory(model).generate(2, POPULATION)

    assert len(fake_openai.requests) == 2
    assert "not valid JSON" in str(caught.value) and caught.value.raw


async def test_a_text_sampling_plan_becomes_exact_quotas_in_the_prompts(model, fake_openai):
    plan = {
        "cells": [
            {"share": 0.2, "traits": ["under 30", "lives in a city"]},
            {"share": 0.2, "traits": ["under 30", "lives outside cities"]},
            {"share": 0.6, "traits": ["30 or older"]},
        ]
    }
    responder = CountingResponder()
    fake_openai.responder = lambda body: json.dumps(plan) if "sampling plan" in body["messages"][0]["content"] else responder(body)
    factory = PersonaFactory(model)

    specs = await factory.generate(10, POPULATION, sampling_plan="40 % under 30, half of them in cities")

    assert len(specs) == 10
    assert fake_openai.requests[0].body["response_format"]["json_schema"]["name"] == "SamplingPlan"
    slots = [s for r in fake_openai.requests[1:] for s in slots_of(r.body)]
    assert sorted(slots) == sorted(["under 30; lives in a city"] * 2 + ["under 30; lives outside cities"] * 2 + ["30 or older"] * 6)
    assert slots[:5].count("30 or older") == 3, "each batch mixes the groups"
    assert [c for _, c in factory.assignments] == slots
    assert all(s.residence == c for s, (_, c) in zip(specs, factory.assignments))


@pytest.mark.parametrize("n", [1, 3, 7, 10, 23])
def test_quota_allocation_sums_to_n_and_is_deterministic(n):
    plan = SamplingPlan(cells=[SamplingCell(share=0.4, traits=["under 30"]), SamplingCell(share=0.35, traits=["women"])])

    slots = plan.allocate(n)

    assert len(slots) == n and slots == plan.allocate(n)
    # 25 % is left unconstrained; largest remainders decide the rounding.
    expected = {"under 30": 0.4 * n, "women": 0.35 * n, "": 0.25 * n}
    for label, quota in expected.items():
        assert abs(slots.count(label) - quota) < 1


def test_shares_are_checked():
    with pytest.raises(ValueError):
        SamplingCell(share=1.4, traits=["x"])


async def test_demo_model_invents_distinct_people_that_follow_the_plan():
    factory = PersonaFactory(DemoModel())

    specs = await factory.generate(
        12,
        "Adults living in the USA",
        sampling_plan="40% under 30, half of them in cities",
        existing_names=["Emily Johnson"],
    )
    again = await PersonaFactory(DemoModel()).generate(
        12, "Adults living in the USA", sampling_plan="40% under 30, half of them in cities", existing_names=["Emily Johnson"]
    )

    names = [s.name for s in specs]
    assert len(set(names)) == 12 and "Emily Johnson" not in names
    assert names == [s.name for s in again], "the demo model is deterministic"
    assert all(s.nationality == "American" and s.occupation_title and s.likes for s in specs)
    young = [s for s, (_, c) in zip(specs, factory.assignments) if c.startswith("under 30")]
    older = [s for s, (_, c) in zip(specs, factory.assignments) if c.startswith("not under 30")]
    assert len(young) == 5 and len(older) == 7  # 40 % of 12 = 4.8 -> 5
    assert all(s.age < 30 for s in young) and all(s.age >= 30 for s in older)
    urban = {s.residence for s, (_, c) in zip(specs, factory.assignments) if c == "under 30; in cities"}
    rural = {s.residence for s, (_, c) in zip(specs, factory.assignments) if c == "under 30; not in cities"}
    assert urban and rural and not urban & rural


async def test_demo_model_follows_the_job_and_the_place_a_description_names():
    specs = await PersonaFactory(DemoModel()).generate(3, "nurses on night shifts in Lisbon")
    assert len({s.name for s in specs}) == 3
    for spec in specs:
        assert spec.occupation_title == "Nurse" and spec.nationality == "Portuguese"
        assert spec.residence == "Lisbon, Portugal"
    elsewhere = await PersonaFactory(DemoModel()).generate(2, "electricians in Germany")
    assert {s.occupation_title for s in elsewhere} == {"Electrician"} and {s.nationality for s in elsewhere} == {"German"}
    # A place it has no names for is still where they live.
    oslo = await PersonaFactory(DemoModel()).generate(2, "accountants in Oslo")
    assert {s.residence for s in oslo} == {"Oslo"} and {s.occupation_title for s in oslo} == {"Accountant"}
    assert {s.residence for s in await PersonaFactory(DemoModel()).generate(2, "teachers in Tokyo, Japan")} == {"Tokyo, Japan"}


async def test_demo_people_in_a_named_job_are_of_working_age_unless_the_plan_says_otherwise():
    nurses = await PersonaFactory(DemoModel()).generate(12, "nurses on night shifts in Lisbon")
    assert all(21 <= s.age <= 66 for s in nurses), sorted(s.age for s in nurses)
    older = await PersonaFactory(DemoModel()).generate(4, "nurses in Lisbon", sampling_plan="half over 60")
    assert sorted(s.age > 60 for s in older) == [False, False, True, True], [s.age for s in older]


async def test_demo_model_takes_the_country_a_description_names_first():
    from simulation.persona import load_population_description

    spain = load_population_description(TINYTROUPE / "populations" / "spain.json")
    assert "Latin American" in spain, "the description also names other origins"
    specs = await PersonaFactory(DemoModel()).generate(3, spain)
    assert {s.nationality for s in specs} == {"Spanish"}
    farmers = await PersonaFactory(DemoModel()).generate(2, "retired farmers in Kansas")
    assert {s.nationality for s in farmers} == {"American"}


@pytest.mark.parametrize(
    ("plan", "groups"),
    [
        ("over 60", {"over 60": 8}),
        ("all of them women", {"women": 8}),
        ("half under 30, the rest over 60", {"under 30": 4, "over 60": 4}),
        ("half women and the rest men", {"women": 4, "men": 4}),
        ("25% under 30, 50% 30-60, the rest over 60", {"under 30": 2, "30-60": 4, "over 60": 2}),
        ("half under 30, half of them women",
         {"under 30; women": 2, "under 30; not women": 2, "not under 30": 4}),
    ],
)
async def test_demo_model_reads_whole_groups_the_rest_and_bands_of_one_attribute(plan, groups):
    """A plan naming no share is about everyone; "the rest …" says who the others are; age bands
    split the population instead of being crossed with each other."""
    factory = PersonaFactory(DemoModel())
    specs = await factory.generate(8, "nurses in Lisbon", sampling_plan=plan)
    made = [c for _, c in factory.assignments]
    assert {c: made.count(c) for c in made} == groups
    for spec, constraint in zip(specs, made):
        if "over 60" in constraint:
            assert spec.age > 60
        if constraint.startswith("under 30"):
            assert spec.age < 30
        if constraint == "30-60":
            assert 30 <= spec.age <= 60
        if constraint in ("women", "under 30; women"):
            assert spec.gender == "Female"
        if constraint == "men":
            assert spec.gender == "Male"

