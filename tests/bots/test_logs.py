"""Operator logs: JSON lines with context, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bots.logs import REDACTED, configure_logging, log_context, redact, secrets_of
from config.settings import Settings

SLACK_BOT = "xoxb-1234567890-abcdefghijkl"
OPENAI_KEY = "sk-proj-abcdefghijklmnopqrstuvwx"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, llm={"api_key": OPENAI_KEY, "model": "gpt-4o-mini"},
                    discord={"token": "Zm9vYmFyYmF6cXV4.short-but-configured"},
                    slack={"bot_token": SLACK_BOT, "signing_secret": "s3cr3t-signing"})


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_every_configured_secret_is_known(settings: Settings) -> None:
    assert set(secrets_of(settings)) == {OPENAI_KEY, "Zm9vYmFyYmF6cXV4.short-but-configured", SLACK_BOT, "s3cr3t-signing"}


def test_token_shapes_are_redacted_even_when_not_configured() -> None:
    text = redact("calling with xapp-1-A0-123456789-abcdef and Authorization: Bearer abcdefghijklmnop1234")
    assert "xapp-" not in text and "abcdefghijklmnop1234" not in text
    assert text.count(REDACTED) == 2 and "Bearer [redacted]" in text


def test_logs_are_json_lines_with_context_and_without_secrets(settings: Settings, restore_root) -> None:
    stream = io.StringIO()
    configure_logging(settings, stream)
    log = logging.getLogger("troupe.test")
    with log_context(channel="slack:C1", world="w-7", request="slash-3"):
        log.warning("posting with token %s", SLACK_BOT)
        try:
            raise RuntimeError(f"server said invalid key {OPENAI_KEY}")
        except RuntimeError:
            log.exception("model call failed")
    log.info("signing secret is s3cr3t-signing")
    output = stream.getvalue()
    for secret in secrets_of(settings):
        assert secret not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines[0]["channel"] == "slack:C1" and lines[0]["world"] == "w-7" and lines[0]["request"] == "slash-3"
    assert lines[0]["level"] == "warning" and REDACTED in lines[0]["message"]
    assert "RuntimeError" in lines[1]["message"]  # the traceback is kept, redacted
    assert "channel" not in lines[2]  # context ends with its block


def test_log_level_comes_from_settings(tmp_path, restore_root) -> None:
    stream = io.StringIO()
    configure_logging(Settings(data_dir=tmp_path, log_level="warning"), stream, json_lines=False)
    logging.getLogger("troupe.test").info("hidden")
    logging.getLogger("troupe.test").warning("shown")
    assert "hidden" not in stream.getvalue() and "WARNING troupe.test shown" in stream.getvalue()


async def test_model_layer_logs_name_the_persona_whose_turn_it_is(tmp_path, restore_root) -> None:
    from simulation.agent import TinyPerson
    from simulation.llm.base import ChatRequest, ChatResult
    from simulation.llm.demo import DemoModel
    from simulation.persona import PersonaSpec

    class Chatty(DemoModel):
        async def complete(self, request: ChatRequest) -> ChatResult:
            logging.getLogger("simulation.llm.test").warning("calling the model")
            return await super().complete(request)

    stream = io.StringIO()
    configure_logging(Settings(data_dir=tmp_path), stream, json_lines=True)
    agent = TinyPerson(PersonaSpec.model_validate({"name": "Ana Souza", "age": 29}), Chatty())
    agent.listen("Hi Ana", "gus")
    with log_context(channel="console:main"):
        await agent.act()
    entry = json.loads(stream.getvalue().splitlines()[0])
    assert entry["persona"] == "Ana Souza" and entry["channel"] == "console:main"
