"""Undo the usual ways of hiding a word from a filter, keeping track of where each letter came from.

Matching runs on a normalised *view* of the message: lower case, Unicode NFKC, look-alike letters
from other scripts mapped to ASCII, zero-width characters dropped, leetspeak inside words undone
("sh1t", "$hit", "@ss"), letters spaced out with separators joined ("f u c k", "f.u.c.k",
"f-u-c-k") and long runs of one letter shortened ("fuuuck"). A capital I inside a lower-case word
is also read as the l it looks like in most fonts ("kiII"). Spaced-out letters are also read as
the words their gaps show and glued to the words around them. Every character of a view
remembers the index of the original character it came from, so a match can be masked in the
original text.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache

from unidecode import unidecode

from bots.verification.text import CONFUSABLE_LETTERS, INVISIBLE_CHAR

#: Letters that look like Latin ones, read by how they look (transliteration would read Cyrillic
#: "у" by sound as "u", but a filter dodge relies on its look), plus a few the shared table lacks.
_HOMOGLYPHS = {
    **{k: v for k, v in CONFUSABLE_LETTERS.items() if k == k.lower()},
    "μ": "u", "η": "n", "ʏ": "y",
    "\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'",
}

#: Digits and symbols read as letters when they stand inside a word.
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l"}

_SEPARATORS = " .-_*/\\·•,~+"
#: Three or more single letters joined by separators: "f u c k", "f.u.c.k", "k.i.l.l y.o.u".
_SPACED = re.compile(
    r"(?<![a-z0-9])[a-z](?:[" + re.escape(_SEPARATORS) + r"]{1,2}[a-z](?![a-z0-9])){2,}"
)
_RUN = re.compile(r"([a-z])\1{2,}")
_SPACES = re.compile(r"\s+")
#: Two whitespace characters in a row: without them collapsing spaces changes nothing.
_SPACE_RUN = re.compile(r"\s\s")


@dataclass(frozen=True)
class View:
    """A normalised text and, for each of its characters, the index of the original character."""

    text: str
    origin: tuple[int, ...]
    #: Words glued together around spaced-out letters: only letters-only phrases mean anything here.
    glued: bool = False

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original text's span behind ``text[start:end]``."""
        if end <= start:
            return self.origin[start], self.origin[start]
        return self.origin[start], self.origin[end - 1] + 1


def _fold(text: str) -> tuple[list[str], list[int]]:
    """Lower case, NFKC, homoglyphs and transliteration, character by character."""
    if text.isascii():
        return list(text.lower()), list(range(len(text)))
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        out = char.lower() if char.isascii() else _fold_char(char)
        for piece in out:
            chars.append(piece)
            origin.append(index)
    return chars, origin


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    if INVISIBLE_CHAR.fullmatch(char):
        return ""
    out = unicodedata.normalize("NFKC", char).lower()
    if out.isascii():
        return out
    return "".join(_HOMOGLYPHS.get(c) or _transliterate(c) for c in out)


def _transliterate(char: str) -> str:
    category = unicodedata.category(char)
    if category.startswith("M"):  # a combining mark left over: drop it
        return ""
    # Only scripts our terms are written in (Latin, Greek, Cyrillic) are transliterated; reading
    # other scripts by sound would cost time and only invent matches.
    if not category.startswith("L") or not (ord(char) < 0x0530 or 0x1E00 <= ord(char) <= 0x1EFF):
        return char
    return unidecode(char).lower()


#: A token (run of non-space characters) with at least one character read as a letter.
_LEET_TOKEN = re.compile(r"\S*[" + re.escape("".join(_LEET)) + r"]\S*")


def _undo_leet(chars: list[str], one: str) -> None:
    """Read digits and symbols as letters, but only inside tokens that also have real letters."""
    for match in _LEET_TOKEN.finditer("".join(chars)):
        i, j = match.span()
        token = chars[i:j]
        if any("a" <= c <= "z" for c in token) and any(c in _LEET for c in token):
            for k in range(i, j):
                c = chars[k]
                if c in _LEET:
                    prev_letter = k > i and ("a" <= chars[k - 1] <= "z" or chars[k - 1] in _LEET)
                    next_letter = k + 1 < j and ("a" <= chars[k + 1] <= "z" or chars[k + 1] in _LEET)
                    # Symbols only count between or before letters: "wow!" and "$45" stay as they are.
                    if c in "!|$@" and not (next_letter or (prev_letter and c in "|$")):
                        continue
                    if c in "0134579" and not (prev_letter or next_letter):
                        continue
                    chars[k] = one if c == "1" else _LEET[c]


def _rebuild(text: str, origin: list[int], pattern: re.Pattern[str], repl) -> tuple[str, list[int]]:
    """Apply a regex substitution while carrying the origin of every kept character."""
    if pattern.search(text) is None:
        return text, origin
    out: list[str] = []
    out_origin: list[int] = []
    last = 0
    for match in pattern.finditer(text):
        out.append(text[last : match.start()])
        out_origin.extend(origin[last : match.start()])
        kept = repl(match)  # indices (into text) of the characters to keep, in order
        out.append("".join(text[k] for k in kept))
        out_origin.extend(origin[k] for k in kept)
        last = match.end()
    out.append(text[last:])
    out_origin.extend(origin[last:])
    return "".join(out), out_origin


def _join_spaced(match: re.Match[str]) -> list[int]:
    return [k for k in range(match.start(), match.end()) if "a" <= match.string[k] <= "z"]


def _collapse_spaces(match: re.Match[str]) -> list[int]:
    return [match.start()]


#: Capital I after a lower-case letter: "kiII", "wiIl" (in most fonts I and l look the same).
_CAPITAL_I_AS_L = re.compile(r"(?<=[a-z])I+")


def _capital_i_read_as_l(text: str, chars: list[str], origin: list[int]) -> list[str] | None:
    """``chars`` with every capital I that stands inside a lower-case word read as l, if any does."""
    positions = {k for m in _CAPITAL_I_AS_L.finditer(text) for k in range(m.start(), m.end())}
    if not positions:
        return None
    return ["l" if origin[k] in positions and c == "i" else c for k, c in enumerate(chars)]


def views(text: str) -> list[View]:
    """The normalised views of ``text`` worth matching; usually one, more when it is obfuscated.

    Extra views are made only when they can differ: "1" read as "l" as well as "i", a capital I
    inside a lower-case word read as "l", and runs of three or more of one letter shortened to one
    ("fuuuck") and to two ("asssshole").
    """
    chars, origin = _fold(text)
    readings = [(chars, one) for one in (["i", "l"] if "1" in chars else ["i"])]
    as_l = _capital_i_read_as_l(text, chars, origin)
    if as_l is not None:
        readings.append((as_l, "l"))
    result: list[View] = []
    for base, one in readings:
        variant = list(base)
        _undo_leet(variant, one)
        joined = "".join(variant).replace("\n", " ").replace("\t", " ")
        spaced = list(_SPACED.finditer(joined))
        extra = _spaced_views(joined, origin, spaced) if spaced else []
        joined, variant_origin = _rebuild(joined, origin, _SPACED, _join_spaced)
        if _SPACE_RUN.search(joined):
            joined, variant_origin = _rebuild(joined, variant_origin, _SPACES, _collapse_spaces)
        result.append(View(joined, tuple(variant_origin)))
        result.extend(extra)
        if _RUN.search(joined):
            for keep in (1, 2):
                shortened, short_origin = _rebuild(
                    joined, variant_origin, _RUN, lambda m, keep=keep: list(range(m.start(), m.start() + keep))
                )
                result.append(View(shortened, tuple(short_origin)))
    return result


_GAP = re.compile("[" + re.escape(_SEPARATORS) + "]+")
_WORD = re.compile(r"[a-z0-9']+")
#: Words on either side of a spaced-out run glued to it: "you're a m o r o n" reads "youreamoron".
_GLUE_BEFORE, _GLUE_AFTER = 3, 2


def _spaced_views(text: str, origin: list[int], runs: list[re.Match[str]]) -> list[View]:
    """Two more readings of letters spaced out one by one, for the phrase patterns.

    Words: where the gaps differ ("y o u  a r e  a n  i d i o t", "k.i.l.l y.o.u") the wider or
    other gaps are the spaces between words, so the run reads "you are an idiot" (a view only
    when some run has such gaps). Glued: each run and the words around it as one string of
    letters ("you are a n i d i o t" -> "youareanidiot"), for the letters-only patterns.
    """
    out: list[View] = []
    words_chars: list[str] = []
    words_origin: list[int] = []
    split_any = False
    last = 0
    for run in runs:
        words_chars.extend(text[last : run.start()])
        words_origin.extend(origin[last : run.start()])
        gaps = [g.group() for g in _GAP.finditer(run.group())]
        usual = max(set(gaps), key=gaps.count)
        split_any = split_any or len(set(gaps)) > 1
        position = run.start()
        for k in range(run.start(), run.end()):
            char = text[k]
            if "a" <= char <= "z":
                words_chars.append(char)
                words_origin.append(origin[k])
            elif k == position or text[k - 1] not in _SEPARATORS:
                gap = _GAP.match(text, k)
                if gap is not None and gap.group() != usual:
                    words_chars.append(" ")
                    words_origin.append(origin[k])
        last = run.end()
    words_chars.extend(text[last:])
    words_origin.extend(origin[last:])
    if split_any:
        out.append(View("".join(words_chars), tuple(words_origin)))

    glued_chars: list[str] = []
    glued_origin: list[int] = []
    words = list(_WORD.finditer(text))
    starts = [w.start() for w in words]
    ends = [w.end() for w in words]
    last = 0
    for run in runs:
        first_after = bisect_left(starts, run.end())
        before = words[max(0, bisect_right(ends, run.start()) - _GLUE_BEFORE) : bisect_right(ends, run.start())]
        after = words[first_after : first_after + _GLUE_AFTER]
        start = max(last, before[0].start() if before else run.start())
        end = after[-1].end() if after else run.end()
        if start < last:
            continue
        glued_chars.extend(text[last:start])
        glued_origin.extend(origin[last:start])
        for k in range(start, end):
            if "a" <= text[k] <= "z":
                glued_chars.append(text[k])
                glued_origin.append(origin[k])
        last = end
    glued_chars.extend(text[last:])
    glued_origin.extend(origin[last:])
    out.append(View("".join(glued_chars), tuple(glued_origin), glued=True))
    return out


def normalize(text: str) -> str:
    """The main normalised view of ``text`` (for display, tests and other checks)."""
    return views(text)[0].text
