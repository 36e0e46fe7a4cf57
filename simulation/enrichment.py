"""Enrichment: turning a short piece of content into a fuller one that meets stated requirements.

Simulations need material for personas to react to (a product page, an email, a news item); a
user writes a sketch and the model fills it out. The reply is structured so no chatty preamble
("Sure! Here is...") ends up in the content, and earlier enrichments can be passed back so a series
of documents stays consistent (names, numbers, tone).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from simulation.llm.base import ChatRequest, LanguageModel, Message

__all__ = ["Enricher"]

#: Earlier enrichments shown for consistency, newest last; older ones are left out.
MAX_CACHED = 5


class EnrichedContent(BaseModel):
    content: str = Field(description="The enriched content only, with no remarks about it")

    @field_validator("content")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the enriched content is empty")
        if not any(c.isalnum() for c in value):
            # A small model's stray brackets ("][") are no content either.
            raise ValueError(f"the enriched content has no words ({value.strip()[:20]!r})")
        return value.strip()


_SYSTEM = (
    "You enrich content for a simulation: expand the content below so it meets the requirements, "
    "keeping every fact it already states and its language. Add concrete, plausible detail. If "
    "earlier material is given, stay consistent with it. Reply with the enriched content only."
)


class Enricher:
    def __init__(self, model: LanguageModel) -> None:
        self.model = model

    async def enrich(self, content: str, requirements: str, *, context_cache: list[str] | None = None) -> str:
        """``content`` enriched to meet ``requirements``.

        ``context_cache`` is a list the caller keeps between calls: earlier results in it are shown
        to the model for consistency, and this result is appended to it.
        """
        if not content.strip():
            raise ValueError("nothing to enrich: the content is empty")
        earlier = (context_cache or [])[-MAX_CACHED:]
        parts = [f"Requirements: {requirements.strip() or 'make it richer and more concrete'}"]
        if earlier:
            parts += ["Earlier material (stay consistent):", *(f"---\n{item}" for item in earlier), "---"]
        parts += ["Content to enrich:", content]
        request = ChatRequest(
            messages=[Message(role="system", content=_SYSTEM), Message(role="user", content="\n".join(parts))],
            task="enrich",
            context={"content": content, "requirements": requirements, "earlier": earlier},
        )
        enriched, _ = await self.model.structured(request, EnrichedContent)
        if context_cache is not None:
            context_cache.append(enriched.content)
        return enriched.content
