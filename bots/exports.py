"""A world's conversation as a file (JSON, CSV or Markdown), for the `export` command and `troupe export`."""

from __future__ import annotations

import csv
import io
import json

from simulation.events import EventKind
from simulation.world import TinyWorld

EXPORT_FORMATS = ("json", "csv", "md")


def simulated_note(model_name: str) -> str:
    """The line every export carries: what it is, and which model produced it."""
    return f"Simulated conversation; answers may not reflect what real people think. Model: {model_name}."


def render_export(world: TinyWorld, fmt: str, model_name: str) -> tuple[str, bytes]:
    """(file name, content) of ``world``'s conversation in ``fmt``."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose json, csv or md")
    note = simulated_note(model_name)
    if fmt == "json":
        data = json.loads(world.to_json())
        data["note"] = note
        body = json.dumps(data, indent=1, ensure_ascii=False)
    elif fmt == "csv":
        out = io.StringIO()
        out.write(f"# {note}\n")  # a comment line: pandas reads it with comment="#"
        writer = csv.writer(out)
        writer.writerow(["id", "step", "time", "kind", "type", "source", "target", "content", "model"])
        for e in world.events:
            writer.writerow([e.id, e.step, e.time.isoformat(), e.kind.value, e.type, e.source, e.target or "",
                             e.content, e.model or ""])
        body = out.getvalue()
    else:
        lines = [f"# {world.name}", "", f"_{note}_", ""]
        for e in world.events:
            if e.kind is EventKind.NOTICE or e.type == "THINK":
                continue
            to = f" → {e.target}" if e.target else ""
            lines.append(f"**{e.source}**{to} ({e.time:%H:%M}): {e.content}  ")
        body = "\n".join(lines) + "\n"
    return f"{slug(world.name)}.{fmt}", body.encode()


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "world"
