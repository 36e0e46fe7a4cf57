"""The demo's storyteller: the next beat that keeps a conversation moving towards its purpose."""

from __future__ import annotations

import re
from typing import Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo.text import first_sentence, mid_sentence


def _telling_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of ``text`` that says something ("Agreed." and "Good question." do not),
    exactly as written."""
    sentences = re.findall(r"\S.*?[.!?](?=\s|$)|\S.+$", text.strip(), re.DOTALL)
    telling = next((x for x in sentences if len(x.split()) >= 4), text)
    return first_sentence(telling, limit)


def story_beat(request: ChatRequest) -> dict[str, Any]:
    """Opens on the purpose; then turns to the quietest persona, the whole group, or a new scene,
    never repeating a beat the personas already heard."""
    ctx = request.context
    purpose = str(ctx.get("purpose", "")).strip().rstrip(".")
    personas = list(ctx.get("personas", []))
    said_by = ctx.get("said_by", {})
    recent = ctx.get("recent", [])
    aim = mid_sentence(purpose)
    if not recent or not personas:
        return {
            "kind": "message",
            "content": f"Let's begin. Our aim: {aim}. What comes to mind first?",
            "target": None,
            "rationale": "Nothing has happened yet, so the beat opens on the purpose.",
        }
    quietest = min(personas, key=lambda n: (said_by.get(n, 0), personas.index(n)))
    last = next((e for e in reversed(recent) if e.get("type") == "TALK"), None)
    hook = f" {last['source']} said: \"{_telling_sentence(str(last['content']), 80)}\"" if last else ""
    beats = sum(1 for e in recent if e.get("source") == "narrator" or e.get("type") == "VISUAL")
    candidates = [
        {
            "kind": "message",
            "content": f"{quietest.split()[0]}, we haven't heard much from you yet.{hook} Where do you stand? Our aim: {aim}.",
            "target": quietest,
            "rationale": f"{quietest} has spoken least, and the purpose needs every view.",
        },
        {
            "kind": "message",
            "content": f"Let's hear from everyone on this: {aim}. What would change your mind?",
            "target": None,
            "rationale": "Opening the question to the whole group surfaces disagreement.",
        },
        {
            "kind": "scene",
            "content": f"Something new happens that bears on the question at hand ({aim}): a friend shares a strong opinion about it.",
            "target": None,
            "rationale": "A scene change keeps the conversation moving towards the purpose.",
        },
    ]
    heard = {str(e.get("content", "")) for e in recent} | {str(ctx.get("repeated", ""))}
    fresh = [c for c in candidates if c["content"] not in heard]
    if fresh:
        return fresh[0] if beats % 3 != 2 else fresh[-1]
    return {**candidates[2], "content": f"Later, beat {beats + 1}: {candidates[2]['content']}"}
