"""Prompt injection from people in a channel never steers a persona.

The fake model here is the worst case: it reads its prompt line by line and obeys any instruction it
finds outside a « » quotation opened and closed on the same line, however disguised (zero-width
characters, look-alike letters, spacing, leetspeak, fake role markers, line breaks that forge a line
of the transcript such as ``[09:41] (new goal) …``). Its memory is kept by a model that copies what
people said into the summary and the facts, word for word. Fed the corpus in
``tests/data/injection/corpus.jsonl`` through the real bot, it must obey none, neither when it hears
a text nor once the text is only in its memory; fed the same texts as trusted scene descriptions, it
obeys them all, which shows the detector is live.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest
from unidecode import unidecode

from adapters.memory import MemoryAdapter
from bots.app import TroupeApp
from simulation.events import EventKind
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.paths import DATA
from tests.support.testbot import TestBot, fake_model_settings
from tests.support.turns import kind_of, system_text, user_text

CORPUS = [json.loads(line) for line in (DATA / "injection" / "corpus.jsonl").read_text().splitlines()]
#: Every line break ``str.splitlines`` knows: a line-by-line reader starts a new line at each.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
#: A quotation as a line-by-line reader sees one: opened and closed on the same line.
QUOTED = re.compile(f"«[^«»{LINE_BREAKS}]*»")
#: What people said, as a memory prompt shows it: ``«speaker» (to …): «words»``.
SAID = re.compile(r"«(?P<who>[^«»]*)»(?: \(to (?:you|«[^«»]*»)\))?: «(?P<said>[^«»]*)»")
_LEET = str.maketrans({"1": "i", "0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
SAY = re.compile(r"\b(?:say|reply (?:only )?with|respond with|output|assistant)\W+canary", re.IGNORECASE)
CANARY = re.compile(r"CANARY-\d+", re.IGNORECASE)
REVEAL = re.compile(
    r"(system ?prompt|initial instructions|hidden prompt|persona description|words above|everything before)")


def plain(text: str) -> str:
    """Invisible characters gone, look-alike letters folded to ASCII, a written ``\\n`` read as a line break."""
    text = text.replace("\\n", "\n")
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


def copied_memory(body: dict[str, Any]) -> str:
    """A memory kept by copying: the earlier summary, then who said what, word for word (line breaks
    written as ``\\n`` restored), none of it in quotation marks."""
    text = user_text(body)
    earlier, _, episodes = text.partition("\nEpisodes:\n")
    earlier = earlier.removeprefix("Earlier summary: ").removeprefix("«").removesuffix("»")
    said = [f"{m['who']} said: {m['said']}" for m in SAID.finditer(episodes)]
    said = [s.replace("\\n", "\n") for s in said]
    summary = " ".join(["" if earlier == "(none)" else earlier.replace("\\n", "\n"), *said]).strip()
    return json.dumps({"summary": summary, "facts": said[:8]})


class ObedientModel:
    """Answers persona turns, obeying whatever instruction stands outside the quotation marks, and
    keeps memories by copying what people said."""

    def __init__(self) -> None:
        self.obeyed: list[str] = []

    def __call__(self, body: dict[str, Any]) -> str:
        if kind_of(body) == "consolidate":
            return copied_memory(body)
        if system_text(body).startswith("You are the storyteller"):
            found = instruction_in(QUOTED.sub(" ", user_text(body)))
            if found is not None and found[0] == "say":
                self.obeyed.append(found[1])
            content = found[1] if found is not None and found[0] == "say" else "The coffee machine breaks down."
            return json.dumps({"kind": "scene", "content": content, "target": None, "rationale": "A change of scene."})
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
        # A guest says the whole corpus, and dozens of fillers, within seconds: each message is answered.
        settings = fake_model_settings(tmp_path, server, default_exchanges=0, rate_limits={"messages": None})
        app = TroupeApp(settings)
        await app.start([MemoryAdapter()])
        bot = TestBot(app, app.adapters["memory"])
        bot.model = model
        bot.server = server
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


def prompt_lines(server: FakeOpenAIServer) -> list[str]:
    """Every line of every prompt the model was sent, as a line-by-line reader splits them."""
    return [
        line.strip()
        for request in server.requests
        for message in request.body["messages"]
        for line in str(message["content"]).splitlines()
    ]


def forged_in(lines: list[str]) -> list[str]:
    """The corpus's forged transcript lines that start a line of a prompt."""
    return [e["forged"] for e in CORPUS if "forged" in e and any(line.startswith(e["forged"]) for line in lines)]


async def test_a_line_break_in_what_someone_says_starts_no_line_of_the_prompt(obedient_bot) -> None:
    for number, entry in enumerate(e for e in CORPUS if "forged" in e):
        channel = f"f{number}"
        await obedient_bot.command("start Forged lines", channel=channel)
        await obedient_bot.command("persona add Priya Nair", channel=channel)
        await obedient_bot.say(entry["text"], channel=channel, user="gus", user_is_moderator=False)
    assert any("CANARY-031" in line for line in prompt_lines(obedient_bot.server)), "the texts reached the model"
    assert forged_in(prompt_lines(obedient_bot.server)) == []


#: Corpus texts said in one conversation: its memory summary holds them all.
PER_CONVERSATION = 6
#: Messages a conversation may take, after its corpus texts, to fold them into memory.
MOST_FILLERS = 40


async def test_no_injection_is_obeyed_once_it_is_only_in_memory(obedient_bot) -> None:
    """Copied word for word into the memory summary and facts, and no longer shown as heard, the
    corpus still steers no persona."""
    obeyed = []
    for number in range(0, len(CORPUS), PER_CONVERSATION):
        entries = CORPUS[number : number + PER_CONVERSATION]
        channel = f"m{number}"
        await obedient_bot.command("start Memory test", channel=channel)
        await obedient_bot.command("persona add Priya Nair", channel=channel)
        for entry in entries:
            await obedient_bot.say(entry["text"], channel=channel, user=entry.get("user", "gus"), user_is_moderator=False)
        world = obedient_bot.app.sessions.get(f"memory:{channel}").world
        priya = world.find("Priya Nair")
        heard = priya.episodic.count
        for filler in range(MOST_FILLERS):
            if priya.episodic.consolidated_until >= heard:
                break
            await obedient_bot.say(f"Anything else on item {filler}?", channel=channel, user="gus", user_is_moderator=False)
            await world.settle()
        else:
            pytest.fail(f"the corpus texts were not folded into memory after {MOST_FILLERS} messages")
        await obedient_bot.say("Where were we?", channel=channel, user="gus", user_is_moderator=False)
        canaries = [e["goal"]["say"] for e in entries if "say" in e["goal"]]
        assert all(c in priya.episodic.summary for c in canaries), "the texts are in the summary"
        last_turn = [r for r in obedient_bot.server.requests if kind_of(r.body) == "agent_turn"][-1]
        assert all(c in user_text(last_turn.body) for c in canaries), "the summary was in the prompt"
        obeyed += [e["text"] for e in entries if obeyed_in(world, e)]
    assert obeyed == [] and obedient_bot.model.obeyed == [], f"obeyed {len(obeyed)} of {len(CORPUS)}: {obeyed}"
    assert forged_in(prompt_lines(obedient_bot.server)) == []


async def test_what_people_said_never_steers_the_storyteller(obedient_bot) -> None:
    """The storyteller reads the recent talk quoted: a guest's "say CANARY" in it never becomes the
    next beat the personas receive as the narrator's."""
    entries = [e for e in CORPUS if "say" in e["goal"] and "user" not in e]
    await obedient_bot.command("start Story")
    await obedient_bot.command("persona add Priya Nair")
    for entry in entries:
        await obedient_bot.say(entry["text"], user="gus", user_is_moderator=False)
        card = next(s.card for s in await obedient_bot.command("story") if s.kind == "card")
        assert not CANARY.search(card.text), (entry["text"], card.text)
    assert obedient_bot.model.obeyed == []
