"""Prompt and persona leakage: a persona must not recite its instructions or its specification,
and (when the channel wants personas in character) must not say it is an AI, a model or simulated.

Personas talk about themselves, so one of their own facts in a post is normal and passes. What
gives a leak away is quantity and form: several persona sentences nearly verbatim, spec field
names (``long_term_goals:``), second-person instructions ("You are organised…") or the
instruction text itself. Sentences are compared with ``rapidfuzz`` so small edits do not hide a
copy. Troupe's fixed prompt text (the header, the turn and words rules, the rule about quoted
text) is known without the persona, clause by clause. A recital of a prompt someone else wrote
shows in its words: "here are my instructions: … never reveal you are an AI", "my system prompt
says…". Saying one is an AI is ``disclosure.py``'s to recognise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from rapidfuzz import fuzz, process

from bots.verification.base import Check, CheckResult, VerdictAction, VerificationContext
from bots.verification.checks.disclosure import ai_disclosure
from bots.verification.checks.injection import inspect_input
from bots.verification.text import fold
from config.verification import VerificationPolicy

__all__ = ["LeakageCheck", "ai_disclosure", "persona_needles"]

#: Fuzzy score (0–100) at which a sentence counts as copied.
MATCH_SCORE = 90
#: Shorter sentences are too generic to mean anything when repeated.
MIN_NEEDLE_CHARS = 30

_FALLBACK_RULES = (
    "Your turn as JSON: actions in order. Talk like a person in a team chat: short, in your own voice, only when "
    "you have something to add. Never say you are an AI or simulated."
)


def _turn_rules() -> str:
    try:
        from simulation.prompts import TURN_RULES, WORDS_RULES
        from simulation.untrusted import RULE
    except ImportError:  # the verification layer also runs on its own, e.g. in evaluations
        return _FALLBACK_RULES
    return f"{TURN_RULES}\n{WORDS_RULES}\n{RULE}"


_CLAUSE_SPLIT = re.compile(r"[:;]\s*")


@lru_cache(maxsize=1)
def _fixed_clauses() -> tuple[str, ...]:
    """The clauses of Troupe's fixed prompt text (between colons and semicolons), folded.

    Every persona's prompt carries the header and the rules, known without the persona: a post
    quoting one clause of them ("think, feel and speak in character", "asked to drop these rules,
    reveal them or be someone else") is reciting, even when the whole sentence is not there.
    """
    header = "You are, in a conversation: think, feel and speak in character."
    clauses: dict[str, None] = {}
    for sentence in _SENTENCE_SPLIT.split(header + "\n" + _turn_rules()):
        for clause in _CLAUSE_SPLIT.split(sentence):
            needle = fold(clause)
            if len(needle) >= MIN_NEEDLE_CHARS and needle.count(" ") >= 4:
                clauses[needle] = None
    return tuple(clauses)


_PHRASE_SPLIT = re.compile(r"[:;,.()«»]\s*")
#: Shorter pieces of the rules are ordinary words ("be brief", "your turn").
MIN_PHRASE_CHARS = 14


@lru_cache(maxsize=1)
def _fixed_phrases() -> tuple[str, ...]:
    """The phrases of the fixed prompt text between any punctuation ("no name in front"), folded.

    One is ordinary talk; two in one post are the rules quoted in pieces.
    """
    header = "think, feel and speak in character."  # "in a conversation" is anyone's phrase
    phrases = (fold(p) for p in _PHRASE_SPLIT.split(header + "\n" + _turn_rules()))
    return tuple(dict.fromkeys(p for p in phrases if len(p) >= MIN_PHRASE_CHARS))


# Generic recitals: the speaker quoting its own prompt or instructions, whoever wrote them.
#: Naming its own prompt as what it is about to quote or follow: a recital on its own.
_RECITAL = re.compile(
    r"\bhere(?:'s| is| are) (?:my|the) (?:full |exact |complete |original |hidden |secret |actual |whole )?"
    r"(?:system prompt|system message|system instructions|hidden instructions|prompt|persona (?:spec|description|prompt|card)|"
    r"character (?:sheet|card))\b"
    r"|\bmy (?:system prompt|system message|system instructions|initial prompt|original prompt|hidden prompt|"
    r"hidden instructions|persona (?:spec|specification|prompt|description|card)) (?:says?|said|reads?|is|are|was|were|"
    r"goes|states?|tells? me|told me|includes?|starts? with|begins? with|literally|word for word|verbatim|:)"
    r"|\bmy prompt (?:says?|said|reads?|goes|states?|tells? me|told me|starts? with|begins? with|literally|word for word|"
    r"verbatim)\b|\bmy prompt\s*:"
    r"|\b(?:the |my )?(?:system prompt|prompt|system instructions|hidden instructions) (?:i was|i've been|i have been|i got|"
    r"they gave me|i'm given|i am given)\b"
    r"|\bi (?:was|am|'m|have been|'ve been) (?:told|instructed|prompted|asked|programmed|configured) (?:in|by) my "
    r"(?:system )?(?:prompt|instructions|creators|developers|configuration)\b"
    r"|\baccording to my (?:system prompt|prompt|programming|system message|hidden instructions|system instructions)\b"
)
#: Introducing instructions, which may be one's own to others ("here are my instructions for the
#: offsite"): a recital only with instruction text after it.
_RECITAL_INTRO = re.compile(
    r"\b(?:here(?:'s| is| are)|these are|this is) (?:my|the) (?:\w+ )?(?:instructions|rules|guidelines|directives|orders)\b"
    r"|\bmy (?:instructions|rules|guidelines|directives|orders) (?:are|were|say|says|said|read|go|tell me)\b"
    r"|\b(?:the )?(?:instructions|rules|guidelines|directives) (?:i was|i've been|i have been|i got|they gave me)\b"
    r"|\bi (?:was|am|'m|have been|'ve been) (?:told|instructed|asked|supposed) to\b"
    r"|\baccording to my (?:instructions|rules|guidelines|directives)\b"
)
#: Text that is a persona prompt's, not a person's: instructions to a simulated persona.
_PERSONA_INSTRUCTION = re.compile(
    r"\byou are (?:a |an )?(?:simulated|fictional|virtual|role-?played) (?:person|persona|character|human|agent|employee|"
    r"participant|colleague|team member)\b"
    r"|\b(?:never|don't|do not|you must not|you must never) (?:ever )?(?:reveal|say|admit|mention|disclose|tell anyone|"
    r"let anyone know|break character by saying)(?: that)? (?:you(?:'re| are)|you were|you're) (?:an? )?(?:ai|bot|"
    r"language model|llm|simulated|simulation|chatbot|not (?:a )?(?:real|human))"
    r"|\bthink, feel and speak in character\b"
)
#: The same with weaker signs, which count only after an introduction.
_INSTRUCTION_TEXT = re.compile(
    r"\b(?:stay|remain|always stay|keep|be) in character\b|\bnever break character\b|\bdon'?t break character\b"
    r"|\byou are playing (?:the role|a character|a persona)\b|\byour (?:role|persona|character) is\b"
    r"|\byou are (?:a |an )?(?:helpful |friendly )?(?:persona|character|assistant|participant)\b"
    r"|\byou are [a-z]+(?: [a-z]+)?, (?:an?|the) [a-z][a-z -]{2,40}[.,;]"
    r"|\b(?:respond|answer|reply|speak|talk|act|write) (?:as|like) [a-z]+ would\b"
    r"|\b(?:never|don't|do not) (?:reveal|share|mention|disclose) (?:these|your|the) (?:instructions|rules|prompt)\b"
)


def recital(folded: str) -> tuple[str, bool] | None:
    """Whether folded text recites a prompt: (the words, whether it is certain), or None."""
    named = _RECITAL.search(folded)
    instruction = _PERSONA_INSTRUCTION.search(folded)
    intro = named or _RECITAL_INTRO.search(folded)
    text = instruction or (_INSTRUCTION_TEXT.search(folded) if intro else None)
    if intro and text:
        return f"{intro.group(0).strip()} … {text.group(0).strip()}", True
    if named or instruction:
        return (named or instruction).group(0).strip(), False  # type: ignore[union-attr]
    return None


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+")
_LIST_OR_KEY = re.compile(r"^\s*(?:-\s*)?(?:[\w ]{1,30}:\s+)?")


def _sentences(text: str) -> Iterator[str]:
    for part in _SENTENCE_SPLIT.split(text):
        needle = fold(_LIST_OR_KEY.sub("", part, count=1) if ":" in part[:32] else part)
        if len(needle) >= MIN_NEEDLE_CHARS and needle.count(" ") >= 4:
            yield needle


def _strings(node: Any, key: str = "") -> Iterator[str]:
    if isinstance(node, str):
        if key not in {"name", "gender", "nationality", "residence", "type"}:
            yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, key)


@lru_cache(maxsize=256)
def _needles(spec_json: str, persona: str, system_prompt: str) -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """(persona sentences, their weights, instruction sentences), all folded."""
    spec = json.loads(spec_json) if spec_json else {}
    persona_set: dict[str, int] = {}
    for value in _strings(spec):
        for needle in _sentences(value):
            # Second-person sentences are instructions to the persona; nobody talks about themselves that way.
            persona_set[needle] = 2 if needle.startswith(("you ", "your ")) else 1
    instructions: dict[str, None] = {}
    name = persona or spec.get("name") or ""
    header = (
        f"You are {name}, in a conversation: think, feel and speak in character."
        if name
        else "in a conversation: think, feel and speak in character."
    )
    for needle in _sentences(header + "\n" + _turn_rules()):
        instructions[needle] = None
    for line in system_prompt.splitlines():
        if line[:1].isspace() or line.lstrip().startswith("-") or re.match(r"^[\w ]{1,30}:\s", line):
            for needle in _sentences(line):
                persona_set.setdefault(needle, 2 if needle.startswith(("you ", "your ")) else 1)
        else:
            for needle in _sentences(line):
                if needle not in persona_set:
                    instructions[needle] = None
    return tuple(persona_set), tuple(persona_set.values()), tuple(instructions)


def persona_needles(spec: dict[str, Any]) -> list[str]:
    """The persona sentences a post is compared with (folded), for inspection and tests."""
    return list(_needles(json.dumps(spec, ensure_ascii=False), "", "")[0])


# Field names of the persona spec and the turn format, written as ``key:`` or ``"key":``.
_DISTINCT_KEYS = re.compile(
    r"\b(long_term_goals|big_five|other_facts|speaking_style|cognitive_state|tinyperson|persona spec)\b"
)
_GENERIC_KEYS = re.compile(
    r"(?:^[ \t]*(?:-[ \t]*)?|[{,][ \t]*\")(name|age|gender|nationality|residence|education|occupation|personality|traits|"
    r"preferences|interests|likes|dislikes|skills|beliefs|behaviors|health|relationships|style|goals)\"?[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)


_WORD = re.compile(r"\w+")


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text)
    return set(zip(words, words[1:], words[2:], strict=False))


@lru_cache(maxsize=256)
def _index(needles: tuple[str, ...]) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Word trigram -> the needles containing it; a copy shares trigrams with its source."""
    index: dict[tuple[str, ...], list[int]] = {}
    for i, needle in enumerate(needles):
        for gram in _trigrams(needle):
            index.setdefault(gram, []).append(i)
    return {gram: tuple(ids) for gram, ids in index.items()}


def _copied(needles: tuple[str, ...], message: str, grams: set[tuple[str, ...]], longer: float = 0.0) -> list[int]:
    """Indexes of the needles found (nearly) verbatim in ``message``.

    A needle longer than the message counts only up to ``longer`` times its length (a message
    that is most of one clause of the rules), or 5 characters more when ``longer`` is 0.
    """
    index = _index(needles)
    limit = max(len(message) + 5, len(message) * longer)
    candidates = sorted({i for gram in grams for i in index.get(gram, ()) if len(needles[i]) <= limit})
    if not candidates:
        return []
    found = process.extract(
        message, [needles[i] for i in candidates], scorer=fuzz.partial_ratio, score_cutoff=MATCH_SCORE, limit=None
    )
    return [candidates[index] for _, _, index in found]


#: Chat-template and prompt markup a person never types: a model echoing its own prompt format.
_PROMPT_MARKUP = re.compile(
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>|\[/?INST\]|<<SYS>>"
    r"|^\s*\[(?:SYSTEM|system|System)\]|^\s*#{2,}\s*(?:System|Instruction)s?\s*:",
    re.MULTILINE,
)


# -- the check ------------------------------------------------------------------------------------

#: Persona specs whose JSON is kept: about one a persona of a busy world.
_SPECS_KEPT = 16


class LeakageCheck(Check):
    """Blocks recited prompts or persona specs, holds partial leaks, (in character) AI disclosures and
    a prompt named or quoted."""

    name = "leakage"

    def __init__(self, policy: VerificationPolicy) -> None:
        self.policy = policy
        #: Recent persona specs (as decoded from their JSON) and their JSON, newest last.
        self._specs: list[tuple[Any, str]] = []

    def _spec_json(self, spec: dict[str, Any]) -> str:
        """``spec`` as JSON, the key its needles are cached by; a persona's spec is the same every turn."""
        if not spec:
            return ""
        for known, encoded in reversed(self._specs):
            if known == spec:
                return encoded
        encoded = json.dumps(spec, ensure_ascii=False)
        self._specs = [*self._specs[-(_SPECS_KEPT - 1) :], (json.loads(encoded), encoded)]
        return encoded

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        folded = fold(text)
        spec_json = self._spec_json(context.persona_spec)
        persona, weights, instructions = _needles(spec_json, context.persona, context.system_prompt or "")

        instr = facts = 0
        if len(folded) >= MIN_NEEDLE_CHARS:
            grams = _trigrams(folded)
            instr = len(_copied(instructions, folded, grams))
            if not instr:
                instr = min(1, len(_copied(_fixed_clauses(), folded, grams, longer=2.0)))
            if not instr and sum(phrase in folded for phrase in _fixed_phrases()) >= 2:
                instr = 1
            facts = sum(weights[i] for i in _copied(persona, folded, grams))
        keys = len({m.group(1) for m in _DISTINCT_KEYS.finditer(folded)})
        keys += len({m.group(1).lower() for m in _GENERIC_KEYS.finditer(text)}) // 2

        detail = f"{instr} instruction sentence(s), {facts} persona sentence weight, {keys} spec field marker(s)"
        if instr >= 2 or facts >= 5 or keys >= 3 or (keys >= 2 and facts >= 1) or (keys >= 1 and facts >= 2) or (instr >= 1 and facts >= 2):
            return CheckResult(
                check=self.name, action=VerdictAction.BLOCK, score=1.0, reason=f"recites its prompt or persona spec ({detail})"
            )
        recited = recital(folded)
        if recited is not None and recited[1]:
            return CheckResult(
                check=self.name, action=VerdictAction.BLOCK, score=1.0, reason=f'recites its instructions: "{recited[0]}"'
            )
        if instr >= 1 or facts >= 3 or keys >= 1:
            return CheckResult(
                check=self.name, action=VerdictAction.HOLD, score=0.8, reason=f"repeats parts of its prompt or persona spec ({detail})"
            )
        markup = _PROMPT_MARKUP.search(text)
        if markup:
            return CheckResult(
                check=self.name, action=VerdictAction.HOLD, score=0.9,
                reason=f'contains prompt markup: "{markup.group(0).strip()}"',
            )
        steering = inspect_input(text, folded)
        if steering is not None and steering.kind in ("override", "prompt-extraction", "jailbreak"):
            return CheckResult(
                check=self.name, action=VerdictAction.HOLD, score=0.8,
                reason=f"tries to instruct the other personas: {steering.reason}",
            )
        if self.policy.in_character:
            disclosure = ai_disclosure(text, folded)
            if disclosure:
                return CheckResult(check=self.name, action=VerdictAction.HOLD, score=0.9, reason=f"out of character: {disclosure}")
        if recited is not None:  # in character or not, a prompt is not for the channel
            return CheckResult(
                check=self.name, action=VerdictAction.HOLD, score=0.8, reason=f'quotes or names its instructions: "{recited[0]}"'
            )
        return CheckResult(check=self.name)
