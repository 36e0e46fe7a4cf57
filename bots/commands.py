"""Moderator commands: parsed once, here, for every platform.

``parse_command("persona add Priya Nair")`` returns a typed ``Command`` or raises ``CommandError``
whose message says what is wrong and how to write it. Adapters turn their platform's form (a slash
command, a console line) into the text after the command word.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from config.turn_taking import POLICY_NAMES
from simulation.turn_taking import policy_name

EXPORT_FORMATS = ("json", "csv", "md")


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
        CommandSpec("start", 'start [NAME] [--situation "TEXT"] [--scenario FILE] | start --reopen',
                    "bind this channel to a new world, or reopen the one stopped here", needs_world=False),
        CommandSpec("stop", "stop [confirm]", "end this channel's world (its history is kept)"),
        CommandSpec("status", "status", "what this channel's world is doing", moderator_only=False, needs_world=False),
        CommandSpec("persona add", "persona add NAME | FILE | {pasted JSON}",
                    "add a bundled persona, a persona file (ours or TinyTroupe's) or pasted JSON"),
        CommandSpec("persona list", "persona list", "list the personas here", moderator_only=False),
        CommandSpec("persona remove", "persona remove NAME", "remove a persona"),
        # A persona's whole description may hold what its author never meant for the channel.
        CommandSpec("persona show", "persona show NAME", "show a persona's spec"),
        CommandSpec("personas", "personas", "list the bundled personas you can add", moderator_only=False,
                    needs_world=False),
        CommandSpec("policy", f"policy [{'|'.join(POLICY_NAMES)}] [--exchanges N]",
                    "who answers a human message, and how many persona-to-persona exchanges follow"),
        CommandSpec("pick", "pick NAME [NAME...]", "choose who speaks next (moderator policy)"),
        CommandSpec("run", "run N", "let the world run N steps"),
        CommandSpec("pause", "pause", "personas stop answering (messages are still heard)"),
        CommandSpec("resume", "resume", "personas answer again, catching up on what they heard"),
        CommandSpec("observe", "observe NAME on|off", "privately receive a persona's thoughts as they happen"),
        CommandSpec("ask", "ask NAME QUESTION...", "talk to one persona"),
        CommandSpec("reset", "reset [confirm]", "forget the conversation and memories (personas stay)"),
        CommandSpec("review", "review", "held persona messages waiting for a moderator"),
        CommandSpec("approve", "approve ID", "post a held message as it is"),
        CommandSpec("edit", "edit ID NEW TEXT", "post a held message with your changes"),
        CommandSpec("reject", "reject ID", "never post a held message"),
        CommandSpec("safety", "safety [team|red-team]",
                    "show the checks on persona messages, or switch the channel's safety mode"),
        CommandSpec("export", "export json|csv|md", "the world's conversation as a file", moderator_only=False),
        CommandSpec("focus", 'focus "QUESTION" [--rounds N] [--personas "NAME, NAME"]',
                    "a focus group: every persona answers in turn, later rounds react; a summary at the end"),
        CommandSpec("probe", "probe QUESTION...", "ask the running focus group this in its next round"),
        CommandSpec("summary", "summary [--since EVENT_ID]", "the conversation so far and where each persona stands"),
        CommandSpec("poll", 'poll "QUESTION" OPTION OPTION [OPTION...]',
                    "every persona picks an option and says why; the tally comes with a chart"),
        CommandSpec("extract", "extract FIELD [FIELD...] | extract --schema FILE [--format json|csv]",
                    "structured answers from each persona, as a file"),
        CommandSpec("generate", 'generate N "POPULATION DESCRIPTION" [--plan "SAMPLING PLAN"]',
                    "add N generated personas to this world"),
        CommandSpec("enrich", 'enrich "CONTENT" [--requirements "WHAT TO ADD"]',
                    "make an artifact (an email, an ad) realistic for use in the simulation"),
        CommandSpec("story", "story [inject]", "suggest the next beat of the simulation, or inject the suggestion"),
        CommandSpec("validate", 'validate NAME "EXPECTATIONS"',
                    "interview a persona and score how well it matches the expectations (0-1)"),
        CommandSpec("usage", "usage", "model calls, tokens, cost and budget of this channel", moderator_only=False),
        CommandSpec("help", "help [COMMAND]", "this help", moderator_only=False, needs_world=False),
    ]
}

#: The words commands start with ("persona add" starts with "persona"), sorted.
COMMAND_WORDS = sorted({name.split()[0] for name in SPECS})


@dataclass(frozen=True)
class Command:
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> CommandSpec:
        return SPECS[self.name]


def help_text(command: str | None = None) -> str:
    if command:
        key = command.strip().lstrip("/").lower()  # "help /poll" asks about poll
        if key in ("quit", "exit"):
            return "In the console, `/quit` (or `/exit`, or Ctrl-D) leaves; the world is kept for the next start."
        matches = [s for n, s in SPECS.items() if n == key or n.startswith(key + " ")]
        if not matches:
            raise CommandError(f"there is no command {command!r}; `help` lists them all")
        return "\n".join(f"{s.usage} — {s.summary}" + (" (moderators)" if s.moderator_only else "") for s in matches)
    lines = ["Troupe commands (those marked “moderators” are for moderators only):"]
    for spec in SPECS.values():
        lines.append(f"• {spec.usage} — {spec.summary}" + (" (moderators)" if spec.moderator_only else ""))
    lines.append("Anything else you write in a channel with a world is said to its personas. "
                 "In the console, `/quit` (or `/exit`, or Ctrl-D) leaves.")
    return "\n".join(lines)


#: An apostrophe inside a word ("What's", "O'Brien") is not a quote; it is kept aside while splitting.
_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
_KEPT_APOSTROPHE = "\ue000"


def _split(text: str) -> list[str]:
    try:
        words = shlex.split(_APOSTROPHE.sub(_KEPT_APOSTROPHE, text))
    except ValueError as error:
        raise CommandError(f"could not read the command: {error} (check your quotes)") from None
    return [word.replace(_KEPT_APOSTROPHE, "'") for word in words]


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


#: The largest id a command accepts (SQLite's integers are 64-bit).
ID_LIMIT = 2**62


def _int(value: str, what: str, usage: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{what} must be a whole number, not {value!r}", usage) from None
    if not low <= number <= high:
        if high >= ID_LIMIT:  # ids have no useful upper bound to name
            raise CommandError(f"{what} must be {low} or more" if number < low else f"{what} {number} is larger than any there is",
                               usage)
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
        close = difflib.get_close_matches(head.casefold(), COMMAND_WORDS, n=2, cutoff=0.75)
        if close:
            guess = " or ".join(f"`{name}`" for name in close)
            raise CommandError(f"unknown command {head!r}: did you mean {guess}? `help` lists every command")
        raise CommandError(f"unknown command {head!r}; commands are: {', '.join(COMMAND_WORDS)}. `help` explains each")
    spec = SPECS[head]
    words = _split(rest) if head not in ("ask", "edit", "approve", "reject", "probe") else []

    if head in ("approve", "reject", "edit"):
        number, _, remainder = rest.partition(" ")
        entry_id = _int(number.lstrip("#"), "the message id", spec.usage, 1, ID_LIMIT) if number else None
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
    if head in ("stop", "reset"):
        # Both act on the whole world: the first word asks, `confirm` does it.
        if words and [w.lower() for w in words] != ["confirm"]:
            raise CommandError(f"`{head}` takes only the word confirm", spec.usage)
        return Command(head, {"confirm": bool(words)})
    if head in ("status", "pause", "resume", "usage", "personas", "review"):
        if words:
            raise CommandError(f"`{head}` takes no arguments", spec.usage)
        return Command(head)
    if head == "help":
        return Command(head, {"topic": " ".join(words) or None})
    if head == "start":
        reopen = any(w.lower() == "--reopen" for w in words)
        words = [w for w in words if w.lower() != "--reopen"]
        if reopen and words:
            raise CommandError("`start --reopen` takes nothing else: it reopens the world stopped here", spec.usage)
        positional, options = _options(words, {"situation": "a sentence in quotes", "scenario": "a scenario file"}, spec.usage)
        return Command(head, {"name": " ".join(positional) or None, "reopen": reopen, **options})
    if head == "policy":
        positional, options = _options(words, {"exchanges": "a number"}, spec.usage)
        args: dict[str, Any] = {}
        if len(positional) > 1:
            raise CommandError("give one policy", spec.usage)
        if positional:
            choice = policy_name(positional[0])
            if choice is None:
                raise CommandError(f"unknown policy {positional[0]!r}; choose one of {', '.join(POLICY_NAMES)}", spec.usage)
            args["policy"] = choice
        if "exchanges" in options:
            args["exchanges"] = _int(options["exchanges"], "--exchanges", spec.usage, 0, 20)
        return Command(head, args)
    if head == "run":
        if len(words) != 1:
            raise CommandError("`run` takes one number: the steps to run" if words else "`run` needs the number of steps",
                               spec.usage)
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
    if head in RESEARCH_PARSERS:
        return RESEARCH_PARSERS[head](rest, words, spec)
    if head == "export":
        if len(words) == 1 and words[0].lower() not in EXPORT_FORMATS:
            raise CommandError(f"`export` cannot write {words[0]!r}: the formats are json, csv and md", spec.usage)
        if len(words) != 1:
            raise CommandError("`export` needs a format: json, csv or md", spec.usage)
        return Command(head, {"format": words[0].lower()})
    raise CommandError(f"unknown command {head!r}")  # pragma: no cover - SPECS and branches agree


# -- research commands ------------------------------------------------------------------------------

MAX_FOCUS_ROUNDS = 5
MAX_POLL_OPTIONS = 10
MAX_GENERATE = 12


def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


def _parse_focus(rest: str, words: list[str], spec: CommandSpec) -> Command:
    positional, options = _options(words, {"rounds": "a number", "personas": "names separated by commas"}, spec.usage)
    question = " ".join(positional).strip()
    if not question:
        raise CommandError("`focus` needs a question", spec.usage)
    args: dict[str, Any] = {"question": question, "rounds": 2}
    if "rounds" in options:
        args["rounds"] = _int(options["rounds"], "--rounds", spec.usage, 1, MAX_FOCUS_ROUNDS)
    if "personas" in options:
        args["personas"] = _names(options["personas"])
        if not args["personas"]:
            raise CommandError("--personas needs at least one name", spec.usage)
    return Command("focus", args)


def _parse_probe(rest: str, words: list[str], spec: CommandSpec) -> Command:
    if not rest.strip():
        raise CommandError("`probe` needs the question to ask", spec.usage)
    return Command("probe", {"text": rest.strip()})


def _parse_summary(rest: str, words: list[str], spec: CommandSpec) -> Command:
    positional, options = _options(words, {"since": "an event id"}, spec.usage)
    if positional:
        raise CommandError("`summary` takes only --since", spec.usage)
    since = _int(options["since"].lstrip("#"), "--since", spec.usage, 0, ID_LIMIT) if "since" in options else None
    return Command("summary", {"since": since})


def _parse_poll(rest: str, words: list[str], spec: CommandSpec) -> Command:
    if len(words) < 3:
        raise CommandError("`poll` needs a question (in quotes) and at least two options", spec.usage)
    question, options = words[0].strip(), [o.strip() for o in words[1:] if o.strip()]
    # An unquoted question of several words ("Ship on Friday? yes no") runs to its question mark.
    end = next((i for i, o in enumerate(options) if o.endswith("?")), None)
    unquoted = rest[:1] not in ('"', "'") and not question.endswith("?") and end is not None
    if unquoted:
        question, options = " ".join([question, *options[: end + 1]]), options[end + 1 :]
        if len(options) < 2:
            raise CommandError(f"after the question “{question}” the poll needs at least two options", spec.usage)
    if len(options) > MAX_POLL_OPTIONS:
        raise CommandError(f"a poll has at most {MAX_POLL_OPTIONS} options", spec.usage)
    if len({o.casefold() for o in options}) != len(options):
        raise CommandError("the poll's options must differ", spec.usage)
    return Command("poll", {"question": question, "options": options, **({"unquoted": True} if unquoted else {})})


def _parse_extract(rest: str, words: list[str], spec: CommandSpec) -> Command:
    positional, options = _options(words, {"schema": "a JSON schema file", "format": "json or csv"}, spec.usage)
    fmt = options.get("format", "json").lower()
    if fmt not in ("json", "csv"):
        raise CommandError("--format is json or csv", spec.usage)
    if "schema" in options and positional:
        raise CommandError("give fields or --schema, not both", spec.usage)
    if "schema" not in options and not positional:
        raise CommandError("`extract` needs the fields to fill (e.g. stance reasons willingness_to_pay)", spec.usage)
    fields = [f.strip(",") for f in positional if f.strip(",")]
    for name in fields:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise CommandError(f"{name!r} is not a field name: use letters, digits and underscores", spec.usage)
    return Command("extract", {"fields": fields, "schema": options.get("schema"), "format": fmt})


def _parse_generate(rest: str, words: list[str], spec: CommandSpec) -> Command:
    positional, options = _options(words, {"plan": "a sampling plan in quotes"}, spec.usage)
    if len(positional) < 2:
        raise CommandError("`generate` needs how many and a description of the population", spec.usage)
    count = _int(positional[0], "the number of personas", spec.usage, 1, MAX_GENERATE)
    return Command("generate", {"count": count, "description": " ".join(positional[1:]), "plan": options.get("plan")})


def _parse_enrich(rest: str, words: list[str], spec: CommandSpec) -> Command:
    positional, options = _options(words, {"requirements": "what to add, in quotes"}, spec.usage)
    content = " ".join(positional).strip()
    if not content:
        raise CommandError("`enrich` needs the content to enrich", spec.usage)
    return Command("enrich", {"content": content, "requirements": options.get("requirements")})


def _parse_story(rest: str, words: list[str], spec: CommandSpec) -> Command:
    if words and (len(words) > 1 or words[0].lower() != "inject"):
        raise CommandError("`story` takes nothing, or inject", spec.usage)
    return Command("story", {"inject": bool(words)})


def _parse_validate(rest: str, words: list[str], spec: CommandSpec) -> Command:
    if len(words) < 2:
        raise CommandError("`validate` needs a persona and the expectations (in quotes)", spec.usage)
    return Command("validate", {"name": words[0], "expectations": " ".join(words[1:])})


RESEARCH_PARSERS = {
    "focus": _parse_focus,
    "probe": _parse_probe,
    "summary": _parse_summary,
    "poll": _parse_poll,
    "extract": _parse_extract,
    "generate": _parse_generate,
    "enrich": _parse_enrich,
    "story": _parse_story,
    "validate": _parse_validate,
}


_HINT = re.compile(r"`(?=(?:" + "|".join(sorted(COMMAND_WORDS, key=len, reverse=True)) + r")\b)")


def prefixed(text: str, prefix: str) -> str:
    """``text`` with each command hint ("`start NAME`") written as it is typed here ("`/start NAME`")."""
    return _HINT.sub(lambda _: f"`{prefix}", text) if prefix else text

