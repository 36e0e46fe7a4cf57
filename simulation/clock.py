"""A world's time: simulated, moving by steps (``troupe simulate``: runs reproducible and
save/restore exact), or the wall clock (``real_time``: a channel's world, whose messages happen
when people write them, so the channel, its exports and the personas' memories agree on the time).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

DEFAULT_START = datetime(2025, 1, 6, 9, 0, 0)


class SimulatedClock(BaseModel):
    start: datetime = DEFAULT_START
    step_duration: timedelta = Field(default=timedelta(minutes=1))
    step: int = 0
    #: Read the wall clock (local time, as the console shows it) instead of counting steps; steps
    #: are still counted.
    real_time: bool = False

    @property
    def now(self) -> datetime:
        if self.real_time:
            return datetime.now().replace(microsecond=0)
        return self.start + self.step * self.step_duration

    def advance(self, steps: int = 1) -> datetime:
        self.step += steps
        return self.now
