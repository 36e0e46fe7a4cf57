"""What a persona says when it speaks: composed from its own words and the message it answers.

A choice question ("Postgres or MySQL?") gets a side, a yes/no question a yes or a not yet with a
reason, an open question ("What worries you…?") an answer in its own words, and a request to react
to the others names one of them. Nothing here understands language; word overlap and stable
hashing pick among the persona's phrases.
"""

from __future__ import annotations

import re

from simulation.llm.demo.leads import NO_LEADS, NOT_YET_LEADS, YES_LEADS, lead_kind
from simulation.llm.demo.persona import Persona
from simulation.llm.demo.seeded import pick
from simulation.llm.demo.text import capitalised, content_words, mid_sentence, most_relevant, with_article

_OR = re.compile(r"\s+or\s+", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:an?|the)\s+", re.IGNORECASE)
#: Words after which an option's own name has ended: "Teams for the support channel" is Teams.
_PREPOSITION = re.compile(r"^(?:for|in|at|on|with|to|during|by|from|this|next|instead)$", re.IGNORECASE)


_NOT_A_CHOICE = {"not", "no", "wait", "later", "hold off", "skip it", "not at all", "what", "something else", "neither"}


def _options_asked(text: str) -> list[tuple[str, bool]] | None:
    """The options of a choice question ("Postgres or MySQL?", "React, Vue or Svelte?", "…: a $300
    speaker or a $300 vacuum?"), each with whether it came with an article; None if it is not one.

    The options are read from the question mark back: the last one ends at a preposition, and the
    first is as long as the last (so "Should we use Postgres or MySQL?" offers Postgres, not "Should
    we use Postgres")."""
    if "?" not in text:
        return None
    clause = re.split(r"[.!:;]\s+", text[: text.index("?")])[-1]
    parts = _OR.split(clause)
    if len(parts) != 2:
        return None
    left, last = parts
    last_words = last.split()
    cut = next((i for i, w in enumerate(last_words) if i and _PREPOSITION.match(w)), len(last_words))
    last_words = last_words[:cut]
    items = [x.strip() for x in left.split(",")]
    first_words = items[0].split()
    size = len(last_words) + (1 if _ARTICLE.match(" ".join(last_words)) and not _ARTICLE.match(" ".join(first_words[-len(last_words):])) else 0)
    if len(first_words) > size:
        items[0] = " ".join(first_words[-max(size, 1):])
    elif last_words and last_words[0][:1].islower():
        items[0] = items[0][:1].lower() + items[0][1:]  # "Coffee or tea?": capital only as the question's start
    options = [*items, " ".join(last_words)]
    if options[-1].casefold() in _NOT_A_CHOICE:
        return None  # "Should we ship on Friday or wait?" is a yes-or-no question
    if any(not o or len(o.split()) > 6 for o in options):
        return None
    return [(_ARTICLE.sub("", o), bool(_ARTICLE.match(o))) for o in options]


def _named(option: tuple[str, bool]) -> str:
    """An option as a reply names it: "the $300 smart speaker", "Postgres", "remote work"."""
    text, had_article = option
    return f"the {text}" if had_article else text


def reply(p: Persona, text: str, seed: str) -> str:
    """The persona's answer to ``text``, built from its beliefs, likes, dislikes, goals and work."""
    asked = _options_asked(text)
    day_to_day = f"what I see day to day as {with_article(p.occupation)}" if p.occupation else "what I see day to day"
    hook = pick(seed + "hook", p.interests or p.likes or p.beliefs or [day_to_day])
    if asked:
        mine = content_words(p.all_text)
        scores = [len(content_words(o) & mine) for o, _ in asked]
        best = [o for o, score in zip(asked, scores) if score == max(scores)]
        choice = best["abcdefgh".index(pick(seed, "abcdefgh"[: len(best)]))] if len(best) <= 8 else best[0]
        others = [_named(o) for o in asked if o != choice]
        other = " and ".join(others) if len(others) < 3 else f"{', '.join(others[:-1])} and {others[-1]}"
        reason = pick(seed + "r", p.beliefs or p.likes or p.interests or ["it fits how I live"])
        opener = pick(seed + "o", ["Honestly,", "For me,", "Easy one:", "Hmm,"] if p.casual else
                      ["I would choose", "My choice would be", "I'd go with"])
        verb = "matters" if len(others) == 1 else "matter"
        if opener.endswith(","):
            return (f"{opener} {_named(choice)}. {capitalised(mid_sentence(reason))}, and {other} wouldn't change "
                    "my days as much.")
        return f"{opener} {_named(choice)}. {capitalised(mid_sentence(reason))}; {other} {verb} less to me."
    wary = [f"I'm wary of {mid_sentence(d)}" for d in p.dislikes]
    relevant = most_relevant(
        text,
        [
            *p.beliefs,
            *(f"I'm all for {mid_sentence(x)}" for x in p.likes),
            *wary,
            *(f"my goal is {mid_sentence(x)}" for x in p.goals),
        ],
        seed,
    )
    question = _last_question(text)
    if question and _YES_NO.match(question):
        cautious = any(w in (p.style + " ".join(p.traits)).lower() for w in _CAUTIOUS)
        yes = pick(seed + "yn", "yyn" if not cautious else "ynn") == "y" and relevant not in wary
        if yes and _NEGATION.search(relevant):
            # "Yes, I think so. Saying no to most requests is the job." argues against itself.
            agreeable = [x for x in (*p.beliefs, *(f"I'm all for {mid_sentence(x)}" for x in p.likes),
                                     *(f"my goal is {mid_sentence(x)}" for x in p.goals)) if not _NEGATION.search(x)]
            relevant = most_relevant(text, agreeable, seed) if agreeable else relevant
        lead = pick(seed + "l", list(YES_LEADS if yes else NOT_YET_LEADS + NO_LEADS))
        because = f" {capitalised(mid_sentence(relevant))}." if relevant else ""
        return f"{lead}{because}" if because else f"{lead} Speaking as {with_article(p.occupation)}."
    echoed = _answer_in_kind(p, question, relevant or hook, seed) if question else None
    if echoed:
        return echoed
    if "?" in text:
        point = mid_sentence(relevant or hook)
        # "I'm wary of X" is a whole clause; "quiet mornings" is a thing that comes to mind.
        first_thought = point if re.match(r"(I\b|I'm\b|my goal\b)", point) or _CLAUSE.search(point) else (
            f"{point} is what comes to mind for me")
        return pick(seed, [
            f"Speaking as {with_article(p.occupation)}: {point}.",
            f"Good question. My take: {point}.",
            f"I'd want to know more first, but {first_thought}.",
        ])
    return pick(seed, [
        f"That resonates. It reminds me of {mid_sentence(hook)}.",
        f"I see it a bit differently: {mid_sentence(relevant or pick(seed + 'b', p.beliefs or [hook]))}.",
        f"Agreed. As {with_article(p.occupation)}, one goal stays on my mind: {mid_sentence(pick(seed + 'c', p.goals))}."
        if p.goals else f"Agreed. As {with_article(p.occupation)}, I see it the same way.",
    ])


_YES_NO = re.compile(
    r"^(?:should|shall|can|could|would|will|do|does|did|is|are|was|were|have|has|must)\b",
    re.IGNORECASE,
)
#: A phrase that is a whole statement ("saying no to most requests is the job"), not a thing.
_CLAUSE = re.compile(r"\b(?:is|are|was|were|should|must|need|needs|makes|fixes|has|have|can|will|comes?)\b",
                     re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:no|not|never|nobody|nothing|none)\b|n't\b", re.IGNORECASE)
_CAUTIOUS = ("sceptic", "skeptic", "cautious", "careful", "blunt", "critical", "dry")


def _last_question(text: str) -> str:
    """The clause holding the last question mark, without a greeting in front of it."""
    if "?" not in text:
        return ""
    head = text[: text.rindex("?")]
    return re.split(r"[,.!:;]\s*", head)[-1].strip()


_YOU_TO_ME = {"you": "me", "your": "my", "yours": "mine", "yourself": "myself"}
#: Open questions a person answers in their own words ("What worries you about the launch?" →
#: "What worries me about the launch is …").
_MAKE_YOU = re.compile(r"^what would (?:it take for you to|make you|get you to) (?P<x>.+)$", re.IGNORECASE)
_WORRIES = re.compile(r"^what (?:worries|concerns|bothers) you(?: most)?(?: about (?P<x>.+))?$", re.IGNORECASE)
_THINK_OF = re.compile(r"^(?:what do you think|how do you feel|what's your (?:take|view)) (?:about|of|on) (?P<x>.+)$",
                       re.IGNORECASE)
_ENJOY = re.compile(r"^what do you (?:like|enjoy|love)(?: most)?(?: about (?P<x>.+))?$", re.IGNORECASE)


def _as_said_by_me(words: str) -> str:
    """A question's words turned round: "trust your team" → "trust my team"."""
    return re.sub(r"\b(?:you|your|yours|yourself)\b", lambda m: _YOU_TO_ME[m.group(0).casefold()], words,
                  flags=re.IGNORECASE).strip(" ?")


def _answer_in_kind(p: Persona, question: str, point: str, seed: str) -> str | None:
    """An answer to "What would make you…", "What worries you…", "What do you think of…" or "What do
    you enjoy…" that takes up the question's own words; None for other questions."""
    if match := _MAKE_YOU.match(question):
        x = _as_said_by_me(match.group("x"))
        need = mid_sentence(most_relevant(x, p.likes, seed) or point)
        return pick(seed + "k", [_stop(f"For me to {x}, it comes down to {need}"),
                                 f"{capitalised(need)}, mostly. That's what it would take for me to {x}."])
    if match := _WORRIES.match(question):
        about = f" about {_as_said_by_me(match.group('x'))}" if match.group("x") else ""
        worry = mid_sentence(most_relevant(question, p.dislikes, seed) or point)
        return pick(seed + "k", [_stop(f"What worries me{about} is {worry}"), f"Mostly {worry}, if I'm honest."])
    if match := _ENJOY.match(question):
        about = f" about {_as_said_by_me(match.group('x'))}" if match.group("x") else ""
        # About work, what it likes (its hobbies are not what it enjoys about its job).
        at_work = re.search(r"\b(?:job|work|role|team|company)\b", about, re.IGNORECASE)
        like = mid_sentence(most_relevant(question, p.likes if at_work else [*p.likes, *p.interests], seed) or point)
        return pick(seed + "k", [_stop(f"What I enjoy most{about} is {like}"), f"{capitalised(like)}, every time."])
    if match := _THINK_OF.match(question):
        x = _as_said_by_me(match.group("x"))
        # An opinion, not a life goal: "About our pricing? My goal is to buy a house…" answers nothing.
        opinion = mid_sentence(most_relevant(x, [*p.beliefs, *(f"I'm all for {mid_sentence(y)}" for y in p.likes),
                                                 *(f"I'm wary of {mid_sentence(d)}" for d in p.dislikes)], seed)
                               or point)
        return pick(seed + "k", [_stop(f"On {x}: {opinion}"), _stop(f"About {x}? {capitalised(opinion)}")])
    return None


def _stop(sentence: str) -> str:
    """``sentence`` with a full stop, unless it already ends in one (inside a closing quote too)."""
    return sentence if re.search(r"[.!?][\"'’”]?$", sentence) else f"{sentence}."


_ASKS_TO_REACT = re.compile(r"\b(?:agree|disagree|the others|everyone else|heard everyone|react to)\b", re.IGNORECASE)


def reaction(p: Persona, text: str, seed: str, heard: list[tuple[str, str]], mine: list[str]) -> str | None:
    """Asked where it agrees with the others, a persona names one of them: with them when they answered
    the way it did, against them otherwise, and gives its own reason."""
    if not heard or not _ASKS_TO_REACT.search(text):
        return None
    # "You've heard Tomasz and Henrik now": those named are the ones to react to, nobody else heard.
    named = [(who, line) for who, line in heard if re.search(rf"\b{re.escape(who.split()[0])}\b", text)]
    heard = named or heard
    own = next((lead_kind(line) for line in reversed(mine) if lead_kind(line)), None)
    # Each one's latest opinion: a later "I see it differently…" does not hide an earlier "Not yet".
    latest: dict[str, str | None] = {}
    for name, line in heard:
        latest[name] = lead_kind(line) or latest.get(name)
    theirs = list(latest.items())
    # Someone who answered differently is the more telling one to name; with no votes, a stable pick.
    differ = [(n, k) for n, k in theirs if own and k and (k == "yes") != (own == "yes")]
    if differ:
        name, kind = differ[0]
    elif own:
        name, kind = next(((n, k) for n, k in theirs if k), theirs[0])
    else:
        name, kind = pick(seed + "who", [n for n, _ in theirs]), None
    first = name.split()[0]
    reason = mid_sentence(most_relevant(text + " " + " ".join(line for _, line in heard),
                                        [*p.beliefs, *(f"I'm all for {mid_sentence(x)}" for x in p.likes),
                                         *(f"I'm wary of {mid_sentence(d)}" for d in p.dislikes)], seed)
                          or f"what I see day to day as {with_article(p.occupation)}")
    if own and kind and (kind == "yes") != (own == "yes"):
        stance = {"yes": "go ahead", "wait": "hold off", "no": "say no"}[own]
        return f"I see it differently from {first}: I'd still {stance}. {capitalised(reason)}."
    if own and kind:
        return f"I'm with {first} on this. {capitalised(reason)}."
    return f"{first} makes a fair point, but {reason}." if pick(seed + "agree", "ad") == "a" else (
        f"I see it a bit differently from {first}: {reason}.")
