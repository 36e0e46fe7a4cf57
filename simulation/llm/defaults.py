"""Fills a request's sampling settings from the configuration when the caller left them unset.

It sits above the cache so that the values actually sent are part of the cache key: changing the
configured temperature never replays answers sampled at another one.
"""

from __future__ import annotations

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, ModelWrapper


class RequestDefaultsModel(ModelWrapper):
    def __init__(
        self, inner: LanguageModel, *, temperature: float | None = None, max_tokens: int | None = None
    ) -> None:
        super().__init__(inner)
        self.temperature = temperature
        self.max_tokens = max_tokens

    async def complete(self, request: ChatRequest) -> ChatResult:
        update = {}
        if request.temperature is None and self.temperature is not None:
            update["temperature"] = self.temperature
        if request.max_tokens is None and self.max_tokens is not None:
            update["max_tokens"] = self.max_tokens
        return await self.inner.complete(request.model_copy(update=update) if update else request)
