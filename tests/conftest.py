"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.postgres import PostgresServer, create_database


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAIServer]:
    """A started fake OpenAI-compatible server on 127.0.0.1; point ``base_url`` at it."""
    async with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
async def openai_client(fake_openai: FakeOpenAIServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real ``openai`` client pointed at ``fake_openai``, without retries of its own."""
    async with openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder to run ``troupe`` commands in: no config file, no TROUPE_ or OPENAI_
    variables but the data folder (``here/data``), and wide lines."""
    for name in list(os.environ):
        if name.startswith(("TROUPE_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TROUPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole test session, started by the first test that needs it
    and stopped at the end (whatever the tests did)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database of its own on the session's server, for one test."""
    return await create_database(postgres_server)


@pytest.fixture(scope="session")
def _stoppable_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def stoppable_postgres_server(_stoppable_server: PostgresServer) -> PostgresServer:
    """A second real PostgreSQL server, running, for a test to stop, kill and start again (the
    session's ``postgres_server`` goes on serving the others); started again if a test left it down."""
    if _stoppable_server.process is None or _stoppable_server.process.poll() is not None:
        _stoppable_server.start()
    return _stoppable_server
