"""A persistent response cache: replaying a simulation gives the same replies, for free.

Entries are keyed by what decides a model's answer (``ChatRequest.identity()`` and the model
name), never by who asked, so worlds share them. Only completions that succeeded are stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import time
from pathlib import Path

import aiosqlite

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, ModelWrapper

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


def cache_key(request: ChatRequest, model: str) -> str:
    """sha256 of the canonical JSON of the request's identity and the model name."""
    payload = {"model": model, "request": request.identity()}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class CachedModel(ModelWrapper):
    """Answers repeated requests from an SQLite file; asks ``inner`` only on a miss.

    Identical requests in flight at the same time share one call to ``inner``.
    """

    def __init__(self, inner: LanguageModel, path: str | Path) -> None:
        super().__init__(inner)
        self.path = Path(path)
        self.hits = 0
        self.misses = 0
        self._db: aiosqlite.Connection | None = None
        self._open_lock = asyncio.Lock()
        self._inflight: dict[str, asyncio.Future[ChatResult]] = {}

    async def complete(self, request: ChatRequest) -> ChatResult:
        key = cache_key(request, self.name)
        while (pending := self._inflight.get(key)) is not None:
            try:
                result = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled():
                    continue  # the call we were sharing was abandoned: make our own
                raise
            self.hits += 1
            return _as_hit(result)

        future: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            stored = await self._load(key)
            if stored is not None:
                self.hits += 1
                future.set_result(stored)
                return _as_hit(stored)
            self.misses += 1
            result = await self.inner.complete(request)
            await self._store(key, result)
            future.set_result(result)
            return result
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: waiting twins re-raise it, others need not
            raise
        finally:
            self._inflight.pop(key, None)

    async def aclose(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
        await self.inner.aclose()

    async def clear(self) -> None:
        """Forget every stored reply."""
        db = await self._connection()
        await db.execute("DELETE FROM llm_responses")
        await db.commit()

    async def _connection(self) -> aiosqlite.Connection:
        if self._db is not None:
            return self._db
        async with self._open_lock:
            if self._db is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = await aiosqlite.connect(self.path)
                try:
                    await db.execute("PRAGMA journal_mode=WAL")
                    await db.execute("PRAGMA synchronous=NORMAL")
                    await db.execute("PRAGMA busy_timeout=5000")
                    await db.execute(_SCHEMA)
                    await db.commit()
                except BaseException:
                    await db.close()
                    raise
                self._db = db
        return self._db

    async def _load(self, key: str) -> ChatResult | None:
        db = await self._connection()
        async with db.execute("SELECT result FROM llm_responses WHERE key = ?", (key,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        try:
            return ChatResult.model_validate_json(row[0])
        except ValueError:
            return None  # written by an incompatible version: ask again and overwrite

    async def _store(self, key: str, result: ChatResult) -> None:
        """Store a reply; a failing disk costs the replay, never the reply itself."""
        stored = result.model_copy(update={"cached": False, "latency_s": 0.0})
        try:
            db = await self._connection()
            await db.execute(
                "INSERT OR REPLACE INTO llm_responses (key, model, result, created_at) "
                "VALUES (?, ?, ?, ?)",
                (key, self.name, stored.model_dump_json(), time.time()),
            )
            await db.commit()
        except (sqlite3.Error, OSError) as error:
            log.warning("could not store a reply in the cache at %s: %s", self.path, error)


def _as_hit(result: ChatResult) -> ChatResult:
    return result.model_copy(update={"cached": True, "latency_s": 0.0})
