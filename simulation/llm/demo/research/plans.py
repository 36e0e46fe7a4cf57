"""The demo's reading of a sampling plan ("60% women; half of them over 50, the rest under 30"):
population shares, clause by clause, crossed into cells."""

from __future__ import annotations

import re
from itertools import product
from typing import Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo.research.ages import names_an_age

_FRACTION_WORDS = {
    "three quarters": 0.75,
    "two thirds": 2 / 3,
    "one third": 1 / 3,
    "a third": 1 / 3,
    "one quarter": 0.25,
    "a quarter": 0.25,
    "a fifth": 0.2,
    "one fifth": 0.2,
    "a tenth": 0.1,
    "half": 0.5,
}
_PERCENT = re.compile(r"(\d+(?:[.,]\d+)?)\s*(?:%|percent\b|per cent\b)", re.IGNORECASE)
_NESTED = re.compile(r"\b(?:of them|of those|of these|among them|of whom)\b", re.IGNORECASE)
_FILLER = re.compile(r"^(?:(?:are|is|be|should be|who are|with|and|of the population|of people)\s+)+", re.IGNORECASE)


_WHOLE = re.compile(r"\b(?:all of them|all|everyone|everybody|every one|each of them)\b", re.IGNORECASE)
_REST = re.compile(r"^\s*(?:and\s+)?(?:the rest|the others|the remainder|everyone else|all the others|all others)\b",
                   re.IGNORECASE)
_GENDER_WORDS = re.compile(r"\b(?:women|woman|female|mothers|men|man|male|fathers)\b", re.IGNORECASE)
_PLACE_WORDS = re.compile(r"\b(?:city|cities|urban|rural|countryside|village|town|metropolitan)\b", re.IGNORECASE)


def _clause(text: str) -> tuple[float, str] | None:
    """A clause's share and what it says of that share; a clause naming no share ("over 60",
    "all of them women") is about everyone."""
    share = None
    match = _PERCENT.search(text)
    if match:
        share = float(match.group(1).replace(",", ".")) / 100
        text = text[: match.start()] + text[match.end() :]
    else:
        for words, value in _FRACTION_WORDS.items():
            found = re.search(rf"\b{words}\b", text, re.IGNORECASE)
            if found:
                share = value
                text = text[: found.start()] + text[found.end() :]
                break
    if share is None:
        share, text = 1.0, _WHOLE.sub(" ", text, count=1)
    text = _NESTED.sub(" ", text)
    description = _FILLER.sub("", " ".join(text.split())).strip(" .")
    return (min(max(share, 0.0), 1.0), description) if description else None


def _attribute(description: str) -> str | None:
    """What a group is told apart by (age, gender, place), so "30% under 30, 30% 30-60" splits one
    attribute into groups instead of being crossed with itself."""
    text = description.casefold()
    if names_an_age(text):
        return "age"
    if _GENDER_WORDS.search(text):
        return "gender"
    if _PLACE_WORDS.search(text):
        return "place"
    return None


class _Dimension:
    """Groups of one attribute: their shares and traits (each possibly split further "of them"),
    and what the rest of the population is."""

    def __init__(self, share: float, description: str) -> None:
        self.parts: list[tuple[float, str, list[tuple[float, str]]]] = [(share, description, [])]
        self.rest: str | None = None

    @property
    def attribute(self) -> str | None:
        return _attribute(self.parts[0][1])

    def takes(self, share: float, description: str) -> bool:
        """Whether a further top-level group belongs here (same attribute, room left)."""
        return (self.rest is None and self.attribute is not None and _attribute(description) == self.attribute
                and sum(p[0] for p in self.parts) + share <= 1 + 1e-6)

    def options(self) -> list[tuple[float, list[str]]]:
        options: list[tuple[float, list[str]]] = []
        for share, description, children in self.parts:
            inside: list[tuple[float, list[str]]] = [(share, [description])]
            for child_share, child in children:
                inside = [
                    (s * f, traits + [t])
                    for s, traits in inside
                    for f, t in ((child_share, child), (1 - child_share, f"not {child}"))
                ]
            options += inside
        left = 1 - sum(p[0] for p in self.parts)
        rest = [self.rest] if self.rest else [f"not {d}" for _, d, _ in self.parts]
        return [*options, (left, rest)] if left > 1e-9 else options


def sampling_plan(request: ChatRequest) -> dict[str, Any]:
    """Percentages and fractions, read clause by clause; "of them" splits the clause before it, and
    "the rest …" says who the remainder are. Groups of one attribute (age bands) share a dimension;
    dimensions are taken as independent and crossed, as a statistician would assume.
    """
    plan = str(request.context.get("plan", ""))
    dimensions: list[_Dimension] = []
    for raw in re.split(r"[;,]|\band\b(?=\s+(?:\d|half|a third|a quarter|the rest|the others))", plan):
        rest = _REST.match(raw)
        if rest:
            described = _clause(raw[rest.end():])
            if described and dimensions and dimensions[-1].rest is None:
                dimensions[-1].rest = described[1]
            continue
        nested = bool(_NESTED.search(raw))
        parsed = _clause(raw)
        if parsed is None:
            continue
        if nested and dimensions:
            dimensions[-1].parts[-1][2].append(parsed)
        elif dimensions and dimensions[-1].takes(*parsed):
            dimensions[-1].parts.append((parsed[0], parsed[1], []))
        else:
            dimensions.append(_Dimension(*parsed))
    if not dimensions:
        return {"cells": [{"share": 1.0, "traits": []}]}
    cells = []
    for combination in product(*(d.options() for d in dimensions)):
        share = 1.0
        traits: list[str] = []
        for s, t in combination:
            share *= s
            traits += t
        if share > 1e-9:
            cells.append({"share": round(share, 6), "traits": traits})
    return {"cells": cells[:32]}
