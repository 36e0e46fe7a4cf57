"""Where the bot keeps its state: worlds bound to channels, personas, memories, events, the outbox."""

from bots.storage.base import (
    AuditRecord,
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
    "AuditRecord",
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
