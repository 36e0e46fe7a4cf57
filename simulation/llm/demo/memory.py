"""A persona's memory consolidation: its recent conversation folded into a short running summary."""

from __future__ import annotations

from typing import Any

from simulation.llm.base import ChatRequest
from simulation.memory import Episode


def consolidate(request: ChatRequest) -> dict[str, Any]:
    """The earlier summary and the last few things said, trimmed to about 110 words, and who spoke.
    The request's context holds the episodes being folded."""
    context = request.context
    episodes: list[Episode] = context.get("episodes", [])
    said = [e for e in episodes if e.type in ("CONVERSATION", "TALK")]
    parts = [context.get("summary", "")] if context.get("summary") else []
    for e in said[-6:]:
        who = "I" if e.kind == "action" else e.source or "someone"
        parts.append(f"{who} said: {' '.join(e.content.split()[:12])}")
    summary = " ".join(parts)
    words = summary.split()
    if len(words) > 110:
        summary = "… " + " ".join(words[-110:])
    facts = [
        f"{e.source} spoke in the conversation" for e in said if e.kind == "stimulus" and e.source
    ]
    return {"summary": summary, "facts": sorted(set(facts))[:3]}
