"""The container's health check: can the database the bot uses be reached, and does it hold
Troupe's tables? Exit status 0 when it does, 1 (with the reason on standard error) when not.

    python -m bots.health

It reads the same settings as the bot (a SQLite file, or ``TROUPE_DATABASE_URL``), touches nothing
and takes well under a second, unlike ``troupe doctor``, which calls the model and the platforms.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys

from config.settings import Settings

TIMEOUT_S = 5.0


async def _postgres_ok(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=TIMEOUT_S)
    try:
        await connection.fetchval("SELECT count(*) FROM worlds", timeout=TIMEOUT_S)
    finally:
        await connection.close()


def check(settings: Settings) -> str | None:
    """None when the database is there and Troupe's; else what is wrong (never the password)."""
    if settings.database_url is not None:
        from bots.storage.postgres.connection import hidden, shown_url

        url = settings.database_url.get_secret_value()
        try:
            asyncio.run(_postgres_ok(url))
        except Exception as error:  # any failure is unhealthy; the reason is what the operator needs
            return f"{shown_url(url)}: {hidden(str(error), url) or type(error).__name__}"
        return None
    path = settings.database_path.resolve()
    try:
        with sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=TIMEOUT_S) as db:
            db.execute("SELECT count(*) FROM worlds")
    except sqlite3.Error as error:
        return f"{path}: {error}"
    return None


def main() -> int:
    problem = check(Settings())
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
