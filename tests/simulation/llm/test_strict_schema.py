"""The strict JSON schema sent to servers: keywords go, the author's property names stay.

``title`` and ``default`` are dropped from schema objects to save tokens, but inside ``properties``
they are names of fields (an occupation's title, an extraction column called "default"): a server
that follows the strict schema must still be asked for them, or every reply misses them.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from simulation.extraction import model_from_fields, model_from_json_schema
from simulation.factory import PersonaBatch, PersonaFactory
from simulation.llm.base import ChatRequest, Message
from simulation.llm.openai_model import OpenAIModel
from simulation.llm.schema import strict_json_schema
from tests.fakes.openai_server import instance_of

#: Property names that are also JSON schema keywords; a user's /extract columns can be any text.
KEYWORD_NAMES = [
    "title", "default", "required", "type", "description", "properties", "items", "enum",
    "additionalProperties", "anyOf", "$ref", "$defs", "definitions", "patternProperties",
]

REQUEST = ChatRequest(messages=[Message(role="user", content="Extract the fields from the talk.")])


class Column(BaseModel):
    title: str
    default: int | None
    required: bool
    type: Literal["a", "b"]


class Table(BaseModel):
    """A class docstring, not sent."""

    title: str = Field(default="untitled", description="What the table is called")
    columns: list[Column]
    default: Column | None = None
    properties: list[Column] | None = None


def extraction_schema() -> dict[str, Any]:
    """An /extract JSON schema whose fields are named like keywords, nested object included."""
    return {
        "type": "object",
        "properties": {
            "title": {"type": "string", "description": "The job title"},
            "default": {"type": ["integer", "null"]},
            "required": {"type": "boolean"},
            "type": {"enum": ["buyer", "seller"]},
            "items": {"type": "array", "items": {"type": "string"}},
            "details": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "default": {"type": "string"},
                    "$ref": {"type": "string"},
                    "additionalProperties": {"type": "string"},
                },
            },
        },
        "required": ["title", "required", "type", "items", "details"],
    }


def objects(schema: Any, where: str = "$") -> list[tuple[str, dict[str, Any]]]:
    """Every schema object in ``schema`` with its path, walked by position (names are not keywords)."""
    if not isinstance(schema, dict):
        return []
    found = [(where, schema)]
    for name, sub in schema.get("properties", {}).items():
        found += objects(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        found += objects(schema["items"], f"{where}[]")
    for i, sub in enumerate(schema.get("anyOf", [])):
        found += objects(sub, f"{where}|{i}")
    return found


def assert_strict(schema: dict[str, Any]) -> None:
    """What OpenAI's strict mode asks of every object, and what this module promises besides."""
    for where, node in objects(schema):
        assert "$ref" not in node and "$defs" not in node, f"{where} is not inlined"
        assert "title" not in node and "default" not in node, f"{where} keeps a keyword it should drop"
        if node.get("type") == "object":
            assert node["additionalProperties"] is False, where
            assert node["required"] == list(node["properties"]), f"{where}: every property is required"


@pytest.fixture
async def model(fake_openai):
    """A backend whose server answers with a small instance of exactly the strict schema it is sent,
    as a model held to OpenAI's strict structured output does."""
    backend = OpenAIModel.openai(model="gpt-4o-mini", api_key="sk-test", base_url=fake_openai.base_url)
    backend.capabilities.object_schema = False
    yield backend
    await backend.aclose()


# -- /generate ------------------------------------------------------------------------------------


def test_the_persona_batch_schema_asks_for_the_occupation_title():
    occupation = strict_json_schema(PersonaBatch)["properties"]["personas"]["items"]["properties"]["occupation"]

    assert occupation["properties"] == {
        "title": {"type": "string"},
        "organization": {"type": "string"},
        "description": {"type": "string"},
    }
    assert occupation["required"] == ["title", "organization", "description"]
    assert occupation["additionalProperties"] is False


async def test_personas_generated_under_the_strict_schema_validate(model, fake_openai):
    specs = await PersonaFactory(model).generate(1, "Adults living in Spain.")

    assert len(specs) == 1 and specs[0].occupation_title
    sent = fake_openai.requests[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    assert len(fake_openai.requests) == 1, "the first reply was valid: no re-ask"


# -- /extract -------------------------------------------------------------------------------------


def test_extraction_fields_named_like_keywords_survive_the_strict_form():
    schema = strict_json_schema(model_from_json_schema(extraction_schema()))

    assert list(schema["properties"]) == ["title", "default", "required", "type", "items", "details"]
    assert schema["required"] == list(schema["properties"])
    assert schema["properties"]["title"] == {"description": "The job title", "type": "string"}
    assert schema["properties"]["default"]["type"] == ["integer", "null"]
    assert schema["properties"]["required"]["type"] == "boolean"
    assert schema["properties"]["type"]["enum"] == ["buyer", "seller"]
    assert schema["properties"]["items"]["items"] == {"type": "string"}
    details = schema["properties"]["details"]
    assert list(details["properties"]) == ["title", "default", "$ref", "additionalProperties"]
    assert details["required"] == list(details["properties"]) and details["additionalProperties"] is False
    assert_strict(schema)


@pytest.mark.parametrize("names", [KEYWORD_NAMES, ["stance", "title", "default"]])
def test_extraction_columns_named_like_keywords_survive_the_strict_form(names):
    schema = strict_json_schema(model_from_fields(names))

    assert list(schema["properties"]) == names
    assert schema["required"] == names
    assert all(schema["properties"][n] == {"type": ["string", "null"]} for n in names)
    assert_strict(schema)


def test_a_reply_to_the_strict_extraction_schema_validates():
    extracted = model_from_json_schema(extraction_schema())

    reply = instance_of(strict_json_schema(extracted))

    value = extracted.model_validate(reply)
    dumped = value.model_dump(by_alias=True)
    assert dumped["title"] == "example title" and dumped["required"] is True and dumped["type"] == "buyer"
    assert dumped["details"]["$ref"] == "example $ref" and dumped["details"]["default"] == "example default"


async def test_extraction_under_the_strict_schema_keeps_every_column(model, fake_openai):
    columns = model_from_fields(["title", "default", "required", "type"])

    value, _ = await model.structured(REQUEST, columns)

    assert value.model_dump(by_alias=True) == {
        "title": "example title", "default": "example default",
        "required": "example required", "type": "example type",
    }
    sent = fake_openai.requests[0].body["response_format"]["json_schema"]
    assert sent["strict"] is True and sent["schema"]["required"] == ["title", "default", "required", "type"]


# -- the strict form itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema_class",
    [PersonaBatch, Table, Column, model_from_json_schema(extraction_schema()), model_from_fields(KEYWORD_NAMES)],
    ids=["PersonaBatch", "Table", "Column", "extraction-schema", "extraction-fields"],
)
def test_every_object_is_closed_and_requires_all_its_properties(schema_class):
    schema = strict_json_schema(schema_class)

    assert_strict(schema)
    # Nothing a pydantic class names is lost on the way.
    assert list(schema["properties"]) == list(schema_class.model_json_schema(by_alias=True)["properties"])


def test_keywords_are_still_dropped_and_optional_fields_compacted():
    schema = strict_json_schema(Table)

    assert "description" not in schema, "the class docstring is for developers"
    title = schema["properties"]["title"]
    assert title == {"description": "What the table is called", "type": "string"}, "no title, no default"
    column = schema["properties"]["columns"]["items"]
    assert column["properties"]["default"] == {"type": ["integer", "null"]}
    assert column["properties"]["type"] == {"enum": ["a", "b"], "type": "string"}
    assert list(column["properties"]) == ["title", "default", "required", "type"]
    # A nullable nested class stays an anyOf, with the class inlined and closed.
    nullable = schema["properties"]["default"]["anyOf"]
    assert nullable[1] == {"type": "null"} and nullable[0]["required"] == ["title", "default", "required", "type"]
    assert schema["properties"]["properties"]["anyOf"][0]["items"] == column


def test_the_values_of_a_mapping_are_walked_as_schemas():
    """A ``dict[str, Column]`` is free-form (not strict, as before), but its values' schema is still made strict."""

    class ByName(BaseModel):
        columns: dict[str, Column]

    columns = strict_json_schema(ByName)["properties"]["columns"]

    assert columns["type"] == "object" and "title" not in columns
    assert columns["additionalProperties"]["required"] == ["title", "default", "required", "type"]
    assert columns["additionalProperties"]["additionalProperties"] is False


def test_values_that_look_like_schemas_are_left_as_they_are():
    class Tagged(BaseModel):
        tag: str = Field(json_schema_extra={"examples": [{"title": "kept", "default": "kept"}]})

    tag = strict_json_schema(Tagged)["properties"]["tag"]

    assert tag["examples"] == [{"title": "kept", "default": "kept"}]
