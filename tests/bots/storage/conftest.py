"""The store every storage test opens: a fresh database in a temporary folder."""

from pathlib import Path

import pytest

from bots.storage.sqlite import SQLiteStorage


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "troupe.sqlite3"


@pytest.fixture
async def storage(path: Path):
    store = SQLiteStorage(path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
