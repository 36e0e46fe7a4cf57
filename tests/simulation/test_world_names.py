"""Two personas of one world never have names that look the same to a reader, so ``find`` tells every
persona apart: look-alike letters, case, accents, punctuation and spacing do not make another name."""

from __future__ import annotations

import pytest

from simulation.agent import TinyPerson
from simulation.llm.demo import DemoModel
from simulation.names import name_key
from simulation.persona import PersonaSpec
from simulation.world import TinyWorld, WorldError


def person(name: str, model: DemoModel, *, world_name: str | None = None) -> TinyPerson:
    return TinyPerson(PersonaSpec.from_data({"name": name}), model, world_name=world_name)


@pytest.fixture
def world() -> TinyWorld:
    model = DemoModel()
    return TinyWorld("names", [person("Priya Nair", model), person("Diego Hernández", model)], model=model)


@pytest.mark.parametrize("name", [
    "Priyа Nair",  # Cyrillic a
    "Priya  Nair", " Priya Nair", "Priya-Nair", "Priya\u00a0Nair", "Prіya Nаir",  # Ukrainian i, Cyrillic a
    "Pr\u200biya Nair", "Priya Nair\ufe0f",
])
def test_a_look_alike_of_a_persona_is_refused_naming_the_persona(world: TinyWorld, name: str) -> None:
    with pytest.raises(WorldError) as refused:
        world.add_agent(person(name, world.model))
    assert "already has a persona named 'Priya Nair'" in str(refused.value)
    assert "another name" in str(refused.value)
    assert [a.name for a in world.agents] == ["Priya Nair", "Diego Hernández"]


@pytest.mark.parametrize("name", ["Priya Nair", "PRIYA NAIR", "Diego Hernandez"])
def test_the_same_name_in_another_case_or_without_accents_is_refused(world: TinyWorld, name: str) -> None:
    with pytest.raises(WorldError, match="already has a persona named"):
        world.add_agent(person(name, world.model))
    assert len(world.agents) == 2


@pytest.mark.parametrize("name", ["Priya", "Nair"])
def test_a_name_a_persona_answers_to_is_refused(world: TinyWorld, name: str) -> None:
    with pytest.raises(WorldError, match="'Priya Nair', who answers to"):
        world.add_agent(person(name, world.model))


@pytest.mark.parametrize("name", ["Priya Menon", "Arjun Nair", "Priyanka Nair", "Diego Hernández Soto"])
def test_people_who_share_a_first_name_or_a_surname_may_join(world: TinyWorld, name: str) -> None:
    world.add_agent(person(name, world.model))
    assert world.find(name).name == name
    assert world.find("Priya Nair").name == "Priya Nair"


@pytest.mark.parametrize("typed", ["Priya Nair", "priya nair", "Priya  Nair", " Priya Nair ", "Priyа Nair", "@Priya Nair"])
def test_a_persona_is_found_by_any_name_that_looks_like_its_own(world: TinyWorld, typed: str) -> None:
    assert world.find(typed).name == "Priya Nair"


def test_a_first_name_two_personas_look_to_share_finds_neither(world: TinyWorld) -> None:
    world.add_agent(person("Priyа Chen", world.model))  # Cyrillic a: a reader sees two Priyas
    assert world.find("Priya") is None
    assert world.find("Chen").name == "Priyа Chen"


def test_look_alikes_stored_together_before_they_were_refused_come_back_found_by_exact_name_only() -> None:
    """A world stored before look-alikes were refused still loads: each persona keeps its place and is
    reached by its exact name; a name that looks like both reaches neither."""
    model = DemoModel()
    restored = [person("Priya Nair", model), person("Priyа Nair", model)]
    world = TinyWorld("old", model=model)
    for agent in restored:
        world.add_agent(agent, known=True)  # as storage gives them back
    assert [a.name for a in world.agents] == ["Priya Nair", "Priyа Nair"]
    assert world.find("Priya Nair") is restored[0] and world.find("Priyа Nair") is restored[1]
    assert world.find("priya nair") is None
    again = TinyWorld.from_state(world.state(), model)
    assert [a.name for a in again.agents] == ["Priya Nair", "Priyа Nair"]
    with pytest.raises(WorldError, match="already has a persona named 'Priya Nair'"):
        again.add_agent(person("PRIYA NAİR", model), known=True)  # the same name comes back only once
    with pytest.raises(WorldError, match="would look the same"):
        again.add_agent(person("Prіya Nair", model))  # a new persona: look-alikes are refused


def test_the_key_of_a_name_is_its_skeletons_words() -> None:
    assert name_key("Priyа  Nair") == name_key("priya-nair") == name_key("𝐏𝐫𝐢𝐲𝐚 𝐍𝐚𝐢𝐫") == name_key("Pr1ya Nair") == "priya nair"
    assert name_key("Priya Nair") != name_key("PriyaNair")
    assert name_key("🙂") == "🙂" and name_key("Ана Ким") != name_key("Anna Kim")


def test_names_that_differ_in_letters_alike_only_in_some_fonts_are_different_people() -> None:
    """"Lisa" and "Ilsa", "Arnie" and "Amie" are names of their own, though an l may pass for an I
    and rn for m when someone poses as the bot: both may join one world, and each is found."""
    world = TinyWorld("Names", model=DemoModel())
    for name in ("Lisa Carter", "Ilsa Carter", "Arnie Moss", "Amie Moss"):
        world.add_agent(TinyPerson(PersonaSpec.from_data({"name": name, "age": 30}), DemoModel()))
    assert [world.find(n).name for n in ("lisa carter", "ILSA CARTER", "Arnie Moss", "amie moss")] == [
        "Lisa Carter", "Ilsa Carter", "Arnie Moss", "Amie Moss"]
