"""How many bytes does a fork add to the database, against a copy of the world it forks?

    python -m tests.bench.fork_storage [--events N]

A channel's world on the offline demo model (three personas) talks until its log holds ``N`` events
(1,000 by default); then ``fork`` makes a branch of it, through the bot as a moderator would. A
branch stores its parent and fork point, its personas and the memories they hold now, and no event
of the shared past. Measured on the SQLite file: ``fork_bytes``, the row bytes the fork added
(its world, personas, memories, episodes and events), and ``copy_bytes``, those of the world it
forked (what a copy would have stored); ``file_growth_bytes`` is how much the file grew (pages).

Prints one JSON object on its last line:
``{"events", "fork_bytes", "copy_bytes", "fork_share", "file_growth_bytes", "fork_model_calls"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
from pathlib import Path

from tests.support.paths import AGENTS
from tests.support.testbot import TEAM, demo_settings, start_bot

#: Each table's rows of one world, as the bytes of their columns.
ROW_BYTES = {
    "worlds": "SELECT coalesce(sum(length(id) + length(channel_key) + length(name) + length(config) + length(clock)"
              " + length(policy) + coalesce(length(situation), 0) + coalesce(length(thread), 0) + 16), 0)"
              " FROM worlds WHERE id = ?",
    "personas": "SELECT coalesce(sum(length(name) + length(spec) + length(identity) + 8), 0) FROM personas WHERE world_id = ?",
    "memories": "SELECT coalesce(sum(length(persona) + length(state)), 0) FROM memories WHERE world_id = ?",
    "episodes": "SELECT coalesce(sum(length(persona) + length(episode) + 8), 0) FROM episodes WHERE world_id = ?",
    "events": "SELECT coalesce(sum(length(kind) + length(time) + length(source) + length(type) + length(content)"
              " + coalesce(length(target), 0) + length(recipients) + coalesce(length(model), 0) + length(meta) + 16), 0)"
              " FROM events WHERE world_id = ?",
}


def row_bytes(database: Path, world_id: str) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        return {table: int(db.execute(sql, (world_id,)).fetchone()[0]) for table, sql in ROW_BYTES.items()}


def file_bytes(database: Path) -> int:
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0])


async def measure(events: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="troupe-fork-") as folder:
        settings = demo_settings(Path(folder), file_dirs=[AGENTS])
        bot = await start_bot(settings)
        try:
            await bot.command("start Pricing research")
            for name in TEAM:
                await bot.command(f"persona add {name}")
            main = bot.app.sessions.get("memory:general")
            n = 0
            while main.world.event_count < events:
                n += 1
                await bot.say(f"Question {n}: what would make you pay more for the speaker?")
            database = settings.data_dir / "troupe.db"
            await bot.app.wait_idle()
            before = file_bytes(database)
            calls = bot.app.stack.ledger.totals().calls
            await bot.command("fork discount")
            branch = bot.app.branches.named("memory:general", "discount")
            assert branch is not None
            fork_calls = bot.app.stack.ledger.totals().calls - calls
            counted = main.world.event_count
        finally:
            await bot.app.stop()
        fork = row_bytes(database, branch.record.id)
        copy = row_bytes(database, main.record.id)
        return {
            "events": counted,
            "fork_bytes": sum(fork.values()),
            "fork_rows": fork,
            "copy_bytes": sum(copy.values()),
            "fork_share": round(sum(fork.values()) / max(sum(copy.values()), 1), 4),
            "file_growth_bytes": file_bytes(database) - before,
            "fork_model_calls": fork_calls,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.events))))


if __name__ == "__main__":
    main()
