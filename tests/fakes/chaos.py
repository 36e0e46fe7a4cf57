"""Seeded random faults, shared by the fake servers: whether a request fails, and with which fault.

Each fake keeps what is its own (which requests may fail, what each fault looks like on its wire);
the dice, their validation and their seeding are the same everywhere, so a seed replays a run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence


class FaultDice:
    """Fails a ``rate`` (0–1) of the requests it is rolled for, with a fault picked among ``kinds``."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.rate = 0.0
        self.kinds: tuple[str, ...] = tuple(kinds)
        self._random = random.Random()

    def configure(self, rate: float, kinds: Sequence[str], seed: int | None, *,
                  known: Callable[[str], bool], choices: str) -> None:
        """Set the dice; ``known`` tells a fault this fake can answer, ``choices`` names them in errors."""
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        unknown = [k for k in kinds if not known(k)]
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; choose among {choices}")
        self.rate = rate
        self.kinds = tuple(kinds)
        if seed is not None:
            self._random.seed(seed)

    def roll(self, *, eligible: bool = True, allowed: Callable[[str], bool] = lambda kind: True) -> str | None:
        """The fault for this request, or None. The first draw happens for every request, eligible or
        not, so which requests fail depends on the seed and the order of requests alone."""
        if self.rate <= 0 or self._random.random() >= self.rate:
            return None
        if not eligible:
            return None
        kinds = [k for k in self.kinds if allowed(k)]
        return self._random.choice(kinds) if kinds else None
