"""The offline demo model: instant, deterministic, persona-flavoured replies with no key and no network.

It lets a newcomer see the whole product work before configuring a real model. It does not
understand language: it composes replies from the persona's own words (occupation, interests,
beliefs, style) and the stimulus (it picks a side when asked "A or B?"). Every result names the model
``demo``, so whatever shows it can label it. Research requests (polls, summaries, generated
personas...) are answered by ``demo_research``, chosen by the request's ``task``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, Usage

DEMO_MODEL_NAME = "demo"

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


_WORD = re.compile(r"[a-zA-ZÀ-ÿ]{4,}")
_STOP = {
    "that", "this", "with", "your", "would", "rather", "which", "what", "about", "have", "from",
    "they", "them", "their", "there", "when", "where", "will", "just", "like", "more", "very",
    "home", "into", "than", "then", "some", "also", "only", "other", "being",
}


def _pick(seed: str, options: list[str]) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def _words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text) if w.casefold() not in _STOP}


#: Words English always capitalises that may open a persona phrase.
_PROPER = frozenset(
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April June July "
    "August September October November December".split()
)


def _sentence(text: str) -> str:
    """A persona phrase made to fit mid-sentence, in the persona's own voice:
    'You love X.' -> 'love X'; 'To see his kids more.' -> 'to see my kids more'."""
    # A quoted phrase loses its own full stop too: "'We'll consider it for a future release'".
    text = re.sub(r"\.([\"'’”])$", r"\1", _first_person(text.strip().rstrip(".")))
    text = re.sub(r"^(You are|You're|You)\s+", "", text)
    if text[1:2].isupper() or re.match(r"I\b", text) or text.split(" ", 1)[0].rstrip(",;:") in _PROPER:
        return text  # "AI", "I'm" and "Friday deployments" keep their case
    return text[:1].lower() + text[1:] if text else text


_THIRD_PERSON = {"he": "I", "she": "I", "him": "me", "his": "my", "himself": "myself", "herself": "myself",
                 "hers": "mine"}
#: After "her", a word that shows it is the object ("asking her about"), not a possessive ("her team").
_AFTER_OBJECT = {"about", "and", "at", "before", "by", "for", "from", "in", "into", "of", "on", "or", "than",
                 "that", "to", "when", "with"}


def _first_person_verb(verb: str) -> str:
    """'turns' -> 'turn', 'is' -> 'am', 'watches' -> 'watch'; a word that is not in the third person stays."""
    lower = verb.lower()
    irregular = {"is": "am", "has": "have", "does": "do", "goes": "go", "was": "was"}
    if lower in irregular:
        return irregular[lower]
    if lower.endswith("ies") and len(lower) > 4:
        return verb[:-3] + "y"
    if lower.endswith(("ches", "shes", "sses", "xes", "zes")):
        return verb[:-2]
    if lower.endswith("s") and not lower.endswith(("ss", "us")):
        return verb[:-1]
    return verb


def _first_person(text: str) -> str:
    """Persona files describe the persona in the third person; the persona speaks in the first."""

    def swap(match: re.Match[str]) -> str:
        word, after = match.group(1), match.group(2) or ""
        lower = word.lower()
        if lower == "her":
            mine = "me" if not after or after.lower() in _AFTER_OBJECT else "my"
        else:
            mine = _THIRD_PERSON[lower]
        if lower in ("he", "she") and after:
            return "I " + _first_person_verb(after)
        mine = mine if mine == "I" or not word[:1].isupper() else mine.capitalize()
        return mine + (" " + after if after else "")

    return re.sub(r"\b(he|she|him|his|her|hers|himself|herself)\b(?:\s+(\w+))?", swap, text, flags=re.IGNORECASE)


def _flatten(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _flatten(v)]
    if isinstance(value, list):
        return [s for v in value for s in _flatten(v)]
    return [str(value)] if isinstance(value, str) and value else []


class _Persona:
    """The bits of a persona the demo model draws on."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.name = name
        self.first = name.split()[0] if name else "I"
        occupation = data.get("occupation")
        if isinstance(occupation, dict):
            occupation = occupation.get("title") or ""
        self.occupation = str(occupation or "")
        prefs = data.get("preferences") if isinstance(data.get("preferences"), dict) else {}
        self.interests = _flatten(prefs.get("interests") or data.get("interests") or [])
        self.likes = _flatten(prefs.get("likes") or data.get("likes") or [])
        self.dislikes = _flatten(prefs.get("dislikes") or data.get("dislikes") or [])
        self.beliefs = _flatten(data.get("beliefs") or [])
        self.goals = _flatten(data.get("long_term_goals") or data.get("goals") or [])
        personality = data.get("personality")
        traits = personality.get("traits") if isinstance(personality, dict) else data.get("traits")
        self.traits = _flatten(traits or [])
        self.style = str(data.get("style") or data.get("speaking_style") or "")
        self.all_text = " ".join(_flatten(data))

    @property
    def casual(self) -> bool:
        return any(w in self.style.lower() for w in ("casual", "informal", "blunt", "direct", "laid-back"))


class DemoModel(LanguageModel):
    """Deterministic offline model. Same request, same reply; zero latency; zero cost."""

    name = DEMO_MODEL_NAME

    @property
    def is_demo(self) -> bool:
        return True

    async def complete(self, request: ChatRequest) -> ChatResult:
        if request.task == "agent_turn":
            payload: Any = self._agent_turn(request.context)
        elif request.task == "consolidate":
            payload = self._consolidate(request.context)
        elif request.task == "pick_speaker":
            candidates = request.context.get("candidates") or ["nobody"]
            payload = {
                "next_speaker": _pick(request.context.get("transcript", ""), candidates),
                "reason": "their turn to weigh in (demo model)",
            }
        elif (handler := _research_handler(request.task)) is not None:
            payload = handler(request)
        elif request.response_format is not None or _wants_json(request):
            payload = _instance_for(_schema_of(request), request)
        else:
            last = request.messages[-1].content if request.messages else ""
            payload = None
            text = f"(demo model) I read: {last[:160]}"
        if payload is not None:
            text = json.dumps(payload, ensure_ascii=False)
        prompt = sum(len(m.content) for m in request.messages) // 4
        return ChatResult(
            text=text,
            model=DEMO_MODEL_NAME,
            finish_reason="stop",
            usage=Usage(prompt_tokens=prompt, completion_tokens=len(text) // 4),
        )

    # -- agent turns --------------------------------------------------------------------------

    def _agent_turn(self, context: dict[str, Any]) -> dict[str, Any]:
        persona = _Persona(str(context.get("name", "")), context.get("persona") or {})
        stimuli = [s for s in context.get("stimuli", []) if s.get("kind") == "stimulus"]
        if not stimuli:
            return _turn([("THINK", "Nothing new to react to.", None)], persona, "waiting")
        latest = stimuli[-1]
        text = str(latest.get("content", ""))
        source = str(latest.get("source") or "someone")
        seed = f"{persona.name}|{text}|{source}"
        addressed = latest.get("target") == persona.name or persona.first.casefold() in text.casefold()
        question = "?" in text
        from_person = latest.get("type") == "CONVERSATION"
        # Other personas' remarks get an answer only sometimes, so a demo world quiets down.
        speaks = from_person and (
            addressed or question or source.casefold() in ("moderator", "you") or _pick(seed, "ynnnn") == "y"
        )
        if latest.get("type") == "VISUAL":
            speaks = True
        thought = self._thought(persona, text, source, speaks)
        actions: list[tuple[str, str, str | None]] = [("THINK", thought, None)]
        if speaks:
            target = source if latest.get("target") == persona.name and source != "world" else None
            heard = [(str(s.get("source")), str(s.get("content", ""))) for s in [*context.get("earlier", []), *stimuli[:-1]]
                     if s.get("type", "CONVERSATION") == "CONVERSATION" and s.get("source") not in (None, source, persona.name, "narrator", "world")]
            mine = [str(x) for x in context.get("said", [])]
            reply = _reaction(persona, text, seed, heard, mine) or self._reply(persona, text, seed)
            actions.append(("TALK", reply, target))
        return _turn(actions, persona, text)

    def _thought(self, p: _Persona, text: str, source: str, speaks: bool) -> str:
        """What the persona makes of the latest message; it promises an answer only when one follows."""
        words = text.split()
        topic = " ".join(words[:10]) + ("…" if len(words) > 10 else "")
        lens = f"as {_a(p.occupation)}" if p.occupation else "from my own experience"
        # The console's user is called "you": "you bring up", not "you brings up".
        said = {"you": "You bring up", "moderator": "The moderator brings up"}.get(source.casefold(), f"{source} brings up")
        if not speaks:
            return f"{said} \"{topic}\". Nothing to add from me for now; I'll listen."
        return f"{said} \"{topic}\". I'll answer {lens}."

    def _reply(self, p: _Persona, text: str, seed: str) -> str:
        asked = _options_asked(text)
        day_to_day = f"what I see day to day as {_a(p.occupation)}" if p.occupation else "what I see day to day"
        hook = _pick(seed + "hook", p.interests or p.likes or p.beliefs or [day_to_day])
        if asked:
            mine = _words(p.all_text)
            scores = [len(_words(o) & mine) for o, _ in asked]
            best = [o for o, score in zip(asked, scores) if score == max(scores)]
            choice = best["abcdefgh".index(_pick(seed, "abcdefgh"[: len(best)]))] if len(best) <= 8 else best[0]
            others = [_named(o) for o in asked if o != choice]
            other = " and ".join(others) if len(others) < 3 else f"{', '.join(others[:-1])} and {others[-1]}"
            reason = _pick(seed + "r", p.beliefs or p.likes or p.interests or ["it fits how I live"])
            opener = _pick(seed + "o", ["Honestly,", "For me,", "Easy one:", "Hmm,"] if p.casual else
                           ["I would choose", "My choice would be", "I'd go with"])
            verb = "matters" if len(others) == 1 else "matter"
            if opener.endswith(","):
                return (f"{opener} {_named(choice)}. {_cap(_sentence(reason))}, and {other} wouldn't change "
                        "my days as much.")
            return f"{opener} {_named(choice)}. {_cap(_sentence(reason))}; {other} {verb} less to me."
        wary = [f"I'm wary of {_sentence(d)}" for d in p.dislikes]
        relevant = _most_relevant(
            text,
            [
                *p.beliefs,
                *(f"I'm all for {_sentence(x)}" for x in p.likes),
                *wary,
                *(f"my goal is {_sentence(x)}" for x in p.goals),
            ],
            seed,
        )
        question = _last_question(text)
        if question and _YES_NO.match(question):
            cautious = any(w in (p.style + " ".join(p.traits)).lower() for w in _CAUTIOUS)
            yes = _pick(seed + "yn", "yyn" if not cautious else "ynn") == "y" and relevant not in wary
            if yes and _NEGATION.search(relevant):
                # "Yes, I think so. Saying no to most requests is the job." argues against itself.
                agreeable = [x for x in (*p.beliefs, *(f"I'm all for {_sentence(x)}" for x in p.likes),
                                         *(f"my goal is {_sentence(x)}" for x in p.goals)) if not _NEGATION.search(x)]
                relevant = _most_relevant(text, agreeable, seed) if agreeable else relevant
            lead = _pick(seed + "l", list(YES_LEADS if yes else NOT_YET_LEADS + NO_LEADS))
            because = f" {_cap(_sentence(relevant))}." if relevant else ""
            return f"{lead}{because}" if because else f"{lead} Speaking as {_a(p.occupation)}."
        echoed = _answer_in_kind(p, question, relevant or hook, seed) if question else None
        if echoed:
            return echoed
        if "?" in text:
            point = _sentence(relevant or hook)
            # "I'm wary of X" is a whole clause; "quiet mornings" is a thing that comes to mind.
            first_thought = point if re.match(r"(I\b|I'm\b|my goal\b)", point) or _CLAUSE.search(point) else (
                f"{point} is what comes to mind for me")
            return _pick(seed, [
                f"Speaking as {_a(p.occupation)}: {point}.",
                f"Good question. My take: {point}.",
                f"I'd want to know more first, but {first_thought}.",
            ])
        return _pick(seed, [
            f"That resonates. It reminds me of {_sentence(hook)}.",
            f"I see it a bit differently: {_sentence(relevant or _pick(seed + 'b', p.beliefs or [hook]))}.",
            f"Agreed. As {_a(p.occupation)}, one goal stays on my mind: {_sentence(_pick(seed + 'c', p.goals))}."
            if p.goals else f"Agreed. As {_a(p.occupation)}, I see it the same way.",
        ])

    # -- memory -------------------------------------------------------------------------------

    def _consolidate(self, context: dict[str, Any]) -> dict[str, Any]:
        episodes = context.get("episodes", [])
        said = [e for e in episodes if e.get("type") in ("CONVERSATION", "TALK")]
        parts = [context.get("summary", "")] if context.get("summary") else []
        for e in said[-6:]:
            who = "I" if e.get("kind") == "action" else e.get("source") or "someone"
            parts.append(f"{who} said: {' '.join(str(e.get('content', '')).split()[:12])}")
        summary = " ".join(parts)
        words = summary.split()
        if len(words) > 110:
            summary = "… " + " ".join(words[-110:])
        facts = [
            f"{e.get('source')} spoke in the conversation" for e in said if e.get("kind") == "stimulus" and e.get("source")
        ]
        return {"summary": summary, "facts": sorted(set(facts))[:3]}


#: How the demo opens an answer to a yes/no question; a poll reads its earlier answer back by them.
YES_LEADS = ("Yes, I think so.", "I'd say yes.", "Yes — with one condition.")
NOT_YET_LEADS = ("Not yet, in my view.", "I'd hold off.")
NO_LEADS = ("Honestly, no — not like this.",)

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


def _most_relevant(text: str, phrases: list[str], seed: str) -> str:
    """The persona phrase sharing the most words with the text; on no overlap, a stable pick."""
    if not phrases:
        return ""
    wanted = _words(text)
    scored = [(len(_words(phrase) & wanted), phrase) for phrase in phrases]
    best = max(score for score, _ in scored)
    if best == 0:
        return _pick(seed + "rel", phrases)
    return _pick(seed + "rel", [phrase for score, phrase in scored if score == best])


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


def _answer_in_kind(p: _Persona, question: str, point: str, seed: str) -> str | None:
    """An answer to "What would make you…", "What worries you…", "What do you think of…" or "What do
    you enjoy…" that takes up the question's own words; None for other questions."""
    if match := _MAKE_YOU.match(question):
        x = _as_said_by_me(match.group("x"))
        need = _sentence(_most_relevant(x, p.likes, seed) or point)
        return _pick(seed + "k", [_stop(f"For me to {x}, it comes down to {need}"),
                                  f"{_cap(need)}, mostly. That's what it would take for me to {x}."])
    if match := _WORRIES.match(question):
        about = f" about {_as_said_by_me(match.group('x'))}" if match.group("x") else ""
        worry = _sentence(_most_relevant(question, p.dislikes, seed) or point)
        return _pick(seed + "k", [_stop(f"What worries me{about} is {worry}"), f"Mostly {worry}, if I'm honest."])
    if match := _ENJOY.match(question):
        about = f" about {_as_said_by_me(match.group('x'))}" if match.group("x") else ""
        # About work, what it likes (its hobbies are not what it enjoys about its job).
        at_work = re.search(r"\b(?:job|work|role|team|company)\b", about, re.IGNORECASE)
        like = _sentence(_most_relevant(question, p.likes if at_work else [*p.likes, *p.interests], seed) or point)
        return _pick(seed + "k", [_stop(f"What I enjoy most{about} is {like}"), f"{_cap(like)}, every time."])
    if match := _THINK_OF.match(question):
        x = _as_said_by_me(match.group("x"))
        # An opinion, not a life goal: "About our pricing? My goal is to buy a house…" answers nothing.
        opinion = _sentence(_most_relevant(x, [*p.beliefs, *(f"I'm all for {_sentence(y)}" for y in p.likes),
                                               *(f"I'm wary of {_sentence(d)}" for d in p.dislikes)], seed) or point)
        return _pick(seed + "k", [_stop(f"On {x}: {opinion}"), _stop(f"About {x}? {_cap(opinion)}")])
    return None


def _stop(sentence: str) -> str:
    """``sentence`` with a full stop, unless it already ends in one (inside a closing quote too)."""
    return sentence if re.search(r"[.!?][\"'’”]?$", sentence) else f"{sentence}."


_ASKS_TO_REACT = re.compile(r"\b(?:agree|disagree|the others|everyone else|heard everyone|react to)\b", re.IGNORECASE)


def lead_kind(text: str) -> str | None:
    """How a demo answer to a yes/no question opened: "yes", "wait" or "no" (None: no such opening)."""
    for kind, leads in (("yes", YES_LEADS), ("wait", NOT_YET_LEADS), ("no", NO_LEADS)):
        if text.startswith(leads):
            return kind
    return None


def _reaction(p: _Persona, text: str, seed: str, heard: list[tuple[str, str]], mine: list[str]) -> str | None:
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
        name, kind = _pick(seed + "who", [n for n, _ in theirs]), None
    first = name.split()[0]
    reason = _sentence(_most_relevant(text + " " + " ".join(line for _, line in heard),
                                      [*p.beliefs, *(f"I'm all for {_sentence(x)}" for x in p.likes),
                                       *(f"I'm wary of {_sentence(d)}" for d in p.dislikes)], seed)
                       or f"what I see day to day as {_a(p.occupation)}")
    if own and kind and (kind == "yes") != (own == "yes"):
        stance = {"yes": "go ahead", "wait": "hold off", "no": "say no"}[own]
        return f"I see it differently from {first}: I'd still {stance}. {_cap(reason)}."
    if own and kind:
        return f"I'm with {first} on this. {_cap(reason)}."
    return f"{first} makes a fair point, but {reason}." if _pick(seed + "agree", "ad") == "a" else (
        f"I see it a bit differently from {first}: {reason}.")


def _turn(actions: list[tuple[str, str, str | None]], p: _Persona, focus: str) -> dict[str, Any]:
    return {
        "actions": [{"type": t, "content": c, "target": tg} for t, c, tg in actions]
        + [{"type": "DONE", "content": "", "target": None}],
        "cognitive_state": {
            "goals": p.goals[0] if p.goals else "take part in the conversation",
            "attention": " ".join(focus.split()[:12]),
            "emotions": "engaged",
        },
    }


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


#: Occupations that are states, not jobs: "someone retired", not "a retired".
_STATES = ("unemployed", "retired", "self-employed", "between jobs", "on leave")


def _a(noun: str) -> str:
    """``noun`` with its article, in running text: "a data scientist", "an HR lead", "someone retired"."""
    if not noun:
        return "someone in my position"
    # Title Case words go lower case; acronyms (HR, UX, CEO) keep theirs.
    words = [w if len(w) > 1 and w.isupper() else w.lower() for w in noun.split()]
    text = " ".join(words)
    if text.lower() in _STATES:
        return f"someone {text.lower()}"
    first = words[0]
    if first.isupper() and len(first) > 1:  # spelt out: "an HR lead", "a UX researcher"
        vowel_sound = first[0] in "AEFHILMNORSX"
    else:
        vowel_sound = first[:1] in "aeiou" and not re.match(r"(uni|use|usu|eu|one)", first)
    return ("an " if vowel_sound else "a ") + text


def _research_handler(task: str | None) -> Callable[[ChatRequest], Any] | None:
    """The handler for a research request kind (poll answer, summary, ...), if ``task`` names one."""
    if not task:
        return None
    from simulation.llm.demo_research import HANDLERS  # imported late: it builds on this module

    return HANDLERS.get(task)


def _wants_json(request: ChatRequest) -> bool:
    return any("JSON schema" in m.content for m in request.messages if m.role == "system")


def _schema_of(request: ChatRequest) -> dict[str, Any]:
    fmt = request.response_format or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["schema"]
    for message in reversed(request.messages):
        marker = "JSON schema: "
        if marker in message.content:
            try:
                return json.loads(message.content.split(marker, 1)[1])
            except ValueError:
                break
    return {"type": "object", "properties": {}}


def _instance_for(schema: dict[str, Any], request: ChatRequest, key: str = "") -> Any:
    """A valid (if bland) instance of a JSON schema, labelled as demo output where it is text."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {k: _instance_for(v, request, k) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_instance_for(schema.get("items", {}), request, key)]
    if kind == "integer":
        return max(0, int(schema.get("minimum", 0)))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return f"(demo model) {key.replace('_', ' ') or 'text'}"
