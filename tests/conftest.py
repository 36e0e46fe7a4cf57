"""Shared fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAIServer


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
