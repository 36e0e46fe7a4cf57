"""Stable choices: a choice seeded by the request's own words, so the same request gets the same reply."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def pick(seed: str, options: Sequence[T]) -> T:
    """One of ``options``, always the same one for the same seed."""
    digest = hashlib.sha256(seed.encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def stable_order(seed: str, items: list[str]) -> list[str]:
    """``items`` in a stable pseudo-random order: a deterministic shuffle."""
    return sorted(items, key=lambda item: hashlib.sha256(f"{seed}|{item}".encode()).digest())
