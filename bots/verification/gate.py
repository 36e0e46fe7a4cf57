"""Skip the regular expressions that cannot match a text.

Checks run dozens of patterns over every message, and an ordinary message matches none of them.
Every match of a pattern contains one string of a small set read off the pattern itself ("kill",
"murder"… for a threat), so one pass over the text tells which patterns could match at all; only
those are run. A pattern no such set can be read from (or one matched ignoring case) is always
run, so the matches found are exactly those of running every pattern.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["ANY_TEXT", "LiteralGate", "required_literals", "required_pieces", "trie_pattern"]

try:  # the parser behind ``re``; without it every pattern simply runs
    from re import _constants as _c
    from re import _parser as _p
except ImportError:  # pragma: no cover
    _c = _p = None  # type: ignore[assignment]

#: Largest set of alternatives kept as exact strings while reading a pattern.
_EXACT_LIMIT = 64


class _Read:
    """What a piece of a pattern matches: ``exact`` strings when few, else ``need`` (one of them is in every match)."""

    __slots__ = ("exact", "need")

    def __init__(self, exact: set[str] | None = None, need: set[str] | None = None) -> None:
        self.exact = exact
        self.need = need


def _quality(strings: set[str] | None) -> int:
    if not strings:
        return -1
    shortest = min(len(s) for s in strings)
    return shortest * 1000 - len(strings) if shortest else -1


def _better(a: set[str] | None, b: set[str] | None) -> set[str] | None:
    return a if _quality(a) >= _quality(b) else b


def _useful(strings: set[str] | None) -> set[str] | None:
    return strings if _quality(strings) > 0 else None


def _sequence(items: list) -> _Read:
    reads = [_node(op, av) for op, av in items]
    run: set[str] = {""}
    if all(r.exact is not None for r in reads):
        for r in reads:
            run = {a + b for a in run for b in r.exact}  # type: ignore[union-attr]
            if len(run) > _EXACT_LIMIT:
                break
        else:
            return _Read(exact=run, need=_useful(run))
        run = {""}
    best: set[str] | None = None
    for r in reads:
        if r.exact is not None:
            joined = {a + b for a in run for b in r.exact}
            if len(joined) <= _EXACT_LIMIT:
                run = joined
            else:
                best, run = _better(best, run), set(r.exact)
            continue
        best = _better(_better(best, run), r.need)
        run = {""}
    return _Read(need=_useful(_better(best, run)))


def _node(op, av) -> _Read:  # noqa: C901 - one case per kind of regex node
    if op is _c.LITERAL:
        return _Read(exact={chr(av)})
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
        return _Read(exact={""})  # zero width
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, sub = av
        return _Read() if add_flags or del_flags else _sequence(sub.data)
    if op is _c.BRANCH:
        alternatives = [_sequence(alt.data) for alt in av[1]]
        if all(a.exact is not None for a in alternatives):
            union = set().union(*(a.exact for a in alternatives))  # type: ignore[misc]
            if len(union) <= _EXACT_LIMIT:
                return _Read(exact=union, need=_useful(union))
        if all(a.need for a in alternatives):
            return _Read(need=set().union(*(a.need for a in alternatives)))  # type: ignore[misc]
        return _Read()
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)):
        low, high, sub = av
        inner = _sequence(sub.data)
        if low == 0 and high == 1 and inner.exact is not None:
            return _Read(exact=inner.exact | {""})
        return _Read(need=inner.need) if low >= 1 else _Read()
    if op is _c.IN and all(o is _c.LITERAL for o, _ in av):
        return _Read(exact={chr(a) for _, a in av})
    return _Read()


def required_literals(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Strings one of which every match of ``pattern`` contains, or ``None`` when none can be told."""
    if _p is None or not isinstance(pattern.pattern, str) or pattern.flags & re.IGNORECASE:
        return None
    try:
        need = _sequence(_p.parse(pattern.pattern, pattern.flags).data).need
    except Exception:  # noqa: BLE001 - an unreadable pattern is just always run
        return None
    return frozenset(need) if need else None


#: The piece every text has: what patterns no piece can be read off are looked for by.
ANY_TEXT = frozenset({""})


@lru_cache(maxsize=128)
def required_pieces(patterns: tuple[re.Pattern[str], ...]) -> frozenset[str]:
    """Strings one of which every match of any of ``patterns`` contains (``required_literals`` of
    each), or ``ANY_TEXT`` when one of them has none: a text containing none of them matches none of
    the patterns. Cheaper than ``LiteralGate`` for a few patterns looked for as a group."""
    needs: list[frozenset[str]] = []
    for pattern in patterns:
        need = required_literals(pattern)
        if need is None:
            return ANY_TEXT
        needs.append(need)
    return frozenset().union(*needs)


def trie_pattern(strings: Sequence[str]) -> str:
    """A regex matching, at a position, the longest of ``strings`` that starts there: one alternation
    sharing its prefixes, which ``re`` scans for far faster than the strings listed one by one."""
    trie: dict = {}
    for s in strings:
        node = trie
        for char in s:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict) -> str:
        alternatives = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


class LiteralGate:
    """Which of ``patterns`` could match a text, from one scan for their required strings."""

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self.count = len(patterns)
        needs = [required_literals(p) for p in patterns]
        self.always = tuple(i for i, need in enumerate(needs) if need is None)
        literals = sorted({s for need in needs if need for s in need})
        # A literal found at a position means every literal that is a prefix of it is there too:
        # the literals starting with a needed string follow it in sorted order.
        owners: dict[str, set[int]] = {literal: set() for literal in literals}
        for i, need in enumerate(needs):
            for required in need or ():
                for j in range(bisect_left(literals, required), len(literals)):
                    if not literals[j].startswith(required):
                        break
                    owners[literals[j]].add(i)
        self._owners = {literal: frozenset(found) for literal, found in owners.items()}
        self._scan = re.compile("(?=(" + trie_pattern(literals) + "))") if literals else None

    def possible(self, text: str) -> list[int]:
        """Indexes, in order, of the patterns that may match ``text``; the others cannot."""
        if self._scan is None:
            return list(self.always)
        found = set(self._scan.findall(text))
        if not found:
            return list(self.always)
        hits = set(self.always)
        owners = self._owners
        for literal in found:
            hits |= owners[literal]
        return sorted(hits)
