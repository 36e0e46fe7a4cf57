"""Wording shared by the demo's replies and research answers: a persona's phrases made to fit a
sentence, articles, the words two texts share.

The demo understands no language; these rules are what make its composed sentences read naturally.
"""

from __future__ import annotations

import re

from simulation.llm.demo.seeded import pick

_WORD = re.compile(r"[a-zA-ZÀ-ÿ]{4,}")
#: Words too common to tie two texts together.
STOP_WORDS = {
    "that", "this", "with", "your", "would", "rather", "which", "what", "about", "have", "from",
    "they", "them", "their", "there", "when", "where", "will", "just", "like", "more", "very",
    "home", "into", "than", "then", "some", "also", "only", "other", "being",
}


def content_words(text: str) -> set[str]:
    """The words of four letters or more that say something, case folded."""
    return {w.casefold() for w in _WORD.findall(text) if w.casefold() not in STOP_WORDS}


def stem(word: str) -> str:
    """A word without its common English endings, so "protects" meets "protect" and "protecting"."""
    for ending in ("ing", "ed", "es", "s"):
        if len(word) > len(ending) + 3 and word.endswith(ending):
            return word[: -len(ending)]
    return word


def most_relevant(text: str, phrases: list[str], seed: str) -> str:
    """The persona phrase sharing the most words with the text; on no overlap, a stable pick."""
    if not phrases:
        return ""
    wanted = content_words(text)
    scored = [(len(content_words(phrase) & wanted), phrase) for phrase in phrases]
    best = max(score for score, _ in scored)
    if best == 0:
        return pick(seed + "rel", phrases)
    return pick(seed + "rel", [phrase for score, phrase in scored if score == best])


#: Words English always capitalises that may open a persona phrase.
_PROPER = frozenset(
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April June July "
    "August September October November December".split()
)


def mid_sentence(text: str) -> str:
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


def capitalised(text: str) -> str:
    """``text`` opening a sentence: its first letter upper case, the rest as written."""
    return text[:1].upper() + text[1:]


#: Occupations that are states, not jobs: "someone retired", not "a retired".
_STATES = ("unemployed", "retired", "self-employed", "between jobs", "on leave")


def with_article(noun: str) -> str:
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


def first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of ``text`` exactly as written (a quote must match the source)."""
    match = re.match(r"\s*(.+?[.!?])(?=\s|$)", text, re.DOTALL)
    sentence = (match.group(1) if match else text).strip()
    return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0]
