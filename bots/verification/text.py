"""Text normalisation shared by the checks.

Attackers hide words from pattern checks with invisible characters, look-alike letters from other
scripts, fullwidth or mathematical letters, leetspeak and letter spacing. The checks match on a
normalised copy and edit the original, so legitimate non-Latin text is never changed in a post.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "INVISIBLE_RE",
    "caseless",
    "collapse_spacing",
    "fold",
    "has_invisible",
    "has_spaced_letters",
    "leet_variants",
    "read_spaced",
    "segment",
    "skeleton",
    "squash",
    "strip_invisible",
    "unwrap_markup",
]

_EMOJI = "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2\u25aa-\u27bf\u2934\u2935\u2b05-\u2bff\u3030\u303d\u3297\u3299\ufe0f\U0001f000-\U0001faff"

# Zero-width, bidi controls, invisible operators, fillers, the BOM and similar: nothing a reader
# sees, everything a pattern check trips over. The zero-width joiner inside an emoji sequence
# (👩‍💻) and tag characters inside a subdivision flag are kept, since they are what makes the emoji.
_INVISIBLE_CLASS = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0e\ufeff\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f"
)
#: Any character ``INVISIBLE_RE`` matches, or keeps, starts with or contains one of these: a
#: text without them has nothing to strip (one quick scan instead of the one with look-arounds).
_ANY_INVISIBLE = re.compile(f"[{_INVISIBLE_CLASS}]")
INVISIBLE_RE = re.compile(
    rf"(?P<keep>(?<=[{_EMOJI}])\u200d(?=[{_EMOJI}])|\U0001f3f4[\U000e0020-\U000e007e]{{1,7}}\U000e007f)"
    rf"|[{_INVISIBLE_CLASS}]"
)


def caseless(text: str) -> str:
    """``text`` in lower case as ``re.IGNORECASE`` sees letters: a word a case-insensitive pattern
    could match is in it, in lower case, so a check can skip a pattern whose words are not. Python
    also matches a Latin letter to a few letters ``str.lower`` leaves alone (the long S, dotless I)
    or turns into two (dotted capital I, to i and a combining dot): those become the letter."""
    lowered = text.lower()
    if lowered.isascii():
        return lowered
    return lowered.replace("\u0307", "").replace("\u017f", "s").replace("\u0131", "i")


def _drop_invisible(match: re.Match[str]) -> str:
    return match.group("keep") or ""


def strip_invisible(text: str) -> str:
    """``text`` without invisible and direction-changing characters (emoji sequences intact)."""
    if text.isascii() or _ANY_INVISIBLE.search(text) is None:
        return text
    return INVISIBLE_RE.sub(_drop_invisible, text)


def has_invisible(text: str) -> bool:
    return strip_invisible(text) != text


#: Underscores that open or close emphasis (``_x_``, ``__x__``) rather than join words (``snake_case``).
_EMPHASIS = re.compile(r"(?:(?<=^)|(?<=[\s(\[{<\"'*~|>]))_+|_+(?=$|[\s)\]}>\"'*~|.,;:!?])")


def unwrap_markup(text: str) -> str:
    """``text`` with emphasis underscores turned into spaces, keeping every other character in place.

    ``_https://evil.example_`` or ``_john@example.com_`` hides its payload from any pattern that
    needs a word boundary, since ``_`` is a word character; the same length means a match in the
    unwrapped text is the same span of the original.
    """
    if "_" not in text:
        return text
    return _EMPHASIS.sub(lambda match: " " * len(match.group()), text)


#: One invisible character (the class ``strip_invisible`` removes), for per-character folding.
INVISIBLE_CHAR = re.compile(rf"[{_INVISIBLE_CLASS}]")

# Letters from Cyrillic, Greek and Armenian that render like Latin ones.
CONFUSABLE_LETTERS: dict[str, str] = (
    {
        # Cyrillic lowercase
        "а": "a", "в": "b", "г": "r", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h",
        "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i",
        "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ь": "b", "һ": "h", "ɡ": "g",
        # Cyrillic uppercase
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
        "Т": "T", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "У": "Y", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
        "Ӏ": "I",
        # Greek
        "α": "a", "β": "b", "γ": "y", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "ω": "w", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H",
        "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        # Armenian and Latin look-alikes
        "օ": "o", "ս": "u", "ց": "g", "հ": "h", "ո": "n", "ı": "i", "ȷ": "j", "ℓ": "l",
    }
)


def _small_capitals() -> dict[str, str]:
    """Latin small capitals ("ᴋɪʟʟ") by their Unicode names: NFKC keeps them, a reader sees the letter."""
    blocks = ((0x0250, 0x02B0), (0x1D00, 0x1DC0), (0xA720, 0xA800), (0x10780, 0x107C0), (0x1DF00, 0x1E000))
    named = re.compile(r"(?:LATIN|MODIFIER) (?:CAPITAL )?LETTER SMALL CAPITAL ([A-Z])(?: WITH [A-Z ]+)?")
    letters = {}
    for first, last in blocks:
        for code in range(first, last):
            match = named.fullmatch(unicodedata.name(chr(code), ""))
            if match:
                letters[chr(code)] = match.group(1).lower()
    return letters


CONFUSABLE_LETTERS.update(_small_capitals())
_CONFUSABLES = str.maketrans(CONFUSABLE_LETTERS)


@lru_cache(maxsize=16)
def skeleton(text: str) -> str:
    """Compatibility-normalised (fullwidth, math letters) with look-alike letters mapped to Latin.
    (Several checks ask for the same message's: the last few are remembered.)"""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", strip_invisible(text)).translate(_CONFUSABLES)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _drop_combining(match: re.Match[str]) -> str:
    char = match.group()
    return "" if unicodedata.combining(char) else char


def fold(text: str) -> str:
    """The form pattern checks match on: skeleton, accents dropped, case-folded, spaces collapsed."""
    text = skeleton(text)
    if not text.isascii():
        # Combining marks are never ASCII: only the other characters are looked at.
        text = _NON_ASCII.sub(_drop_combining, unicodedata.normalize("NFKD", text))
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return " ".join(text.casefold().split())


_LEET_I = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
_LEET_L = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
_DIGIT_OR_SYMBOL = re.compile(r"[0-9@$!|+]")


def leet_variants(folded: str) -> list[str]:
    """Leetspeak readings of already folded text (``1`` read as ``i`` and as ``l``); empty if none apply."""
    if not _DIGIT_OR_SYMBOL.search(folded):
        return []
    return list(dict.fromkeys((folded.translate(_LEET_I), folded.translate(_LEET_L))))


_SPACED = re.compile(r"(?<![^\W_])(?:[^\W_][ .\-_*·]{1,2}){2,}[^\W_](?![^\W_])")


def collapse_spacing(folded: str) -> str:
    """``i g n o r e`` and ``i.g.n.o.r.e`` read as ``ignore``."""
    return _SPACED.sub(lambda m: re.sub(r"[ .\-_*·]", "", m.group(0)), folded)


_NON_LETTER = re.compile(r"[^a-z]+")


def squash(folded: str) -> str:
    """Letters only: the last resort against any spacing or punctuation between letters."""
    return _NON_LETTER.sub("", folded)


#: Single letters, each followed by a separator, three or more: "A s a n A I", "a.i".
_SPACED_RUN = re.compile(r"(?<![^\W_])(?<!['\u2019])[^\W\d_](?:[ .\-_*·]{1,3}[^\W\d_](?![^\W_])){2,}")
_RUN_GAP = re.compile(r"[ .\-_*·]+")
#: Longest spaced-out run worth reading word by word (the reading is quadratic in it).
_LONGEST_RUN = 80


@lru_cache(maxsize=8)
def _longest(vocabulary: frozenset[str]) -> int:
    return max((len(word) for word in vocabulary), default=0)


def segment(letters: str, vocabulary: frozenset[str]) -> list[str] | None:
    """``letters`` split into the fewest words of ``vocabulary`` ("asanai" -> as, an, ai), or None."""
    longest = _longest(vocabulary)
    best: list[list[str] | None] = [[]] + [None] * len(letters)
    for end in range(1, len(letters) + 1):
        for start in range(max(0, end - longest), end):
            before, current = best[start], best[end]
            if (
                before is not None
                and letters[start:end] in vocabulary
                and (current is None or len(before) + 1 < len(current))
            ):
                best[end] = [*before, letters[start:end]]
    return best[-1]


def has_spaced_letters(text: str) -> bool:
    return _SPACED_RUN.search(text) is not None


def read_spaced(text: str, vocabulary: frozenset[str]) -> str:
    """``text`` with letters spaced out one by one read as words.

    Where the gaps differ ("A s  a n  A I") the wider or other ones are the spaces between words;
    a stretch of letters that is no word of ``vocabulary`` is split into its words when it can be
    ("I am a n A I" -> "I am an AI"), else it is kept joined. ``vocabulary`` is lower case.
    """

    def read(match: re.Match[str]) -> str:
        run = match.group(0)
        if len(run) > _LONGEST_RUN:
            return run
        gaps = _RUN_GAP.findall(run)
        usual = max(set(gaps), key=gaps.count)
        letters = _RUN_GAP.split(run)
        words, current = [], letters[0]
        for gap, letter in zip(gaps, letters[1:], strict=True):
            if gap == usual:
                current += letter
            else:
                words.append(current)
                current = letter
        words.append(current)
        out = []
        for word in words:
            lower = word.lower()
            split = None if lower in vocabulary else segment(lower, vocabulary)
            out.append(" ".join(split) if split else word)
        return " ".join(out)

    return _SPACED_RUN.sub(read, text)
