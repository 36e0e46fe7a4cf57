"""Shared fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.openai_server import FakeOpenAIServer


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAIServer]:
    """A started fake OpenAI-compatible server on 127.0.0.1; point ``base_url`` at it."""
    async with FakeOpenAIServer() as server:
        yield server
