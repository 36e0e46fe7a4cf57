"""A persona's turn in a world: what it thinks of the latest message and whether it speaks, and
which persona a moderator policy lets speak next."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo.persona import Persona
from simulation.llm.demo.replies import reaction, reply
from simulation.llm.demo.seeded import pick
from simulation.llm.demo.text import with_article

if TYPE_CHECKING:
    from simulation.memory import Episode


def agent_turn(request: ChatRequest) -> dict[str, Any]:
    """A thought about the latest message, and a reply when it is addressed, a question or (sometimes)
    another persona's remark."""
    context = request.context
    persona = Persona(str(context.get("name", "")), context.get("persona") or {})
    past: list[Episode] = context.get("past", [])
    stimuli = [_moment(e) for e in context.get("new", []) if e.kind == "stimulus"]
    if not stimuli:
        return _turn([("THINK", "Nothing new to react to.", None)], persona, "waiting")
    latest = stimuli[-1]
    text = str(latest.get("content", ""))
    source = str(latest.get("source") or "someone")
    seed = f"{persona.name}|{text}|{source}"
    addressed = latest.get("target") == persona.name or persona.first.casefold() in text.casefold()
    question = "?" in text
    from_person = latest.get("type") == "CONVERSATION"
    # Other personas' remarks get an answer only sometimes, so a demo world quiets down.
    speaks = from_person and (
        addressed or question or source.casefold() in ("moderator", "you") or pick(seed, "ynnnn") == "y"
    )
    if latest.get("type") == "VISUAL":
        speaks = True
    thought = _thought(persona, text, source, speaks)
    actions: list[tuple[str, str, str | None]] = [("THINK", thought, None)]
    if speaks:
        target = source if latest.get("target") == persona.name and source != "world" else None
        # What it heard and said lately.
        earlier = [_moment(e) for e in past if e.kind == "stimulus" and e.type == "CONVERSATION"][-8:]
        heard = [(str(s.get("source")), str(s.get("content", ""))) for s in [*earlier, *stimuli[:-1]]
                 if s.get("type", "CONVERSATION") == "CONVERSATION" and s.get("source") not in (None, source, persona.name, "narrator", "world")]
        mine = [e.content for e in past if e.kind == "action" and e.type == "TALK"][-3:]
        said = reaction(persona, text, seed, heard, mine) or reply(persona, text, seed)
        actions.append(("TALK", said, target))
    return _turn(actions, persona, text)


def _moment(episode: Episode) -> dict[str, Any]:
    return {"kind": episode.kind, "type": episode.type, "content": episode.content, "source": episode.source,
            "target": episode.target}


def _thought(p: Persona, text: str, source: str, speaks: bool) -> str:
    """What the persona makes of the latest message; it promises an answer only when one follows."""
    words = text.split()
    topic = " ".join(words[:10]) + ("…" if len(words) > 10 else "")
    lens = f"as {with_article(p.occupation)}" if p.occupation else "from my own experience"
    # The console's user is called "you": "you bring up", not "you brings up".
    said = {"you": "You bring up", "moderator": "The moderator brings up"}.get(source.casefold(), f"{source} brings up")
    if not speaks:
        return f"{said} \"{topic}\". Nothing to add from me for now; I'll listen."
    return f"{said} \"{topic}\". I'll answer {lens}."


def _turn(actions: list[tuple[str, str, str | None]], p: Persona, focus: str) -> dict[str, Any]:
    return {
        "actions": [{"type": t, "content": c, "target": tg} for t, c, tg in actions]
        + [{"type": "DONE", "content": "", "target": None}],
        "cognitive_state": {
            "goals": p.goals[0] if p.goals else "take part in the conversation",
            "attention": " ".join(focus.split()[:12]),
            "emotions": "engaged",
        },
    }


def pick_speaker(request: ChatRequest) -> dict[str, Any]:
    """A stable pick among the candidates, seeded by the transcript so far."""
    candidates = request.context.get("candidates") or ["nobody"]
    return {
        "next_speaker": pick(request.context.get("transcript", ""), candidates),
        "reason": "their turn to weigh in (demo model)",
    }
