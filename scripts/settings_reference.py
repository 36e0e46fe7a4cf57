"""Writes the settings reference in docs/configuration.md from the settings models themselves.

Every field of ``config.settings.Settings`` (and of the models its sections use) gets a row: YAML
path, environment variable, type, default and description. The description is the ``#:`` comment
right above the field in the source; the few fields without one are described in ``DESCRIPTIONS``
below. A field with neither makes this script fail, and so the test that keeps the file current.

    .venv/bin/python scripts/settings_reference.py           # rewrite docs/configuration.md
    .venv/bin/python scripts/settings_reference.py --check   # exit 1 if it is out of date

Only the part between the two markers is generated; the rest of the file is written by hand.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pydantic import BaseModel, SecretStr  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

from config.settings import Settings  # noqa: E402

DOC = ROOT / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED SETTINGS REFERENCE: edit config/settings.py, then run scripts/settings_reference.py -->"
END = "<!-- END GENERATED SETTINGS REFERENCE -->"
ENV_PREFIX = "TROUPE_"

#: Descriptions of fields that have no ``#:`` comment of their own, by YAML path. Prefer adding a
#: ``#:`` comment in the source; an entry here for a field that has one (or no longer exists) is an error.
DESCRIPTIONS: dict[str, str] = {
    "log_level": "Logging level: `DEBUG`, `INFO`, `WARNING` or `ERROR`.",
    "llm.model": "Model name (OpenAI: `gpt-4o-mini` when unset; an OpenAI-compatible server needs one it serves, e.g. `llama3.2` for Ollama; Azure: defaults to the deployment).",
    "llm.base_url": "OpenAI-compatible server, e.g. `http://localhost:11434/v1` for Ollama; unset means OpenAI itself.",
    "llm.api_key": "API key; unset, OpenAI reads `OPENAI_API_KEY` and Azure `AZURE_OPENAI_API_KEY`. Local servers need none.",
    "llm.azure_deployment": "Azure OpenAI deployment name, as shown in the Azure portal.",
    "llm.api_version": "Azure OpenAI API version.",
    "llm.temperature": "Sampling temperature sent with every request; unset leaves the server's default.",
    "llm.max_tokens": "Most tokens a completion may have; unset leaves the server's default.",
    "llm.timeout_s": "Seconds to wait for one model reply before it counts as timed out (and is retried).",
    "llm.retry_base_delay_s": "First wait before a retry, in seconds; doubles with each retry.",
    "llm.retry_max_delay_s": "Longest wait before a retry, in seconds.",
    "llm.cache_path": "Where the response cache lives; unset keeps it in the bot's database.",
    "llm.price_completion_per_mtok": "Cost estimate in USD per million completion tokens (see `price_prompt_per_mtok`).",
    "llm.budget_tokens": "Default token cap per world (see `budget_usd`).",
    "slack.http_path": "HTTP mode: the path Slack's requests are received on.",
    "verification.toxicity.block_at": "At or above this toxicity score a message is blocked.",
    "verification.toxicity.block_words": "Words that always block a message.",
    "verification.toxicity.allow_words": "Words never to flag.",
    "verification.model_check_timeout_s": "Seconds a model-based check may take before the message is held.",
    "verification.judge.enabled": "Run the model-based judge on every persona post.",
    "verification.judge.moderation_model": "The OpenAI moderation model to ask.",
    "verification.judge.max_chars": "Longest message sent to the judge, in characters.",
}


@dataclass
class Row:
    path: str
    env: str
    type: str
    default: str
    description: str


# -- reading the models -------------------------------------------------------------------------


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The ``#:`` comment lines right above each field of ``model``'s class body, joined."""
    source = textwrap.dedent(inspect.getsource(model))
    lines = source.splitlines()
    tree = ast.parse(source)
    found: dict[str, str] = {}
    for node in tree.body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        comment: list[str] = []
        index = node.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#:"):
            comment.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        if comment:
            found[node.target.id] = " ".join(comment)
    return found


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None


def rows(model: type[BaseModel] = Settings, prefix: str = "") -> tuple[list[Row], dict[str, list[Row]]]:
    """Rows of ``model``'s plain fields, and sections (by path) for its fields that are models."""
    comments = field_comments(model)
    own: list[Row] = []
    sections: dict[str, list[Row]] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _nested_model(info.annotation)
        if nested is not None:
            sub_rows, sub_sections = rows(nested, f"{path}.")
            sections[path] = sub_rows
            sections.update(sub_sections)
            continue
        description = comments.get(name)
        extra = DESCRIPTIONS.get(path)
        if description and extra:
            raise SystemExit(f"{path} has a #: comment; remove its entry from DESCRIPTIONS")
        description = description or extra
        if not description:
            raise SystemExit(
                f"the setting {path} has no description: add a `#:` comment above it in its model "
                f"({model.__module__}.{model.__qualname__}), or an entry in DESCRIPTIONS"
            )
        own.append(Row(path, env_var(path), type_name(info.annotation), default_of(info), markdown(description)))
    return own, sections


def all_paths(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """The YAML path of every plain setting (the leaves of the settings tree)."""
    paths: list[str] = []
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
        paths.extend(all_paths(nested, f"{prefix}{name}.") if nested else [f"{prefix}{name}"])
    return paths


# -- formatting ---------------------------------------------------------------------------------


def env_var(path: str) -> str:
    """``TROUPE_<SECTION>_<FIELD>``; deeper settings are set as a JSON object on their parent."""
    parts = path.split(".")
    if len(parts) <= 2:
        return f"`{ENV_PREFIX}{'_'.join(parts).upper()}`"
    parent = f"{ENV_PREFIX}{'_'.join(parts[:2]).upper()}"
    inner = ".".join(parts[2:])
    return f"`{parent}` (JSON object with `{inner}`)"


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (", optional" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        if args and typing.get_origin(args[0]) is Literal:
            return "list (JSON) of " + ", ".join(f"`{a}`" for a in typing.get_args(args[0]))
        return f"list of {type_name(args[0])} (JSON)" if args else "list (JSON)"
    if origin is dict:
        return "mapping (JSON object)"
    if annotation is SecretStr:
        return "secret"
    if annotation is Path:
        return "path"
    if annotation is Any:
        return "any"
    if inspect.isclass(annotation):
        return {"str": "text", "int": "integer", "float": "number", "bool": "true/false"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def default_of(info: Any) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (list, dict)):
        return f"`{json.dumps(value)}`"
    if isinstance(value, str) and value == "":
        return '`""`'
    return f"`{value}`"


def markdown(text: str) -> str:
    """RST literals (````x````) as Markdown ones; table cells cannot hold a bare ``|``."""
    return re.sub(r"``(.+?)``", r"`\1`", text).replace("|", "\\|")


def section_title(path: str) -> str:
    return f"`{path}`" if path else "General"


def render_reference() -> str:
    top, sections = rows()
    out = [
        BEGIN,
        "",
        "## Settings reference",
        "",
        "Every setting, by its path in `troupe.yaml` and its environment variable. Lists and mappings are",
        "written as JSON in environment variables (`TROUPE_BOT_MODERATOR_USER_IDS='[\"discord:1234\"]'`).",
        "Settings nested two levels deep are set through their parent as a JSON object, e.g.",
        "`TROUPE_VERIFICATION_TOXICITY='{\"hold_at\": 0.6}'`; in `troupe.yaml` they are ordinary keys.",
        "",
    ]
    for path, section_rows in [("", top), *sections.items()]:
        out.append(f"### {section_title(path)}")
        out.append("")
        model = _section_model(path)
        doc = inspect.getdoc(model) if model is not None else None
        if doc and path:
            out.append(markdown(" ".join(doc.split())))
            out.append("")
        out.append("| Setting | Environment variable | Type | Default | Description |")
        out.append("|---|---|---|---|---|")
        for row in section_rows:
            out.append(f"| `{row.path}` | {row.env} | {row.type} | {row.default} | {row.description} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def _section_model(path: str) -> type[BaseModel] | None:
    model: type[BaseModel] = Settings
    for part in [p for p in path.split(".") if p]:
        nested = _nested_model(model.model_fields[part].annotation)
        if nested is None:
            return None
        model = nested
    return model


def render(document: str) -> str:
    """``document`` with its generated part replaced by the current reference (appended if missing)."""
    reference = render_reference()
    if BEGIN in document and END in document:
        before = document[: document.index(BEGIN)]
        after = document[document.index(END) + len(END) :]
        return before + reference + after
    return document.rstrip("\n") + "\n\n" + reference + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date; write nothing")
    parser.add_argument("--path", type=Path, default=DOC, help=f"the document (default {DOC.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8") if args.path.exists() else "# Configuration\n"
    updated = render(current)
    if args.check:
        if updated != current:
            print(f"{args.path} is out of date: run scripts/settings_reference.py", file=sys.stderr)
            return 1
        return 0
    if updated != current:
        args.path.write_text(updated, encoding="utf-8")
        print(f"wrote {args.path}")
    else:
        print(f"{args.path} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
