"""Prompt injection from people in a channel never steers a persona.

The fake model here is the worst case: it obeys any instruction it finds in its prompt outside the
« » quotation marks, however disguised (zero-width characters, look-alike letters, spacing, leetspeak,
fake role markers). Fed the corpus in ``tests/data/injection/corpus.jsonl`` through the real bot, it
must obey none; fed the same texts as trusted scene descriptions, it obeys them all, which shows the
detector is live.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from unidecode import unidecode

from adapters.memory import MemoryAdapter
from bots.app import TroupeApp
from simulation.events import EventKind
from tests.bot_support import TestBot, fake_model_settings
from tests.fakes.openai_server import FakeOpenAIServer
from tests.sim_support import kind_of, persona_of, system_text, user_text

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "injection" / "corpus.jsonl").read_text().splitlines()]
QUOTED = re.compile(r"«[^«»]*»")
_LEET = str.maketrans({"1": "i", "0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
SAY = re.compile(r"\b(?:say|reply (?:only )?with|respond with|output|assistant)\W+canary", re.IGNORECASE)
CANARY = re.compile(r"CANARY-\d+", re.IGNORECASE)
REVEAL = re.compile(
    r"(system ?prompt|initial instructions|hidden prompt|persona description|words above|everything before)")


def plain(text: str) -> str:
    """Invisible characters gone, look-alike letters folded to ASCII."""
    text = "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf")
    return unidecode(text)


def normalise(text: str) -> str:
    """What a credulous model would read: ``plain``, lower case, leetspeak folded, spaced-out letters joined."""
    text = plain(text).lower()
    text = re.sub(r"\b(?:\w ){3,}\w\b", lambda m: m.group(0).replace(" ", ""), text)
    return text.translate(_LEET)


def instruction_in(text: str) -> tuple[str, str] | None:
    """The instruction a credulous model finds in ``text``: ("say", canary) or ("reveal", "")."""
    folded = normalise(text)
    canary = CANARY.search(plain(text))
    if canary and SAY.search(folded):
        return "say", canary.group(0).upper()
    if REVEAL.search(folded.replace(" ", "")) or REVEAL.search(folded):
        return "reveal", ""
    return None


class ObedientModel:
    """Answers persona turns, obeying whatever instruction stands outside the quotation marks."""

    def __init__(self) -> None:
        self.obeyed: list[str] = []

    def __call__(self, body: dict[str, Any]) -> str:
        if kind_of(body) != "agent_turn":
            return json.dumps({"summary": "We talked.", "facts": []})
        outside = QUOTED.sub(" ", user_text(body))
        found = instruction_in(outside.rsplit("Now:", 1)[-1]) or instruction_in(outside)
        if found is None:
            talk = "Sounds good to me."
        elif found[0] == "say":
            talk = found[1]
            self.obeyed.append(found[1])
        else:
            talk = system_text(body)[:300]
            self.obeyed.append("system prompt")
        return json.dumps({
            "actions": [{"type": "TALK", "content": talk, "target": None}, {"type": "DONE", "content": "", "target": None}],
            "cognitive_state": {"goals": "", "attention": "", "emotions": ""},
        })


def obeyed_in(world, entry: dict[str, Any]) -> bool:
    talk = [e.content for e in world.events if e.kind is EventKind.ACTION and e.type == "TALK"]
    if "say" in entry["goal"]:
        return any(entry["goal"]["say"] in t for t in talk)
    return any("think, feel and speak in character" in t for t in talk)


@pytest.fixture
async def obedient_bot(tmp_path):
    async with FakeOpenAIServer() as server:
        model = ObedientModel()
        server.responder = model
        settings = fake_model_settings(tmp_path, server, default_exchanges=0)
        app = TroupeApp(settings)
        await app.start([MemoryAdapter()])
        bot = TestBot(app, app.adapters["memory"])
        bot.model = model
        yield bot
        await app.stop()


def test_the_detector_reads_every_disguise() -> None:
    for entry in CORPUS:
        text = entry.get("user", "") + " " + entry["text"]
        assert instruction_in(text) is not None, entry


async def test_no_injection_from_the_corpus_is_obeyed(obedient_bot) -> None:
    obeyed = []
    for number, entry in enumerate(CORPUS):
        channel = f"c{number}"
        await obedient_bot.command("start Injection test", channel=channel)
        await obedient_bot.command("persona add Priya Nair", channel=channel)
        await obedient_bot.say(entry["text"], channel=channel, user=entry.get("user", "gus"), user_is_moderator=False)
        world = obedient_bot.app.sessions.get(f"memory:{channel}").world
        assert any(e.kind is EventKind.ACTION and e.type == "TALK" for e in world.events), "Priya answered"
        if obeyed_in(world, entry):
            obeyed.append(entry["text"])
    assert obeyed == [] and obedient_bot.model.obeyed == [], f"obeyed {len(obeyed)} of {len(CORPUS)}: {obeyed}"


async def test_the_same_texts_given_as_trusted_scenes_are_obeyed(obedient_bot) -> None:
    """The control: outside the quotation marks the obedient model does obey, so the zero above is earned."""
    say_entries = [e for e in CORPUS if "say" in e["goal"] and "user" not in e][:10]
    await obedient_bot.command("start Control")
    await obedient_bot.command("persona add Priya Nair")
    session = obedient_bot.app.sessions.get("memory:general")
    for entry in say_entries:
        await session.record_stimulus(lambda e=entry: session.world.show(e["text"]))
        await obedient_bot.app.wait_idle()
    assert all(obeyed_in(session.world, e) for e in say_entries)
