"""An agent's memory: episodes it lived through and facts it holds.

The prompt must stay bounded however long a conversation runs, so old episodes are consolidated
into a running summary (plus durable facts) by the model, and only the recent window is shown
verbatim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Summaries longer than this are cut; the model is asked for far less.
MAX_SUMMARY_CHARS = 1500
#: Facts beyond this are dropped, oldest first.
MAX_FACTS = 24


class Episode(BaseModel):
    """One thing the agent perceived (a stimulus) or did (an action). Never changed once recorded,
    so copies of a memory share their episodes."""

    model_config = ConfigDict(frozen=True)

    step: int
    time: datetime
    kind: Literal["stimulus", "action"]
    #: Stimulus: CONVERSATION, VISUAL, THOUGHT, GOAL. Action: TALK, THINK.
    type: str
    content: str
    source: str | None = None
    target: str | None = None
    event_id: int | None = None


class Consolidation(BaseModel):
    """What the model returns when old episodes are folded into memory."""

    summary: str = Field(description="Updated summary of everything so far, first person, under 120 words")
    facts: list[str] = Field(description="Durable facts learned (people, decisions, numbers), at most 8")


class EpisodicMemory(BaseModel):
    """Episodes by their place in the agent's life (0 is the first). A memory restored from storage
    holds only its recent past: ``first`` episodes came before ``episodes[0]`` and stay on disk,
    already folded into ``summary``."""

    episodes: list[Episode] = Field(default_factory=list)
    #: How many episodes were lived before ``episodes[0]`` (not held here).
    first: int = Field(default=0, ge=0)
    #: Episodes before this place are represented by ``summary`` only.
    consolidated_until: int = 0
    summary: str = ""

    @property
    def count(self) -> int:
        """Episodes lived in all, held or not."""
        return self.first + len(self.episodes)

    def add(self, episode: Episode) -> None:
        self.episodes.append(episode)

    def since(self, place: int) -> list[Episode]:
        """The episodes from ``place`` on."""
        return self.episodes[max(place - self.first, 0) :]

    def between(self, start: int, end: int) -> list[Episode]:
        """The episodes from ``start`` up to (not including) ``end``."""
        return self.episodes[max(start - self.first, 0) : max(end - self.first, 0)]

    def forget_before(self, place: int) -> int:
        """Stop holding the episodes before ``place`` (the caller has them stored); returns how many
        were let go. Places stay as they were: ``count`` and the marks do not move."""
        drop = min(max(place - self.first, 0), len(self.episodes))
        if drop:
            del self.episodes[:drop]
            self.first += drop
        return drop

    def unconsolidated(self) -> list[Episode]:
        return self.since(self.consolidated_until)

    def due_for_consolidation(self, window: int, batch: int, most: int | None = None) -> list[Episode]:
        """The old episodes to fold in now (the oldest ``most`` of them at most), or [] while fewer
        than ``window + batch`` are pending."""
        pending = self.count - self.consolidated_until
        if pending < window + batch:
            return []
        end = self.count - window
        if most is not None:
            end = min(end, self.consolidated_until + most)
        return self.between(self.consolidated_until, end)

    def apply(self, consolidation: Consolidation, folded: int) -> None:
        self.summary = consolidation.summary.strip()[:MAX_SUMMARY_CHARS]
        self.consolidated_until += folded


class SemanticMemory(BaseModel):
    facts: list[str] = Field(default_factory=list)

    def add(self, facts: list[str]) -> None:
        known = {f.casefold() for f in self.facts}
        for fact in facts:
            fact = fact.strip()
            if fact and fact.casefold() not in known:
                self.facts.append(fact)
                known.add(fact.casefold())
        del self.facts[:-MAX_FACTS]


class MemoryConfig(BaseModel):
    """How much of the past a prompt shows verbatim."""

    #: Episodes always shown verbatim.
    window: int = Field(default=16, ge=2)
    #: Consolidate once this many episodes have piled up beyond the window.
    batch: int = Field(default=16, ge=1)
    #: The same for a persona that only listened this step: a silent persona's memory is folded
    #: too (a model call per this many things heard), so its memory, its restart and its next
    #: prompt stay bounded however long it goes unaddressed.
    listening_batch: int = Field(default=64, ge=1)
    #: The most episodes one fold reads, so the call fits a model's context after any absence; a
    #: longer backlog is folded over the following steps.
    fold_at_most: int = Field(default=64, ge=1)
    #: The most episodes a turn's prompt shows verbatim, newest first; the backlog beyond it (while
    #: folds cannot keep up, e.g. the model is failing) is left out and the prompt says so.
    shown_at_most: int = Field(default=128, ge=2)
