"""Where the bot keeps its state: worlds bound to channels, personas, memories, events, the outbox."""

from bots.storage.base import (
    RECENT_EPISODES_HELD,
    RECENT_EVENTS_HELD,
    AuditRecord,
    MemoryWrite,
    NotStoredError,
    OutboxEntry,
    OutboxStatus,
    PersonaRecord,
    StepWrite,
    Storage,
    StorageError,
    StorageUnavailableError,
    StoredWorld,
    UsageRow,
    WorldRecord,
    WorldStatus,
)

__all__ = [
    "AuditRecord",
    "MemoryWrite",
    "NotStoredError",
    "OutboxEntry",
    "OutboxStatus",
    "RECENT_EPISODES_HELD",
    "RECENT_EVENTS_HELD",
    "PersonaRecord",
    "StepWrite",
    "Storage",
    "StorageError",
    "StorageUnavailableError",
    "StoredWorld",
    "UsageRow",
    "WorldRecord",
    "WorldStatus",
]
