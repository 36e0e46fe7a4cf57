"""The PostgreSQL backend: the same tables as SQLite's, for deployments that outgrow one file.

Every change is one transaction on a pooled connection (asyncpg); concurrent changes of different
worlds run side by side. The schema is migrated by numbered scripts, one transaction each, under an
advisory lock, so processes opening a new database at once migrate it once. Rows are read and
written through ``bots.storage.rows``, as SQLite's are.

The model layer's response cache does not move here: it stays in its SQLite file
(``llm.cache_path``, by default the data folder's ``troupe.db``).
"""

from bots.storage.postgres.connection import is_postgres_url, shown_url
from bots.storage.postgres.schema import MIGRATIONS
from bots.storage.postgres.store import PostgresStorage

__all__ = ["MIGRATIONS", "PostgresStorage", "is_postgres_url", "shown_url"]
