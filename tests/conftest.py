"""Shared fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

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
