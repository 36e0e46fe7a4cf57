"""The demo's persona validation: interview questions, and scores by word overlap with the expectations."""

from __future__ import annotations

from typing import Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo.persona import Persona
from simulation.llm.demo.text import content_words, stem


def validation_questions(request: ChatRequest) -> dict[str, Any]:
    ctx = request.context
    questions = [
        "Tell me a little about yourself and your work: what does a normal week look like?",
        "What do you enjoy most, and what do you try to avoid?",
        "What do you believe in strongly, and why?",
        "What do you hope to achieve in the next few years?",
    ]
    return {"questions": questions[: max(1, int(ctx.get("n", 3)))]}


def validation_judge(request: ChatRequest) -> dict[str, Any]:
    """Share of the expectations' words the persona's answers and profile bear out, minus contradictions."""
    ctx = request.context
    p = Persona(str(ctx.get("name", "")), ctx.get("persona") or {})
    expected = {stem(w): w for w in content_words(str(ctx.get("expectations", "")))}
    answers = " ".join(str(t.get("answer", "")) for t in ctx.get("transcript", []))
    profile = p.all_text
    for dislike in p.dislikes:
        profile = profile.replace(dislike, " ")
    support = {stem(w) for w in content_words(answers) | content_words(profile)}
    # A word of what the persona dislikes speaks against it only where nothing else it says supports it
    # ("roadmap promises made to prospects" is a dislike; owning the roadmap is the job).
    disliked = {stem(w) for w in content_words(" ".join(p.dislikes))} - support
    against = sorted(expected[k] for k in expected.keys() & disliked)
    matched = sorted(expected[k] for k in expected.keys() & support)
    missing = sorted(set(expected.values()) - set(matched) - set(against))
    score = 0.0 if not expected else max(0.0, (len(matched) - len(against)) / len(expected))
    score = round(min(1.0, 0.1 + 0.9 * score), 2)
    parts = [f"Borne out: {', '.join(matched[:8]) or 'nothing'}."]
    if against:
        parts.append(f"Contradicted by what {p.first} dislikes: {', '.join(sorted(against)[:5])}.")
    if missing:
        parts.append(f"Not shown: {', '.join(missing[:8])}.")
    parts.append("(Scored by word overlap by the offline demo model.)")
    return {"score": score, "justification": " ".join(parts)}


def validation_drift(request: ChatRequest) -> dict[str, Any]:
    """Share of recent lines that draw on the persona's own words; under half counts as drift."""
    ctx = request.context
    p = Persona(str(ctx.get("name", "")), ctx.get("persona") or {})
    own = content_words(p.all_text)
    recent = [str(line) for line in ctx.get("recent", [])]
    off = [line for line in recent if not (content_words(line) & own)]
    consistency = round(1 - len(off) / len(recent), 2) if recent else 1.0
    findings = [f"Out of character? {line[:120]}" for line in off[:3]] or [
        f"Recent words draw on {p.first}'s own interests, beliefs and work."
    ]
    return {"consistency": consistency, "drifted": consistency < 0.5, "findings": findings}
