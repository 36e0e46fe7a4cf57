"""Reading a check's settings from whatever channel policy it is given.

Each check keeps its knobs in a small frozen dataclass with safe defaults, so it works with no
policy at all. A policy may carry them as a member named after the check (the dataclass itself,
a mapping or any object with those attributes) or as flat ``<check>_<field>`` attributes.
Missing or ``None`` values keep the defaults; lists become tuples so settings stay hashable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

S = TypeVar("S")


def settings_from(cls: type[S], policy: Any, member: str) -> S:
    """``cls`` filled from ``policy`` (see the module docstring); defaults when ``policy`` is None."""
    if policy is None:
        return cls()
    if isinstance(policy, cls):
        return policy
    source = policy.get(member, policy) if isinstance(policy, Mapping) else getattr(policy, member, None)
    if isinstance(source, cls):
        return source
    if isinstance(source, (bool, str, int, float)):  # e.g. an on/off switch named like the check
        source = None
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if isinstance(source, Mapping):
            found = source.get(f.name)
        elif source is not None:
            found = getattr(source, f.name, None)
        else:
            found = getattr(policy, f"{member}_{f.name}", None)
        if found is None:
            continue
        if isinstance(found, (list, set, frozenset)):
            found = tuple(found)
        values[f.name] = getattr(found, "value", found)  # enums by value
    return cls(**values)
