"""The commands as platforms offer them in their menus (Discord's slash commands): each with a
description and typed options, and the command line that one use of it stands for.

The application describes its commands here once; a platform with a command menu builds it from
these, and turns what someone picked into ``MenuCommand.line``, the text every platform's commands
arrive as (``CommandInvocation.text``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: Where names to suggest while typing an option come from: the personas of the channel's world,
#: or the bundled personas one may add.
Suggest = Literal["personas", "bundled"]

#: How an option's value is written in the command line:
#: ``word``: one word, quoted when it needs it (a name, a question);
#: ``text``: as typed, to the end of the line (a question put to a persona, pasted JSON);
#: ``option``: ``--NAME value``;
#: ``flag``: a true value is written as ``flag_word`` (``confirm``, ``--reopen``), a false one not at all;
#: ``list``: the value split at ``separator``, each part one word.
Form = Literal["word", "text", "option", "flag", "list"]


@dataclass(frozen=True)
class Option:
    """One typed value a command takes."""

    name: str
    type: type[str] | type[int] | type[bool] = str
    #: What the menu says about it; None leaves the platform's placeholder.
    description: str | None = None
    required: bool = True
    #: The only values allowed, in the order offered.
    choices: tuple[str, ...] = ()
    #: A choice that is what the command does without one: written as nothing.
    implied_choice: str | None = None
    min_value: int | None = None
    max_value: int | None = None
    suggest: Suggest | None = None
    form: Form = "word"
    flag_word: str = ""
    #: A true flag stands for the whole command: the other options are not written.
    alone: bool = False
    separator: str = ","


@dataclass(frozen=True)
class MenuCommand:
    """A command as a menu offers it: ``name`` may be two words (``persona add``)."""

    name: str
    description: str
    options: tuple[Option, ...] = ()

    def line(self, values: Mapping[str, Any]) -> str:
        """The command line that this command with ``values`` (by option name) stands for, e.g.
        ``persona add Priya Nair``; options left out (None or empty) are not written."""
        parts = [self.name]
        for option in self.options:
            value = values.get(option.name)
            if value is None or value == "" or value == option.implied_choice:
                continue
            if option.form == "flag":
                if not value:
                    continue
                if option.alone:
                    return f"{self.name} {option.flag_word}"
                parts.append(option.flag_word)
            elif option.form == "text":
                parts.append(str(value).strip())
            elif option.form == "option":
                parts += [f"--{option.name}", quote_word(str(value))]
            elif option.form == "list":
                parts += [quote_word(item) for item in re.split(option.separator, str(value)) if item.strip()]
            else:
                parts.append(quote_word(str(value)))
        return " ".join(parts)


def quote_word(value: str) -> str:
    """``value`` as one word of a command line, readable when it needs no quoting."""
    value = value.strip()
    if value and not re.search(r"[\s'\"\\]", value):
        return value
    if '"' not in value and "\\" not in value:
        return f'"{value}"'
    return shlex.quote(value)
