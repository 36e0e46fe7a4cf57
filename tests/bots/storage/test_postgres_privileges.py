"""A PostgreSQL user without the grants Troupe needs (a second role, not the tables' owner): opening
the storage says what is missing and what to grant (DatabaseSetupError), never a raw asyncpg error."""

from __future__ import annotations

import asyncpg
import pytest

from bots.storage.base import DatabaseSetupError
from bots.storage.postgres import PostgresStorage
from tests.support.postgres import PASSWORD, create_database
from tests.support.roles import create_role, database_name, url_as

SECRET = "role-pass-word"
ADVICE = "the user lacks a privilege on Troupe's tables: grant it (or connect as their owner), then start again"


async def a_troupe_database(postgres_server) -> str:
    """A database set up by its owner (Troupe's tables there); its owner's URL."""
    url = await create_database(postgres_server)
    async with PostgresStorage(url):
        pass
    return url


def said(error: pytest.ExceptionInfo[DatabaseSetupError]) -> str:
    text = str(error.value)
    assert SECRET not in text and PASSWORD not in text
    return text


async def test_a_user_without_rights_on_the_tables_is_told_to_grant_them_whether_it_reads_or_writes(postgres_server):
    owner = await a_troupe_database(postgres_server)
    role = await create_role(postgres_server, SECRET)
    url = url_as(owner, role, SECRET)
    for read_only in (False, True):
        with pytest.raises(DatabaseSetupError) as refused:
            await PostgresStorage(url, read_only=read_only).open()
        text = said(refused)
        assert f"postgresql://{role}@127.0.0.1:{postgres_server.port}/" in text
        assert "permission denied for table schema_migrations" in text and refused.value.problem.fix == ADVICE

    # Granted what it reads, the same user opens it to read (the advice works).
    connection = await asyncpg.connect(owner)
    try:
        await connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    finally:
        await connection.close()
    async with PostgresStorage(url, read_only=True) as storage:
        assert await storage.all_worlds() == []


async def test_a_user_who_may_not_create_the_tables_of_a_new_database_is_told_so(postgres_server):
    url = await create_database(postgres_server)
    role = await create_role(postgres_server, SECRET, (url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    with pytest.raises(DatabaseSetupError) as refused:
        await PostgresStorage(url_as(url, role, SECRET)).open()
    text = said(refused)
    assert "could not upgrade the database" in text and "permission denied for schema public" in text
    assert refused.value.problem.fix == ADVICE


async def test_a_user_without_connect_on_the_database_is_told_to_grant_it(postgres_server):
    url = await a_troupe_database(postgres_server)
    role = await create_role(postgres_server, SECRET,
                             (url, f'REVOKE CONNECT ON DATABASE "{database_name(url)}" FROM PUBLIC'))
    with pytest.raises(DatabaseSetupError) as refused:
        await PostgresStorage(url_as(url, role, SECRET), read_only=True).open()
    text = said(refused)
    assert "does not let this user connect to the database" in text and "permission denied for database" in text
    assert "GRANT CONNECT ON DATABASE" in refused.value.problem.fix


async def test_a_user_who_may_use_no_schema_is_not_told_that_the_database_is_empty(postgres_server):
    url = await a_troupe_database(postgres_server)
    role = await create_role(postgres_server, SECRET, (url, "REVOKE USAGE ON SCHEMA public FROM PUBLIC"))
    for read_only in (False, True):
        with pytest.raises(DatabaseSetupError) as refused:
            await PostgresStorage(url_as(url, role, SECRET), read_only=read_only).open()
        text = said(refused)
        assert "may use no schema of its search_path" in text and "holds no Troupe tables" not in text
        assert "GRANT USAGE ON SCHEMA public" in refused.value.problem.fix


async def test_a_user_who_may_only_read_is_told_at_the_start_which_grants_a_worker_needs(postgres_server):
    """Not at its first write, in the middle of a conversation: when opening to write."""
    owner = await a_troupe_database(postgres_server)
    role = await create_role(postgres_server, SECRET, (owner, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
                             (owner, "GRANT INSERT ON audit TO {role}"))
    url = url_as(owner, role, SECRET)
    with pytest.raises(DatabaseSetupError) as refused:
        await PostgresStorage(url).open()
    text = said(refused)
    assert "lacks INSERT, UPDATE, DELETE on worlds, personas, memories" in text, text
    assert "which a worker needs to write" in text and "on audit" not in text, text
    grant = f'GRANT INSERT, UPDATE, DELETE ON worlds, personas, memories, episodes, events, outbox, usage, ' \
            f'adapter_state, inbox, leases, workers TO "{role}";'
    assert grant in refused.value.problem.fix, refused.value.problem.fix
    async with PostgresStorage(url, read_only=True) as storage:
        assert await storage.all_worlds() == [], "it still reads"

    # Granted what the advice says, it opens to write.
    connection = await asyncpg.connect(owner)
    try:
        await connection.execute(grant)
    finally:
        await connection.close()
    async with PostgresStorage(url) as storage:
        assert await storage.all_worlds() == []
