"""Persona names nobody can take for the bot, the platform or its staff, and that show as plain words.

A persona's name is shown as a poster's name and inside the bot's own messages. A persona called
"Troupe", "Discord", "Slackbot" or "Moderator" (or "Trουpe" with Greek letters, "M0derator",
"S l a c k", "TroupeBot", "Moderators", "Admins") could pass its words off as the bot's, the
platform's or a moderator's; one called "you" or "(only you) Lisa" could pass for the person at the
console or for the console's private replies; a name holding markup, links, invisible characters or
stray spaces would act on the messages it is shown in, or show as another name. Such names are
refused when a persona joins, with the reason and what to do instead.

Look-alikes are found on the *skeleton* of the name (``simulation.names``: compatibility forms folded,
invisible characters and accents dropped, letters that look like Latin ones mapped to them, case
folded, the usual digit-for-letter stand-ins read as letters). A name is read word by word, and a
word passes for a reserved one when it is made of nothing but reserved words and the words people
glue to them: the reserved word itself, its plural ("Moderators"), "bot", "team", "official"…
("TroupeBot", "TheModerator", "ModTeam", "SlackAdmin"), digits anywhere ("Troupe2", "Slackbot2")
and words glued in CamelCase ("TroupeLisa"). A word that merely starts like a reserved one is a name
("Modesta", "Adminah", "Troupeau", "Staffan", "Clydesdale"); so is a name that holds "you" among
other words ("You Li", "Youssef").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from adapters.base import literal
from simulation.names import BLANK_LETTERS, DIGIT_STAND_INS, skeleton, skeleton_words

__all__ = ["as_a_person", "impersonated", "name_refusal", "skeleton", "unshowable"]

#: Names of the platforms, their system accounts and the people who run a channel: no word of a
#: persona's name may be one of them, alone or glued to ``AFFIXES``, another reserved word, a plural
#: "s" or digits.
RESERVED_WORDS = (
    "troupe", "discord", "clyde", "slack", "slackbot", "system",
    "moderator", "mod", "mods", "admin", "admins", "administrator", "staff",
)

#: Words that, glued to a reserved word or to the bot's name, still read as it: "TroupeBot",
#: "TheModerator", "OfficialTroupe", "ModTeam", "SysAdmin". None is reserved alone ("Helper" and
#: "Head" are surnames).
AFFIXES = (
    "the", "real", "official", "team", "bot", "support", "help", "helper", "hq", "app", "server",
    "head", "chief", "super", "sys",
)

#: Whole names that pass for someone: the console calls the person typing "you", and a persona
#: called "Bot" is the bot to anyone reading. Only the whole name counts ("You Li" is a name).
RESERVED_NAMES = {
    "you": "the person typing (the console calls them “you”)",
    "bot": "the bot",
    "the bot": "the bot",
}

#: Labels the bot and its clients put beside a name or on a message: the console's private reply
#: marker and the tags of posts. No name may carry one, in any order of words around it.
RESERVED_LABELS = ("only you", "demo model", "red-team simulation")

#: Characters a name never needs that chat platforms read as markup (emphasis, code, spoilers, links,
#: quotes, mentions, headings), so that a name shows as the words it is wherever it goes.
MARKUP_CHARACTERS = "*_~`|[]<>#\\"



# -- reading a name ---------------------------------------------------------------------------------


def _camel_apart(text: str) -> str:
    """``text`` with its CamelCase words apart: "TroupeLisa" gives "Troupe Lisa", "TROUPEBot" "TROUPE Bot"."""
    out = []
    for i, char in enumerate(text):
        if i and char.isupper():
            before, after = text[i - 1], text[i + 1 : i + 2]
            if before.islower() or (before.isupper() and after.islower()):
                out.append(" ")
        out.append(char)
    return "".join(out)


@lru_cache(maxsize=4096)
def _readings(name: str) -> tuple[tuple[str, ...], ...]:
    """The ways ``name`` is read: its skeleton's words as written, and with CamelCase words apart;
    digits are left as digits (``_made_of`` reads them as letters or as padding)."""
    text = unicodedata.normalize("NFKC", name)
    readings: list[tuple[str, ...]] = []
    for variant in (text, _camel_apart(text)):
        words = tuple(skeleton_words(variant, read_digits=False))
        if words and words not in readings:
            readings.append(words)
    return tuple(readings)


def _read(word: str) -> str:
    return word.translate(DIGIT_STAND_INS)


#: A piece a word can be made of: its skeleton, whether it is what is reserved (not a mere affix), and
#: whether a plural "s" may follow it.
_Unit = tuple[str, bool, bool]


def _made_of(word: str, units: tuple[_Unit, ...]) -> str | None:
    """The first reserved piece of ``word`` when ``word`` is made of ``units`` only (at least one of
    them reserved), each maybe followed by a plural "s", with digits anywhere read as letters or
    as padding ("Tr0upe2" is "troupe"); None when it is not.

    Read left to right over positions (not with a regular expression): "slackbot" is both "slack" +
    "bot" and "slackbot", and a word of such pieces must not take exponential time to read.
    """
    read = _read(word)
    # reached[i]: the first reserved piece of a reading of word[:i] ("" when it has none yet).
    reached: list[str | None] = [None] * (len(word) + 1)
    reached[0] = ""
    for i in range(len(word)):
        found = reached[i]
        if found is None:
            continue
        steps: list[tuple[int, str]] = []
        if word[i].isdigit():
            steps.append((i + 1, found))  # a digit that only pads the name
        for text, reserved, plural in units:
            if read.startswith(text, i):
                end, piece = i + len(text), found or (text if reserved else "")
                steps.append((end, piece))
                if plural and read.startswith("s", end):
                    steps.append((end + 1, piece))
        for end, piece in steps:
            if reached[end] is None or (not reached[end] and piece):
                reached[end] = piece
    return reached[-1] or None


@lru_cache(maxsize=256)
def _units(stems: tuple[str, ...], plural: bool, glue: tuple[str, ...]) -> tuple[_Unit, ...]:
    """``stems`` (reserved, with a plural when ``plural``) and ``glue`` (affixes, with a plural)."""
    return tuple((skeleton(s), True, plural) for s in stems if skeleton(s)) + \
        tuple((skeleton(g), False, True) for g in glue if skeleton(g))


_RESERVED_UNITS = _units(tuple(RESERVED_WORDS), True, AFFIXES)


def _joined(words: Iterable[str]) -> str:
    return "".join(words)


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    return any(words[i : i + len(phrase)] == phrase for i in range(len(words) - len(phrase) + 1))


def _has_phrase(words: tuple[str, ...], phrase: str) -> bool:
    """Whether ``words`` hold ``phrase``'s words one after the other, or glued into one word."""
    phrase_words = tuple(skeleton_words(phrase))
    if not phrase_words:
        return False
    read = tuple(_read(w) for w in words)
    glued = ((_joined(phrase_words), True, False),)
    return _contains(read, phrase_words) or any(_made_of(w, glued) for w in words) or \
        _made_of(_joined(words), glued) is not None


def _is_bot(words: tuple[str, ...], bot: str) -> bool:
    """Whether ``words`` name the bot called ``bot``: its words among them, or one word (or all of
    them glued) made of its name and affixes ("AriaBot", "Aria2", "TheAria"; not the plural, as
    "Arias" is a surname)."""
    bot_words = tuple(skeleton_words(bot))
    if not bot_words:
        return False
    units = _units((_joined(bot_words),), False, AFFIXES + RESERVED_WORDS)
    return _contains(tuple(_read(w) for w in words), bot_words) or \
        any(_made_of(w, units) for w in (*words, _joined(words)))


def impersonated(name: str, bot_names: Iterable[str] = (), refused_parts: Iterable[str] = ()) -> str | None:
    """Who a persona called ``name`` could be taken for, or None.

    ``bot_names``: the names the bot goes by on this platform; ``refused_parts``: words the platform
    refuses anywhere in a poster's name (Discord refuses "discord" and "clyde" in webhook names).
    """
    readings = _readings(name)
    for bot in bot_names:
        if any(_is_bot(words, bot) for words in readings):
            return f"the bot (it is called {bot} here)"
    for words in readings:
        for word in (*words, _joined(words)):
            reserved = _made_of(word, _RESERVED_UNITS)
            if reserved is not None:
                shown = next(w for w in RESERVED_WORDS if skeleton(w) == reserved)
                return f"the platform or the people who run the channel (“{shown}”)"
    for whole, who in RESERVED_NAMES.items():
        unit = ((_joined(skeleton_words(whole)), True, False),)
        if any(_made_of(_joined(words), unit) for words in readings):
            return who
    for label in RESERVED_LABELS:
        if any(_has_phrase(words, label) for words in readings):
            return f"a label the bot puts on its messages and posts (“{label}”)"
    for part in refused_parts:
        wanted = skeleton(part)
        if wanted and any(wanted in _read(_joined(words)) or wanted in re.sub(r"\d", "", _joined(words))
                          for words in readings):
            return f"the platform (it refuses “{part}” in the name of anyone who posts)"
    return None


# -- showing a name ---------------------------------------------------------------------------------


def unshowable(name: str) -> str | None:
    """What in ``name`` would not show as written (markup, invisible or line-breaking characters), or None."""
    for char in name:
        if char in MARKUP_CHARACTERS:
            return f"“{literal(char)}”, which chat platforms read as formatting"
        category = unicodedata.category(char)
        if category in ("Cf", "Zl", "Zp", "Cc") or char in BLANK_LETTERS:
            what = "a line break" if category in ("Zl", "Zp") or char in "\n\r\x85" else \
                "an invisible or direction-changing character"
            return f"{what} (U+{ord(char):04X})"
    return None


def _badly_spaced(name: str) -> str | None:
    """Where ``name`` has a space that would not show (at an end, or one of two in a row), or None:
    "Priya  Nair" shows as "Priya Nair", which is another persona's name or could become one."""
    if name != name.strip():
        return "spaces at its start or end"
    if re.search(r"\s\s", name):
        return "two spaces in a row"
    return None


def name_refusal(name: str, bot_names: Iterable[str] = (), refused_parts: Iterable[str] = ()) -> str | None:
    """Why a persona may not be called ``name`` here, said so that the moderator knows what to change;
    None when the name is fine."""
    shown = literal(name)
    problem = unshowable(name)
    if problem is not None:
        return (f"the persona name “{shown}” contains {problem}. A name is shown in the bot's messages and "
                "as the poster's name: write it as plain words.")
    spacing = _badly_spaced(name)
    if spacing is not None:
        return (f"the persona name “{shown}” has {spacing}, which the channel does not show, so it would "
                "look like another name. Write it as plain words with one space between them.")
    mistaken = impersonated(name, bot_names, refused_parts)
    if mistaken is not None:
        return (f"the persona name “{shown}” could be taken for {literal(mistaken)}, so the persona's words "
                "could pass for theirs. Give the persona another name.")
    return None


#: What follows a person's name when it could be taken for a persona's or the bot's.
PERSON_MARK = " (person)"


def as_a_person(name: str, personas: Iterable[str], bot_names: Iterable[str] = ()) -> str:
    """The name a person's words go under in a world: theirs, or, when it reads like the name of a
    persona here or of the bot (a guest who calls themselves "Henrik Lindqvist"), theirs marked as a
    person's, so that neither the personas, nor a summary, nor an export takes their words for the
    persona's or the bot's."""
    seen = skeleton(name)
    if seen and any(skeleton(other) == seen for other in (*personas, *bot_names, "Troupe")):
        return name + PERSON_MARK
    return name
