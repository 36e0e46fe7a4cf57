"""The storage the settings name: PostgreSQL when ``database_url`` is set, else the SQLite file."""

from __future__ import annotations

from bots.storage.base import Storage
from config.settings import Settings


def storage_for(settings: Settings, *, single_writer: bool = False, read_only: bool = False) -> Storage:
    """A storage (not yet open) for the settings' database.

    ``single_writer``: this process runs the worlds stored there. In a SQLite file no other may at
    the same time; a PostgreSQL database is shared by every worker on it, each running the channels
    whose leases it holds (``bots.ownership``). ``read_only``: it is only read (exports), never
    migrated or written.
    """
    if settings.database_url is not None:
        from bots.storage.postgres import PostgresStorage

        return PostgresStorage(settings.database_url.get_secret_value(), read_only=read_only,
                               reconnect_s=settings.database_reconnect_s)
    from bots.storage.sqlite import SQLiteStorage

    return SQLiteStorage(settings.database_path, single_writer=single_writer, read_only=read_only)

