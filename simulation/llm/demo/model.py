"""The offline demo model: instant, deterministic, persona-flavoured replies with no key and no network.

It does not understand language: it composes replies from the persona's own words (occupation,
interests, beliefs, style) and the stimulus (it picks a side when asked "A or B?"). Every result
names the model ``demo``, so whatever shows it can label it. Each request is answered by the
composer for its ``task`` (an agent turn, a poll answer, a summary…); any other structured request
gets a bland valid instance of its schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, Usage
from simulation.llm.demo.memory import consolidate
from simulation.llm.demo.research.enrichment import enrich
from simulation.llm.demo.research.extraction import extract
from simulation.llm.demo.research.factory import persona_factory
from simulation.llm.demo.research.plans import sampling_plan
from simulation.llm.demo.research.polls import poll_answer
from simulation.llm.demo.research.story import story_beat
from simulation.llm.demo.research.summaries import summarize
from simulation.llm.demo.research.validation import validation_drift, validation_judge, validation_questions
from simulation.llm.demo.structured import bland_instance, requested_schema, wants_json
from simulation.llm.demo.turns import agent_turn, pick_speaker

DEMO_MODEL_NAME = "demo"

#: The composer for each kind of request, by the request's ``task``.
_COMPOSERS: dict[str, Callable[[ChatRequest], Any]] = {
    "agent_turn": agent_turn,
    "consolidate": consolidate,
    "pick_speaker": pick_speaker,
    "sampling_plan": sampling_plan,
    "persona_factory": persona_factory,
    "poll_answer": poll_answer,
    "summarize": summarize,
    "extract": extract,
    "enrich": enrich,
    "story_beat": story_beat,
    "validation_questions": validation_questions,
    "validation_judge": validation_judge,
    "validation_drift": validation_drift,
}


class DemoModel(LanguageModel):
    """Deterministic offline model. Same request, same reply; zero latency; zero cost."""

    name = DEMO_MODEL_NAME

    @property
    def is_demo(self) -> bool:
        return True

    async def complete(self, request: ChatRequest) -> ChatResult:
        if (composer := _COMPOSERS.get(request.task or "")) is not None:
            # A JSON answer even when it is null (an extraction whose every field is nullable).
            text = json.dumps(composer(request), ensure_ascii=False)
        elif request.response_format is not None or wants_json(request):
            text = json.dumps(bland_instance(requested_schema(request)), ensure_ascii=False)
        else:
            last = request.messages[-1].content if request.messages else ""
            text = f"(demo model) I read: {last[:160]}"
        prompt = sum(len(m.content) for m in request.messages) // 4
        return ChatResult(
            text=text,
            model=DEMO_MODEL_NAME,
            finish_reason="stop",
            usage=Usage(prompt_tokens=prompt, completion_tokens=len(text) // 4),
        )
