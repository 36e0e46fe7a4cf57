"""Where the bot keeps its state: worlds bound to channels, personas, memories, events, the outbox."""

from bots.storage.base import (
    OutboxEntry,
    OutboxStatus,
    PersonaRecord,
    StepWrite,
    Storage,
    StorageError,
    StoredWorld,
    UsageRow,
    WorldRecord,
    WorldStatus,
)

__all__ = [
    "OutboxEntry",
    "OutboxStatus",
    "PersonaRecord",
    "StepWrite",
    "Storage",
    "StorageError",
    "StoredWorld",
    "UsageRow",
    "WorldRecord",
    "WorldStatus",
]
