"""The OpenAI backend against the fake server, through the real ``openai`` client."""

from __future__ import annotations

import socket
import time
from email.utils import formatdate

import pytest

from config.settings import LLMSettings
from simulation.llm.base import Attribution, ChatRequest, Message
from simulation.llm.errors import (
    AuthenticationFailedError,
    ContentFilteredError,
    ModelConfigurationError,
    ModelConnectionError,
    ModelRequestError,
    ModelTimeoutError,
    RateLimitedError,
    ResponseFormatUnsupportedError,
    ServerError,
    TransientLLMError,
)
from simulation.llm.openai_model import OpenAIModel, retry_after_from_headers
from simulation.llm.tokens import count_request_tokens
from tests.fakes.openai_server import FakeOpenAIServer

SYSTEM = "You are Maya, a product manager who keeps meetings short."


def ask(text: str = "Can you review the launch plan?", **fields: object) -> ChatRequest:
    return ChatRequest(
        messages=[Message(role="system", content=SYSTEM), Message(role="user", content=text)],
        **fields,
    )


@pytest.fixture
async def model(fake_openai: FakeOpenAIServer):
    backend = OpenAIModel.openai(
        model="gpt-4o-mini", api_key="sk-test", base_url=fake_openai.base_url, timeout_s=2
    )
    yield backend
    await backend.aclose()


async def test_a_completion_returns_the_reply_usage_and_model(model, fake_openai):
    result = await model.complete(ask())

    assert result.text.startswith("Maya here")
    assert result.model == "gpt-4o-mini-2024-07-18"
    assert result.finish_reason == "stop"
    assert result.cached is False and result.latency_s > 0
    body = fake_openai.requests[0].body
    assert result.usage.prompt_tokens == count_request_tokens(body["messages"]) > 0
    assert result.usage.completion_tokens > 0
    assert fake_openai.requests[0].headers["Authorization"] == "Bearer sk-test"
    assert fake_openai.requests[0].headers["Content-Type"] == "application/json"


async def test_only_the_parameters_that_are_set_are_sent(model, fake_openai):
    await model.complete(ask(attribution=Attribution(world="w", persona="Maya")))
    await model.complete(ask(temperature=0.3, max_tokens=50, seed=7, response_format={"type": "json_object"}))

    first, second = (r.body for r in fake_openai.requests)
    assert set(first) == {"model", "messages"}
    assert first["model"] == "gpt-4o-mini"
    assert first["messages"][0] == {"role": "system", "content": SYSTEM}
    assert (second["temperature"], second["max_tokens"], second["seed"]) == (0.3, 50, 7)
    assert second["response_format"] == {"type": "json_object"}


async def test_rate_limit_carries_the_servers_wait(model, fake_openai):
    fake_openai.fail("rate_limit", retry_after=0.25)

    with pytest.raises(RateLimitedError) as caught:
        await model.complete(ask())

    assert caught.value.retry_after == pytest.approx(0.25)
    assert "rate limiting" in str(caught.value) and "TROUPE_LLM_CONCURRENCY" in str(caught.value)


async def test_an_exhausted_quota_is_not_treated_as_a_passing_rate_limit(model, fake_openai):
    fake_openai.fail(
        "error", status=429, type="insufficient_quota", code="insufficient_quota",
        message="You exceeded your current quota, please check your plan and billing details.",
    )

    with pytest.raises(ModelRequestError) as caught:
        await model.complete(ask())

    assert not isinstance(caught.value, TransientLLMError)
    assert "quota" in str(caught.value) and "billing" in str(caught.value)


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_transient_with_their_status(model, fake_openai, status):
    fake_openai.fail("server_error", status=status)

    with pytest.raises(ServerError) as caught:
        await model.complete(ask())

    assert caught.value.status == status and caught.value.retryable
    assert f"HTTP {status}" in str(caught.value)


async def test_a_server_that_hangs_times_out_with_advice(fake_openai):
    slow = OpenAIModel.openai(model="m", base_url=fake_openai.base_url, timeout_s=0.2)
    fake_openai.fail("hang")
    started = time.perf_counter()
    try:
        with pytest.raises(ModelTimeoutError) as caught:
            await slow.complete(ask())
    finally:
        await slow.aclose()

    assert time.perf_counter() - started < 1.5
    assert "0.2s" in str(caught.value) and "TROUPE_LLM_TIMEOUT_S" in str(caught.value)


async def test_a_dropped_connection_is_a_connection_error(model, fake_openai):
    fake_openai.fail("reset")

    with pytest.raises(ModelConnectionError):
        await model.complete(ask())
    assert (await model.complete(ask())).text.startswith("Maya here")


async def test_a_server_that_is_not_running_is_named_in_the_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    absent = OpenAIModel.openai(model="llama3.1", base_url=url, timeout_s=1)
    try:
        with pytest.raises(ModelConnectionError) as caught:
            await absent.complete(ask())
    finally:
        await absent.aclose()
    assert url in str(caught.value) and "TROUPE_LLM_BASE_URL" in str(caught.value)


async def test_a_rejected_key_says_which_setting_to_fix():
    async with FakeOpenAIServer(api_key="sk-right") as server:
        wrong = OpenAIModel.openai(model="gpt-4o-mini", api_key="sk-wrong", base_url=server.base_url)
        try:
            with pytest.raises(AuthenticationFailedError) as caught:
                await wrong.complete(ask())
        finally:
            await wrong.aclose()
    message = str(caught.value)
    assert caught.value.status == 401
    assert server.base_url in message and "rejected the API key" in message
    assert "TROUPE_LLM_API_KEY" in message


async def test_forbidden_is_an_authentication_failure(model, fake_openai):
    fake_openai.fail("error", status=403, type="invalid_request_error", message="Project does not have access")

    with pytest.raises(AuthenticationFailedError) as caught:
        await model.complete(ask())
    assert caught.value.status == 403


async def test_an_unknown_model_points_at_the_model_setting(model, fake_openai):
    fake_openai.fail(
        "error", status=404, code="model_not_found",
        message="The model `gpt-4o-mini` does not exist or you do not have access to it.",
    )

    with pytest.raises(ModelRequestError) as caught:
        await model.complete(ask())
    assert caught.value.status == 404 and "TROUPE_LLM_MODEL" in str(caught.value)


async def test_other_client_errors_are_request_errors_and_not_retryable(model, fake_openai):
    fake_openai.fail("error", status=400, param="messages", message="'messages' must not be empty")

    with pytest.raises(ModelRequestError) as caught:
        await model.complete(ask())
    assert not caught.value.retryable and "must not be empty" in str(caught.value)


async def test_a_refused_response_format_is_recognised(model, fake_openai):
    fake_openai.refuse_json_schema = True
    schema = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    request = ask(response_format={"type": "json_schema", "json_schema": {"name": "X", "schema": schema}})

    with pytest.raises(ResponseFormatUnsupportedError) as caught:
        await model.complete(request)
    assert "json_schema" in str(caught.value)


async def test_content_filter_on_the_prompt_and_on_the_completion(model, fake_openai):
    fake_openai.fail("content_filter")
    with pytest.raises(ContentFilteredError) as caught:
        await model.complete(ask())
    assert not caught.value.retryable and "content filter" in str(caught.value)

    fake_openai.fail("content_filter", stage="completion")
    with pytest.raises(ContentFilteredError):
        await model.complete(ask())


async def test_a_reply_without_choices_is_a_typed_error(model, fake_openai):
    fake_openai.fail("no_choices")

    with pytest.raises(ServerError) as caught:
        await model.complete(ask())
    assert "without choices" in str(caught.value)


async def test_a_server_that_sends_only_the_required_fields_is_understood(model, fake_openai):
    fake_openai.fail("sparse")
    result = await model.complete(ask())
    assert result.text and result.finish_reason == "stop"
    assert result.model == fake_openai.model and result.usage.prompt_tokens == 0


async def test_an_answer_that_is_not_a_chat_completion_says_how_to_fix_the_url(model, fake_openai):
    fake_openai.fail("not_a_completion")
    with pytest.raises(ModelRequestError) as caught:
        await model.complete(ask())
    assert "not a chat completion" in str(caught.value) and "It works" in str(caught.value)
    assert "TROUPE_LLM_BASE_URL" in str(caught.value) and not caught.value.retryable


async def test_max_tokens_is_renamed_for_models_that_reject_it(model, fake_openai):
    fake_openai.fail(
        "error", status=400, param="max_tokens", code="unsupported_parameter",
        message="Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead.",
    )

    await model.complete(ask(max_tokens=100))
    await model.complete(ask(max_tokens=100))

    sent = [r.body for r in fake_openai.requests]
    assert "max_tokens" in sent[0]
    assert [b.get("max_completion_tokens") for b in sent[1:]] == [100, 100]
    assert all("max_tokens" not in b for b in sent[1:])


async def test_a_custom_temperature_is_dropped_for_models_that_reject_it(model, fake_openai):
    fake_openai.fail(
        "error", status=400, param="temperature", code="unsupported_value",
        message="Unsupported value: 'temperature' does not support 0.2 with this model. "
        "Only the default (1) value is supported.",
    )

    result = await model.complete(ask(temperature=0.2))
    await model.complete(ask(temperature=0.2))

    assert result.text.startswith("Maya here")
    assert [r.body.get("temperature") for r in fake_openai.requests] == [0.2, None, None]


async def test_azure_deployment_path_key_header_and_api_version(fake_openai):
    azure = OpenAIModel.azure_openai(
        azure_endpoint=fake_openai.azure_endpoint,
        azure_deployment="troupe-4o",
        api_version="2024-10-21",
        api_key="azure-key",
        timeout_s=2,
    )
    try:
        result = await azure.complete(ask())
        fake_openai.fail("content_filter")
        with pytest.raises(ContentFilteredError):
            await azure.complete(ask())
    finally:
        await azure.aclose()

    assert result.text.startswith("Maya here")
    request = fake_openai.requests[0]
    assert request.path == "/openai/deployments/troupe-4o/chat/completions"
    assert request.query["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == "azure-key"
    assert request.headers["Content-Type"] == "application/json"
    assert "troupe-4o" in azure.endpoint


async def test_from_settings_for_azure_and_for_a_local_server(fake_openai):
    azure = OpenAIModel.from_settings(
        LLMSettings(
            azure_endpoint=fake_openai.azure_endpoint,
            azure_deployment="dep",
            api_key="k",
            timeout_s=3,
        )
    )
    local = OpenAIModel.from_settings(LLMSettings(base_url=fake_openai.base_url, model="llama3.1"))
    try:
        assert azure.azure and azure.name == "dep"
        await azure.complete(ask())
        await local.complete(ask())
    finally:
        await azure.aclose()
        await local.aclose()
    assert fake_openai.requests[0].path.startswith("/openai/deployments/dep/")
    # A local server gets a placeholder key: the openai client insists on one.
    assert fake_openai.requests[1].headers["Authorization"].startswith("Bearer ")
    assert fake_openai.requests[1].body["model"] == "llama3.1"


def test_missing_configuration_is_explained(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelConfigurationError, match="TROUPE_LLM_API_KEY"):
        OpenAIModel.from_settings(LLMSettings(provider="openai", model="gpt-4o-mini"))
    with pytest.raises(ModelConfigurationError, match="TROUPE_LLM_MODEL"):
        OpenAIModel.from_settings(LLMSettings(base_url="http://127.0.0.1:11434/v1"))
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN", raising=False)
    with pytest.raises(ModelConfigurationError, match="TROUPE_LLM_API_KEY"):
        OpenAIModel.from_settings(LLMSettings(azure_endpoint="https://x.openai.azure.com", model="gpt-4o"))


def test_retry_after_headers_in_milliseconds_seconds_and_dates():
    assert retry_after_from_headers({"retry-after-ms": "150", "Retry-After": "9"}) == pytest.approx(0.15)
    assert retry_after_from_headers({"Retry-After": "2"}) == 2.0
    now = time.time()
    assert retry_after_from_headers({"Retry-After": formatdate(now + 30, usegmt=True)}, now=now) == pytest.approx(30, abs=1)
    assert retry_after_from_headers({"Retry-After": formatdate(now - 30, usegmt=True)}, now=now) == 0.0
    assert retry_after_from_headers({"Retry-After": "soon"}) is None
    assert retry_after_from_headers({}) is None
