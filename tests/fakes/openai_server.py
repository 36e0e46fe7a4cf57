"""A local stand-in for the OpenAI chat completions API (and moderations), for tests and benchmarks.

It speaks the real wire format (response and error bodies, headers, the Azure deployment path),
so the real ``openai`` client can be driven against it: nothing of ours is bypassed. Replies come
from a script, a responder callable or a default rule; faults are injected on demand (``fail``) or
at random (``chaos``, seeded), and counted in ``faults_injected``. A ``flavor`` makes it answer as
another OpenAI-compatible server where they differ (``FLAVORS``: old Azure, llama-cpp-python, llama.cpp,
Ollama, vLLM, LM Studio): which ``response_format`` is refused and how, and what a request past
``context_tokens`` gets.

    async with FakeOpenAIServer() as server:
        server.fail("rate_limit", times=1, retry_after=0.05)
        server.chaos(0.2, seed=7)  # a fifth of the requests get a random fault
        server.flavor, server.context_tokens = "llama_cpp_python", 2048
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test")
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aiohttp import web
from bpe_openai import get_encoding

from tests.fakes.chaos import FaultDice

Responder = Callable[[dict[str, Any]], "str | Awaitable[str]"]
#: Category scores (0-1) for one moderation input's text.
ModerationResponder = Callable[[str], "dict[str, float] | Awaitable[dict[str, float]]"]

FAULTS = (
    "rate_limit",
    "server_error",
    "hang",
    "reset",
    "malformed_json",
    "missing_fields",
    "truncated",
    "content_filter",
    "no_choices",
    "sparse",
    "not_a_completion",
    "error",
)

#: Faults that make sense for any endpoint (the others shape a chat completion).
HTTP_FAULTS = ("rate_limit", "server_error", "hang", "reset", "error")

#: What ``chaos`` picks from by default: a busy or flaky provider, and a flaky network.
#: ``server_error_500`` / ``server_error_503`` are ``server_error`` with that status.
CHAOS_FAULTS = (
    "rate_limit",
    "server_error_500",
    "server_error_503",
    "reset",
    "hang",
    "malformed_json",
    "truncated",
)

#: The omni moderation models' categories, as the API names them.
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: Categories the omni models also score for images.
_IMAGE_CATEGORIES = frozenset(
    {"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence", "violence/graphic"}
)
#: A few unmistakable phrases and the scores the default moderation rule gives them.
_MODERATION_RULES = (
    (
        re.compile(r"\b(?:kill|hurt|stab|shoot) you\b", re.I),
        {"violence": 0.93, "harassment/threatening": 0.91, "harassment": 0.86},
    ),
    (re.compile(r"\bkill yourself\b", re.I), {"harassment": 0.9, "self-harm": 0.72, "self-harm/intent": 0.2}),
    (re.compile(r"\b(?:idiot|moron|worthless|stupid)\b", re.I), {"harassment": 0.81}),
)

_PERSONA = re.compile(r"^\s*You are ([^,\n]+),")
_SCHEMA_IN_PROMPT = re.compile(r"JSON schema:\s*", re.IGNORECASE)
_TEXT_FIELDS = {"text", "message", "content", "reply", "body", "answer", "response"}


# -- flavors: where OpenAI-compatible servers part ways ---------------------------------------------
#
# "OpenAI-compatible" covers the URL and the message shape; structured output and an over-long
# prompt are where the servers differ, and where a client that only ever met OpenAI breaks. Each
# builder below reproduces one server's answer, with the source of its wording.

#: An error answer: HTTP status and JSON body.
ErrorAnswer = tuple[int, dict[str, Any]]


def _completion_budget(body: dict[str, Any]) -> int | None:
    """The completion tokens a request reserves (``max_completion_tokens`` or ``max_tokens``)."""
    budget = body.get("max_completion_tokens")
    return budget if budget is not None else body.get("max_tokens")


def _accepts_every_format(response_format: dict[str, Any]) -> ErrorAnswer | None:
    return None


def _azure_old_refusal(response_format: dict[str, Any]) -> ErrorAnswer | None:
    """Azure before api-version 2024-08-01-preview knows json_object but not json_schema."""
    # Wording: Azure/azure-sdk-for-net#46579, crmne/ruby_llm#600; body as the openai client printed
    # it ("Error code: 400 - {'error': {'code': 'BadRequest', 'message': ...}}"), langgenius/dify#8994.
    if response_format.get("type") != "json_schema":
        return None
    message = "response_format value as json_schema is enabled only for api versions 2024-08-01-preview and later"
    return 400, {"error": {"code": "BadRequest", "message": message}}


def _llama_cpp_python_refusal(response_format: dict[str, Any]) -> ErrorAnswer | None:
    """llama-cpp-python's request model allows only text and json_object, and its error route answers 500.

    The type is ``Literal["text", "json_object"]`` (llama_cpp/llama_types.py,
    ``ChatCompletionRequestResponseFormat``). FastAPI's validation error is not an HTTPException, so
    ``RouteErrorHandler`` (llama_cpp/server/errors.py) catches it as any exception: 500,
    ``internal_server_error``, and ``str(error)`` — the repr of pydantic's error list — as the message.
    """
    kind = response_format.get("type")
    if kind is None or kind in ("text", "json_object"):
        return None
    errors = [
        {
            "type": "literal_error",
            "loc": ("body", "response_format", "type"),
            "msg": "Input should be 'text' or 'json_object'",
            "input": kind,
            "ctx": {"expected": "'text' or 'json_object'"},
        }
    ]
    return 500, error_body(str(errors), "internal_server_error")


def _llama_cpp_refusal(response_format: dict[str, Any]) -> ErrorAnswer | None:
    """llama-server reads json_schema and json_object (its schema as a grammar); other types are a 400."""
    # ggml-org/llama.cpp tools/server/server-common.cpp: oaicompat_chat_params_parse throws
    # invalid_argument, which format_error_response turns into invalid_request_error / 400.
    kind = response_format.get("type")
    if kind in (None, "text", "json_object", "json_schema"):
        return None
    message = f'response_format type must be one of "text" or "json_object", but got: {kind}'
    return 400, {"error": {"code": 400, "message": message, "type": "invalid_request_error"}}


def _lmstudio_refusal(response_format: dict[str, Any]) -> ErrorAnswer | None:
    """LM Studio constrains output with json_schema only; json_object is refused (its error is a bare string)."""
    # Body verbatim in LoadShine/tada#16 and whiteguo233/OpenBiliClaw#12. Earlier releases said only
    # "must be 'json_schema'" (lmstudio-ai/lmstudio-bug-tracker#169, #189, #307).
    if response_format.get("type") in (None, "text", "json_schema"):
        return None
    return 400, {"error": "'response_format.type' must be 'json_schema' or 'text'"}


def _openai_overflow(body: dict[str, Any], prompt: int, limit: int) -> ErrorAnswer | None:
    """OpenAI (and Azure): the messages alone, or the messages plus the completion budget, past the limit."""
    # Body verbatim in chathub-dev/chathub#126 and biu9/cc98-summary#2; the "you requested" form in
    # vitalio-sh/chatgpt-3.5-turbo#2.
    completion = _completion_budget(body)
    head = f"This model's maximum context length is {limit} tokens. However, "
    if prompt > limit:
        message = f"{head}your messages resulted in {prompt} tokens. Please reduce the length of the messages."
    elif completion is not None and prompt + completion > limit:
        message = (
            f"{head}you requested {prompt + completion} tokens ({prompt} in the messages, {completion} in the "
            "completion). Please reduce the length of the messages or completion."
        )
    else:
        return None
    return 400, error_body(message, "invalid_request_error", "messages", "context_length_exceeded")


def _llama_cpp_python_overflow(body: dict[str, Any], prompt: int, limit: int) -> ErrorAnswer | None:
    """llama-cpp-python refuses a prompt that fills the context; a too-large max_tokens is only trimmed.

    ``Llama._create_completion`` raises "Requested tokens (N) exceed context window of M" when
    ``N >= n_ctx`` (llama_cpp/llama.py); ``RouteErrorHandler`` rewrites it OpenAI's way, with the
    request's own ``max_tokens`` — ``None`` when unset, printed as is (llama_cpp/server/errors.py).
    """
    if prompt < limit:
        return None
    completion = body.get("max_tokens")  # its request model has no max_completion_tokens
    message = (
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{(completion or 0) + prompt} tokens ({prompt} in the messages, {completion} in the completion). "
        "Please reduce the length of the messages or completion."
    )
    return 400, error_body(message, "invalid_request_error", "messages", "context_length_exceeded")


def _llama_cpp_overflow(body: dict[str, Any], prompt: int, limit: int) -> ErrorAnswer | None:
    """llama-server refuses a prompt that fills the slot's context; generation just stops at the end of it."""
    # ggml-org/llama.cpp tools/server/server-context.cpp (n_tokens >= slot.n_ctx, context shift off by
    # default) and format_error_response (exceed_context_size_error -> 400); the token counts were
    # added in ggml-org/llama.cpp#15780. Body verbatim in microsoft/vscode#320558.
    if prompt < limit:
        return None
    message = f"request ({prompt} tokens) exceeds the available context size ({limit} tokens), try increasing it"
    error = {"code": 400, "message": message, "type": "exceed_context_size_error"}
    return 400, {"error": {**error, "n_prompt_tokens": prompt, "n_ctx": limit}}


def _vllm_overflow(body: dict[str, Any], prompt: int, limit: int) -> ErrorAnswer | None:
    """vLLM counts the completion budget too; without one, only a prompt that fills the context fails."""
    # vllm-project/vllm vllm/entrypoints/openai/serving_engine.py (_validate_input, through v0.10);
    # body nested under "error" since v0.10.1 (vllm-project/vllm#22099). Real bodies quoted in
    # vllm-project/vllm#12886 and foundation-model-stack/fms-guardrails-orchestrator#511. Releases
    # from v0.11 word it differently ("your request has N input tokens", "your prompt contains ...").
    completion = _completion_budget(body)
    head = f"This model's maximum context length is {limit} tokens. However, you requested "
    if completion is None:
        if prompt < limit:
            return None
        message = f"{head}{prompt} tokens in the messages, Please reduce the length of the messages."
    elif prompt + completion <= limit:
        return None
    else:
        message = (
            f"{head}{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
            "Please reduce the length of the messages or completion."
        )
    return 400, error_body(message, "BadRequestError", None, 400)


def _lmstudio_overflow(body: dict[str, Any], prompt: int, limit: int) -> ErrorAnswer | None:
    """LM Studio refuses a prompt it cannot keep whole in the loaded context (a bare-string error)."""
    # Body verbatim in lmstudio-ai/lmstudio-bug-tracker#237 (the openai client's "Error code: 400 - ...");
    # also #546 and cline/cline#3664. LM Studio 0.4 says "The number of tokens to keep from the initial
    # prompt is greater than the context length (n_keep: N>= n_ctx: M)..." (Gitlawb/openclaude#353).
    if prompt < limit:
        return None
    message = (
        f"<LM Studio error> Trying to keep the first {prompt} tokens when context the overflows. However, the "
        f"model is loaded with context length of only {limit} tokens, which is not enough. Try to load the model "
        "with a larger context length, or provide a shorter input. Error Data: n/a, Additional Data: n/a"
    )
    return 400, {"error": message}


@dataclass(frozen=True)
class Flavor:
    """One server's answers where OpenAI-compatible servers differ: ``response_format`` and a long prompt."""

    name: str
    #: The error a ``response_format`` gets, or None when the server takes it.
    refusal: Callable[[dict[str, Any]], ErrorAnswer | None] = _accepts_every_format
    #: The error for ``(body, prompt tokens, context limit)``, or None when the request fits. A flavor
    #: without one truncates an over-long prompt silently instead, and bills only what it kept.
    overflow: Callable[[dict[str, Any], int, int], ErrorAnswer | None] | None = _openai_overflow
    #: ``{"type": "json_object", "schema": {...}}`` is honoured: the schema becomes a grammar.
    json_object_schema: bool = False
    #: A bare ``json_object`` gets valid JSON of the model's own shape, not the one the prompt asks for.
    json_object_off_schema: bool = False

    def default_content(self, body: dict[str, Any]) -> str:
        """What this server's model answers when nothing is scripted."""
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_object":
            schema = response_format.get("schema")
            if self.json_object_schema and isinstance(schema, dict):
                return json.dumps(instance_of(schema, persona=persona_name(body)))
            if self.json_object_off_schema:
                return json.dumps({"response": plain_reply(persona_name(body))})
        return default_content(body)


#: The servers the fake can behave as, by ``FakeOpenAIServer.flavor`` name.
FLAVORS: dict[str, Flavor] = {
    # OpenAI: json_schema (strict or not) and json_object. platform.openai.com/docs/guides/structured-outputs
    "openai": Flavor("openai"),
    # Azure OpenAI with an api-version before 2024-08-01-preview: json_schema refused, json_object taken.
    # learn.microsoft.com/azure/ai-services/openai/how-to/structured-outputs (API support)
    "azure_old": Flavor("azure_old", refusal=_azure_old_refusal),
    # llama-cpp-python's server (python -m llama_cpp.server): json_object, with an optional "schema"
    # turned into a grammar (abetlen/llama-cpp-python#1122, llama_cpp/llama_chat_format.py); without
    # one only "some JSON" is enforced. json_schema fails validation (#1677, which would map it, is unmerged).
    "llama_cpp_python": Flavor(
        "llama_cpp_python",
        refusal=_llama_cpp_python_refusal,
        overflow=_llama_cpp_python_overflow,
        json_object_schema=True,
        json_object_off_schema=True,
    ),
    # llama.cpp's llama-server: json_schema reads json_schema.schema and never looks at "strict";
    # json_object may carry "schema" (ggml-org/llama.cpp tools/server/server-common.cpp, README).
    "llama_cpp": Flavor("llama_cpp", refusal=_llama_cpp_refusal, overflow=_llama_cpp_overflow, json_object_schema=True),
    # Ollama's /v1: json_object becomes format "json", json_schema its schema (structured outputs since
    # 0.5); "strict" and any other type are ignored without an error (ollama/ollama openai/openai.go,
    # FromChatRequest). Past num_ctx the prompt is truncated with only a log line, "truncating input
    # prompt", and prompt_eval_count is the context size (ollama/ollama#7987). Releases that run
    # llama-server (0.30+) may pass its 400 through instead (ollama/ollama#17889): not modelled.
    "ollama": Flavor("ollama", overflow=None),
    # vLLM: json_schema and json_object through guided decoding, "strict" ignored
    # (docs.vllm.ai/en/latest/features/structured_outputs.html).
    "vllm": Flavor("vllm", overflow=_vllm_overflow),
    # LM Studio: json_schema only (lmstudio.ai/docs/advanced/structured-output).
    "lmstudio": Flavor("lmstudio", refusal=_lmstudio_refusal, overflow=_lmstudio_overflow),
}


@dataclass
class Reply:
    """One scripted reply: assistant content plus how the completion ended."""

    content: str | None
    finish_reason: str = "stop"


@dataclass
class RecordedRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    #: Seconds the server spent on the request (latency and faults included).
    handled_s: float = 0.0


@dataclass
class _Fault:
    kind: str
    times: int
    options: dict[str, Any] = field(default_factory=dict)


_encoding = None


@lru_cache(maxsize=8192)
def count_tokens(text: str) -> int:
    """o200k_base tokens, as OpenAI's current models count them. Remembered by text: a persona's
    prompts repeat its system message and most of its memory turn after turn, so the fake stays cheap."""
    global _encoding
    if _encoding is None:
        _encoding = get_encoding("o200k_base")
    return len(_encoding.encode_ordinary(text)) if text else 0


def persona_name(body: dict[str, Any]) -> str | None:
    """The persona a request speaks for: ``You are NAME,`` at the start of the first system message."""
    for message in body.get("messages", []):
        if message.get("role") == "system":
            match = _PERSONA.match(_content_text(message.get("content")))
            return match.group(1).strip() if match else None
    return None


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks for: in ``response_format`` or written into the prompt."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format.get("json_schema", {}).get("schema") or {}
    for message in reversed(body.get("messages", [])):
        text = _content_text(message.get("content"))
        match = _SCHEMA_IN_PROMPT.search(text)
        if match:
            try:
                schema, _ = json.JSONDecoder().raw_decode(text[match.end() :])
            except json.JSONDecodeError:
                continue
            if isinstance(schema, dict):
                return schema
    return None


def instance_of(schema: dict[str, Any], *, persona: str | None = None) -> Any:
    """A small value valid against ``schema`` (objects, arrays, enums, refs, nullable types)."""
    return _Instance(schema, persona).make(schema, "value")


class _Instance:
    def __init__(self, root: dict[str, Any], persona: str | None) -> None:
        self.defs = {**root.get("definitions", {}), **root.get("$defs", {})}
        self.persona = persona

    def make(self, node: dict[str, Any], key: str) -> Any:
        if "$ref" in node:
            return self.make(self.defs.get(node["$ref"].rsplit("/", 1)[-1], {}), key)
        if "const" in node:
            return node["const"]
        if node.get("enum"):
            return node["enum"][0]
        for combinator in ("anyOf", "oneOf", "allOf"):
            options = node.get(combinator)
            if options:
                non_null = [o for o in options if o.get("type") != "null"]
                return self.make((non_null or options)[0], key)
        kind = node.get("type", "object" if "properties" in node else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            props = node.get("properties", {})
            return {name: self.make(sub, name) for name, sub in props.items()}
        if kind == "array":
            count = max(1, node.get("minItems", 1))
            return [self.make(node.get("items", {}), key) for _ in range(count)]
        if kind == "integer":
            return int(node.get("minimum", 1))
        if kind == "number":
            return float(node.get("minimum", 0.5))
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        text = plain_reply(self.persona) if key in _TEXT_FIELDS else f"example {key}"
        min_length = node.get("minLength", 0)
        text = text.ljust(min_length, ".")
        return text[: node["maxLength"]] if "maxLength" in node else text


def default_moderation_scores(text: str) -> dict[str, float]:
    """Near-zero scores, except for a few unmistakable phrases: enough to drive a moderation client."""
    scores = dict.fromkeys(MODERATION_CATEGORIES, 0.00001)
    for pattern, high in _MODERATION_RULES:
        if pattern.search(text):
            for category, score in high.items():
                scores[category] = max(scores[category], score)
    return scores


def plain_reply(persona: str | None) -> str:
    if persona:
        return f"{persona} here: thanks, I'll look into it and report back."
    return "Thanks, I'll look into it and report back."


def default_content(body: dict[str, Any]) -> str:
    """What the fake answers when nothing is scripted: JSON when JSON is asked for, else text."""
    persona = persona_name(body)
    schema = request_schema(body)
    if schema is not None:
        return json.dumps(instance_of(schema, persona=persona))
    if (body.get("response_format") or {}).get("type") == "json_object":
        return json.dumps({"text": plain_reply(persona)})
    return plain_reply(persona)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """Tokens of every message's content, plus the response_format schema when one is sent."""
    total = sum(count_tokens(_content_text(m.get("content"))) for m in body.get("messages", []))
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema")
    if response_format.get("type") == "json_schema" and schema is not None:
        total += count_tokens(json.dumps(schema))
    return total


def error_body(message: str, type_: str | None, param: str | None = None, code: str | int | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAIServer:
    """An OpenAI-compatible chat completions server on 127.0.0.1, on a free port."""

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini-2024-07-18",
        api_key: str | None = None,
        latency: float = 0.0,
        hang_s: float = 30.0,
        flavor: str = "openai",
        context_tokens: int | None = None,
    ) -> None:
        #: Model name reported in responses.
        self.model = model
        #: When set, requests must carry this key (``Authorization: Bearer`` or Azure's ``api-key``).
        self.api_key = api_key
        #: Seconds to wait before each reply.
        self.latency = latency
        #: How long a ``hang`` fault holds a request (it is released early when the server closes).
        self.hang_s = hang_s
        #: Which server to behave as, by name in ``FLAVORS``: its refusals, context errors and JSON habits.
        self.flavor = flavor
        #: The model's context window in tokens: a longer request gets the flavor's context error (or,
        #: for Ollama, is truncated). None: unlimited.
        self.context_tokens = context_tokens
        self.refuse_json_schema = False
        self.refuse_json_object = False
        self.responder: Responder | None = None
        #: Scores moderation inputs (``/v1/moderations``); ``default_moderation_scores`` when None.
        self.moderation_responder: ModerationResponder | None = None
        #: Scores at or above this are flagged.
        self.moderation_threshold = 0.5
        self.requests: list[RecordedRequest] = []
        #: Faults answered so far, by kind (``fail`` and ``chaos`` alike; ``server_error`` by status).
        self.faults_injected: Counter[str] = Counter()
        self._script: list[Reply] = []
        self._faults: list[_Fault] = []
        self._chaos = FaultDice(CHAOS_FAULTS)
        self._chaos_options: dict[str, Any] = {}
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.port = 0

    persona_name = staticmethod(persona_name)

    @property
    def flavor(self) -> str:
        return self._flavor.name

    @flavor.setter
    def flavor(self, name: str) -> None:
        if name not in FLAVORS:
            raise ValueError(f"unknown flavor {name!r}; choose one of {', '.join(FLAVORS)}")
        self._flavor = FLAVORS[name]

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FakeOpenAIServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure)
        app.router.add_post("/v1/moderations", self._moderations)
        # Where servers tell their context window: llama.cpp's /props, vLLM's model list.
        app.router.add_get("/props", self._props)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAIServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def azure_endpoint(self) -> str:
        """For ``AsyncAzureOpenAI(azure_endpoint=...)``."""
        return f"http://127.0.0.1:{self.port}"

    # -- behaviour -------------------------------------------------------------------------

    def script(self, replies: list[str | Reply]) -> None:
        """Answer the next requests with these contents, in order, before any other rule."""
        self._script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def fail(self, kind: str, *, times: int = 1, **options: Any) -> None:
        """Make the next ``times`` requests fail as ``kind`` (see ``FAULTS``).

        Options: ``retry_after`` (seconds, rate_limit), ``status`` (server_error, error),
        ``stage`` ("prompt" for Azure's 400, "completion" for finish_reason content_filter),
        ``message``/``type``/``param``/``code`` (error).
        """
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose one of {', '.join(FAULTS)}")
        self._faults.append(_Fault(kind, times, options))

    def chaos(
        self,
        rate: float,
        *,
        seed: int | None = None,
        kinds: Sequence[str] = CHAOS_FAULTS,
        retry_after: float = 0.2,
        hang_s: float | None = None,
    ) -> None:
        """Answer a random ``rate`` (0–1) of the requests with a fault picked at random among ``kinds``.

        Seeded by ``seed``; ``rate=0`` turns it off. Faults queued with ``fail`` come first. A ``hang``
        holds the request ``hang_s`` seconds (default ``self.hang_s``): set it past the client's timeout.
        Moderation requests only get the faults that make sense there (``HTTP_FAULTS``).
        """
        self._chaos.configure(rate, kinds, seed, known=lambda kind: _chaos_kind(kind) in FAULTS,
                              choices=f"{', '.join(CHAOS_FAULTS)} or {', '.join(FAULTS)}")
        self._chaos_options = {"retry_after": retry_after, "hang_s": hang_s}

    def _random_fault(self, allowed: Sequence[str] | None = None) -> _Fault | None:
        kind = self._chaos.roll(allowed=lambda kind: allowed is None or _chaos_kind(kind) in allowed)
        if kind is None:
            return None
        options = {k: v for k, v in self._chaos_options.items() if v is not None}
        if kind.startswith("server_error_"):
            options["status"] = int(kind.rsplit("_", 1)[1])
        return _Fault(_chaos_kind(kind), 1, options)

    def reset(self) -> None:
        self.requests.clear()
        self._script.clear()
        self._faults.clear()
        self.faults_injected.clear()
        self._chaos.rate = 0.0
        self.responder = None
        self.moderation_responder = None
        self.refuse_json_schema = self.refuse_json_object = False
        self.flavor = "openai"
        self.context_tokens = None

    # -- handlers --------------------------------------------------------------------------

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, azure=False)

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        if "api-version" not in request.query:
            return _json({"error": {"code": "404", "message": "Resource not found"}}, 404)
        return await self._handle(request, azure=True)

    async def _handle(self, request: web.Request, *, azure: bool) -> web.StreamResponse:
        started = time.perf_counter()
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return _json(error_body("We could not parse the JSON body of your request.", "invalid_request_error"), 400)
        record = RecordedRequest(request.path, dict(request.query), dict(request.headers), body)
        self.requests.append(record)
        try:
            return await self._answer(request, body, azure, started + self.latency)
        finally:
            record.handled_s = time.perf_counter() - started

    async def _answer(
        self, request: web.Request, body: dict[str, Any], azure: bool, deadline: float
    ) -> web.StreamResponse:
        """The answer, sent at ``deadline``: ``latency`` after the request arrived, work included."""
        if self.api_key is not None and not self._authorized(request, azure):
            response = self._unauthorized(azure)
        else:
            fault = self._next_fault() or self._random_fault()
            if fault is not None:
                await _until(deadline)  # a fault may stall, stream or drop the connection itself
                faulted = await self._fault(fault, request, body, azure)
                if faulted is not None:
                    return faulted
            response = await self._completion_or_refusal(body, azure)
        await _until(deadline)
        return response

    async def _completion_or_refusal(self, body: dict[str, Any], azure: bool) -> web.Response:
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            return _json(error_body("'messages' and 'model' are required properties.", "invalid_request_error", "messages"), 400)
        response_format = (body.get("response_format") or {}).get("type")
        if response_format == "json_schema" and self.refuse_json_schema:
            return _json(self._format_refusal("json_schema"), 400)
        if response_format == "json_object" and self.refuse_json_object:
            return _json(self._format_refusal("json_object"), 400)
        error = self._flavor_error(body)
        if error is not None:
            status, payload = error
            return _json(payload, status)
        reply = self._script.pop(0) if self._script else Reply(await self._respond(body))
        return _json(self._completion(body, reply, azure))

    def _flavor_error(self, body: dict[str, Any]) -> ErrorAnswer | None:
        """The flavor's refusal of the ``response_format``, else its context error past ``context_tokens``."""
        refusal = self._flavor.refusal(body.get("response_format") or {})
        if refusal is not None or self.context_tokens is None or self._flavor.overflow is None:
            return refusal
        return self._flavor.overflow(body, prompt_tokens(body), self.context_tokens)

    async def _respond(self, body: dict[str, Any]) -> str:
        if self.responder is None:
            return self._flavor.default_content(body)
        content = self.responder(body)
        if inspect.isawaitable(content):
            content = await content
        return content

    async def _props(self, request: web.Request) -> web.StreamResponse:
        """llama.cpp's ``GET /props``: the window it runs the model with (others have no such page)."""
        if self.flavor != "llama_cpp":
            return web.Response(status=404, text="Not Found")
        return _json({"default_generation_settings": {"n_ctx": self.context_tokens or 4096}, "total_slots": 1})

    async def _models(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models``; vLLM adds each model's window as ``max_model_len``."""
        entry: dict[str, Any] = {"id": "smollm2", "object": "model", "owned_by": "me"}
        if self.flavor == "vllm":
            entry["max_model_len"] = self.context_tokens or 8192
        return _json({"object": "list", "data": [entry]})

    async def _moderations(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/moderations``: one result for each input (a string, strings, or multimodal parts).

        Only the faults that make sense for any endpoint (``HTTP_FAULTS``) apply; others stay queued
        for the next chat completion.
        """
        started = time.perf_counter()
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return _json(error_body("We could not parse the JSON body of your request.", "invalid_request_error"), 400)
        record = RecordedRequest(request.path, dict(request.query), dict(request.headers), body)
        self.requests.append(record)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.api_key is not None and not self._authorized(request, azure=False):
                return self._unauthorized(azure=False)
            fault = self._next_fault() if self._faults and self._faults[0].kind in HTTP_FAULTS else None
            fault = fault or self._random_fault(HTTP_FAULTS)
            if fault is not None:
                response = await self._fault(fault, request, body, azure=False)
                if response is not None:
                    return response
            inputs = _moderation_inputs(body.get("input"))
            if inputs is None:
                return _json(error_body("'input' is a required property.", "invalid_request_error", "input"), 400)
            results = [await self._moderation_result(text, has_image) for text, has_image in inputs]
            return _json(
                {
                    "id": f"modr-{uuid.uuid4().hex[:32]}",
                    "model": body.get("model") or "omni-moderation-latest",
                    "results": results,
                }
            )
        finally:
            record.handled_s = time.perf_counter() - started

    async def _moderation_result(self, text: str, has_image: bool) -> dict[str, Any]:
        responder = self.moderation_responder or default_moderation_scores
        scores = responder(text)
        if inspect.isawaitable(scores):
            scores = await scores
        scores = {c: float(scores.get(c, 0.0)) for c in MODERATION_CATEGORIES}
        categories = {c: scores[c] >= self.moderation_threshold for c in MODERATION_CATEGORIES}
        applied = {
            c: (["text", "image"] if has_image and c in _IMAGE_CATEGORIES else ["text"]) for c in MODERATION_CATEGORIES
        }
        return {
            "flagged": any(categories.values()),
            "categories": categories,
            "category_scores": scores,
            "category_applied_input_types": applied,
        }

    def _authorized(self, request: web.Request, azure: bool) -> bool:
        if azure and request.headers.get("api-key") == self.api_key:
            return True
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _unauthorized(self, azure: bool) -> web.Response:
        if azure:
            return _json(
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to invalid subscription key or wrong API endpoint. "
                        "Make sure to provide a valid key for an active subscription and use a correct "
                        "regional API endpoint for your resource.",
                    }
                },
                401,
            )
        return _json(
            error_body(
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                code="invalid_api_key",
            ),
            401,
        )

    def _format_refusal(self, kind: str) -> dict:
        return error_body(
            f"Invalid parameter: 'response_format' of type '{kind}' is not supported with this model.",
            "invalid_request_error",
            "response_format",
        )

    def _next_fault(self) -> _Fault | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self._faults.pop(0)
        return fault

    async def _fault(
        self, fault: _Fault, request: web.Request, body: dict[str, Any], azure: bool
    ) -> web.StreamResponse | None:
        opts = fault.options
        kind = fault.kind
        self.faults_injected[f"server_error_{opts.get('status', 500)}" if kind == "server_error" else kind] += 1
        if kind == "rate_limit":
            headers = {}
            retry_after = opts.get("retry_after")
            if retry_after is not None:
                headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
                headers["retry-after-ms"] = str(int(retry_after * 1000))
            message = (
                f"Rate limit reached for {self.model} in organization org-fake on requests per min "
                f"(RPM): Limit 3, Used 3, Requested 1. Please try again in {retry_after or 20}s."
            )
            return _json(error_body(message, "requests", None, "rate_limit_exceeded"), 429, headers)
        if kind == "server_error":
            status = opts.get("status", 500)
            message = (
                "The server had an error while processing your request. Sorry about that!"
                if status == 500
                else "The engine is currently overloaded, please try again later."
            )
            return _json(error_body(message, "server_error"), status)
        if kind == "error":
            return _json(
                error_body(
                    opts.get("message", "Invalid request."),
                    opts.get("type", "invalid_request_error"),
                    opts.get("param"),
                    opts.get("code"),
                ),
                opts.get("status", 400),
            )
        if kind == "hang":
            try:
                await asyncio.wait_for(self._closing.wait(), opts.get("hang_s", self.hang_s))
            except TimeoutError:
                pass
            return None
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if kind == "content_filter":
            if opts.get("stage", "prompt") == "completion":
                return _json(self._completion(body, Reply(None, "content_filter"), azure))
            return _json(
                {
                    "error": {
                        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                        "content management policy. Please modify your prompt and retry.",
                        "type": None,
                        "param": "prompt",
                        "code": "content_filter",
                        "status": 400,
                        "innererror": {
                            "code": "ResponsibleAIPolicyViolation",
                            "content_filter_result": {
                                "hate": {"filtered": False, "severity": "safe"},
                                "self_harm": {"filtered": False, "severity": "safe"},
                                "sexual": {"filtered": False, "severity": "safe"},
                                "violence": {"filtered": True, "severity": "medium"},
                            },
                        },
                    }
                },
                400,
            )
        if kind == "no_choices":
            completion = self._completion(body, Reply(""), azure)
            del completion["choices"]
            return _json(completion)
        if kind == "sparse":  # some OpenAI-compatible servers send only what they must
            content = await self._respond(body)
            return _json({"model": self.model, "choices": [{"message": {"content": content}, "finish_reason": "stop"}]})
        if kind == "not_a_completion":  # a base URL without /v1: the server's web page
            return web.Response(text="<!doctype html><title>Welcome</title><h1>It works</h1>", content_type="text/html")
        schema = request_schema(body) or {}
        if kind == "malformed_json":
            reply = Reply("Sure! Here is what I think: {'plan': tomorrow, no json here")
        elif kind == "missing_fields":
            required = set(schema.get("required", schema.get("properties", {})))
            value = instance_of(schema)
            kept = {k: v for k, v in value.items() if k not in required} if isinstance(value, dict) else {}
            reply = Reply(json.dumps(kept))
        else:  # truncated: what would have been answered, cut in the middle
            full = await self._respond(body)
            reply = Reply(full[: max(1, len(full) // 2)], "length")
        return _json(self._completion(body, reply, azure))

    def _completion(self, body: dict[str, Any], reply: Reply, azure: bool) -> dict[str, Any]:
        prompt = prompt_tokens(body)
        if self.context_tokens is not None and self._flavor.overflow is None:
            prompt = min(prompt, self.context_tokens)  # truncated to fit, and billed for what was kept
        completion = count_tokens(reply.content or "")
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.content,
            "refusal": None,
            "annotations": [],
        }
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": reply.finish_reason,
        }
        out: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "system_fingerprint": "fp_fake",
        }
        if azure:
            filtered = reply.finish_reason == "content_filter"
            out["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
            choice["content_filter_results"] = (
                {"violence": {"filtered": True, "severity": "medium"}} if filtered else {}
            )
        else:
            out["service_tier"] = "default"
        return out


def _chaos_kind(kind: str) -> str:
    """The ``fail`` kind a ``chaos`` kind stands for (``server_error_503`` is ``server_error``)."""
    return "server_error" if kind.startswith("server_error_") else kind


def _moderation_inputs(value: Any) -> list[tuple[str, bool]] | None:
    """(text, has an image) for each result the API returns: one per string, one for a parts list."""
    if isinstance(value, str):
        return [(value, False)]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [(v, False) for v in value]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        text = " ".join(v.get("text", "") for v in value if v.get("type") == "text")
        return [(text, any(v.get("type") == "image_url" for v in value))]
    return None


async def _until(deadline: float) -> None:
    delay = deadline - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers=headers)
