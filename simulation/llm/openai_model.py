"""Chat completions over the ``openai`` client: OpenAI, Azure OpenAI, or any OpenAI-compatible server.

Ollama, vLLM, llama.cpp and LM Studio all serve ``/v1/chat/completions``, so one backend covers
them through ``base_url``. Provider exceptions never leave this module: each is mapped to a typed
error from ``simulation.llm.errors`` whose message says what happened and what to change.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx2
import openai
import pydantic_core

from simulation.fairness import fair_turn
from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, Usage
from simulation.llm.errors import (
    AuthenticationFailedError,
    ContentFilteredError,
    ContextLengthExceededError,
    LLMError,
    ModelConfigurationError,
    ModelConnectionError,
    ModelRequestError,
    ModelTimeoutError,
    RateLimitedError,
    ResponseFormatUnsupportedError,
    ServerError,
)

if TYPE_CHECKING:
    from config.settings import LLMSettings

#: Sent as the API key to local servers that do not check one (Ollama, vLLM, llama.cpp).
LOCAL_SERVER_API_KEY = "not-needed"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

#: Connections kept for a model when its concurrency is not given.
DEFAULT_CONNECTIONS = 32


def _http_client(concurrency: int, timeout_s: float) -> openai.DefaultAioHttpClient:
    """The openai client's aiohttp transport: it costs a fraction of the CPU per request that the
    default one does, which is what bounds a bot serving hundreds of channels at once.

    Reading and parsing a reply waits for a fair turn at the CPU, so hundreds of replies landing
    together are worked through over several passes of the event loop instead of one long one.
    """
    connections = max(1, concurrency)
    return openai.DefaultAioHttpClient(
        timeout=timeout_s,
        limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
        event_hooks={"response": [_fair_turn_for_reply]},
    )


async def _fair_turn_for_reply(response: httpx2.Response) -> None:
    await fair_turn()


_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "structured output", "json mode")


def _connection_failure(error: BaseException) -> BaseException | None:
    """The refused or dropped connection behind ``error``, if that is what it was.

    The aiohttp transport reports both as timeouts; the cause chain still says what happened.
    """
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, ConnectionError)):
            return cause
        if isinstance(cause, aiohttp.ClientOSError) and not isinstance(cause, TimeoutError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def retry_after_from_headers(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class OpenAIModel(LanguageModel):
    """A chat model served over the OpenAI chat completions API.

    The client's own retries are off: ``RetryingModel`` decides when to retry, so waits are
    visible, bounded and honour ``Retry-After``.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        endpoint: str | None = None,
        azure: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        self.client = client
        self.name = model
        self.azure = azure
        self.timeout_s = timeout_s
        #: Where requests go, for messages: the base URL, or the Azure endpoint and deployment.
        self.endpoint = endpoint or str(client.base_url).rstrip("/")
        # Newer OpenAI models reject ``max_tokens`` or a non-default temperature; when a server
        # says so, the request is adapted once and the adaptation is remembered.
        self._token_param = "max_tokens"
        self._send_temperature = True
        # What this server + model can do is remembered under this key; a local server is asked
        # for its context window the first time it is used.
        self.capabilities.key = f"{self.endpoint}|{model}"
        if not azure and "api.openai.com" not in self.endpoint:
            self.capabilities.probe = self.server_context_tokens
            self.capabilities.bounded_replies = True
        else:
            self.capabilities.object_schema = False

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def openai(
        cls,
        *,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        concurrency: int = DEFAULT_CONNECTIONS,
    ) -> OpenAIModel:
        """OpenAI itself (no ``base_url``) or an OpenAI-compatible server at ``base_url``."""
        if model is None:
            if base_url is not None:
                raise ModelConfigurationError(
                    f"no model name for the server at {base_url}: set TROUPE_LLM_MODEL to a model it "
                    "serves (for Ollama, one listed by `ollama list`, e.g. llama3.1)"
                )
            model = DEFAULT_OPENAI_MODEL
        if api_key is None and base_url is not None:
            api_key = LOCAL_SERVER_API_KEY
        try:
            client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0,
                                        http_client=_http_client(concurrency, timeout_s))
        except openai.OpenAIError as error:
            raise ModelConfigurationError(
                "no API key for OpenAI: set TROUPE_LLM_API_KEY (or OPENAI_API_KEY), or set "
                "TROUPE_LLM_BASE_URL to use a local OpenAI-compatible server such as Ollama"
            ) from error
        return cls(client, model, timeout_s=timeout_s)

    @classmethod
    def azure_openai(
        cls,
        *,
        azure_endpoint: str,
        api_version: str,
        azure_deployment: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        concurrency: int = DEFAULT_CONNECTIONS,
    ) -> OpenAIModel:
        """Azure OpenAI: requests go to ``/openai/deployments/{deployment}/chat/completions``."""
        deployment = azure_deployment or model
        if deployment is None:
            raise ModelConfigurationError(
                f"no Azure deployment for {azure_endpoint}: set TROUPE_LLM_AZURE_DEPLOYMENT to the "
                "deployment name shown in the Azure portal"
            )
        try:
            client = openai.AsyncAzureOpenAI(
                azure_endpoint=azure_endpoint,
                azure_deployment=deployment,
                api_version=api_version,
                api_key=api_key,
                timeout=timeout_s,
                max_retries=0,
                http_client=_http_client(concurrency, timeout_s),
            )
        except (openai.OpenAIError, ValueError) as error:
            raise ModelConfigurationError(
                f"cannot use Azure OpenAI at {azure_endpoint}: {error}. Set TROUPE_LLM_API_KEY to "
                "the resource's key (or AZURE_OPENAI_API_KEY)"
            ) from error
        endpoint = f"{azure_endpoint.rstrip('/')} (deployment {deployment})"
        return cls(client, model or deployment, endpoint=endpoint, azure=True, timeout_s=timeout_s)

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> OpenAIModel:
        """The model the settings describe; the demo provider is not served here."""
        api_key = llm.api_key.get_secret_value() if llm.api_key is not None else None
        provider = llm.resolved_provider
        if provider == "azure":
            assert llm.azure_endpoint is not None  # checked by LLMSettings
            return cls.azure_openai(
                azure_endpoint=llm.azure_endpoint,
                azure_deployment=llm.azure_deployment,
                api_version=llm.api_version,
                model=llm.model,
                api_key=api_key,
                timeout_s=llm.timeout_s,
                concurrency=llm.concurrency,
            )
        if provider == "openai":
            return cls.openai(
                model=llm.model,
                api_key=api_key,
                base_url=llm.base_url,
                timeout_s=llm.timeout_s,
                concurrency=llm.concurrency,
            )
        raise ModelConfigurationError(
            "the demo provider has no server: use simulation.llm.factory.build_model instead"
        )

    # -- completion ------------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> ChatResult:
        for _ in range(3):
            params = self._params(request)
            started = time.perf_counter()
            try:
                # The body is plain JSON, encoded here: posting it skips the client's walk over
                # its typed parameter schema. The reply is read as JSON here too: building the
                # client's typed ChatCompletion costs ~0.2 ms a call, 30 times what parsing does,
                # and a lenient read also serves servers that leave out fields.
                reply = await self.client.post(
                    "/chat/completions",
                    cast_to=bytes,
                    content=pydantic_core.to_json(params),
                    options={"security": {"bearer_auth": True}},
                )
            except openai.BadRequestError as error:
                if self._adapt(error):
                    continue
                raise self._translate(error, request) from error
            except openai.OpenAIError as error:
                raise self._translate(error, request) from error
            return self._result(reply, time.perf_counter() - started)
        raise ModelRequestError(f"{self.where} kept rejecting the request's parameters", status=400)

    async def aclose(self) -> None:
        await self.client.close()

    async def server_context_tokens(self) -> int | None:
        """The context window the server runs the model with, from its information endpoints
        (llama.cpp's ``/props``, vLLM's ``/v1/models``, LM Studio's ``/api/v0/models``, Ollama's
        ``/api/show``), or None when none of them says."""
        base = str(self.client.base_url).rstrip("/")
        root = base[: -len("/v1")] if base.endswith("/v1") else base
        for method, url, body, read in (
            ("get", f"{root}/props", None, _llama_cpp_context),
            ("get", f"{base}/models", None, lambda data: _vllm_context(data, self.name)),
            ("get", f"{root}/api/v0/models/{self.name}", None, _lm_studio_context),
            ("post", f"{root}/api/show", {"model": self.name}, _ollama_context),
        ):
            try:
                options = {"timeout": PROBE_TIMEOUT_S}
                if method == "get":
                    raw = await self.client.get(url, cast_to=bytes, options=options)
                else:
                    raw = await self.client.post(url, cast_to=bytes, body=body, options=options)
                found = read(json.loads(raw))
            except (openai.OpenAIError, ValueError, TypeError, AttributeError):
                continue
            if isinstance(found, int) and found > 0:
                return found
        return None

    @property
    def where(self) -> str:
        return f"the model server at {self.endpoint}"

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.response_format is not None:
            params["response_format"] = request.response_format
        if request.temperature is not None and self._send_temperature:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params[self._token_param] = request.max_tokens
        if request.seed is not None:
            params["seed"] = request.seed
        return params

    def _adapt(self, error: openai.BadRequestError) -> bool:
        """Adapt to a model that rejects ``max_tokens`` or a custom temperature; False if not that."""
        message = (error.message or "").lower()
        if error.param == "max_tokens" and "max_completion_tokens" in message:
            if self._token_param == "max_tokens":
                self._token_param = "max_completion_tokens"
                return True
        if error.param == "temperature" and self._send_temperature and "temperature" in message:
            self._send_temperature = False
            return True
        return False

    def _result(self, reply: bytes, latency: float) -> ChatResult:
        try:
            completion = json.loads(reply)
        except ValueError:
            completion = reply.decode("utf-8", "replace")
        if not isinstance(completion, dict) or not ("choices" in completion or "object" in completion):
            raise ModelRequestError(
                f"{self.where} answered with something that is not a chat completion "
                f"({_preview(completion)}); check TROUPE_LLM_BASE_URL: it usually ends in /v1",
                status=200,
            )
        choices = completion.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise ServerError(
                f"{self.where} returned a completion without choices; this is usually a passing "
                "server fault and is retried",
                status=502,
            )
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        finish_reason = choice.get("finish_reason")
        text = message.get("content") or ""
        if not isinstance(text, str):  # content parts
            text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
        refusal = message.get("refusal")
        if finish_reason == "content_filter":
            raise ContentFilteredError(
                f"{self.where} withheld the reply: its content filter flagged the completion. "
                "Rephrase the persona or scenario; retrying the same prompt will not help"
            )
        if refusal and not text:
            raise ContentFilteredError(
                f"the model refused to answer: {refusal!s:.200}. Rephrase the persona or scenario"
            )
        usage = completion.get("usage") if isinstance(completion.get("usage"), dict) else {}
        return ChatResult(
            text=text,
            model=completion.get("model") or self.name,
            finish_reason=finish_reason,
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens") or 0,
                completion_tokens=usage.get("completion_tokens") or 0,
            ),
            latency_s=latency,
        )

    def _translate(self, error: openai.OpenAIError, request: ChatRequest) -> LLMError:
        """Map a client exception to a typed error whose message says what to do."""
        refused = _connection_failure(error)
        if isinstance(error, openai.APITimeoutError) and refused is None:
            within = f" within {self.timeout_s:g}s" if self.timeout_s is not None else ""
            return ModelTimeoutError(
                f"{self.where} did not answer{within}; it may be overloaded or "
                "the model slow to load. Raise TROUPE_LLM_TIMEOUT_S if this keeps happening"
            )
        if isinstance(error, openai.APIConnectionError):
            cause = refused or error.__cause__ or error.__context__
            detail = f" ({type(cause).__name__}: {cause})" if cause else ""
            return ModelConnectionError(
                f"could not reach {self.where}{detail}; check that the server is running and "
                "TROUPE_LLM_BASE_URL (or TROUPE_LLM_AZURE_ENDPOINT) is right"
            )
        if isinstance(error, openai.APIStatusError):
            return self._translate_status(error, request)
        if isinstance(error, openai.APIResponseValidationError):
            return ModelRequestError(
                f"{self.where} answered with a body that is not a chat completion; check "
                "TROUPE_LLM_BASE_URL: it usually ends in /v1",
                status=error.status_code,
            )
        return ModelRequestError(f"the request to {self.where} failed: {error}")

    def _translate_status(self, error: openai.APIStatusError, request: ChatRequest) -> LLMError:
        status = error.status_code
        detail = _server_message(error)
        code = (error.code or "").lower()
        retry_after = retry_after_from_headers(error.response.headers)
        if status == 429:
            if code == "insufficient_quota":
                return ModelRequestError(
                    f"{self.where} says the account has no quota left ({detail}); check the plan "
                    "and billing details of the API key's account",
                    status=status,
                )
            wait = f"; it asked to wait {retry_after:g}s" if retry_after is not None else ""
            return RateLimitedError(
                f"{self.where} is rate limiting requests ({detail}){wait}. Lower "
                "TROUPE_LLM_CONCURRENCY if this keeps happening",
                retry_after=retry_after,
            )
        if (overflow := _context_overflow(error, detail)) is not None:
            limit, requested = overflow
            return ContextLengthExceededError(
                f"{self.where} says the prompt does not fit the model's context window ({detail})",
                status=status,
                limit=limit,
                requested=requested,
            )
        # Some servers refuse an unsupported response_format with a 5xx (llama-cpp-python answers
        # its validation error with HTTP 500): read the body before taking it for a passing fault.
        if request.response_format is not None and _about_response_format(error, detail):
            kind = request.response_format.get("type", "this response_format")
            return ResponseFormatUnsupportedError(
                f"{self.where} does not support response_format {kind} ({detail})", status=status
            )
        if status >= 500:
            return ServerError(
                f"{self.where} failed with HTTP {status} ({detail}); this is usually passing",
                status=status,
                retry_after=retry_after,
            )
        if status == 408:
            return ModelTimeoutError(f"{self.where} timed out the request (HTTP 408: {detail})")
        if status in (401, 403):
            what = "rejected the API key" if status == 401 else "refused access with this API key"
            key_hint = (
                "set TROUPE_LLM_API_KEY to a key of this Azure OpenAI resource"
                if self.azure
                else "set TROUPE_LLM_API_KEY to a valid key"
            )
            return AuthenticationFailedError(
                f"{self.where} {what} (HTTP {status}: {detail}); {key_hint}", status=status
            )
        if code == "content_filter" or "content_filter" in str(error.body):
            return ContentFilteredError(
                f"{self.where} refused the prompt: its content filter flagged it ({detail}). "
                "Rephrase the persona or scenario; retrying the same prompt will not help"
            )
        if status == 404:
            target = "deployment" if self.azure else "model"
            setting = "TROUPE_LLM_AZURE_DEPLOYMENT" if self.azure else "TROUPE_LLM_MODEL"
            return ModelRequestError(
                f"{self.where} has no {target} {self.name!r} (HTTP 404: {detail}); check {setting}"
                + ("" if self.azure else " and that TROUPE_LLM_BASE_URL ends in /v1"),
                status=status,
            )
        return ModelRequestError(
            f"{self.where} rejected the request (HTTP {status}: {detail})", status=status
        )


#: Seconds each information endpoint may take: they are a nicety, never worth a slow first turn.
PROBE_TIMEOUT_S = 2.0


def _llama_cpp_context(data: Any) -> int | None:
    settings = data.get("default_generation_settings") or {}
    return data.get("n_ctx") or settings.get("n_ctx")


def _vllm_context(data: Any, model: str) -> int | None:
    for entry in data.get("data") or []:
        if isinstance(entry, dict) and entry.get("id") == model:
            return entry.get("max_model_len")
    return None


def _lm_studio_context(data: Any) -> int | None:
    return data.get("loaded_context_length") or None


def _ollama_context(data: Any) -> int | None:
    """Ollama runs a model with ``num_ctx`` tokens, when its parameters set one (else its own
    default, which it does not report, and it trims longer prompts silently)."""
    match = re.search(r"^num_ctx\s+(\d+)", data.get("parameters") or "", re.MULTILINE)
    return int(match.group(1)) if match else None


def _server_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error") or body.get("detail")
        if message:
            return str(message)[:300]
    return (error.message or f"HTTP {error.status_code}")[:300]


#: Statuses a server refuses a request's parameters with: 400 and 422 by the book, 500 and 501
#: from servers whose validation errors escape as server faults.
_REFUSAL_STATUSES = (400, 422, 500, 501)


def _about_response_format(error: openai.APIStatusError, detail: str) -> bool:
    if error.status_code not in _REFUSAL_STATUSES:
        return False
    param = (error.param or "").lower()
    if param.startswith("response_format"):
        return True
    text = f"{detail} {error.body}".lower()
    return any(word in text for word in _FORMAT_WORDS)


_CONTEXT_WORDS = (
    "context length",
    "context_length",
    "context window",
    "context size",
    "exceed_context_size",
    "n_ctx",
    "maximum context",
)
_CONTEXT_LIMIT = (
    re.compile(r"maximum context length is (\d[\d,]*)"),  # OpenAI, Azure, vLLM
    re.compile(r"exceed context window of (\d[\d,]*)"),  # llama-cpp-python
    re.compile(r"context length of only (\d[\d,]*)"),  # LM Studio
    re.compile(r"context (?:size|window|length)[^0-9]{0,20}(\d[\d,]*)"),
)
_CONTEXT_REQUESTED = (
    re.compile(r"(?:resulted in|requested) (\d[\d,]*) tokens"),  # OpenAI, vLLM
    re.compile(r"requested tokens \((\d[\d,]*)\)"),  # llama-cpp-python
    re.compile(r"keep the first (\d[\d,]*) tokens"),  # LM Studio
)


def _context_overflow(error: openai.APIStatusError, detail: str) -> tuple[int | None, int | None] | None:
    """``(window, requested)`` tokens when ``error`` says the prompt is longer than the context
    window (either may be None if not said), else None. Wordings: OpenAI's
    ``context_length_exceeded``, vLLM's "maximum context length", llama.cpp's
    ``exceed_context_size_error`` with ``n_ctx``, llama-cpp-python's "exceed context window"."""
    if error.status_code not in (*_REFUSAL_STATUSES, 413):
        return None
    body = error.body if isinstance(error.body, Mapping) else {}
    text = f"{detail} {error.code or ''} {body.get('type') or ''} {error.body}".lower()
    if not any(word in text for word in _CONTEXT_WORDS):
        return None
    limit = _first_number(_CONTEXT_LIMIT, text)
    requested = _first_number(_CONTEXT_REQUESTED, text)
    if isinstance(body.get("n_ctx"), int):
        limit = body["n_ctx"]
    if isinstance(body.get("n_prompt_tokens"), int):
        requested = body["n_prompt_tokens"]
    return limit, requested


def _first_number(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return int(match.group(1).replace(",", ""))
    return None


def _preview(value: Any) -> str:
    text = str(value).strip().replace("\n", " ")
    return f"{type(value).__name__}: {text[:80]!r}"
