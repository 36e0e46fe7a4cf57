"""Moderator commands: described and parsed once, here, for every platform.

Each ``CommandSpec`` says how a command is written (its usage and grammar, for text platforms such
as the console and Slack) and what it takes (its typed options, from which Discord builds its slash
commands). ``parse_command("persona add Priya Nair")`` returns a typed ``Command`` or raises
``CommandError`` whose message says what is wrong and how to write it.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.menu import MenuCommand, Option
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
class Limits:
    """What the settings allow a command to ask for."""

    max_run_steps: int = 20


#: Reads the text after a command's name into its ``Command``.
Parser = Callable[[str, "CommandSpec", Limits], "Command"]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    summary: str
    #: The one line a platform's command menu shows.
    description: str
    parse: Parser
    options: tuple[Option, ...] = ()
    #: Changes state: moderators only.
    moderator_only: bool = True
    #: Needs the channel to have a world.
    needs_world: bool = True

    @property
    def menu(self) -> MenuCommand:
        return MenuCommand(self.name, self.description, self.options)


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


def parse_command(text: str, *, max_run_steps: int = 20) -> Command:
    """Parse the text after the command word into a ``Command``."""
    stripped = text.strip()
    if not stripped:
        return Command("help")
    head, _, rest = stripped.partition(" ")
    head = head.lower()
    rest = rest.strip()
    if head in GROUPS:
        sub, _, rest = rest.partition(" ")
        sub = sub.lower()
        rest = rest.strip()
        spec = SPECS.get(f"{head} {sub}")
        if spec is None:
            raise CommandError(f"`{head} {sub}` is not a command" if sub else f"`{head}` needs a sub-command",
                               f"{head} {'|'.join(GROUPS[head])} …")
        return spec.parse(rest, spec, Limits(max_run_steps))
    spec = SPECS.get(head)
    if spec is None:
        close = difflib.get_close_matches(head.casefold(), COMMAND_WORDS, n=2, cutoff=0.75)
        if close:
            guess = " or ".join(f"`{name}`" for name in close)
            raise CommandError(f"unknown command {head!r}: did you mean {guess}? `help` lists every command")
        raise CommandError(f"unknown command {head!r}; commands are: {', '.join(COMMAND_WORDS)}. `help` explains each")
    return spec.parse(rest, spec, Limits(max_run_steps))


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


def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


# -- the grammar of each command --------------------------------------------------------------------

MAX_FOCUS_ROUNDS = 5
MAX_POLL_OPTIONS = 10
MAX_GENERATE = 12


def _parse_bare(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    if _split(rest):
        raise CommandError(f"`{spec.name}` takes no arguments", spec.usage)
    return Command(spec.name)


def _parse_persona_list(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    return Command(spec.name)


def _parse_persona_add(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    if not rest:
        raise CommandError(f"`{spec.name}` needs a persona", spec.usage)
    if rest.startswith("{"):
        return Command(spec.name, {"json": rest})
    ref = " ".join(_split(rest))
    looks_like_file = ref.endswith((".json", ".yaml", ".yml")) or "/" in ref
    return Command(spec.name, {"file": ref} if looks_like_file else {"bundled": ref})


def _parse_persona_name(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    if not rest:
        raise CommandError(f"`{spec.name}` needs a persona", spec.usage)
    return Command(spec.name, {"name": " ".join(_split(rest))})


def _held_id(number: str, spec: CommandSpec) -> int:
    if not number:
        raise CommandError(f"`{spec.name}` needs the id that `review` shows", spec.usage)
    return _int(number.lstrip("#"), "the message id", spec.usage, 1, ID_LIMIT)


def _parse_decision(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    number, _, remainder = rest.partition(" ")
    entry_id = _held_id(number, spec)
    if remainder.strip():
        raise CommandError(f"`{spec.name}` takes only the id", spec.usage)
    return Command(spec.name, {"id": entry_id})


def _parse_edit(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    number, _, remainder = rest.partition(" ")
    entry_id = _held_id(number, spec)
    if not remainder.strip():
        raise CommandError("`edit` needs the new text after the id", spec.usage)
    return Command(spec.name, {"id": entry_id, "text": remainder.strip()})


def _parse_safety(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    words = _split(rest)
    if len(words) > 1 or (words and words[0].lower() not in ("team", "red-team")):
        raise CommandError("the safety mode is team or red-team", spec.usage)
    return Command(spec.name, {"mode": words[0].lower() if words else None})


def _parse_confirm(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    # Stop and reset act on the whole world: the first word asks, `confirm` does it.
    words = _split(rest)
    if words and [w.lower() for w in words] != ["confirm"]:
        raise CommandError(f"`{spec.name}` takes only the word confirm", spec.usage)
    return Command(spec.name, {"confirm": bool(words)})


def _parse_help(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    return Command(spec.name, {"topic": " ".join(_split(rest)) or None})


def _parse_start(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    words = _split(rest)
    reopen = any(w.lower() == "--reopen" for w in words)
    words = [w for w in words if w.lower() != "--reopen"]
    if reopen and words:
        raise CommandError("`start --reopen` takes nothing else: it reopens the world stopped here", spec.usage)
    positional, options = _options(words, {"situation": "a sentence in quotes", "scenario": "a scenario file"}, spec.usage)
    return Command(spec.name, {"name": " ".join(positional) or None, "reopen": reopen, **options})


def _parse_policy(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    positional, options = _options(_split(rest), {"exchanges": "a number"}, spec.usage)
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
    return Command(spec.name, args)


def _parse_run(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    words = _split(rest)
    if len(words) != 1:
        raise CommandError("`run` takes one number: the steps to run" if words else "`run` needs the number of steps",
                           spec.usage)
    return Command(spec.name, {"steps": _int(words[0], "the number of steps", spec.usage, 1, limits.max_run_steps)})


def _parse_pick(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    words = _split(rest)
    if not words:
        raise CommandError("`pick` needs at least one persona", spec.usage)
    return Command(spec.name, {"names": words})


def _parse_observe(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    words = _split(rest)
    if len(words) < 2 or words[-1].lower() not in ("on", "off"):
        raise CommandError("`observe` needs a persona and on or off", spec.usage)
    return Command(spec.name, {"name": " ".join(words[:-1]), "on": words[-1].lower() == "on"})


def _parse_ask(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    # The first word names the persona; quotes allow a full name: ask "Priya Nair" what now?
    # The question is kept as typed (apostrophes and all).
    name, question = _leading_name(rest)
    if not name or not question:
        raise CommandError("`ask` needs a persona and a question", spec.usage)
    return Command(spec.name, {"name": name, "text": question})


def _parse_export(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    words = _split(rest)
    if len(words) == 1 and words[0].lower() not in EXPORT_FORMATS:
        raise CommandError(f"`export` cannot write {words[0]!r}: the formats are json, csv and md", spec.usage)
    if len(words) != 1:
        raise CommandError("`export` needs a format: json, csv or md", spec.usage)
    return Command(spec.name, {"format": words[0].lower()})


def _parse_focus(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    positional, options = _options(_split(rest), {"rounds": "a number", "personas": "names separated by commas"},
                                   spec.usage)
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
    return Command(spec.name, args)


def _parse_probe(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    if not rest.strip():
        raise CommandError("`probe` needs the question to ask", spec.usage)
    return Command(spec.name, {"text": rest.strip()})


def _parse_summary(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    positional, options = _options(_split(rest), {"since": "an event id"}, spec.usage)
    if positional:
        raise CommandError("`summary` takes only --since", spec.usage)
    since = _int(options["since"].lstrip("#"), "--since", spec.usage, 0, ID_LIMIT) if "since" in options else None
    return Command(spec.name, {"since": since})


def _parse_poll(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    words = _split(rest)
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
    return Command(spec.name, {"question": question, "options": options, **({"unquoted": True} if unquoted else {})})


def _parse_extract(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    positional, options = _options(_split(rest), {"schema": "a JSON schema file", "format": "json or csv"}, spec.usage)
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
    return Command(spec.name, {"fields": fields, "schema": options.get("schema"), "format": fmt})


def _parse_generate(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    positional, options = _options(_split(rest), {"plan": "a sampling plan in quotes"}, spec.usage)
    if len(positional) < 2:
        raise CommandError("`generate` needs how many and a description of the population", spec.usage)
    count = _int(positional[0], "the number of personas", spec.usage, 1, MAX_GENERATE)
    return Command(spec.name, {"count": count, "description": " ".join(positional[1:]), "plan": options.get("plan")})


def _parse_enrich(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    positional, options = _options(_split(rest), {"requirements": "what to add, in quotes"}, spec.usage)
    content = " ".join(positional).strip()
    if not content:
        raise CommandError("`enrich` needs the content to enrich", spec.usage)
    return Command(spec.name, {"content": content, "requirements": options.get("requirements")})


def _parse_story(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    words = _split(rest)
    if words and (len(words) > 1 or words[0].lower() != "inject"):
        raise CommandError("`story` takes nothing, or inject", spec.usage)
    return Command(spec.name, {"inject": bool(words)})


def _parse_validate(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    words = _split(rest)
    if len(words) < 2:
        raise CommandError("`validate` needs a persona and the expectations (in quotes)", spec.usage)
    return Command(spec.name, {"name": words[0], "expectations": " ".join(words[1:])})


def _parse_fork(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    # ``--from_event`` is how a command menu writes ``--from`` (an option cannot be called "from" there).
    positional, options = _options(_split(rest), {"from": "an event id", "from_event": "an event id"}, spec.usage)
    if len(positional) != 1:
        raise CommandError("`fork` needs one name for the branch (e.g. discount)" if not positional else
                           "a branch's name is one word (e.g. discount-10)", spec.usage)
    given = options.get("from", options.get("from_event"))
    at = _int(given.lstrip("#"), "--from", spec.usage, 0, ID_LIMIT) if given is not None else None
    return Command(spec.name, {"name": positional[0], "at": at})


def _parse_branch(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    name, _, text = rest.strip().partition(" ")
    if not name or not text.strip():
        raise CommandError("`branch` needs a branch's name and what to say in it", spec.usage)
    return Command(spec.name, {"name": name, "text": text.strip()})


def _parse_compare(rest: str, spec: CommandSpec, limits: Limits) -> Command:
    positional, options = _options(_split(rest), {"question": "a question in quotes"}, spec.usage)
    if len(positional) != 2:
        raise CommandError("`compare` needs two names: two branches, or main and a branch", spec.usage)
    if positional[0].casefold() == positional[1].casefold():
        raise CommandError(f"compare two different worlds, not {positional[0]!r} with itself", spec.usage)
    question = options.get("question", "").strip() or None
    if "question" in options and question is None:
        raise CommandError("--question needs the question to put to both", spec.usage)
    return Command(spec.name, {"first": positional[0], "second": positional[1], "question": question})


# -- the commands -----------------------------------------------------------------------------------

#: A persona of this channel's world, named in a command.
_PERSONA = Option("name", suggest="personas")
_CONFIRM = "true to {}; without, the bot says what {}"
_HELD_ID = Option("id", int, min_value=1)

SPECS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in [
        CommandSpec("start", 'start [NAME] [--situation "TEXT"] [--scenario FILE] | start --reopen',
                    "bind this channel to a new world, or reopen the one stopped here",
                    "Bind this channel to a new world, or reopen the stopped one", _parse_start,
                    (Option("name", description="the world's name", required=False),
                     Option("situation", description="what the personas are told is going on", required=False,
                            form="option"),
                     Option("scenario", description="a scenario file on the bot's machine", required=False,
                            form="option"),
                     Option("reopen", bool, "true to reopen the world stopped in this channel", required=False,
                            form="flag", flag_word="--reopen", alone=True)),
                    needs_world=False),
        CommandSpec("stop", "stop [confirm]", "end this channel's world (its history is kept)",
                    "End this channel's world (its history is kept)", _parse_confirm,
                    (Option("confirm", bool, _CONFIRM.format("stop it", "stopping does"), required=False,
                            form="flag", flag_word="confirm"),)),
        CommandSpec("status", "status", "what this channel's world is doing", "What this channel's world is doing",
                    _parse_bare, moderator_only=False, needs_world=False),
        CommandSpec("persona add", "persona add NAME | FILE | {pasted JSON}",
                    "add a bundled persona, a persona file (ours or TinyTroupe's) or pasted JSON",
                    "Add a bundled persona, a persona file or pasted JSON", _parse_persona_add,
                    (Option("source", description="a bundled persona's name, a file path, or JSON", suggest="bundled",
                            form="text"),)),
        CommandSpec("persona list", "persona list", "list the personas here", "List the personas here",
                    _parse_persona_list, moderator_only=False),
        CommandSpec("persona remove", "persona remove NAME", "remove a persona", "Remove a persona",
                    _parse_persona_name, (_PERSONA,)),
        # A persona's whole description may hold what its author never meant for the channel.
        CommandSpec("persona show", "persona show NAME", "show a persona's spec", "Show a persona's spec",
                    _parse_persona_name, (_PERSONA,)),
        CommandSpec("personas", "personas", "list the bundled personas you can add", "The bundled personas you can add",
                    _parse_bare, moderator_only=False, needs_world=False),
        CommandSpec("policy", f"policy [{'|'.join(POLICY_NAMES)}] [--exchanges N]",
                    "who answers a human message, and how many persona-to-persona exchanges follow",
                    "Who answers a human message, and how many exchanges follow", _parse_policy,
                    (Option("policy", required=False, choices=POLICY_NAMES),
                     Option("exchanges", int, required=False, min_value=0, max_value=20, form="option"))),
        CommandSpec("pick", "pick NAME [NAME...]", "choose who speaks next (moderator policy)",
                    "Choose who speaks next (moderator policy)", _parse_pick,
                    (_PERSONA, Option("second", required=False, suggest="personas"),
                     Option("third", required=False, suggest="personas"))),
        CommandSpec("run", "run N", "let the world run N steps", "Let the world run N steps", _parse_run,
                    (Option("steps", int, min_value=1, max_value=100),)),
        CommandSpec("pause", "pause", "personas stop answering (messages are still heard)",
                    "Personas stop answering (messages are still heard)", _parse_bare),
        CommandSpec("resume", "resume", "personas answer again, catching up on what they heard",
                    "Personas answer again", _parse_bare),
        CommandSpec("observe", "observe NAME on|off", "privately receive a persona's thoughts as they happen",
                    "Privately receive a persona's thoughts as they happen", _parse_observe,
                    (_PERSONA, Option("state", choices=("on", "off")))),
        CommandSpec("ask", "ask NAME QUESTION...", "talk to one persona", "Talk to one persona", _parse_ask,
                    (_PERSONA, Option("question", form="text"))),
        CommandSpec("interview", "interview NAME", "open a thread to talk with one persona, where the platform has threads",
                    "Open a thread to talk with one persona", _parse_persona_name, (_PERSONA,), moderator_only=False),
        CommandSpec("reset", "reset [confirm]", "forget the conversation and memories (personas stay)",
                    "Forget the conversation and memories (personas stay)", _parse_confirm,
                    (Option("confirm", bool, _CONFIRM.format("reset", "a reset forgets"), required=False,
                            form="flag", flag_word="confirm"),)),
        CommandSpec("review", "review", "held persona messages waiting for a moderator",
                    "Held persona messages waiting for a moderator", _parse_bare),
        CommandSpec("approve", "approve ID", "post a held message as it is", "Post a held message as it is",
                    _parse_decision, (_HELD_ID,)),
        CommandSpec("edit", "edit ID NEW TEXT", "post a held message with your changes",
                    "Post a held message with your changes", _parse_edit, (_HELD_ID, Option("text", form="text"))),
        CommandSpec("reject", "reject ID", "never post a held message", "Never post a held message",
                    _parse_decision, (_HELD_ID,)),
        CommandSpec("safety", "safety [team|red-team]",
                    "show the checks on persona messages, or switch the channel's safety mode",
                    "Show the checks, or switch the channel's safety mode", _parse_safety,
                    (Option("mode", required=False, choices=("team", "red-team")),)),
        CommandSpec("export", "export json|csv|md", "the world's conversation as a file",
                    "The world's conversation as a file", _parse_export,
                    (Option("format", choices=EXPORT_FORMATS),), moderator_only=False),
        CommandSpec("focus", 'focus "QUESTION" [--rounds N] [--personas "NAME, NAME"]',
                    "a focus group: every persona answers in turn, later rounds react; a summary at the end",
                    "Every persona answers the question in turn, then a summary", _parse_focus,
                    (Option("question", description="the question put to the group"),
                     Option("rounds", int, f"rounds of answers (1-{MAX_FOCUS_ROUNDS})", required=False, min_value=1,
                            max_value=MAX_FOCUS_ROUNDS, form="option"),
                     Option("personas", description="who takes part, names separated by commas (default: everyone)",
                            required=False, form="option"))),
        CommandSpec("probe", "probe QUESTION...", "ask the running focus group this in its next round",
                    "Ask the running focus group this in its next round", _parse_probe,
                    (Option("question", form="text"),)),
        CommandSpec("summary", "summary [--since EVENT_ID]", "the conversation so far and where each persona stands",
                    "The conversation so far and where each persona stands", _parse_summary,
                    (Option("since", int, "summarise only events after this event id", required=False, min_value=0,
                            form="option"),)),
        CommandSpec("poll", 'poll "QUESTION" OPTION OPTION [OPTION...]',
                    "every persona picks an option and says why; the tally comes with a chart",
                    "Every persona picks an option and says why; a chart shows the tally", _parse_poll,
                    (Option("question", description="the poll's question"),
                     Option("options", description="the options, separated by commas", form="list",
                            separator=r"[,;\n]"))),
        CommandSpec("extract", "extract FIELD [FIELD...] | extract --schema FILE [--format json|csv]",
                    "structured answers from each persona, as a file",
                    "Structured answers from each persona, as a file", _parse_extract,
                    (Option("fields", description="field names separated by spaces or commas, e.g. stance reasons budget",
                            form="list", separator=r"[\s,]+"),
                     Option("format", required=False, choices=("json", "csv"), form="option"))),
        CommandSpec("generate", 'generate N "POPULATION DESCRIPTION" [--plan "SAMPLING PLAN"]',
                    "add N generated personas to this world", "Add generated personas to this world", _parse_generate,
                    (Option("count", int, f"how many (1-{MAX_GENERATE})", min_value=1, max_value=MAX_GENERATE),
                     Option("description", description="the population, e.g. nurses in Lisbon"),
                     Option("plan", description="a sampling plan, e.g. 40% under 30, half in cities", required=False,
                            form="option"))),
        CommandSpec("enrich", 'enrich "CONTENT" [--requirements "WHAT TO ADD"]',
                    "make an artifact (an email, an ad) realistic for use in the simulation",
                    "Make an artifact (an email, an ad) realistic for the simulation", _parse_enrich,
                    (Option("content"), Option("requirements", required=False, form="option"))),
        CommandSpec("story", "story [inject]", "suggest the next beat of the simulation, or inject the suggestion",
                    "Suggest the next beat of the simulation, or inject the suggestion", _parse_story,
                    (Option("action", required=False, choices=("suggest", "inject"), implied_choice="suggest"),)),
        CommandSpec("validate", 'validate NAME "EXPECTATIONS"',
                    "interview a persona and score how well it matches the expectations (0-1)",
                    "Interview a persona and score it against expectations", _parse_validate,
                    (_PERSONA, Option("expectations"))),
        CommandSpec("fork", "fork NAME [--from EVENT_ID]",
                    "fork this world into a branch that runs beside it, in a thread of its own (same personas, "
                    "memories and conversation; no model call); --from starts it right after an earlier event",
                    "Fork this world into a branch, in a thread of its own", _parse_fork,
                    (Option("name", description="the branch's name, e.g. discount"),
                     Option("from_event", int, "start from right after this event id (the later ones are left out)",
                            required=False, min_value=0, form="option"))),
        CommandSpec("branch", "branch NAME TEXT...",
                    "say something in one branch only (what writing in its thread does; the console has no threads)",
                    "Say something in one branch only", _parse_branch,
                    (Option("name", description="the branch's name"), Option("text", form="text")),
                    moderator_only=False),
        CommandSpec("compare", 'compare A B [--question "TEXT"]',
                    "a card comparing two branches (main is the channel's world): each persona's stance in "
                    "both and what changed, with quotes; --question puts the same question to both first",
                    "Compare two branches, persona by persona", _parse_compare,
                    (Option("first", description="a branch's name, or main"),
                     Option("second", description="another branch's name, or main"),
                     Option("question", description="a question to put to both first", required=False,
                            form="option"))),
        CommandSpec("usage", "usage", "model calls, tokens, cost and budget of this channel",
                    "Model calls, tokens and cost of this channel", _parse_bare, moderator_only=False),
        CommandSpec("help", "help [COMMAND]", "this help", "Troupe's commands", _parse_help,
                    (Option("command", required=False, form="text"),), moderator_only=False, needs_world=False),
    ]
}

#: The words commands start with ("persona add" starts with "persona"), sorted.
COMMAND_WORDS = sorted({name.split()[0] for name in SPECS})
#: Words that start several commands ("persona"), with the words that may follow them.
GROUPS: dict[str, list[str]] = {}
for _name in SPECS:
    if " " in _name:
        _group, _sub = _name.split(" ", 1)
        GROUPS.setdefault(_group, []).append(_sub)

#: The commands as platforms' menus offer them.
MENU: tuple[MenuCommand, ...] = tuple(spec.menu for spec in SPECS.values())


_HINT = re.compile(r"`(?=(?:" + "|".join(sorted(COMMAND_WORDS, key=len, reverse=True)) + r")\b)")


def prefixed(text: str, prefix: str) -> str:
    """``text`` with each command hint ("`start NAME`") written as it is typed here ("`/start NAME`")."""
    return _HINT.sub(lambda _: f"`{prefix}", text) if prefix else text
