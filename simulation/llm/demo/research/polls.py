"""The demo's poll answers: what a persona already said on the question, else the option nearest its tastes."""

from __future__ import annotations

import re
from typing import Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo.leads import lead_vote
from simulation.llm.demo.persona import Persona
from simulation.llm.demo.seeded import pick
from simulation.llm.demo.text import (
    capitalised,
    content_words,
    first_sentence,
    mid_sentence,
    most_relevant,
    with_article,
)


def poll_answer(request: ChatRequest) -> dict[str, Any]:
    """The option sharing most words with what the persona likes, least with what it dislikes."""
    ctx = request.context
    p = Persona(str(ctx.get("name", "")), ctx.get("persona") or {})
    options = [str(o) for o in ctx.get("options", [])] or ["(no options)"]
    seed = f"{p.name}|{ctx.get('question')}"
    fond = content_words(" ".join([*p.likes, *p.interests, *p.beliefs, *p.goals, p.occupation]))
    wary = content_words(" ".join(p.dislikes))
    # What the persona already said outweighs its general tastes: in its latest words naming an
    # option, the option named first is the one it chose ("I'd go with X; Y matters less").
    # Only words about this question count ("Yes, I think so" about pricing is no vote on Friday),
    # and an option counts as a whole word ("no" is not in "not yet").
    # An answer opening "Not yet" or "Yes, I think so" to a question on the same matter is a vote too.
    about = content_words(str(ctx.get("question", ""))) - content_words(" ".join(options))
    answered = ctx.get("answered", [])
    stated, statement = None, ""
    for exchange in reversed(answered):
        line, heard = str(exchange.get("said", "")), str(exchange.get("heard", ""))
        if about and not content_words(f"{heard} {line}") & about:
            continue
        named = [(m.start(), o) for o in options
                 if (m := re.search(rf"(?<!\w){re.escape(o.casefold())}(?!\w)", line.casefold()))]
        stated = min(named)[1] if named else lead_vote(line, options)
        if stated is not None:
            statement = line
            break
    scores = [10 * (o == stated) + len(content_words(o) & fond) - 2 * len(content_words(o) & wary) for o in options]
    best = max(scores)
    choice = pick(seed, [o for o, s in zip(options, scores) if s == best])
    if choice == stated:
        return {"choice": choice, "reason": f"Like I said: {first_sentence(statement, 200)}"}
    reasons = [
        *p.beliefs,
        *(f"I'm all for {mid_sentence(x)}" for x in p.likes),
        *(f"I'm wary of {mid_sentence(x)}" for x in p.dislikes),
        *(f"I care about {mid_sentence(x)}" for x in p.interests),
    ]
    reason = mid_sentence(most_relevant(choice, reasons, seed)
                       or (f"it fits how I live as {with_article(p.occupation)}" if p.occupation else "it fits how I live"))
    opener = pick(seed + "o", ["Easy one.", "Honestly,", "For me it's clear."] if p.casual else ["I would choose this.", "On balance,", "For me,"])
    # After "On balance," the reason goes on in lower case; after a full sentence it starts one.
    return {"choice": choice, "reason": f"{opener} {reason if opener.endswith(',') else capitalised(reason)}, so {choice} suits me best."}
