"""Fixtures of the simulation tests: the model backend and the fake server playing agent turns."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulation.llm.openai_model import OpenAIModel
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.turns import TurnRule


@pytest.fixture
async def backend(fake_openai: FakeOpenAIServer) -> AsyncIterator[OpenAIModel]:
    """The OpenAI backend through the real ``openai`` client, against ``fake_openai``."""
    model = OpenAIModel.openai(model="gpt-4o-mini", api_key="sk-test", base_url=fake_openai.base_url)
    yield model
    await model.aclose()


@pytest.fixture
def model(backend: OpenAIModel) -> OpenAIModel:
    """``backend``, as the model a world's personas think with."""
    return backend


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    """A fake model server that plays agent turns, memory consolidation and speaker picks (``TurnRule``)."""
    async with FakeOpenAIServer() as fake:
        fake.responder = TurnRule()
        yield fake
