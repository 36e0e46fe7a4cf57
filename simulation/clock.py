"""Simulated time: a world's clock moves by steps, never by the wall clock.

Keeping time simulated makes runs reproducible and save/restore exact.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

DEFAULT_START = datetime(2025, 1, 6, 9, 0, 0)


class SimulatedClock(BaseModel):
    start: datetime = DEFAULT_START
    step_duration: timedelta = Field(default=timedelta(minutes=1))
    step: int = 0

    @property
    def now(self) -> datetime:
        return self.start + self.step * self.step_duration

    def advance(self, steps: int = 1) -> datetime:
        self.step += steps
        return self.now
