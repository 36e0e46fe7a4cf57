"""The fake's flavors, through the real openai client: what each server takes, refuses, and does past its context."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes.openai_server import FLAVORS, FakeOpenAIServer, prompt_tokens

SCHEMA = {
    "type": "object",
    "properties": {"mood": {"type": "string", "enum": ["calm", "tense"]}, "confidence": {"type": "integer"}},
    "required": ["mood", "confidence"],
    "additionalProperties": False,
}
#: Every ``response_format`` a client might send, by a short name.
FORMATS = {
    "json_schema_strict": {"type": "json_schema", "json_schema": {"name": "Turn", "schema": SCHEMA, "strict": True}},
    "json_schema": {"type": "json_schema", "json_schema": {"name": "Turn", "schema": SCHEMA, "strict": False}},
    "json_object": {"type": "json_object"},
    "json_object_schema": {"type": "json_object", "schema": SCHEMA},
}
#: The formats each flavor answers with a reply (the others it refuses, see the tests below).
ACCEPTED = {
    "openai": ["json_schema_strict", "json_schema", "json_object"],
    "azure_old": ["json_object"],
    "llama_cpp_python": ["json_object", "json_object_schema"],
    "llama_cpp": ["json_schema_strict", "json_schema", "json_object", "json_object_schema"],
    "ollama": ["json_schema_strict", "json_schema", "json_object"],
    "vllm": ["json_schema_strict", "json_schema", "json_object"],
    "lmstudio": ["json_schema_strict", "json_schema"],
}
MESSAGES = [
    {"role": "system", "content": "You are Omar, a backend engineer."},
    {"role": "user", "content": "The deploy failed. How do you feel? Answer in JSON."},
]
#: A user message of a few hundred tokens, past the small windows set below.
LONG = [{"role": "user", "content": "The deploy failed again and nobody knows why. " * 40}]


async def ask(openai_client: openai.AsyncOpenAI, messages: list[dict] = MESSAGES, **options) -> str:
    completion = await openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages, **options)
    return completion.choices[0].message.content


def fits(value: object) -> bool:
    return isinstance(value, dict) and value.keys() == {"mood", "confidence"} and value["mood"] in ("calm", "tense")


def test_every_flavor_is_covered():
    assert ACCEPTED.keys() == FLAVORS.keys()


@pytest.mark.parametrize(
    ("flavor", "format_name"), [(flavor, name) for flavor, names in ACCEPTED.items() for name in names]
)
async def test_accepted_formats_get_json(fake_openai, openai_client, flavor, format_name):
    fake_openai.flavor = flavor

    content = await ask(openai_client, response_format=FORMATS[format_name])

    value = json.loads(content)
    assert isinstance(value, dict)
    if format_name != "json_object":  # a schema was sent, and the server enforces it
        assert fits(value)


async def test_azure_before_2024_08_01_refuses_json_schema(fake_openai):
    fake_openai.flavor = "azure_old"
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake_openai.azure_endpoint, api_key="k", api_version="2024-06-01", max_retries=0
    ) as azure:
        with pytest.raises(openai.BadRequestError) as refused:
            await ask(azure, response_format=FORMATS["json_schema_strict"])
        assert json.loads(await ask(azure, response_format=FORMATS["json_object"]))

    assert refused.value.status_code == 400 and refused.value.code == "BadRequest"
    assert refused.value.body["message"] == (
        "response_format value as json_schema is enabled only for api versions 2024-08-01-preview and later"
    )


@pytest.mark.parametrize("strict", [True, False])
async def test_llama_cpp_python_fails_json_schema_validation_with_a_500(fake_openai, openai_client, strict):
    fake_openai.flavor = "llama_cpp_python"
    name = "json_schema_strict" if strict else "json_schema"

    with pytest.raises(openai.InternalServerError) as failed:
        await ask(openai_client, response_format=FORMATS[name])

    assert failed.value.status_code == 500 and failed.value.type == "internal_server_error"
    message = failed.value.body["message"]
    assert "'loc': ('body', 'response_format', 'type')" in message
    assert "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'" in message


async def test_llama_cpp_python_json_object_follows_only_its_own_schema(fake_openai, openai_client):
    fake_openai.flavor = "llama_cpp_python"

    constrained = json.loads(await ask(openai_client, response_format=FORMATS["json_object_schema"]))
    loose = json.loads(await ask(openai_client, response_format=FORMATS["json_object"]))

    assert fits(constrained)
    assert isinstance(loose, dict) and not fits(loose)
    assert loose["response"].startswith("Omar here")


async def test_llama_cpp_refuses_a_type_it_does_not_know(fake_openai, openai_client):
    fake_openai.flavor = "llama_cpp"

    with pytest.raises(openai.BadRequestError) as refused:
        await ask(openai_client, response_format={"type": "xml"})

    assert refused.value.type == "invalid_request_error"
    assert refused.value.body["message"] == 'response_format type must be one of "text" or "json_object", but got: xml'


async def test_lmstudio_refuses_json_object_with_a_bare_string(fake_openai, openai_client):
    fake_openai.flavor = "lmstudio"

    for name in ("json_object", "json_object_schema"):
        with pytest.raises(openai.BadRequestError) as refused:
            await ask(openai_client, response_format=FORMATS[name])
        assert refused.value.body == "'response_format.type' must be 'json_schema' or 'text'"
        assert refused.value.code is None


async def test_ollama_ignores_a_type_it_does_not_know(fake_openai, openai_client):
    fake_openai.flavor = "ollama"

    content = await ask(openai_client, response_format={"type": "xml"})

    assert content.startswith("Omar here")


# -- past the context window -----------------------------------------------------------------------


async def overflow(
    server: FakeOpenAIServer, openai_client: openai.AsyncOpenAI, **options
) -> tuple[openai.APIStatusError, int]:
    """The error a request gets, and the prompt tokens the server counted for it."""
    with pytest.raises(openai.APIStatusError) as failed:
        await ask(openai_client, **options)
    return failed.value, prompt_tokens(server.requests[-1].body)


@pytest.mark.parametrize("flavor", ["openai", "azure_old"])
async def test_openai_counts_the_messages_then_the_completion_budget(fake_openai, openai_client, flavor):
    fake_openai.flavor, fake_openai.context_tokens = flavor, 100

    long, long_prompt = await overflow(fake_openai, openai_client, messages=LONG)
    budget, prompt = await overflow(fake_openai, openai_client, max_completion_tokens=90)

    for error in (long, budget):
        assert isinstance(error, openai.BadRequestError)
        assert (error.code, error.param, error.type) == ("context_length_exceeded", "messages", "invalid_request_error")
    assert long.body["message"] == (
        f"This model's maximum context length is 100 tokens. However, your messages resulted in {long_prompt} "
        "tokens. Please reduce the length of the messages."
    )
    assert budget.body["message"] == (
        f"This model's maximum context length is 100 tokens. However, you requested {prompt + 90} tokens "
        f"({prompt} in the messages, 90 in the completion). Please reduce the length of the messages or completion."
    )
    assert await ask(openai_client, max_completion_tokens=10)


async def test_llama_cpp_python_refuses_a_prompt_that_fills_the_window(fake_openai, openai_client):
    fake_openai.flavor, fake_openai.context_tokens = "llama_cpp_python", 100

    error, prompt = await overflow(fake_openai, openai_client, messages=LONG)

    assert isinstance(error, openai.BadRequestError) and error.code == "context_length_exceeded"
    assert error.body["message"] == (
        f"This model's maximum context length is 100 tokens. However, you requested {prompt} tokens "
        f"({prompt} in the messages, None in the completion). Please reduce the length of the messages or completion."
    )
    # A completion budget past the window is trimmed, not refused.
    assert await ask(openai_client, max_tokens=500)


async def test_llama_cpp_reports_both_counts(fake_openai, openai_client):
    fake_openai.flavor, fake_openai.context_tokens = "llama_cpp", 100

    error, prompt = await overflow(fake_openai, openai_client, messages=LONG)

    assert isinstance(error, openai.BadRequestError)
    assert error.body == {
        "code": 400,
        "message": f"request ({prompt} tokens) exceeds the available context size (100 tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": prompt,
        "n_ctx": 100,
    }
    assert await ask(openai_client, max_tokens=500)


async def test_vllm_counts_the_completion_budget(fake_openai, openai_client):
    fake_openai.flavor, fake_openai.context_tokens = "vllm", 100

    budget, prompt = await overflow(fake_openai, openai_client, max_tokens=90)
    long, long_prompt = await overflow(fake_openai, openai_client, messages=LONG)

    assert isinstance(budget, openai.BadRequestError)
    assert (budget.type, budget.code, budget.param) == ("BadRequestError", "400", None)
    assert budget.body["message"] == (
        f"This model's maximum context length is 100 tokens. However, you requested {prompt + 90} tokens "
        f"({prompt} in the messages, 90 in the completion). Please reduce the length of the messages or completion."
    )
    assert long.body["message"] == (
        f"This model's maximum context length is 100 tokens. However, you requested {long_prompt} tokens "
        "in the messages, Please reduce the length of the messages."
    )


async def test_lmstudio_cannot_keep_the_prompt(fake_openai, openai_client):
    fake_openai.flavor, fake_openai.context_tokens = "lmstudio", 100

    error, prompt = await overflow(fake_openai, openai_client, messages=LONG)

    assert isinstance(error, openai.BadRequestError)
    assert error.body == (
        f"<LM Studio error> Trying to keep the first {prompt} tokens when context the overflows. However, the "
        "model is loaded with context length of only 100 tokens, which is not enough. Try to load the model with "
        "a larger context length, or provide a shorter input. Error Data: n/a, Additional Data: n/a"
    )


async def test_ollama_truncates_silently_and_bills_the_window(fake_openai, openai_client):
    fake_openai.flavor, fake_openai.context_tokens = "ollama", 100

    completion = await openai_client.chat.completions.create(model="llama3.1", messages=LONG, max_tokens=500)

    assert completion.choices[0].message.content
    assert completion.usage.prompt_tokens == 100 < prompt_tokens(fake_openai.requests[-1].body)


# -- settings ----------------------------------------------------------------------------------------


async def test_flavor_and_window_are_set_at_construction_and_cleared_by_reset():
    async with FakeOpenAIServer(flavor="vllm", context_tokens=4096) as server:
        assert (server.flavor, server.context_tokens) == ("vllm", 4096)
        server.reset()
        assert (server.flavor, server.context_tokens) == ("openai", None)


def test_an_unknown_flavor_is_refused():
    with pytest.raises(ValueError, match="unknown flavor 'sglang'"):
        FakeOpenAIServer(flavor="sglang")


async def test_the_refuse_flags_still_come_first(fake_openai, openai_client):
    fake_openai.flavor, fake_openai.refuse_json_object = "lmstudio", True

    with pytest.raises(openai.BadRequestError) as refused:
        await ask(openai_client, response_format=FORMATS["json_object"])

    assert refused.value.param == "response_format"  # OpenAI's refusal, not LM Studio's bare string
