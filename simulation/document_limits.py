"""JSON and YAML that someone else wrote, read within limits: no aliases, bounded nesting and size.

A persona or scenario file is data from whoever handed it in. Read naively, a few hundred bytes
can cost minutes and gigabytes (YAML aliases that expand exponentially, the "billion laughs") or
crash the reader (lists nested a thousand deep). Everything here refuses such documents while
reading them, with a message that says what is wrong, in time proportional to the text's length.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "DocumentLimitError", "DocumentTooLongError", "check_document", "load_json", "load_yaml"]

#: Levels of lists and objects inside one another. TinyTroupe's richest agent files nest six deep;
#: far past this a document is built to break readers, not to describe anyone.
MAX_DEPTH = 24


class DocumentLimitError(ValueError):
    """A document outside the limits; the message says which limit and how to fix it.

    The message starts with a verb ("is nested …") for the caller to put the source before it;
    ``field`` is the top-level key under which the limit was passed, when there is one.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DocumentTooLongError(DocumentLimitError):
    """A document longer than the length allowed; the message is "is more than N characters long"."""


class _BoundedSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses aliases and stops composing past ``MAX_DEPTH`` levels.

    An alias (``*name``) repeats an anchored part by reference; nested aliases multiply, so a tiny
    file stands for billions of values once anything walks it. Refused outright: a persona or
    scenario has no need for them, and writing the part out again is the fix.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise DocumentLimitError(
                f"uses the YAML alias *{event.anchor} at line {event.start_mark.line + 1}; aliases are not "
                "read here (a few of them can stand for billions of values). Write the repeated part out in full."
            )
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            line = self.peek_event().start_mark.line + 1
            raise DocumentLimitError(_too_deep(f" (at line {line})"))
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str) -> Any:
    """``text`` read as YAML by the safe loader, without aliases, at most ``MAX_DEPTH`` levels deep.

    Syntax errors are PyYAML's ``YAMLError``; anything outside the limits is ``DocumentLimitError``.
    """
    loader = _BoundedSafeLoader(text)
    try:
        return loader.get_single_data()
    except DocumentLimitError:
        raise
    except ValueError as error:  # a number longer than Python converts (sys.get_int_max_str_digits)
        raise _unreadable(error) from None
    finally:
        loader.dispose()


def load_json(text: str) -> Any:
    """``text`` read as JSON, at most ``MAX_DEPTH`` levels deep.

    Syntax errors are ``json.JSONDecodeError``; anything outside the limits is ``DocumentLimitError``.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise DocumentLimitError(_too_deep("")) from None
    except ValueError as error:  # a number longer than Python converts
        raise _unreadable(error) from None
    check_document(data)
    return data


def check_document(data: Any, *, max_chars: int | None = None) -> None:
    """Refuse ``data`` nested deeper than ``MAX_DEPTH``, or (given ``max_chars``) longer than that
    many characters written as JSON.

    Walks without recursion and stops at the first limit passed, so a structure that shares its
    parts (or contains itself) costs no more than ``max_chars`` steps to refuse.
    """
    size = 0
    stack: list[tuple[Any, int, str | None]] = [(data, 0, None)]
    while stack:
        node, depth, field = stack.pop()
        if not isinstance(node, (dict, list, tuple)):
            size += _scalar_chars(node)
            _check_length(size, max_chars)
            continue
        if depth >= MAX_DEPTH:
            raise DocumentLimitError(_too_deep(""), field)
        size += 2 + max(len(node) - 1, 0) * 2  # brackets and separators, counted before any item is looked at
        _check_length(size, max_chars)
        if isinstance(node, dict):
            for key, value in node.items():
                size += _scalar_chars(key) + 2
                stack.append((value, depth + 1, field if depth else str(key)))
        else:
            stack.extend((item, depth + 1, field) for item in node)


def _check_length(size: int, max_chars: int | None) -> None:
    if max_chars is not None and size > max_chars:
        raise DocumentTooLongError(f"is more than {max_chars:,} characters long")


def _scalar_chars(value: Any) -> int:
    """About what ``value`` takes written as JSON (quotes included), without writing it."""
    if isinstance(value, str):
        return len(value) + 2
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return max(1, value.bit_length() * 3 // 10 + 1)  # digits, without converting a huge number
    return len(str(value)) + 2


def _unreadable(error: ValueError) -> DocumentLimitError:
    reason = str(error).split(";")[0]  # Python's advice on raising its own limit is no use here
    return DocumentLimitError(f"holds a number too long to read ({reason}). Write it in quotes, as text.")


def _too_deep(where: str) -> str:
    return (f"is nested more than {MAX_DEPTH} levels deep{where}: lists and objects inside one another that "
            "far describe no one. Flatten it.")
