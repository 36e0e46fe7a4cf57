"""The model stack and a world of three TinyTroupe personas, on the fake model server."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from simulation.agent import TinyPerson
from simulation.llm.factory import build_model
from simulation.persona import load_persona
from simulation.world import TinyWorld
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.paths import AGENTS


def stack_for(server: FakeOpenAIServer, tmp_path: Path, **llm: object):
    settings = Settings(
        data_dir=tmp_path,
        llm={
            "model": "gpt-4o-mini",
            "base_url": server.base_url,
            "api_key": "sk-test",
            "cache": False,
            "max_retries": 0,
            "timeout_s": 5,
            **llm,
        },
    )
    return build_model(settings)


def people(model, names: tuple[str, ...] = ("Lisa", "Oscar", "Marcos")) -> list[TinyPerson]:
    """TinyTroupe's example personas (by file name: Lisa Carter, Oscar, Marcos Almeida), thinking with ``model``."""
    return [TinyPerson(load_persona(AGENTS / f"{n}.agent.json"), model) for n in names]


def make_world(model, policy="everyone", **kwargs) -> TinyWorld:
    return TinyWorld("research", people(model), model=model, policy=policy, **kwargs)
