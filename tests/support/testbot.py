"""``testbot``: the whole application on the in-memory platform. Push a message, read the replies."""

from __future__ import annotations

from pathlib import Path

from adapters.memory import MemoryAdapter, Sent
from bots.app import TroupeApp
from bots.storage import PersonaRecord
from bots.storage.sqlite import SQLiteStorage
from config.settings import Settings
from simulation.agent import AgentState
from simulation.persona import PersonaSpec
from tests.fakes.openai_server import FakeOpenAIServer

#: Bundled personas a team room is often started with.
TEAM = ("Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist")


class TestBot:
    __test__ = False

    def __init__(self, app: TroupeApp, adapter: MemoryAdapter) -> None:
        self.app = app
        self.adapter = adapter
        self._seen = 0

    def _new(self) -> list[Sent]:
        fresh = [s for s in self.adapter.sent[self._seen :] if s.kind not in ("typing", "stopped_typing")]
        self._seen = len(self.adapter.sent)
        return fresh

    async def command(self, text: str, **kwargs) -> list[Sent]:
        self.adapter.push_command(text, **kwargs)
        await self.app.wait_idle()
        return self._new()

    async def say(self, text: str, **kwargs) -> list[Sent]:
        self.adapter.push_message(text, **kwargs)
        await self.app.wait_idle()
        return self._new()

    async def reply(self, text: str, **kwargs) -> str:
        """The one answer to a command (private or public)."""
        sent = [s for s in await self.command(text, **kwargs) if s.kind in ("private", "reply", "card")]
        assert len(sent) == 1, sent
        return sent[0].text


def thread_of(sent: list[Sent]) -> str:
    """The thread the bot opened (a branch's): its first post in a thread among ``sent``."""
    opened = [s for s in sent if s.thread is not None and s.by_bot]
    assert opened, sent
    return opened[0].thread


def demo_settings(tmp_path: Path, **bot: object) -> Settings:
    return Settings(data_dir=tmp_path, llm={"provider": "demo"}, bot=bot)


def fake_model_settings(tmp_path: Path, server: FakeOpenAIServer, *, verification: dict[str, object] | None = None,
                        **bot: object) -> Settings:
    """Settings for a bot on the fake model server: the real openai client, no response cache;
    ``verification``, the channels' verification policy when not the default."""
    llm = {"model": "gpt-4o-mini", "base_url": server.base_url, "api_key": "sk-test", "cache": False}
    return Settings(data_dir=tmp_path, llm=llm, bot=bot, **({"verification": verification} if verification else {}))


async def start_bot(settings: Settings, adapter: MemoryAdapter | None = None, verifier=None) -> TestBot:
    adapter = adapter or MemoryAdapter()
    app = TroupeApp(settings, verifier=verifier)
    await app.start([adapter])
    return TestBot(app, adapter)


async def store_unchecked_persona(database: Path, world_id: str, name: str, **fields: object) -> None:
    """Store persona ``name`` in world ``world_id`` directly, as a bot that did not check names yet
    would have: for tests of what the bot does with such a name when it reads it back."""
    storage = SQLiteStorage(database)
    await storage.open()
    try:
        spec = PersonaSpec.from_data({"name": name, "age": 40, **fields}, source="an earlier bot")
        await storage.save_persona(world_id, PersonaRecord(name=name, spec=spec.to_tinytroupe_dict(), position=1),
                                   AgentState(persona=spec.to_tinytroupe_dict()))
    finally:
        await storage.close()
