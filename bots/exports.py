"""A world's conversation as a file (JSON, CSV or Markdown), for the `export` command and `troupe export`."""

from __future__ import annotations

import csv
import io
import json

from simulation.events import Event, EventKind
from simulation.world import TinyWorld

EXPORT_FORMATS = ("json", "csv", "md")


def simulated_note(model_name: str) -> str:
    """The line every export carries: what it is, and which model produced it."""
    return f"Simulated conversation; answers may not reflect what real people think. Model: {model_name}."


def render_export(world: TinyWorld, fmt: str, model_name: str, log: list[Event] | None = None) -> tuple[str, bytes]:
    """(file name, content) of ``world``'s conversation in ``fmt``. ``log`` is its whole event log
    when the world holds only the recent part (``world.events_first``)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose json, csv or md")
    events = world.events if log is None else log
    note = simulated_note(model_name)
    if fmt == "json":
        data = json.loads(world.to_json())
        if log is not None:
            data["events"] = [json.loads(e.model_dump_json()) for e in log]
            data["events_first"] = 0
        data["note"] = note
        body = json.dumps(data, indent=1, ensure_ascii=False)
    elif fmt == "csv":
        out = io.StringIO()
        out.write(f"# {note}\n")  # a comment line: pandas reads it with comment="#"
        writer = csv.writer(out)
        writer.writerow(["id", "step", "time", "kind", "type", "source", "target", "content", "model"])
        for e in events:
            writer.writerow([e.id, e.step, e.time.isoformat(), e.kind.value, e.type, e.source, e.target or "",
                             e.content, e.model or ""])
        body = out.getvalue()
    else:
        lines = [f"# {world.name}", "", f"_{note}_", ""]
        for e in events:
            if e.kind is EventKind.NOTICE or e.type == "THINK":
                continue
            to = f" → {e.target}" if e.target else ""
            lines.append(f"**{e.source}**{to} ({e.time:%H:%M}): {e.content}  ")
        body = "\n".join(lines) + "\n"
    return f"{slug(world.name)}.{fmt}", body.encode()


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "world"
