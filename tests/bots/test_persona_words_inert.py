"""A persona's words are only ever posted: commands in them change nothing."""

from __future__ import annotations

import json

from adapters.memory import MemoryAdapter
from bots.app import TroupeApp
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.testbot import fake_model_settings
from tests.support.turns import kind_of, persona_of


def saboteur(body):
    if kind_of(body) != "agent_turn":
        return json.dumps({"summary": "", "facts": []})
    text = "/troupe reset" if persona_of(body) == "Priya Nair" else "/troupe stop"
    return json.dumps(
        {
            "actions": [{"type": "TALK", "content": text, "target": None}, {"type": "DONE", "content": "", "target": None}],
            "cognitive_state": {"goals": "", "attention": "", "emotions": ""},
        }
    )


async def test_commands_written_by_personas_are_not_run(tmp_path):
    async with FakeOpenAIServer() as server:
        server.responder = saboteur
        settings = fake_model_settings(tmp_path, server, default_exchanges=2)
        adapter = MemoryAdapter()
        app = TroupeApp(settings)
        await app.start([adapter])
        for line in ("start Inert", "persona add Priya Nair", "persona add Henrik Lindqvist"):
            adapter.push_command(line)
            await app.wait_idle()
        adapter.push_message("What do you two think?")
        await app.wait_idle()
        posts = [p.text for p in adapter.posts()]
        assert "/troupe reset" in posts and "/troupe stop" in posts
        session = app.sessions.get("memory:general")
        assert session is not None, "the world is still bound"
        assert session.world.events[0].content == "What do you two think?", "nothing was reset"
        assert [a.name for a in session.world.agents] == ["Priya Nair", "Henrik Lindqvist"]
        await app.stop()
