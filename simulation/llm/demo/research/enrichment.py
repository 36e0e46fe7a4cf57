"""The demo's content enrichment: the content kept whole, with a made-up line for each requirement."""

from __future__ import annotations

import re
from typing import Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo.text import capitalised


def enrich(request: ChatRequest) -> dict[str, Any]:
    """The content kept whole, followed by one concrete line per requirement."""
    ctx = request.context
    content = str(ctx.get("content", "")).strip()
    requirements = [r.strip() for r in re.split(r"[;\n]|\.\s", str(ctx.get("requirements", ""))) if r.strip()]
    topic = " ".join(content.split()[:8]).rstrip(".,;:")
    details = [_detail(r, topic) for r in requirements] or [
        f"- Who it is for: people who want \"{topic}\" without the fuss.",
        "- What it costs: €4.99 a month, the first month free.",
    ]
    if ctx.get("earlier"):
        details.append("- Consistent with the earlier material.")
    return {"content": "\n".join([content, "", *details, "", "(Details made up by the offline demo model.)"])}


def _detail(requirement: str, topic: str) -> str:
    """A made-up line that does what ``requirement`` asks (a price, a testimonial, a date…), or says it
    is left to a language model."""
    asked = requirement.casefold()
    lines = []
    if re.search(r"\b(price|cost|pricing|fee)", asked):
        lines.append("Price: €4.99 a month, the first month free.")
    if re.search(r"\b(testimonial|quote|review)", asked):
        lines.append("\u201cIt gave me back an hour every day.\u201d \u2014 Marta, early user")
    if re.search(r"\b(date|deadline|launch|when)", asked):
        lines.append("Available from 1 March.")
    if re.search(r"\b(audience|who|target)", asked):
        lines.append(f"Made for busy people who want \"{topic}\" without the fuss.")
    if not lines:
        return f"- {capitalised(requirement.rstrip('.'))}: not worked in (the demo model writes only prices, testimonials, dates and audiences)."
    return "\n".join(f"- {line}" for line in lines)
