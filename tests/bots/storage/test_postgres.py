"""What only the PostgreSQL backend has: a server that several processes share (and migrate at
once), connection failures said with what to check, and a server that goes away mid-run."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

import asyncpg
import pytest

from bots.storage.base import DatabaseSetupError, Fence, StaleOwnerError, StorageError, StorageUnavailableError
from bots.storage.open import storage_for
from bots.storage.postgres import MIGRATIONS, PostgresStorage
from config.settings import Settings
from tests.bots.storage.records import step, world
from tests.support.paths import ROOT
from tests.support.postgres import PASSWORD, PostgresServer, create_database

#: Seconds a test's server is waited for after it went away, and a lease that runs out during an outage.
RECONNECT_S = 1.0
SHORT_LEASE_S = 1.0

#: Opens the database at argv[1] when told to on stdin, and says so.
OPENER = """
import asyncio, sys
from bots.storage.postgres import PostgresStorage

async def main(url):
    print("ready", flush=True)
    sys.stdin.readline()
    async with PostgresStorage(url):
        pass
    print("opened", flush=True)

asyncio.run(main(sys.argv[1]))
"""


async def migrations_applied(url: str) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        return [row[0] for row in await connection.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await connection.close()


# -- several processes, one database ----------------------------------------------------------


async def test_processes_opening_a_new_database_at_once_migrate_it_once(postgres_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", OPENER, postgres_url, cwd=ROOT, env=env,
                                             stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
        for _ in range(2)
    ]
    for child in children:  # every one started and waiting: then all open at the same moment
        assert await asyncio.wait_for(child.stdout.readline(), 60) == b"ready\n"
    for child in children:
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    outcomes = [await asyncio.wait_for(child.communicate(), 60) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err.decode() for _, err in outcomes]
    assert [out for out, _ in outcomes] == [b"opened\n"] * 2
    assert await migrations_applied(postgres_url) == list(range(1, len(MIGRATIONS) + 1))


async def test_pools_of_one_process_opening_a_new_database_at_once_migrate_it_once(postgres_url):
    stores = [PostgresStorage(postgres_url) for _ in range(6)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await stores[0].create_world(world())
        assert [(await store.world_for_channel("console:main")).id for store in stores] == ["w1"] * 6
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert await migrations_applied(postgres_url) == list(range(1, len(MIGRATIONS) + 1))


async def test_a_second_process_running_the_worlds_is_refused_until_the_first_stops(postgres_url):
    first = PostgresStorage(postgres_url, single_writer=True)
    await first.open()
    try:
        with pytest.raises(DatabaseSetupError, match="in use by another Troupe process.*stop that one first"):
            await PostgresStorage(postgres_url, single_writer=True).open()
        async with PostgresStorage(postgres_url) as reader:  # reading (an export) needs no lock
            assert await reader.all_worlds() == []
    finally:
        await first.close()
    async with PostgresStorage(postgres_url, single_writer=True) as second:
        assert await second.all_worlds() == []


async def test_a_reader_refuses_a_database_not_set_up_and_never_writes(postgres_url):
    with pytest.raises(DatabaseSetupError, match="holds no Troupe tables yet: start Troupe on it once"):
        await PostgresStorage(postgres_url, read_only=True).open()
    assert await migrations_applied_or_none(postgres_url) is None, "a reader does not migrate"
    async with PostgresStorage(postgres_url) as writer:
        await writer.create_world(world())
    async with PostgresStorage(postgres_url, read_only=True) as reader:
        assert [w.id for w in await reader.all_worlds()] == ["w1"]
        with pytest.raises(StorageError, match="open read-only"):
            await reader.write_step(step("w1", 1))


async def migrations_applied_or_none(url: str) -> list[int] | None:
    try:
        return await migrations_applied(url)
    except asyncpg.UndefinedTableError:
        return None


# -- transactions -----------------------------------------------------------------------------


async def test_a_transaction_that_fails_leaves_nothing_behind(postgres_url):
    async with PostgresStorage(postgres_url) as store:
        await store.create_world(world())

        async def half_done(connection: asyncpg.Connection) -> None:
            await connection.execute("UPDATE worlds SET name = 'Renamed' WHERE id = 'w1'")
            raise StorageError("changed my mind")

        with pytest.raises(StorageError, match="changed my mind"):
            await store.in_transaction(half_done, "rename the world")
        assert (await store.world_for_channel("console:main")).name == "World w1"

        async def count(connection: asyncpg.Connection) -> int:
            return await connection.fetchval("SELECT count(*) FROM worlds")

        assert await store.in_transaction(count, "count worlds", readonly=True) == 1


async def test_a_write_cancelled_inside_its_transaction_leaves_its_connection_clean(postgres_url):
    """A step write cancelled while it waits inside its transaction (another session holds the
    world's row) is rolled back before its connection, the pool's only one, serves anyone else."""
    async with PostgresStorage(postgres_url, max_connections=1) as store:
        await store.create_world(world())
        blocker = await asyncpg.connect(postgres_url)
        try:
            async with blocker.transaction():
                await blocker.execute("SELECT 1 FROM worlds WHERE id = 'w1' FOR UPDATE")
                task = asyncio.create_task(store.write_step(step("w1", 1)))
                while not await blocker.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"):
                    await asyncio.sleep(0.02)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            await store.write_step(step("w1", 2))
            assert [e.id for e in (await store.load_world("w1")).events] == [2]
            assert await blocker.fetchval("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'") == 0
        finally:
            await blocker.close()


# -- connecting -------------------------------------------------------------------------------


async def test_a_wrong_password_is_said_without_showing_any_password(postgres_server):
    url = postgres_server.url(password="not-the-password")
    with pytest.raises(DatabaseSetupError) as refused:
        await PostgresStorage(url).open()
    message = str(refused.value)
    assert f"postgresql://postgres@127.0.0.1:{postgres_server.port}/postgres refused the password" in message
    assert "check the user name and password in TROUPE_DATABASE_URL" in message
    assert "not-the-password" not in message and PASSWORD not in message
    assert "not-the-password" not in repr(PostgresStorage(url))


async def test_an_unknown_database_is_said_with_how_to_make_it(postgres_server):
    with pytest.raises(DatabaseSetupError, match="has no such database .*create it .*database name"):
        await PostgresStorage(postgres_server.url("nowhere")).open()


async def test_a_port_nobody_listens_on_is_said_with_what_to_check(postgres_server):
    with socket.socket() as taken:  # bound, not listening: nothing accepts on its port
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(StorageError) as refused:
            await asyncio.wait_for(PostgresStorage(postgres_server.url(port=port)).open(), 30)
    message = str(refused.value)
    assert f"postgresql://postgres@127.0.0.1:{port}/postgres refused the connection: nothing listens there" in message
    assert "check that the server is running" in message and PASSWORD not in message


def test_only_a_postgresql_url_is_taken():
    with pytest.raises(DatabaseSetupError, match="'mysql://me@db/troupe' is not a PostgreSQL URL"):
        PostgresStorage("mysql://me:secret@db/troupe")


# -- losing the server ------------------------------------------------------------------------


async def test_a_lost_connection_fails_its_operation_and_the_next_one_reconnects(postgres_server, postgres_url):
    reported: list[StorageUnavailableError] = []
    async with PostgresStorage(postgres_url) as store:
        store.on_unavailable = reported.append
        await store.create_world(world())

        async def slow(connection: asyncpg.Connection) -> None:
            await connection.execute("SELECT pg_sleep(30)")

        running = asyncio.create_task(store.in_transaction(slow, "wait a while"))
        admin = await asyncpg.connect(postgres_server.url())
        try:
            for _ in range(200):  # an administrator ends that connection (a failover, a restart of the pooler...)
                ended = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
                if ended:
                    break
                await asyncio.sleep(0.01)
        finally:
            await admin.close()
        with pytest.raises(StorageError, match="could not wait a while: the connection to the database was lost"):
            await asyncio.wait_for(running, 30)
        await store.write_step(step("w1", 1))
        assert [e.id for e in (await store.load_world("w1")).events] == [1]
    assert reported == [], "the server was still there: nothing to stop for"


async def test_operations_during_a_short_outage_wait_for_the_server_and_leases_stay_fenced(stoppable_postgres_server: PostgresServer):
    """The server restarts (as for an upgrade or a failover): what is asked meanwhile waits and is done
    once it is back, nothing stops. Leases that ran out meanwhile are kept by their worker unless
    another took them over, whose token then refuses the old owner's writes."""
    server = stoppable_postgres_server
    url = await create_database(server)
    store = PostgresStorage(url, reconnect_s=30)
    reported: list[StorageUnavailableError] = []
    store.on_unavailable = reported.append
    await store.open()
    try:
        for n in (1, 2):
            await store.create_world(world(f"w{n}", channel=f"slack:C{n}"))
            assert await store.take_lease(f"slack:C{n}", "a", SHORT_LEASE_S) == 1
        await asyncio.to_thread(server.stop)
        kept = asyncio.create_task(store.inbox_add("slack:C1", {"text": "typed during the outage"}))
        read = asyncio.create_task(store.active_worlds())
        await asyncio.sleep(SHORT_LEASE_S)  # the leases run out meanwhile
        assert not kept.done() and not read.done(), "waiting for the server, not failed"
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(kept, 30)
        assert [w.id for w in await asyncio.wait_for(read, 30)] == ["w1", "w2"]
        assert [event for _, _, event in await store.inbox_pending()] == [{"text": "typed during the outage"}]
        assert reported == [], "a short outage stops nothing"

        # Another worker took one channel over once the server was back; the first keeps the other.
        assert await store.take_lease("slack:C2", "b", 30) == 2
        assert await store.renew_leases("a", 30) == {"slack:C1": 1}
        await store.write_step(step("w1", 1, channel="slack:C1", fence=Fence(channel_key="slack:C1", worker="a",
                                                                              token=1)))
        with pytest.raises(StaleOwnerError):
            await store.write_step(step("w2", 1, channel="slack:C2", fence=Fence(channel_key="slack:C2",
                                                                                  worker="a", token=1)))
    finally:
        await asyncio.wait_for(store.close(), 30)


async def test_a_server_killed_mid_run_stops_the_storage_instead_of_hanging(stoppable_postgres_server: PostgresServer):
    """Killed and not back within the time it is waited for: every operation fails, once it is up,
    and the storage says once that the database is gone."""
    server = stoppable_postgres_server
    url = await create_database(server)
    store = storage_for(Settings(database_url=url, database_reconnect_s=RECONNECT_S))  # TROUPE_DATABASE_RECONNECT_S
    assert isinstance(store, PostgresStorage)
    reported: list[StorageUnavailableError] = []
    store.on_unavailable = reported.append
    await store.open()
    try:
        await store.create_world(world())
        written = 0

        async def keep_writing() -> None:
            nonlocal written
            while True:
                await store.write_step(step("w1", written + 1))
                written += 1

        writing = asyncio.create_task(keep_writing())
        while written < 20:
            await asyncio.sleep(0.01)
        server.kill()  # the machine of the database crashed
        killed = time.monotonic()

        with pytest.raises(StorageUnavailableError, match=f"lost the connection to the database .* could not "
                                                          f"reach it again within {RECONNECT_S:g} s"):
            await asyncio.wait_for(writing, 30)
        assert RECONNECT_S <= time.monotonic() - killed < RECONNECT_S + 10, "tried again for that long, no more"
        with pytest.raises(StorageUnavailableError, match="refused the connection"):
            await asyncio.wait_for(store.pending_outbox(), 30)
        assert len(reported) == 1, "said once"
        assert "check that the server is running" in str(reported[0]) and PASSWORD not in str(reported[0])
    finally:
        await asyncio.wait_for(store.close(), 30)

    server.start()  # back again: every acknowledged step is there
    async with PostgresStorage(url) as again:
        assert len((await again.load_world("w1")).events) >= written
