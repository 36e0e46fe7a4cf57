"""Ages a description asks for ("under 30", "not over 60", "25-34", "65+"): read by a sampling plan
to tell age bands apart, and by the persona factory to give each person an age inside them."""

from __future__ import annotations

import hashlib
import re

_AGE_RANGE = re.compile(r"(?<![\d.])(\d{1,3})\s*(?:-|–|to|and)\s*(\d{1,3})(?![\d.%])")
_AGE_BOUND = re.compile(r"(not\s+)?(under|below|younger than|less than|over|above|older than|at least)\s+(\d{1,3})")
_AGE_PLUS = re.compile(r"(not\s+)?(\d{1,3})\s*(?:\+|or older|and over|or more|and older)")
_UNDER = ("under", "below", "younger than", "less than")


def names_an_age(text: str) -> bool:
    """Whether ``text`` (case folded) bounds an age: a range, an "under 30" or a "65+"."""
    return bool(_AGE_RANGE.search(text) or _AGE_BOUND.search(text) or _AGE_PLUS.search(text))


#: Ages of anyone, and of someone in work (a description that names a job asks for a working person).
ANY_AGE, WORKING_AGE = (19, 74), (21, 66)


def age_within(constraint: str, seed: str, bounds: tuple[int, int] = ANY_AGE) -> int:
    """An age inside the constraint's bounds ("under 30", "not over 60", "25-34", "65+"), else in ``bounds``."""
    text = constraint.casefold()
    low, high = bounds
    for match in _AGE_RANGE.finditer(text):
        a, b = int(match.group(1)), int(match.group(2))
        if re.search(r"\bnot\s+$", text[: match.start()]):  # "not 30-60": above the band if there is room
            low, high = (max(low, b + 1), high) if high > b else (low, min(high, a - 1))
        else:
            low, high = a, b
    for negated, word, number in _AGE_BOUND.findall(text):
        n = int(number)
        if word in _UNDER:
            low, high = (max(low, n), high) if negated else (low, min(high, n - 1))
        elif word == "at least":
            low, high = (low, min(high, n - 1)) if negated else (max(low, n), high)
        else:
            low, high = (low, min(high, n)) if negated else (max(low, n + 1), high)
    for negated, number in _AGE_PLUS.findall(text):
        n = int(number)
        low, high = (low, min(high, n - 1)) if negated else (max(low, n), high)
    low = min(max(low, 16), 95)
    high = max(low, min(high, 95))
    return low + int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % (high - low + 1)
