"""Persona files: TinyTroupe's as they are, our own spellings, fragments, populations, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from config import PERSONAS_DIR
from simulation.persona import (
    PersonaError,
    PersonaSpec,
    bundled_personas,
    find_bundled_persona,
    load_persona,
    load_population_description,
    parse_persona_text,
)
from tests.support.paths import TINYTROUPE

AGENTS = sorted((TINYTROUPE / "agents").glob("*.agent.json"))
FRAGMENTS = sorted((TINYTROUPE / "fragments").glob("*.fragment.json"))
POPULATIONS = sorted((TINYTROUPE / "populations").glob("*.json"))
BUNDLED = sorted(PERSONAS_DIR.glob("*.agent.json"))
LISA = TINYTROUPE / "agents" / "Lisa.agent.json"
PICKY = TINYTROUPE / "fragments" / "picky_customer.agent.fragment.json"


def _file(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_tinytroupe_reference_files_are_present() -> None:
    assert AGENTS and FRAGMENTS and POPULATIONS, f"TinyTroupe's files are expected at {TINYTROUPE}"


# ---------------------------------------------------------------------------------------------
# TinyTroupe agent files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", AGENTS, ids=lambda p: p.name)
def test_tinytroupe_agent_round_trips_exactly(path: Path) -> None:
    original = _file(path)
    spec = load_persona(path)

    exported = spec.to_tinytroupe_dict()
    assert exported == original["persona"]
    # Same key order at every level, so a re-saved file diffs clean against the original.
    assert json.dumps(exported, ensure_ascii=False) == json.dumps(original["persona"], ensure_ascii=False)
    assert spec.to_tinytroupe_agent() == {"type": "TinyPerson", "persona": original["persona"]}
    assert PersonaSpec.from_data(spec.to_tinytroupe_agent()) == spec


def test_tinytroupe_fields_are_readable_through_the_typed_view() -> None:
    lisa = load_persona(LISA)
    raw = _file(LISA)["persona"]

    assert lisa.name == "Lisa Carter"
    assert lisa.age == 28
    assert lisa.occupation_title == "Data Scientist"
    assert lisa.occupation.organization == raw["occupation"]["organization"]
    assert lisa.traits == raw["personality"]["traits"]
    assert lisa.interests == raw["preferences"]["interests"]
    assert lisa.goals == raw["long_term_goals"]
    assert lisa.speaking_style == raw["style"]
    assert lisa.relationships == raw["relationships"], "carried as written"
    assert lisa.summary() == "Lisa Carter, 28, Data Scientist, lives in USA"


def test_fields_beyond_tinytroupes_usual_ones_are_kept() -> None:
    paulo = load_persona(TINYTROUPE / "agents" / "Paulo_Salem.agent.json")

    assert paulo.model_extra["projects"] == _file(TINYTROUPE / "agents" / "Paulo_Salem.agent.json")["persona"]["projects"]
    assert "projects" in paulo.to_tinytroupe_dict()


def test_exported_dict_is_a_copy_the_spec_does_not_share() -> None:
    lisa = load_persona(LISA)
    exported = lisa.to_tinytroupe_dict()
    exported["preferences"]["likes"].append("Pineapple on pizza")
    exported["age"] = 99

    assert "Pineapple on pizza" not in lisa.to_tinytroupe_dict()["preferences"]["likes"]
    assert lisa.age == 28


def test_specs_cannot_be_changed_in_place() -> None:
    lisa = load_persona(LISA)
    with pytest.raises(ValidationError):
        lisa.age = 40  # type: ignore[misc]
    assert lisa.to_tinytroupe_dict()["age"] == 28


# ---------------------------------------------------------------------------------------------
# Our own layouts and pasted text
# ---------------------------------------------------------------------------------------------

OWN_YAML = """\
name: Nina Berg
age: 45
occupation: Nurse
residence: Bergen, Norway
traits:
  - calm under pressure
  - blunt
interests: [hiking, crime novels]
goals:
  - open a rural clinic
speaking_style: Short sentences, no small talk.
shift_pattern: nights
"""


def test_own_yaml_with_flat_spelling_loads(tmp_path: Path) -> None:
    spec = load_persona(_write(tmp_path, "nina.yaml", OWN_YAML))

    assert spec.name == "Nina Berg"
    assert spec.occupation_title == "Nurse"
    assert spec.traits == ["calm under pressure", "blunt"]
    assert spec.interests == ["hiking", "crime novels"]
    assert spec.goals == ["open a rural clinic"]
    assert spec.speaking_style == "Short sentences, no small talk."
    assert spec.model_extra["shift_pattern"] == "nights"
    assert spec.summary() == "Nina Berg, 45, Nurse, lives in Bergen, Norway"
    assert spec.to_tinytroupe_dict() == yaml.safe_load(OWN_YAML)
    assert list(spec.to_tinytroupe_dict()) == list(yaml.safe_load(OWN_YAML))


def test_own_json_with_persona_wrapper_loads(tmp_path: Path) -> None:
    persona = {"name": "Kai Tanaka", "age": 29, "occupation": {"title": "Barista"}, "style": "Chatty."}
    spec = load_persona(_write(tmp_path, "kai.json", json.dumps({"persona": persona})))

    assert spec.occupation_title == "Barista"
    assert spec.speaking_style == "Chatty."
    assert spec.to_tinytroupe_dict() == persona
    # Fields the file leaves out stay out; nothing is filled in with nulls.
    assert "gender" not in spec.to_tinytroupe_dict()


def test_both_spellings_combine_without_duplicates() -> None:
    spec = PersonaSpec.from_data(
        {
            "name": "Ada",
            "personality": {"traits": ["curious"]},
            "traits": ["curious", "stubborn"],
            "long_term_goals": ["write a book"],
            "goals": ["learn Finnish"],
        }
    )
    assert spec.traits == ["curious", "stubborn"]
    assert spec.goals == ["write a book", "learn Finnish"]


def test_persona_built_in_code_exports_only_what_was_given() -> None:
    spec = PersonaSpec(name="Omar", occupation="Chef", mood="sunny")
    assert spec.to_tinytroupe_dict() == {"name": "Omar", "occupation": "Chef", "mood": "sunny"}
    assert spec.occupation_title == "Chef"


def test_pasted_json_and_yaml_parse() -> None:
    from_json = parse_persona_text('{"type": "TinyPerson", "persona": {"name": "Zoe", "age": 33}}', "clipboard")
    from_yaml = parse_persona_text("name: Zoe\nage: 33\n", "clipboard")
    assert from_json == from_yaml
    assert from_json.source == "clipboard"


def test_pasted_text_with_a_syntax_error_points_at_the_line() -> None:
    with pytest.raises(PersonaError) as err:
        parse_persona_text('{\n  "name": "Zoe",\n  "age": 33,\n}', "clipboard")
    assert "clipboard" in str(err.value)
    assert "line 4" in str(err.value)
    assert err.value.path == "clipboard"


# ---------------------------------------------------------------------------------------------
# Fragments
# ---------------------------------------------------------------------------------------------


def test_lisa_becomes_a_picky_customer() -> None:
    lisa = load_persona(LISA)
    fragment = _file(PICKY)["persona"]

    picky = lisa.apply_fragment(PICKY)

    likes = picky.to_tinytroupe_dict()["preferences"]["likes"]
    own_likes = _file(LISA)["persona"]["preferences"]["likes"]
    assert likes == own_likes + fragment["preferences"]["likes"]
    assert len(likes) == len(set(likes))
    assert picky.beliefs[-len(fragment["beliefs"]) :] == fragment["beliefs"]
    # New kinds of behaviour are added next to her own.
    assert picky.behaviors["shopping"] == fragment["behaviors"]["shopping"]
    assert picky.behaviors["general"] == lisa.behaviors["general"]
    # Everything else is still Lisa, and the original spec is untouched.
    assert picky.name == "Lisa Carter" and picky.occupation == lisa.occupation
    assert lisa.likes == own_likes


def test_applying_a_fragment_twice_changes_nothing_more() -> None:
    once = load_persona(LISA).apply_fragment(PICKY)
    assert once.apply_fragment(PICKY) == once


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=lambda p: p.name)
def test_every_tinytroupe_fragment_applies(fragment: Path) -> None:
    merged = load_persona(LISA).apply_fragment(fragment).to_tinytroupe_dict()
    for key, value in _file(fragment)["persona"].items():
        if isinstance(value, list):
            assert all(item in merged[key] for item in value)
        elif isinstance(value, dict):
            for sub, items in value.items():
                assert all(item in merged[key][sub] for item in items)


def test_fragment_given_as_a_dict_overwrites_scalars_and_adds_fields() -> None:
    lisa = load_persona(LISA)
    merged = lisa.apply_fragment({"type": "Fragment", "persona": {"residence": "Canada", "pets": ["a cat"]}})
    assert merged.residence == "Canada"
    assert merged.model_extra["pets"] == ["a cat"]
    assert list(merged.to_tinytroupe_dict())[-1] == "pets"


def test_fragment_conflict_is_an_error_when_overwrite_is_off() -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(LISA).apply_fragment({"persona": {"residence": "Canada"}}, overwrite=False)
    assert err.value.field == "residence"
    assert "'Canada'" in str(err.value) and "'USA'" in str(err.value)


def test_fragment_with_a_different_shape_is_an_error() -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(LISA).apply_fragment({"persona": {"occupation": "Chef"}})
    assert err.value.field == "occupation"
    assert "same shape" in str(err.value)


def test_loading_a_fragment_as_a_persona_explains_how_to_apply_it() -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(PICKY)
    message = str(err.value)
    assert str(PICKY) in message
    assert "fragment" in message and "apply_fragment" in message
    assert err.value.field == "type"


def test_applying_an_agent_file_as_a_fragment_is_refused() -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(LISA).apply_fragment(TINYTROUPE / "agents" / "Oscar.agent.json")
    assert "'TinyPerson'" in str(err.value) and "Fragment" in str(err.value)


# ---------------------------------------------------------------------------------------------
# define
# ---------------------------------------------------------------------------------------------


def test_define_returns_a_new_spec_and_leaves_the_old_one() -> None:
    lisa = load_persona(LISA)
    older = lisa.define("age", 31)
    assert older.age == 31
    assert lisa.age == 28


def test_define_with_a_dotted_key_adds_to_a_nested_list() -> None:
    lisa = load_persona(LISA)
    updated = lisa.define("preferences.likes", ["Green tea", lisa.likes[0]])
    assert updated.likes == lisa.likes + ["Green tea"]


def test_define_without_merge_replaces_the_value() -> None:
    updated = load_persona(LISA).define("preferences.likes", ["Green tea"], merge=False)
    assert updated.likes == ["Green tea"]


def test_define_creates_missing_objects_and_new_fields() -> None:
    spec = PersonaSpec(name="Omar").define("preferences.interests", ["chess"]).define("favourite_food", "  mezze\n")
    assert spec.interests == ["chess"]
    assert spec.to_tinytroupe_dict() == {"name": "Omar", "preferences": {"interests": ["chess"]}, "favourite_food": "mezze\n"}


def test_define_rejects_values_a_file_would_be_rejected_for() -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(LISA).define("age", "old")
    assert err.value.field == "age"


def test_define_of_a_different_shape_suggests_replacing() -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(LISA).define("behaviors", ["tea"])
    assert err.value.field == "behaviors" and "merge=False" in str(err.value)
    assert load_persona(LISA).define("behaviors", ["tea"], merge=False).behaviors == ["tea"]


def test_define_inside_a_text_field_is_an_error() -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(LISA).define("education.degree", "MSc")
    assert err.value.field == "education"
    assert "not an object" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Bad files
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.json"
    with pytest.raises(PersonaError) as err:
        load_persona(missing)
    assert err.value.path == str(missing)
    assert "not found" in str(err.value) and str(missing) in str(err.value)


def test_broken_json_gives_line_and_column(tmp_path: Path) -> None:
    p = _write(tmp_path, "broken.json", '{\n  "name": "Zoe"\n  "age": 3\n}')
    with pytest.raises(PersonaError) as err:
        load_persona(p)
    message = str(err.value)
    assert str(p) in message and "not valid JSON" in message
    assert "line 3, column 3" in message
    assert "Fix" in message


def test_broken_yaml_gives_line_and_column(tmp_path: Path) -> None:
    p = _write(tmp_path, "broken.yaml", "name: Zoe\ntraits:\n  - kind\n - loud\n")
    with pytest.raises(PersonaError) as err:
        load_persona(p)
    message = str(err.value)
    assert str(p) in message and "not valid YAML" in message
    assert "line 4" in message and "column" in message


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match="is empty"):
        load_persona(_write(tmp_path, "empty.yaml", "\n"))


def test_top_level_list_is_rejected(tmp_path: Path) -> None:
    p = _write(tmp_path, "list.json", '[{"name": "Zoe"}]')
    with pytest.raises(PersonaError) as err:
        load_persona(p)
    assert "top level is a list" in str(err.value)
    assert '"name"' in str(err.value)  # shows what a persona looks like


def test_missing_name(tmp_path: Path) -> None:
    p = _write(tmp_path, "anon.yaml", "age: 30\noccupation: Nurse\n")
    with pytest.raises(PersonaError) as err:
        load_persona(p)
    assert err.value.field == "name"
    assert err.value.path == str(p)
    assert "'name' is missing" in str(err.value) and '"name":' in str(err.value)


def test_blank_name(tmp_path: Path) -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(_write(tmp_path, "blank.json", '{"name": "  "}'))
    assert err.value.field == "name" and "empty" in str(err.value)


@pytest.mark.parametrize("age", ['"thirty"', "true", "-4", "28.5"])
def test_age_that_is_not_a_number_of_years(tmp_path: Path, age: str) -> None:
    p = _write(tmp_path, "age.json", f'{{"name": "Zoe", "age": {age}}}')
    with pytest.raises(PersonaError) as err:
        load_persona(p)
    assert err.value.field == "age"
    assert str(p) in str(err.value)
    assert '"age": 34' in str(err.value)


def test_age_written_as_digits_in_quotes_is_accepted() -> None:
    assert PersonaSpec.from_data({"name": "Zoe", "age": "34"}).age == 34


def test_a_field_troupe_relies_on_names_the_exact_place_when_wrongly_shaped() -> None:
    with pytest.raises(PersonaError) as err:
        PersonaSpec.from_data({"name": "Zoe", "occupation": {"title": "Nurse", "extra": 1}, "age": [30]}, "zoe.yaml")
    assert err.value.field == "age"
    assert "zoe.yaml" in str(err.value)


def test_shapes_troupe_only_carries_are_kept_and_read_as_text() -> None:
    zoe = PersonaSpec.from_data({"name": "Zoe", "personality": {"traits": ["kind", 7, {"at work": "blunt"}]},
                                 "style": {"tone": "dry", "habits": ["lists", "no emoji"]}}, "zoe.yaml")
    assert zoe.traits == ["kind", "7", "blunt"]
    assert zoe.speaking_style == "tone: dry; habits: lists, no emoji"
    assert zoe.to_tinytroupe_dict()["personality"]["traits"][2] == {"at work": "blunt"}


@pytest.mark.parametrize(("data", "field", "says"), [
    ({"name": "Mallory\x1b[2J\x1b[41mFAKE SYSTEM", "age": 30}, "name", "a control character (U+001B)"),
    ({"name": "Eve\n17:12 Priya Nair: I resign"}, "name", "must be one line"),
    ({"name": "Bad \ud800 surrogate", "age": 3}, "name", "a broken character (a lone surrogate)"),
    ({"name": "Bad Beth", "beliefs": ["fine", "broken \udc80 belief"]}, "beliefs[1]", "a broken character"),
    ({"name": "N" * 101}, "name", "a name is at most 100"),
])
def test_text_no_person_has_is_refused_with_the_field_named(data: dict, field: str, says: str) -> None:
    with pytest.raises(PersonaError) as err:
        PersonaSpec.from_data(data, "pasted")
    assert err.value.field == field and says in str(err.value), str(err.value)


def test_a_persona_the_size_of_a_book_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match="keep it under 100,000"):
        PersonaSpec.from_data({"name": "Verbose Vic", "other_facts": ["word " * 1000] * 30})
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"name": "Huge", "other_facts": ["x" * 1000] * 3000}))
    with pytest.raises(PersonaError, match=r"huge.json: is 3\.\d MB; a persona file is at most 1 MB"):
        load_persona(huge)


def test_several_problems_read_as_one_sentence() -> None:
    with pytest.raises(PersonaError) as err:
        PersonaSpec.from_data({"name": "Zoe", "age": "old", "occupation": 42})
    assert ".;" not in str(err.value) and str(err.value).endswith("."), str(err.value)


def test_occupation_of_the_wrong_kind_explains_both_accepted_forms() -> None:
    with pytest.raises(PersonaError) as err:
        PersonaSpec.from_data({"name": "Zoe", "occupation": 42})
    assert err.value.field == "occupation"
    assert '"Nurse"' in str(err.value) and '"title"' in str(err.value)


@pytest.mark.parametrize("population", POPULATIONS, ids=lambda p: p.name)
def test_population_file_is_not_a_persona(population: Path) -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(population)
    message = str(err.value)
    assert str(population) in message
    assert "population" in message and "load_population_description" in message


def test_agent_file_of_another_type(tmp_path: Path) -> None:
    p = _write(tmp_path, "world.json", '{"type": "TinyWorld", "persona": {"name": "Earth"}}')
    with pytest.raises(PersonaError) as err:
        load_persona(p)
    assert err.value.field == "type"
    assert "'TinyWorld'" in str(err.value) and "TinyPerson" in str(err.value)


def test_agent_file_without_persona(tmp_path: Path) -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(_write(tmp_path, "hollow.json", '{"type": "TinyPerson"}'))
    assert err.value.field == "persona"


def test_persona_that_is_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(PersonaError) as err:
        load_persona(_write(tmp_path, "text.json", '{"type": "TinyPerson", "persona": "Zoe"}'))
    assert err.value.field == "persona" and "is text" in str(err.value)


def test_persona_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        PersonaSpec.from_data({})


# ---------------------------------------------------------------------------------------------
# Populations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("population", POPULATIONS, ids=lambda p: p.name)
def test_population_description_is_compact_text(population: Path) -> None:
    data = _file(population)
    text = load_population_description(population)

    assert text.splitlines()[0] == data["title"]
    assert data["description"] in text
    demographics = data["content"]["Demographics"]
    assert f"Country: {demographics['Country']}" in text
    assert f"Median Age: {demographics['Median Age']}" in text
    assert "{" not in text and '"' not in text
    assert len(text) < len(json.dumps(data, indent=4))


def test_population_loader_refuses_a_persona() -> None:
    with pytest.raises(PersonaError, match="load_persona"):
        load_population_description(LISA)


# ---------------------------------------------------------------------------------------------
# Bundled personas
# ---------------------------------------------------------------------------------------------


def test_six_bundled_personas() -> None:
    assert len(BUNDLED) == 6


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_persona_is_complete_and_round_trips(path: Path) -> None:
    original = _file(path)
    spec = load_persona(path)

    assert original["type"] == "TinyPerson"
    assert spec.to_tinytroupe_agent() == original
    assert spec.age is not None and spec.residence and spec.occupation_title
    assert spec.speaking_style
    assert len(spec.traits) >= 3 and spec.interests and spec.goals and spec.skills
    assert spec.relationships and all(r["name"] and r["description"] for r in spec.relationships)


def test_bundled_personas_are_varied() -> None:
    specs = [load_persona(p) for p in BUNDLED]
    assert len({s.occupation_title for s in specs}) == len(specs)
    assert len({s.nationality for s in specs}) == len(specs)
    assert len({s.age for s in specs}) == len(specs)


def test_bundled_relationships_point_at_bundled_colleagues() -> None:
    names = {load_persona(p).name for p in BUNDLED}
    for path in BUNDLED:
        for rel in load_persona(path).relationships or []:
            assert rel["name"] in names, f"{path.name}: {rel['name']} is not a bundled persona"


def test_bundled_personas_index_by_full_name_first_name_and_stem() -> None:
    index = bundled_personas()
    priya = PERSONAS_DIR / "priya_nair.agent.json"
    assert index["priya nair"] == index["priya"] == index["priya_nair"] == priya
    assert set(index.values()) == set(BUNDLED)


@pytest.mark.parametrize("query", ["Diego Hernández", "diego hernandez", "DIEGO", "diego_hernandez", "diego-hernandez"])
def test_find_bundled_persona_is_forgiving(query: str) -> None:
    assert find_bundled_persona(query).name == "Diego Hernández"


def test_unknown_bundled_persona_lists_the_available_ones() -> None:
    with pytest.raises(PersonaError) as err:
        find_bundled_persona("Bob")
    message = str(err.value)
    assert "'Bob'" in message
    for path in BUNDLED:
        assert load_persona(path).name in message


def test_a_defined_field_reaches_the_persona_the_model_is_shown() -> None:
    from simulation.agent import TinyPerson
    from simulation.llm.demo import DemoModel

    agent = TinyPerson(PersonaSpec.model_validate({"name": "Ana Souza", "age": 29}), DemoModel())
    agent.define("age", 31)
    agent.define("preferences.likes", ["night shifts"])
    assert agent.persona_data["age"] == 31 and agent.persona_data["preferences"]["likes"] == ["night shifts"]


@pytest.mark.parametrize("name", ["pyproject.toml", "notes.txt", "persona.py", "Lisa.agent.json.bak"])
def test_a_file_of_another_kind_is_named_as_not_a_persona_file(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, '[build-system]\nrequires = ["setuptools"]\n')
    with pytest.raises(PersonaError) as err:
        load_persona(path)
    message = str(err.value)
    assert "is not a persona file" in message and ".json or .yaml" in message and "TinyTroupe agent" in message
    assert "line 1" not in message
