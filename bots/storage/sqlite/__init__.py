"""The SQLite backend: one WAL database file, versioned migrations, and group commit.

Every write goes through one writer task (``writer``), which applies the writes that queue up
while a transaction runs together in the next one. Reads use a second connection, so they never
wait for the writer and never see uncommitted rows.

Durability: a write that returned is committed. With ``synchronous=NORMAL`` in WAL mode a killed
process loses nothing that was committed; a power cut may lose the last commits but never leaves
the file inconsistent.

The model layer (response cache, server profiles) may share the file: its tables (``llm_responses``,
``model_profiles``) are not ours and WAL lets both connect at once.
"""

from bots.storage.sqlite.connection import connect_read_only, readable_uri
from bots.storage.sqlite.diagnosis import (
    DatabaseDamagedError,
    DatabaseInUseError,
    DatabaseNotWritableError,
    DatabaseProblem,
    DatabaseSetupError,
    ExplainedStorageError,
    NotATroupeDatabaseError,
    damaged_problem,
    not_writable_problem,
    schema_problem,
    storage_failure,
    unwritable_place,
)
from bots.storage.sqlite.schema import MIGRATIONS
from bots.storage.sqlite.store import SQLiteStorage

__all__ = [
    "MIGRATIONS",
    "DatabaseDamagedError",
    "DatabaseInUseError",
    "DatabaseNotWritableError",
    "DatabaseProblem",
    "DatabaseSetupError",
    "ExplainedStorageError",
    "NotATroupeDatabaseError",
    "SQLiteStorage",
    "connect_read_only",
    "damaged_problem",
    "not_writable_problem",
    "readable_uri",
    "schema_problem",
    "storage_failure",
    "unwritable_place",
]
