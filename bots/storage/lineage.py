"""A branch's log, shared with the worlds it was forked from: their events up to each fork point,
then its own. A fork stores no copy of the history it starts from, only where it branched off
(``WorldRecord.parent_id`` and ``fork_event``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bots.storage.base import StorageError, WorldRecord

#: Above any event id (ids are 64-bit integers): "up to the end of the log".
LOG_END = 2**62
#: Forks of forks deeper than this are taken for a damaged database rather than followed.
MOST_GENERATIONS = 1000


@dataclass(frozen=True)
class Segment:
    """The events of ``world_id`` with ids above ``after``, up to ``upto`` (the end: ``LOG_END``)."""

    world_id: str
    after: int
    upto: int = LOG_END


async def segments(record: WorldRecord, world: Callable[[str], Awaitable[WorldRecord | None]]) -> list[Segment]:
    """Where each stretch of ``record``'s log is stored, oldest first: for a world of its own, itself;
    for a branch, its parent's segments up to the fork point, then its own events."""
    found: list[Segment] = []
    limit = LOG_END
    current: WorldRecord | None = record
    for _ in range(MOST_GENERATIONS):
        assert current is not None
        after = current.fork_event if current.parent_id else 0
        if limit > after:
            found.append(Segment(current.id, after, limit))
        limit = min(limit, after)
        if current.parent_id is None or limit == 0:
            return found[::-1]
        parent_id = current.parent_id
        current = await world(parent_id)
        if current is None:
            raise StorageError(f"world {record.id!r} was forked from {parent_id!r}, which is not stored")
    raise StorageError(f"world {record.id!r} descends from more than {MOST_GENERATIONS} forks: the database is damaged")


async def read(found: Sequence[Segment], rows: Callable[[str, int, int], Awaitable[Sequence[Any]]],
               *, floor: int = 0) -> list[Any]:
    """The event rows of every segment with ids above ``floor``, oldest first."""
    read_rows: list[Any] = []
    for segment in found:
        if segment.upto > floor:
            read_rows += await rows(segment.world_id, max(segment.after, floor), segment.upto)
    return read_rows


def last_event(record: WorldRecord, own_last: int | None) -> int:
    """The id of a world's latest event: its own latest, else (a branch that said nothing yet) the
    fork point."""
    return own_last if own_last is not None else (record.fork_event if record.parent_id else 0)
