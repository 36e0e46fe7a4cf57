"""Moderator commands: parsed once, here, for every platform.

``parse_command("persona add Priya Nair")`` returns a typed ``Command`` or raises ``CommandError``
whose message says what is wrong and how to write it. Adapters turn their platform's form (a slash
command, a console line) into the text after the command word.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from simulation.turn_taking import POLICY_NAMES

EXPORT_FORMATS = ("json", "csv", "md")
POLICIES = ("everyone", "addressed", "round_robin", "moderator", "model")


class CommandError(ValueError):
    """A command that cannot be run as written; ``usage`` shows the right form."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\nUsage: {self.usage}" if self.usage else base


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    summary: str
    #: Changes state: moderators only.
    moderator_only: bool = True
    #: Needs the channel to have a world.
    needs_world: bool = True


SPECS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in [
        CommandSpec("start", 'start [NAME] [--situation "TEXT"] [--scenario FILE]',
                    "bind this channel to a new world", needs_world=False),
        CommandSpec("stop", "stop", "end this channel's world (its history is kept)"),
        CommandSpec("status", "status", "what this channel's world is doing", moderator_only=False, needs_world=False),
        CommandSpec("persona add", "persona add NAME | FILE | {pasted JSON}",
                    "add a bundled persona, a persona file (ours or TinyTroupe's) or pasted JSON"),
        CommandSpec("persona list", "persona list", "list the personas here", moderator_only=False),
        CommandSpec("persona remove", "persona remove NAME", "remove a persona"),
        CommandSpec("persona show", "persona show NAME", "show a persona's spec", moderator_only=False),
        CommandSpec("personas", "personas", "list the bundled personas you can add", moderator_only=False,
                    needs_world=False),
        CommandSpec("policy", "policy [everyone|addressed|round_robin|moderator|model] [--exchanges N]",
                    "who answers a human message, and how many persona-to-persona exchanges follow"),
        CommandSpec("pick", "pick NAME [NAME...]", "choose who speaks next (moderator policy)"),
        CommandSpec("run", "run N", "let the world run N steps"),
        CommandSpec("pause", "pause", "personas stop answering (messages are still heard)"),
        CommandSpec("resume", "resume", "personas answer again, catching up on what they heard"),
        CommandSpec("observe", "observe NAME on|off", "privately receive a persona's thoughts as they happen"),
        CommandSpec("ask", "ask NAME QUESTION...", "talk to one persona"),
        CommandSpec("reset", "reset", "forget the conversation and memories (personas stay)"),
        CommandSpec("review", "review", "held persona messages waiting for a moderator"),
        CommandSpec("approve", "approve ID", "post a held message as it is"),
        CommandSpec("edit", "edit ID NEW TEXT", "post a held message with your changes"),
        CommandSpec("reject", "reject ID", "never post a held message"),
        CommandSpec("safety", "safety [team|red-team]",
                    "show the checks on persona messages, or switch the channel's safety mode"),
        CommandSpec("export", "export json|csv|md", "the world's conversation as a file", moderator_only=False),
        CommandSpec("usage", "usage", "model calls, tokens, cost and budget of this channel", moderator_only=False),
        CommandSpec("help", "help [COMMAND]", "this help", moderator_only=False, needs_world=False),
    ]
}


@dataclass(frozen=True)
class Command:
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> CommandSpec:
        return SPECS[self.name]


def help_text(command: str | None = None) -> str:
    if command:
        key = command.strip().lower()
        matches = [s for n, s in SPECS.items() if n == key or n.startswith(key + " ")]
        if not matches:
            raise CommandError(f"there is no command {command!r}; `help` lists them all")
        return "\n".join(f"{s.usage} — {s.summary}" + (" (moderators)" if s.moderator_only else "") for s in matches)
    lines = ["Troupe commands (moderators only where marked *):"]
    for spec in SPECS.values():
        lines.append(f"{'*' if spec.moderator_only else ' '} {spec.usage} — {spec.summary}")
    lines.append("Anything else you write in a channel with a world is said to its personas.")
    return "\n".join(lines)


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as error:
        raise CommandError(f"could not read the command: {error} (check your quotes)") from None


def _options(words: list[str], allowed: dict[str, str], usage: str) -> tuple[list[str], dict[str, str]]:
    """Split ``--name value`` options (only ``allowed`` ones) from positional words."""
    positional: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            name = word[2:]
            if name not in allowed:
                raise CommandError(f"unknown option {word}", usage)
            if i + 1 >= len(words):
                raise CommandError(f"{word} needs a value ({allowed[name]})", usage)
            options[name] = words[i + 1]
            i += 2
        else:
            positional.append(word)
            i += 1
    return positional, options


def _int(value: str, what: str, usage: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{what} must be a whole number, not {value!r}", usage) from None
    if not low <= number <= high:
        raise CommandError(f"{what} must be between {low} and {high}", usage)
    return number


def _leading_name(text: str) -> tuple[str, str]:
    text = text.strip()
    if text[:1] in ('"', "'"):
        end = text.find(text[0], 1)
        if end > 0:
            return text[1:end].strip(), text[end + 1 :].strip()
    name, _, remainder = text.partition(" ")
    return name.strip(), remainder.strip()


def parse_command(text: str, *, max_run_steps: int = 20) -> Command:
    """Parse the text after the command word into a ``Command``."""
    stripped = text.strip()
    if not stripped:
        return Command("help")
    head, _, rest = stripped.partition(" ")
    head = head.lower()
    rest = rest.strip()

    if head == "persona":
        sub, _, arg = rest.partition(" ")
        sub = sub.lower()
        arg = arg.strip()
        name = f"persona {sub}"
        if name not in SPECS:
            raise CommandError(
                f"`persona {sub}` is not a command" if sub else "`persona` needs a sub-command",
                "persona add|list|remove|show …",
            )
        usage = SPECS[name].usage
        if sub == "list":
            return Command(name)
        if not arg:
            raise CommandError(f"`{name}` needs a persona", usage)
        if sub == "add":
            if arg.startswith("{"):
                return Command(name, {"json": arg})
            words = _split(arg)
            ref = " ".join(words)
            looks_like_file = ref.endswith((".json", ".yaml", ".yml")) or "/" in ref
            return Command(name, {"file": ref} if looks_like_file else {"bundled": ref})
        return Command(name, {"name": " ".join(_split(arg))})

    if head not in SPECS:
        known = sorted({n.split()[0] for n in SPECS})
        raise CommandError(f"unknown command {head!r}; commands are: {', '.join(known)}. `help` explains each")
    spec = SPECS[head]
    words = _split(rest) if head not in ("ask", "edit", "approve", "reject") else []

    if head in ("approve", "reject", "edit"):
        number, _, remainder = rest.partition(" ")
        entry_id = _int(number.lstrip("#"), "the message id", spec.usage, 1, 2**62) if number else None
        if entry_id is None:
            raise CommandError(f"`{head}` needs the id that `review` shows", spec.usage)
        if head == "edit":
            if not remainder.strip():
                raise CommandError("`edit` needs the new text after the id", spec.usage)
            return Command(head, {"id": entry_id, "text": remainder.strip()})
        if remainder.strip():
            raise CommandError(f"`{head}` takes only the id", spec.usage)
        return Command(head, {"id": entry_id})
    if head == "safety":
        if len(words) > 1 or (words and words[0].lower() not in ("team", "red-team")):
            raise CommandError("the safety mode is team or red-team", spec.usage)
        return Command(head, {"mode": words[0].lower() if words else None})
    if head in ("stop", "status", "pause", "resume", "reset", "usage", "personas", "review"):
        if words:
            raise CommandError(f"`{head}` takes no arguments", spec.usage)
        return Command(head)
    if head == "help":
        return Command(head, {"topic": " ".join(words) or None})
    if head == "start":
        positional, options = _options(words, {"situation": "a sentence in quotes", "scenario": "a scenario file"}, spec.usage)
        return Command(head, {"name": " ".join(positional) or None, **options})
    if head == "policy":
        positional, options = _options(words, {"exchanges": "a number"}, spec.usage)
        args: dict[str, Any] = {}
        if len(positional) > 1:
            raise CommandError("give one policy", spec.usage)
        if positional:
            choice = positional[0].lower()
            if choice not in POLICY_NAMES:
                raise CommandError(f"unknown policy {positional[0]!r}; choose one of {', '.join(POLICIES)}", spec.usage)
            args["policy"] = choice.replace("-", "_")
        if "exchanges" in options:
            args["exchanges"] = _int(options["exchanges"], "--exchanges", spec.usage, 0, 20)
        return Command(head, args)
    if head == "run":
        if len(words) != 1:
            raise CommandError("`run` needs the number of steps", spec.usage)
        return Command(head, {"steps": _int(words[0], "the number of steps", spec.usage, 1, max_run_steps)})
    if head == "pick":
        if not words:
            raise CommandError("`pick` needs at least one persona", spec.usage)
        return Command(head, {"names": words})
    if head == "observe":
        if len(words) < 2 or words[-1].lower() not in ("on", "off"):
            raise CommandError("`observe` needs a persona and on or off", spec.usage)
        return Command(head, {"name": " ".join(words[:-1]), "on": words[-1].lower() == "on"})
    if head == "ask":
        # The first word names the persona; quotes allow a full name: ask "Priya Nair" what now?
        # The question is kept as typed (apostrophes and all).
        name, question = _leading_name(rest)
        if not name or not question:
            raise CommandError("`ask` needs a persona and a question", spec.usage)
        return Command(head, {"name": name, "text": question})
    if head == "export":
        if len(words) != 1 or words[0].lower() not in EXPORT_FORMATS:
            raise CommandError("`export` needs a format: json, csv or md", spec.usage)
        return Command(head, {"format": words[0].lower()})
    raise CommandError(f"unknown command {head!r}")  # pragma: no cover - SPECS and branches agree
