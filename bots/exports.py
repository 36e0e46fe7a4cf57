"""A world's conversation as a file (JSON, CSV or Markdown), for the `export` command and `troupe export`.

An export is the channel's record: persona words as they were posted (redacted, rewritten or edited
by a moderator), never the text verification held back or refused. Thoughts and the personas'
memories are for moderators (who may observe them anyway); anyone else gets the conversation.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable

from defusedcsv import csv

from bots.storage import OutboxEntry, OutboxStatus
from simulation.events import Event, EventKind
from simulation.untrusted import printable
from simulation.world import TinyWorld

EXPORT_FORMATS = ("json", "csv", "md")


def simulated_note(model_name: str) -> str:
    """The line every export carries: what it is, and which model produced it."""
    return f"Simulated conversation; answers may not reflect what real people think. Model: {model_name}."


#: Outbox states whose text the channel never saw.
_WITHHELD = (OutboxStatus.HELD, OutboxStatus.BLOCKED)


def as_posted(log: Iterable[Event], posts: Iterable[OutboxEntry], *, thoughts: bool) -> list[Event]:
    """The log as the channel saw it: each persona's words replaced by the text that went out, words
    held or refused left out, and thoughts only when ``thoughts``."""
    by_event = {entry.event_id: entry for entry in posts}
    shown = []
    for event in log:
        if event.kind is EventKind.ACTION and event.type == "THINK" and not thoughts:
            continue
        if event.kind is EventKind.ACTION and event.type == "TALK" and (entry := by_event.get(event.id)):
            if entry.status in _WITHHELD:
                continue
            if entry.text != event.content:
                event = event.model_copy(update={"content": entry.text})
        shown.append(event)
    return shown


def render_export(
    world: TinyWorld, fmt: str, model_name: str, log: list[Event], *, moderator: bool
) -> tuple[str, bytes]:
    """(file name, content) of ``world``'s conversation in ``fmt``. ``log`` is the whole event log as
    posted (``as_posted``); ``moderator`` adds the personas' memories to a JSON export."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose json, csv or md")
    note = simulated_note(model_name)
    if fmt == "json":
        data = json.loads(world.to_json())
        data["events"] = [json.loads(e.model_dump_json()) for e in log]
        data["events_first"] = 0
        if not moderator:
            data["agents"] = [{"name": agent.name} for agent in world.agents]
        data["note"] = note
        body = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    elif fmt == "csv":
        out = io.StringIO()
        # The header is line 1, as spreadsheets expect; the disclaimer goes with every row, as a column.
        writer = csv.writer(out)
        writer.writerow(["id", "step", "time", "kind", "type", "source", "target", "content", "model", "note"])
        for e in log:
            writer.writerow([e.id, e.step, e.time.isoformat(), e.kind.value, e.type, printable(e.source or ""),
                             printable(e.target or ""), printable(e.content), e.model or "", note])
        body = out.getvalue()
    else:
        lines = [f"# {_md_name(world.name)}", "", f"_{note}_", ""]
        for e in log:
            if e.kind is EventKind.NOTICE or e.type == "THINK":
                continue
            to = f" → {_md_name(e.target)}" if e.target else ""
            # One line a message: a line break inside it cannot start a line that looks like another speaker's.
            lines.append(f"**{_md_name(e.source or '')}**{to} ({e.time:%H:%M}): {printable(e.content, one_line=True)}  ")
        body = "\n".join(lines) + "\n"
    return f"{slug(world.name)}.{fmt}", body.encode()


def _md_name(name: str) -> str:
    """A name as Markdown text: its own ``*``, ``_`` or brackets do not turn into formatting."""
    return re.sub(r"([\\`*_\[\]<>#])", r"\\\1", printable(name, one_line=True))


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "world"
