"""Which thread a persona's next post belongs in, while an interview question there awaits its answer.

A persona's answer comes back through the outbox like any post, addressed to the channel; an
adapter whose platform has threads asks here whether that post answers an interview question.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque

#: How long an interview question waits for its answer before the persona's posts go to the channel again.
ANSWER_TTL_S = 300.0


class OwedAnswers:
    """Questions asked in interview threads, by (channel, persona), oldest first."""

    def __init__(self, ttl_s: float = ANSWER_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._owed: defaultdict[tuple[str, str], deque[tuple[str, float]]] = defaultdict(deque)

    def asked(self, channel_id: str, persona: str, thread: str) -> None:
        """A question was put to ``persona`` in ``thread``: its next post answers it there."""
        self._owed[(channel_id, persona)].append((thread, time.monotonic()))

    def thread_for(self, channel_id: str, persona: str) -> str | None:
        """The thread owed this persona's next post, if a question there is still fresh.

        A question that got no answer (refused, or the world paused) stops claiming posts after a while.
        """
        owed = self._owed.get((channel_id, persona))
        now = time.monotonic()
        while owed:
            thread, asked = owed.popleft()
            if now - asked <= self.ttl_s:
                return thread
        return None
