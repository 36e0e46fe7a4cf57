"""The one small interface every language model and wrapper implements.

Models implement ``complete`` (a chat completion returning text). ``structured`` is built on top of
``complete`` once, here, so every wrapper (retry, cache, usage, budget...) applies to structured calls
too, and every backend (OpenAI, Azure, an OpenAI-compatible server, the offline demo model) gets the
same fallbacks and validation.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulation.llm.capabilities import Capabilities, StructuredMode
from simulation.llm.errors import ResponseFormatUnsupportedError, StructuredOutputError
from simulation.llm.schema import strict_json_schema

T = TypeVar("T", bound=BaseModel)

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


class Attribution(BaseModel):
    """Who a call is made for: usage and budgets are accounted per world and per persona.

    Not part of a request's identity: two worlds asking the same thing share a cache entry.
    """

    model_config = ConfigDict(frozen=True)

    world: str | None = None
    persona: str | None = None


class ChatRequest(BaseModel):
    """Everything that defines a chat completion request.

    ``task`` and ``context`` are hints for offline models (the demo model composes its reply from
    them); they are never sent to a server and never part of the cache key.
    """

    messages: list[Message]
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    attribution: Attribution = Field(default_factory=Attribution)
    task: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    #: Work nobody waits on (a memory fold): it yields to other calls for a slot of the concurrency
    #: limit. Not sent, not part of the cache key.
    background: bool = False

    def identity(self) -> dict[str, Any]:
        """The fields that decide the model's answer: the cache key is derived from these."""
        return {
            "messages": [m.model_dump() for m in self.messages],
            "response_format": self.response_format,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ChatResult(BaseModel):
    """A completion: text plus what it cost and how it ended."""

    text: str
    model: str
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False
    #: Wall time spent waiting for the model, in seconds (0 for cache hits).
    latency_s: float = 0.0


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_json_reply(text: str) -> Any:
    """Parse a model's JSON reply, tolerating a Markdown code fence or prose around one object."""
    match = _FENCE.match(text)
    if match:
        text = match.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            return json.loads(text[start : end + 1])
        raise


class LanguageModel(ABC):
    """A chat model. Subclasses implement ``complete``; wrappers delegate to an inner model."""

    #: Model name reported in results, labels and usage.
    name: str = "model"

    @property
    def capabilities(self) -> Capabilities:
        caps = self.__dict__.get("_capabilities")
        if caps is None:
            caps = self.__dict__["_capabilities"] = Capabilities()
        return caps

    @property
    def is_demo(self) -> bool:
        """True when answers come from the offline demo model and must be labelled as such."""
        return False

    @abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResult:
        """Run one chat completion."""

    async def aclose(self) -> None:
        """Release connections and files."""

    async def structured(
        self,
        request: ChatRequest,
        schema: type[T],
        *,
        schema_name: str | None = None,
    ) -> tuple[T, ChatResult]:
        """Run a completion whose reply must be a ``schema`` instance.

        Asks in the strongest form the server has not refused (``Capabilities``): strict
        ``json_schema``, then weaker ones down to the schema in the prompt; a refusal moves to the
        next form at once and is remembered. The reply is always validated; on failure the model
        is asked once more with the validation error. Raises ``StructuredOutputError`` when that
        fails too.
        """
        capabilities = self.capabilities
        await capabilities.ready()
        discovery = capabilities.discovery()
        if discovery is not None:
            async with discovery:  # the first call finds the mode; the others then use it
                if not capabilities.confirmed:
                    return await self._structured(request, schema, schema_name)
        return await self._structured(request, schema, schema_name)

    async def _structured(
        self, request: ChatRequest, schema: type[T], schema_name: str | None
    ) -> tuple[T, ChatResult]:
        capabilities = self.capabilities
        name = schema_name or schema.__name__
        json_schema = strict_json_schema(schema)
        messages = list(request.messages)
        last_error = ""
        raw = ""
        attempt = 0
        while attempt < 2:
            mode = capabilities.structured_mode.request_mode
            sent = request.model_copy(
                update={
                    "messages": _with_schema_instructions(messages, json_schema, mode),
                    "response_format": _response_format(mode, name, json_schema),
                }
            )
            try:
                result = await self.complete(sent)
            except ResponseFormatUnsupportedError as error:
                if await capabilities.refused(mode, str(error)):
                    continue
                raise
            capabilities.answered(mode)
            raw = result.text
            try:
                if result.finish_reason == "length":
                    raise ValueError("the reply was cut off (finish_reason=length)")
                value = schema.model_validate(parse_json_reply(raw))
            except (ValueError, ValidationError) as error:
                last_error = _describe(error)
                off_shape = result.finish_reason != "length" and _off_shape(error)
            else:
                await capabilities.gave_valid(mode)
                return value, result
            attempt += 1
            messages = [
                *messages,
                Message(role="assistant", content=raw[:4000]),
                Message(
                    role="user",
                    content=(
                        f"That reply was not valid: {last_error}. Answer again with only a JSON "
                        f"object that matches the {name} schema."
                    ),
                ),
            ]
        if off_shape:
            await capabilities.gave_invalid(mode)
        raise StructuredOutputError(
            f"{self.name} gave no valid {name} after a re-ask: {last_error}",
            raw=raw,
            schema_name=name,
        )


class ModelWrapper(LanguageModel):
    """Base for composable wrappers: delegates everything to ``inner``."""

    def __init__(self, inner: LanguageModel) -> None:
        self.inner = inner

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @property
    def is_demo(self) -> bool:
        return self.inner.is_demo

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def find(self, kind: type[LanguageModel]) -> LanguageModel | None:
        """The first layer of the stack (this one included) that is a ``kind``."""
        layer: LanguageModel | None = self
        while layer is not None:
            if isinstance(layer, kind):
                return layer
            layer = getattr(layer, "inner", None)
        return None


def _response_format(mode: StructuredMode, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if mode is StructuredMode.JSON_SCHEMA_STRICT:
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
    if mode is StructuredMode.JSON_SCHEMA:
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    if mode is StructuredMode.JSON_OBJECT_SCHEMA:
        return {"type": "json_object", "schema": schema}
    if mode is StructuredMode.JSON_OBJECT:
        return {"type": "json_object"}
    return None


def _with_schema_instructions(
    messages: list[Message], schema: dict[str, Any], mode: StructuredMode
) -> list[Message]:
    """Without a server that takes the schema (``json_schema``, or llama.cpp's ``json_object`` with a
    ``schema``, which holds the reply to it by grammar) it travels in the prompt. A small model
    given the schema beside a grammar tends to echo its wording instead of answering; a server
    that ignores a ``json_object`` schema shows it by invalid replies and is moved down a rung."""
    if not mode.schema_in_prompt:
        return messages
    return [*messages, Message(role="system", content=schema_instruction(schema))]


def schema_instruction(schema: dict[str, Any]) -> str:
    """The prompt line that carries a schema (its tokens count towards a context window)."""
    return "Reply with only a JSON object, no prose, matching this JSON schema: " + json.dumps(
        schema, separators=(",", ":")
    )


def _off_shape(error: Exception) -> bool:
    """Whether a reply missed the schema's shape (not JSON, missing or mistyped fields), as opposed to
    a well-shaped reply that a model's own rule refused (a ``value_error``): only the first says
    the server may be ignoring the schema it was sent."""
    if isinstance(error, ValidationError):
        return any(item["type"] != "value_error" for item in error.errors())
    return True


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        parts = []
        for item in error.errors()[:5]:
            where = ".".join(str(p) for p in item["loc"]) or "(root)"
            parts.append(f"{where}: {item['msg']}")
        return "; ".join(parts)
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error.msg} at position {error.pos})"
    return str(error)
