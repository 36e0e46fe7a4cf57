"""The ``troupe`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from adapters.base import Adapter, clip, free_path, literal, visible
from config.settings import Settings, SettingsError, load_settings
from config.shards import check_shards, parse_shard_ids
from config.turn_taking import POLICY_NAMES
from simulation.events import Event, EventKind
from simulation.llm.errors import LLMError, ModelConfigurationError

if TYPE_CHECKING:
    from adapters.console import ConsoleAdapter
    from bots.app import TroupeApp
    from bots.session import ChannelSession
    from bots.storage import OutboxEntry, WorldRecord

log = logging.getLogger(__name__)

#: ``console --script``: the script ran to its end, but some of its commands could not be done.
EXIT_SCRIPT_FAILED = 1
#: It failed while running (a damaged database, a full disk); what it was given was fine.
EXIT_FAILED = 1
#: What it was given cannot be used: an argument, a setting, a file or folder to change.
EXIT_BAD_INPUT = 2
EXIT_MODEL_FAILED = 3
#: Longest wait for in-flight work after SIGTERM / Ctrl-C: within the 10 s a container manager gives.
DEFAULT_STOP_TIMEOUT_S = 7.0


def troupe_version() -> str:
    try:
        return version("troupe")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="troupe",
        description="Simulated personas for team chat channels.",
    )
    parser.add_argument("--version", action="version", version=f"troupe {troupe_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    simulate = commands.add_parser("simulate", help="run a world from a scenario file and print the conversation")
    simulate.add_argument("scenario", type=Path, help="scenario YAML (personas, opening, steps)")
    simulate.add_argument("--steps", type=_positive_int, help="steps after each message (overrides the file)")
    simulate.add_argument("--thoughts", action="store_true", help="also print what personas think")
    simulate.add_argument("--save", type=Path, metavar="FILE", help="save the world as JSON at the end")

    for name, about in (("console", "a chat channel in this terminal: you moderate, personas answer (the default)"),
                        ("run", "same as `console`")):
        console = commands.add_parser(name, help=about)
        console.add_argument("--script", type=Path, metavar="FILE", help="read the lines from FILE instead of the keyboard")
        console.add_argument("--empty", action="store_true", help="on first start, do not create a sample world")
    discord = commands.add_parser("discord", help="run the bot on Discord (needs TROUPE_DISCORD_TOKEN)")
    _add_shard_options(discord)
    slack = commands.add_parser(
        "slack", help="run the bot on Slack: Socket Mode (TROUPE_SLACK_BOT_TOKEN and TROUPE_SLACK_APP_TOKEN), or --http"
    )
    slack.add_argument("--http", type=int, metavar="PORT", dest="http_port",
                       help="receive Slack's requests on this port instead (needs TROUPE_SLACK_SIGNING_SECRET)")

    serve = commands.add_parser(
        "serve",
        help="run every configured platform in one process: Discord (TROUPE_DISCORD_TOKEN), Slack "
             "(TROUPE_SLACK_BOT_TOKEN) and, with --console, standard input",
    )
    serve.add_argument("--console", action="store_true",
                       help="also serve the console channel, reading lines from standard input (not interactive)")
    serve.add_argument("--slack-http", type=int, metavar="PORT", dest="slack_http_port",
                       help="receive Slack's requests on this port instead of Socket Mode "
                            "(needs TROUPE_SLACK_SIGNING_SECRET)")
    serve.add_argument("--stop-timeout", type=float, default=DEFAULT_STOP_TIMEOUT_S, metavar="SECONDS",
                       help="on SIGTERM or Ctrl-C, longest wait for in-flight work before it is cut short "
                            f"(it resumes from storage at the next start; default {DEFAULT_STOP_TIMEOUT_S:g})")
    _add_shard_options(serve)

    doctor = commands.add_parser(
        "doctor", help="check the settings, database, model and platform tokens; say how to fix what fails"
    )
    doctor.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                        help="longest wait for each network check (default 15)")
    backup = commands.add_parser(
        "backup", help="copy the database to PATH, safely while the bot runs (restore: docs/configuration.md)"
    )
    backup.add_argument("path", metavar="PATH",
                        help="the backup file, or a folder for a dated one (created if PATH ends with /)")
    backup.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    migrate = commands.add_parser(
        "migrate", help="move the SQLite database into an empty PostgreSQL database, for several workers"
    )
    migrate.add_argument("--to", required=True, metavar="URL", dest="target",
                         help="postgresql://USER:PASSWORD@HOST:PORT/DATABASE (an empty database)")
    export = commands.add_parser(
        "export", help="list the stored worlds, or export one's conversation (JSON, CSV or Markdown)"
    )
    export.add_argument("world", nargs="?", metavar="WORLD", help="world id (or a unique start of it) or name")
    export.add_argument("--format", choices=("json", "csv", "md"), default="json", dest="fmt",
                        help="file format (default json)")
    export.add_argument("--out", metavar="PATH",
                        help="write to this file, or into this folder (created if PATH ends with /; an "
                             "earlier export there is kept), instead of standard output")
    export.add_argument("--force", action="store_true", help="overwrite the file PATH if it exists")
    return parser


def _add_shard_options(parser: argparse.ArgumentParser) -> None:
    """``--shard-count`` and ``--shards``: which Discord shards this process runs."""
    parser.add_argument("--shard-count", type=_shard_count, metavar="N",
                        help="Discord shards of the whole deployment, the same in every process "
                             "(TROUPE_DISCORD_SHARD_COUNT; default: as many as Discord recommends)")
    parser.add_argument("--shards", type=_shard_ids, metavar="IDS",
                        help="the shards this process runs, e.g. 0-3 or 0,2 (TROUPE_DISCORD_SHARD_IDS; needs "
                             "--shard-count; default all). Only the process running shard 0 registers the "
                             "slash commands")


def _shard_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give the deployment's shard count, "
                                         "e.g. 4") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {count}: give the deployment's shard count, "
                                         "or leave it out to run as many shards as Discord recommends")
    return count


def _shard_ids(text: str) -> str:
    try:
        parse_shard_ids(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _with_shards(console: Console, settings: Settings, args: argparse.Namespace) -> Settings | None:
    """The settings with the Discord shards the command line names, or None after saying what is wrong."""
    count, ids = getattr(args, "shard_count", None), getattr(args, "shards", None)
    if count is None and ids is None:
        return settings
    discord = settings.discord
    count = count if count is not None else discord.shard_count
    ids = ids if ids is not None else discord.shard_ids
    try:
        check_shards(count, parse_shard_ids(ids) if ids is not None else None)
    except ValueError as error:
        named = " ".join(f"{flag} {value}" for flag, value in (("--shard-count", args.shard_count),
                                                                ("--shards", args.shards)) if value is not None)
        console.print(f"[red]error:[/] {escape(named)}: {escape(str(error))}", soft_wrap=True)
        return None
    return settings.model_copy(update={"discord": discord.model_copy(update={"shard_count": count,
                                                                             "shard_ids": ids})})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    console = Console(highlight=False)
    # An export's standard output is the export: its messages go to standard error.
    messages = Console(highlight=False, stderr=True) if args.command == "export" else console
    settings = _load_settings(messages)
    if settings is not None and args.command in ("discord", "serve"):
        settings = _with_shards(messages, settings, args)
    if settings is None:
        return EXIT_BAD_INPUT
    try:
        if args.command == "simulate":
            return asyncio.run(_simulate(console, settings, args.scenario, args.steps, args.thoughts, args.save))
        if args.command in ("console", "run"):
            script = getattr(args, "script", None)
            return asyncio.run(_console(console, settings, script, getattr(args, "empty", False)))
        if args.command == "discord":
            return asyncio.run(_discord(console, settings))
        if args.command == "slack":
            return asyncio.run(_slack(console, settings, args.http_port))
        if args.command == "serve":
            return asyncio.run(_serve(console, settings, args.console, args.slack_http_port, args.stop_timeout))
        if args.command == "doctor":
            return asyncio.run(_doctor(console, settings, args.timeout))
        if args.command == "backup":
            return asyncio.run(_backup(console, settings, args.path, args.force))
        if args.command == "migrate":
            return asyncio.run(_migrate(console, settings, args.target))
        if args.command == "export":
            return asyncio.run(_export(messages, settings, args.world, args.fmt, args.out, args.force))
    except KeyboardInterrupt:
        console.print("[dim]interrupted[/]")
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_BAD_INPUT


def _names_a_folder(path: str) -> bool:
    """``backup DIR/``, ``--out DIR/``: a path ending in a separator is a folder, made if need be."""
    return path.endswith(("/", os.sep))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _check_writable(target: Path) -> None:
    """Raise ValueError, before any model call is spent, if the world cannot be saved at ``target``."""
    if target.is_dir():
        raise ValueError(f"--save {target} is a folder; give a file name, e.g. {target / 'world.json'}")
    if not target.parent.is_dir():
        raise ValueError(f"--save {target}: the folder {target.parent} does not exist")


async def _simulate(
    console: Console, settings: Settings, path: Path, steps: int | None, thoughts: bool, save: Path | None
) -> int:
    from bots.verification.personas import check_persona_spec
    from simulation.llm.factory import build_model
    from simulation.persona import PersonaError
    from simulation.scenario import ScenarioError, build_world, load_scenario, play_scenario, play_variant
    from simulation.world import WorldError

    try:
        scenario, base = load_scenario(path)
        if steps is not None:
            scenario.steps = steps
        if scenario.policy == "moderator":
            *others, last = (name for name in POLICY_NAMES if name != "moderator")
            raise ScenarioError(f"{path}: policy moderator waits for a moderator to pick each speaker, and a "
                                f"simulation has none; use {', '.join(others)} or {last}")
        if save is not None:
            _check_writable(save)
    except (ScenarioError, ValueError) as error:
        console.print(f"[red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    try:
        stack = build_model(settings)
    except ModelConfigurationError as error:
        console.print(f"[red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    console.print(f"[bold]troupe {troupe_version()}[/] · {escape(stack.description)}")
    try:
        try:
            world = build_world(scenario, base, stack.model)
        except (PersonaError, WorldError, ScenarioError) as error:
            console.print(f"[red]error:[/] {escape(str(error))}")
            return EXIT_BAD_INPUT
        for agent in world.agents:
            vetting = check_persona_spec(agent.spec.to_tinytroupe_dict(), settings.verification.mode)
            if not vetting.allowed:
                console.print(f"[red]error:[/] {escape(agent.name)} cannot run: {escape('; '.join(vetting.reasons))}")
                return EXIT_BAD_INPUT
        names = ", ".join(a.name for a in world.agents)
        console.print(f'[bold]{escape(world.name)}[/] · {names} · turn-taking: {world.policy.kind}\n')
        #: The shared start, then each variant's fork of it.
        worlds = [world]
        try:
            async for event in play_scenario(scenario, world):
                _print_event(console, event, thoughts, stack.model.is_demo)
            for variant in scenario.variants:
                branch = await world.fork(variant.name)
                worlds.append(branch)
                console.print(f"\n[bold]── variant {escape(variant.name)}[/] [dim](from the shared start, step "
                              f"{world.clock.step})[/]\n")
                async for event in play_variant(scenario, variant, branch):
                    _print_event(console, event, thoughts, stack.model.is_demo)
        except LLMError as error:
            console.print(f"[red]stopped:[/] {escape(str(error))}")
            return EXIT_MODEL_FAILED
        finally:
            for each in worlds:
                await each.settle()  # a memory consolidation still under way belongs in the saved world
            if save:
                for each in worlds:
                    path = save if each is world else _variant_path(save, each.name)
                    each.save(path)
                    console.print(f"[dim]{'world' if each is world else 'variant ' + escape(each.name)} saved to "
                                  f"{escape(str(path))}[/]")
        acted = any(e.kind is EventKind.ACTION for each in worlds for e in each.events)
        failed = [e for each in worlds for e in each.events if e.kind is EventKind.NOTICE]
        if failed and not acted:
            console.print(
                "[red]error:[/] no persona could answer; check the model settings "
                "(TROUPE_LLM_BASE_URL, TROUPE_LLM_MODEL, TROUPE_LLM_API_KEY)"
            )
            return EXIT_MODEL_FAILED
        console.print()
        for each in worlds:
            totals = stack.ledger.totals(world=each.id)
            label = "" if len(worlds) == 1 else ("shared start: " if each is world else f"{escape(each.name)}: ")
            console.print(
                f"[dim]{label}{totals.calls:,} model calls ({totals.cached_calls:,} cached) · "
                f"{totals.prompt_tokens:,} prompt + {totals.completion_tokens:,} completion tokens · "
                f"${totals.cost_usd:.4f}[/]"
            )
        return 0
    finally:
        await stack.model.aclose()


def _variant_path(save: Path, variant: str) -> Path:
    """Where ``--save FILE`` puts a variant's world: beside FILE, named after the variant."""
    return save.with_name(f"{save.stem}.{variant.replace(' ', '-')}{save.suffix or '.json'}")


async def _console(console: Console, settings: Settings, script: Path | None, empty: bool) -> int:
    from adapters.base import AdapterError
    from adapters.console import ConsoleAdapter
    from bots.app import TroupeApp
    from bots.storage import StorageError

    if script is not None and (problem := _script_problem(script)) is not None:
        console.print(f"[red]error:[/] {escape(problem)}", soft_wrap=True)
        return EXIT_BAD_INPUT
    try:
        app = TroupeApp(settings)
    except ModelConfigurationError as error:
        console.print(f"[red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    banner = (
        f"troupe {troupe_version()} · {app.stack.description}\n"
        "Type to talk to the personas · /help lists commands · /quit leaves"
    )
    try:
        adapter = ConsoleAdapter(console=console, script=script, banner=banner, files_dir=settings.data_dir / "exports",
                                 journal_dir=settings.data_dir / "console", wait_idle=app.wait_idle)
    except OSError as error:  # the console's journal is the first thing written in the data folder
        await app.stack.model.aclose()
        return _data_dir_failed(console, settings, error)
    try:
        await app.start([adapter], listen=False)  # closes what it opened if it fails
    except (StorageError, AdapterError) as error:
        return _report_failure(console, settings, error)
    code: int | None = None
    try:
        await _greet(app, adapter, empty)
        app.listen()
        await app.run_until_disconnected()
    except StorageError as error:
        code = _report_failure(console, settings, error)
    except OSError as error:  # the console's journal, on a full disk
        code = _data_dir_failed(console, settings, error)
    finally:
        problem = await _stop_app(app)
    if code is not None:
        return code
    if app.failure is not None:  # said when it happened
        return EXIT_FAILED
    if problem is not None:
        console.print(f"[red]error:[/] {escape(problem)}", soft_wrap=True)
        return EXIT_FAILED
    if script is not None and adapter.failed_commands:
        console.print(f"[red]{adapter.failed_commands} command(s) in {escape(str(script))} could not be done[/] "
                      "(each one's reason is shown above).", soft_wrap=True)
        return EXIT_SCRIPT_FAILED
    return 0


#: The longest ``console --script`` file, in bytes.
SCRIPT_LIMIT = 10_000_000


def _script_problem(script: Path) -> str | None:
    """Why ``console --script FILE`` cannot be fed to the console, said before anything starts."""
    if script.is_dir():
        return f"{script} is a folder; give the script file in it (one message or /command a line)"
    if not script.exists():
        return f"no such script file: {script}"
    try:
        with script.open("rb") as file:
            text = file.read(SCRIPT_LIMIT + 1)  # a device such as /dev/zero never ends
        if len(text) > SCRIPT_LIMIT:
            return f"{script} is larger than {SCRIPT_LIMIT // 1_000_000} MB; is it the right file?"
        text.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"{script} is not UTF-8 text (byte {error.start + 1} is not): save it as UTF-8"
    except OSError as error:
        return f"cannot read the script {script}: {error.strerror or error}"
    return None


def _data_dir_failed(console: Console, settings: Settings, error: OSError) -> int:
    """Say why the data folder cannot be written and return the exit code (1 for a full disk)."""
    full = error.errno == errno.ENOSPC
    fix = "free some space there" if full else "make it writable for this user, or point TROUPE_DATA_DIR elsewhere"
    console.print(f"[red]error:[/] cannot write in the data folder {escape(str(settings.data_dir))} "
                  f"({escape(error.strerror or str(error))}): {fix}", soft_wrap=True)
    return EXIT_FAILED if full else EXIT_BAD_INPUT


def _report_failure(console: Console, settings: Settings, error: Exception) -> int:
    """Say why the bot could not start (or go on) and return the exit code: 2 when a setting, a file
    or a folder must change, 1 when it failed at run time (a damaged database, a full disk)."""
    from adapters.base import AdapterError
    from bots.storage import StorageError
    from bots.storage.sqlite import DatabaseSetupError, storage_failure

    if isinstance(error, StorageError) and settings.database_url is None:
        error = storage_failure(settings.database_path, error, "use")
    console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
    if isinstance(error, DatabaseSetupError) or (isinstance(error, AdapterError) and not error.retryable):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


SAMPLE_WORLD = "Team room"
SAMPLE_PERSONAS = ("Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist")
#: The console adapter's stored state under this key names the sample world once it has all its personas.
SAMPLE_READY = "sample world"


async def _greet(app: TroupeApp, adapter: ConsoleAdapter, empty: bool) -> None:
    """Tell the console's user which world the channel holds; on its very first start, make the sample
    world (unless ``empty``).

    Only a channel that never had a world gets the sample: after ``/stop`` it stays empty. A stored
    world of the channel that was not restored means a damaged database: StorageError says so, and
    nothing is created in its place.
    """
    from bots.storage import StorageError, WorldStatus

    key = adapter.channel.key
    session = app.sessions.get(key)
    if session is None:
        stored = [r for r in await app.storage.all_worlds() if r.channel_key == key and r.parent_id is None]
        lost = next((r for r in stored if r.status is not WorldStatus.STOPPED), None)
        if lost is not None:
            await app.storage.load_world(lost.id)  # raises what keeps it from being restored, if storage can tell
            raise StorageError(f"the world “{lost.name}” of {key} could not be restored (the reason is logged "
                               "above): run `troupe doctor`; restore a backup (docs/configuration.md)")
        if stored or empty:
            await adapter.reply_private(adapter.user, adapter.channel, "No world in this channel: `/start NAME` "
                                        "begins one (`/help` lists the commands).")
            return
        session = await app.sessions.start(adapter.channel, adapter.user, SAMPLE_WORLD, None)
        await _complete_sample_world(session, adapter)
    elif await _sample_unfinished(session, adapter):
        await _complete_sample_world(session, adapter)  # the first start was cut short while making it
    else:
        names = ", ".join(a.name for a in session.world.agents) or "no personas yet"
        paused = "; it is paused (`/resume` lets the personas answer)" if session.paused else ""
        waiting = len(await app.storage.held_outbox(adapter.channel.key))
        held = f"; {waiting} message(s) wait for review (`/review`)" if waiting else ""
        recent = _recent_lines(session.world.events, await app.storage.outbox_entries(session.record.id), RESTART_RECAP)
        recap = "\nLast said here:\n" + "\n".join(recent) if recent else ""
        await adapter.reply_private(adapter.user, adapter.channel,
                                    f"Continuing the world “{session.world.name}” with {names}{paused}{held}.{recap}")
        return
    await adapter.reply_private(
        adapter.user, adapter.channel,
        f"Started the world “{SAMPLE_WORLD}” with {', '.join(SAMPLE_PERSONAS)}. Say something to them, or /help.",
    )


#: Messages shown again when the console reopens a world, so the conversation can be picked up.
RESTART_RECAP = 3
#: Each recalled message on one line of at most this many characters.
RECAP_CHARS = 200


def _recent_lines(log: list[Event], posts: list[OutboxEntry], count: int) -> list[str]:
    """The last ``count`` things said in the channel: people's messages and personas' words as they
    were posted (never words verification held back)."""
    from bots.exports import as_posted

    said = [e for e in as_posted(log, posts, thoughts=False)
            if e.type == "CONVERSATION" or (e.kind is EventKind.ACTION and e.type == "TALK")]
    return [f"  {literal(e.source)}: {literal(clip(e.content, RECAP_CHARS))}" for e in said[-count:]]


async def _sample_unfinished(session: ChannelSession, adapter: ConsoleAdapter) -> bool:
    """The sample world, not yet marked complete and never talked in: a start killed while it was made."""
    if session.world.name != SAMPLE_WORLD or session.world.events or adapter.state is None:
        return False
    ready = await adapter.state.get(SAMPLE_READY)
    return (ready or {}).get("world") != session.record.id


async def _complete_sample_world(session: ChannelSession, adapter: ConsoleAdapter) -> None:
    """Add the sample personas the world lacks, then mark it complete: each step is stored as it is
    made, so a start killed half-way leaves what the next start finishes."""
    from simulation.persona import find_bundled_persona

    present = {agent.name for agent in session.world.agents}
    for name in SAMPLE_PERSONAS:
        if name not in present:
            await session.add_persona(find_bundled_persona(name))
    if adapter.state is not None:
        await adapter.state.set(SAMPLE_READY, {"world": session.record.id})


#: Builds one platform's adapter from the settings: the adapter, a message saying what is missing, or
#: None when the platform is not configured at all (``serve`` then leaves it out).
AdapterBuilder = Callable[[Settings], "Adapter | str | None"]

NOTHING_TO_SERVE = (
    "nothing to serve: set TROUPE_DISCORD_TOKEN for Discord, TROUPE_SLACK_BOT_TOKEN for Slack (with "
    "TROUPE_SLACK_APP_TOKEN for Socket Mode, or --slack-http PORT), or pass --console"
)


def _discord_builder(*, required: bool) -> AdapterBuilder:
    def build(settings: Settings) -> Adapter | str | None:
        from adapters.discord import DiscordAdapter

        token = settings.discord.token
        if token is None or not token.get_secret_value().strip():
            if not required:
                return None
            return ("no Discord bot token: set TROUPE_DISCORD_TOKEN "
                    "(README, section “Discord”, explains where to get one)")
        return DiscordAdapter(settings)

    return build


def _slack_builder(http_port: int | None, *, required: bool) -> AdapterBuilder:
    def build(settings: Settings) -> Adapter | str | None:
        from adapters.slack import SlackAdapter

        token = settings.slack.bot_token
        if (token is None or not token.get_secret_value().strip()) and not settings.slack.client_id:
            if not required:
                return None
            return ("no Slack bot token: set TROUPE_SLACK_BOT_TOKEN "
                    "(README, section “Slack”, explains where to get one), or TROUPE_SLACK_CLIENT_ID for an app "
                    "installed in many workspaces")
        return SlackAdapter(settings, http_port=http_port)

    return build


def _stdin_console_builder(console: Console) -> AdapterBuilder:
    def build(settings: Settings) -> Adapter:
        from adapters.console import ConsoleAdapter

        class StdinConsole(ConsoleAdapter):
            """The console channel fed by standard input, never a prompt: other platforms share the terminal."""

            @property
            def interactive(self) -> bool:
                return False

            @property
            def where(self) -> str:
                return "in the console channel (standard input)"

        # No ``wait_idle``: a line is heard when it arrives, not once every other channel is idle.
        return StdinConsole(console=console, files_dir=settings.data_dir / "exports",
                            journal_dir=settings.data_dir / "console")

    return build


async def _discord(console: Console, settings: Settings) -> int:
    """Run the bot on Discord until interrupted."""
    return await _serve_platform(console, settings, [_discord_builder(required=True)])


async def _slack(console: Console, settings: Settings, http_port: int | None) -> int:
    """Run the bot on Slack (Socket Mode, or HTTP mode on ``http_port``) until interrupted."""
    return await _serve_platform(console, settings, [_slack_builder(http_port, required=True)])


async def _serve(console: Console, settings: Settings, with_console: bool, slack_http_port: int | None,
                 stop_timeout: float) -> int:
    """Every configured platform in one process: Discord, Slack, and the console fed by standard input."""
    builders = [_discord_builder(required=False), _slack_builder(slack_http_port, required=False)]
    if with_console:
        builders.append(_stdin_console_builder(console))
    return await _serve_platform(console, settings, builders, stop_timeout=stop_timeout)


async def _serve_platform(console: Console, settings: Settings, builders: list[AdapterBuilder], *,
                          stop_timeout: float = DEFAULT_STOP_TIMEOUT_S) -> int:
    """The app and the platform adapters; a clear error and exit code 2 for what is missing.

    Runs until every adapter's connection ends, or until SIGTERM / SIGINT (Ctrl-C): then the app stops
    taking events, lets in-flight work finish and posts what it can within ``stop_timeout`` seconds
    (what is cut short stays in storage and resumes at the next start), and 0 is returned.
    """
    from bots.logs import configure_logging

    root = logging.getLogger()
    level = root.level
    handler = configure_logging(settings)
    try:
        return await _serve_with(console, builders, settings, stop_timeout)
    finally:
        root.removeHandler(handler)  # the process may go on (tests, embedding)
        root.setLevel(level)


async def _serve_with(console: Console, builders: list[AdapterBuilder], settings: Settings,
                      stop_timeout: float) -> int:
    from adapters.base import AdapterError
    from bots.app import TroupeApp
    from bots.storage import StorageError

    adapters: list[Adapter] = []
    for build in builders:
        adapter = build(settings)
        if isinstance(adapter, str):
            console.print(f"[red]error:[/] {escape(adapter)}")
            return EXIT_BAD_INPUT
        if adapter is not None:
            adapters.append(adapter)
    if not adapters:
        console.print(f"[red]error:[/] {escape(NOTHING_TO_SERVE)}")
        return EXIT_BAD_INPUT
    try:
        app = TroupeApp(settings)
    except ModelConfigurationError as error:
        console.print(f"[red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    # Signals are caught from here on: SIGTERM during start-up stops the app cleanly instead of killing it.
    stop = _StopSignals()
    try:
        starting = asyncio.ensure_future(app.start(adapters))
        asked = asyncio.ensure_future(stop.requested.wait())
        await asyncio.wait({starting, asked}, return_when=asyncio.FIRST_COMPLETED)
        asked.cancel()
        if not starting.done():
            starting.cancel()  # the start closes what it opened
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            console.print(f"[dim]{stop.signal}: stopping before start-up finished…[/]")
            return 0
        try:
            starting.result()  # a failed start has closed what it opened
        except (AdapterError, StorageError) as error:
            return _report_failure(console, settings, error)
        places = " · ".join(escape(adapter.where) for adapter in adapters)
        console.print(f"[bold]troupe {troupe_version()}[/] · {escape(app.stack.description)} · {places} · "
                      "Ctrl-C stops", soft_wrap=True)
        try:
            running = asyncio.ensure_future(app.run_until_disconnected())
            asked = asyncio.ensure_future(stop.requested.wait())
            try:
                await asyncio.wait({running, asked}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                asked.cancel()
                if not running.done():
                    running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            if stop.signal is not None:
                console.print(f"[dim]{stop.signal}: stopping…[/]")
        finally:
            problem = await _stop_app(app, stop_timeout, stop.hurry)
    finally:
        stop.remove()
    if problem is not None:
        console.print(f"[red]error:[/] {escape(problem)}", soft_wrap=True)
        return EXIT_FAILED
    return EXIT_FAILED if app.failure is not None else 0


class _StopSignals:
    """SIGTERM and SIGINT ask the serve loop to stop; a second one asks it to hurry."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.hurry = asyncio.Event()
        self.signal: str | None = None
        self._installed: list[signal.Signals] = []
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._received, sig)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or Windows
                continue
            self._installed.append(sig)

    def _received(self, sig: signal.Signals) -> None:
        if self.requested.is_set():
            self.hurry.set()
            return
        self.signal = sig.name
        self.requested.set()

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        self._installed.clear()


async def _stop_app(app: TroupeApp, timeout: float = 30.0, hurry: asyncio.Event | None = None) -> str | None:
    """``app.stop(timeout)``, cut short at once when ``hurry`` is set (a second signal); None, or why
    it could not stop cleanly.

    What is cut short is safe: a turn not finished is not stored, a post whose outcome is unknown is
    looked for in the channel before it is posted again. A stop that fails part way (an adapter that
    cannot close its files on a full disk) still closes the storage and the model client: their
    threads would keep the process alive.
    """
    async def on_hurry() -> None:
        if hurry is not None:
            await hurry.wait()
            app.hurry()

    watcher = asyncio.ensure_future(on_hurry())
    try:
        await app.stop(timeout=max(timeout, 0.0))
    except Exception as error:
        log.debug("stopping failed", exc_info=True)
        await app.storage.close()
        await app.stack.model.aclose()
        return f"could not stop cleanly: {error}"
    finally:
        watcher.cancel()
    return None


# -- operations: doctor, backup, export ---------------------------------------------------------


def _load_settings(console: Console) -> Settings | None:
    """The settings, or None after saying in one line which file or variable to fix (no secret in it).

    Every command reads its settings here, so each says the same about the same mistake.
    """
    from bots.doctor import redact

    try:
        return load_settings()
    except SettingsError as error:
        console.print(f"[red]error:[/] {escape(redact(str(error)))}", soft_wrap=True)
        return None


CHECK_MARKS = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]–[/]"}


async def _doctor(console: Console, settings: Settings, timeout: float) -> int:
    from bots.doctor import run_checks

    console.print(f"[bold]troupe {troupe_version()}[/] doctor", soft_wrap=True)
    checks = await run_checks(settings, timeout_s=timeout)
    width = max(len(c.name) for c in checks)
    for check in checks:
        line = f"{CHECK_MARKS[check.ok]} {escape(check.name.ljust(width))}  {escape(check.detail)}"
        console.print(line, soft_wrap=True)
        if check.ok is False and check.fix:
            console.print(f"  {' ' * width}  [bold]fix:[/] {escape(check.fix)}", soft_wrap=True)
    failed = sum(1 for c in checks if c.ok is False)
    skipped = sum(1 for c in checks if c.ok is None)
    skipped_note = f" ({skipped} skipped)" if skipped else ""
    if failed:
        console.print(f"[red]{failed} of {len(checks)} checks failed[/]{skipped_note}", soft_wrap=True)
        return 1
    console.print(f"[green]all checks passed[/]{skipped_note}", soft_wrap=True)
    return 0


async def _migrate(console: Console, settings: Settings, target: str) -> int:
    """Copy the SQLite database into PostgreSQL; the SQLite file is left as it was."""
    from bots.storage import StorageError
    from bots.storage.move import move_to_postgres
    from bots.storage.postgres.connection import shown_url

    source = settings.database_path
    try:
        moved = await move_to_postgres(source, target)
    except StorageError as error:
        console.print(f"[red]Could not move {escape(str(source))}:[/] {escape(str(error))}")
        return 1
    copied = ", ".join(f"{table} {count}" for table, count in moved.rows.items() if count)
    console.print(f"Moved {escape(str(source))} into {escape(shown_url(target))}: rows copied ({escape(copied or 'none')}). "
                  "Run Troupe on it with TROUPE_DATABASE_URL set to that URL; the SQLite file is unchanged.")
    return 0


async def _backup(console: Console, settings: Settings, path: str, force: bool) -> int:
    from bots.backup import BackupError, backup_database, backup_postgres, human_size

    target = Path(path).expanduser()  # noqa: ASYNC240 (a one-shot command: nothing else runs on this loop)
    try:
        if _names_a_folder(path):  # made if it is not there yet
            target.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (one-shot command)
        if settings.database_url is not None:
            result = await backup_postgres(settings.database_url.get_secret_value(), target, force=force)
        else:
            result = await backup_database(settings.database_path, target, force=force)
    except OSError as error:
        console.print(f"[red]error:[/] could not make the folder {escape(str(target))}: {escape(str(error))}",
                      soft_wrap=True)
        return EXIT_BAD_INPUT
    except BackupError as error:
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        return EXIT_BAD_INPUT
    worlds = f"{result.worlds} world{'s' if result.worlds != 1 else ''}"
    if settings.database_url is not None:
        from bots.storage.postgres.connection import shown_url

        console.print(f"Backed up {escape(shown_url(settings.database_url.get_secret_value()))} to "
                      f"{escape(str(result.path))} (pg_dump custom format): {human_size(result.size_bytes)}, "
                      f"{worlds}. Restore it with pg_restore into an empty database.", soft_wrap=True)
        return 0
    console.print(
        f"Backed up {escape(str(settings.database_path))} to {escape(str(result.path))}: "
        f"{human_size(result.size_bytes)}, {worlds}, schema version {result.schema_version}, integrity ok",
        soft_wrap=True,
    )
    return 0


async def _export(console: Console, settings: Settings, key: str | None, fmt: str, out_arg: str | None,
                  force: bool = False) -> int:
    """List the stored worlds (no ``key``) or export one; messages go to ``console`` (stderr).

    Into a folder, an export takes a free name (``team-room-2.md``); onto a file that exists, only
    with ``force``; onto the database (or its journal and lock files), never.
    """
    from bots.exports import as_posted, render_export
    from bots.session_manager import world_state_from_storage
    from bots.storage import StorageError
    from bots.storage.open import storage_for
    from simulation.llm.demo import DemoModel
    from simulation.persona import PersonaError
    from simulation.world import TinyWorld, WorldError

    out = Path(out_arg).expanduser() if out_arg is not None else None  # noqa: ASYNC240 (one-shot command)
    path = settings.database_path
    if settings.database_url is None and not path.is_file():  # noqa: ASYNC240 (one-shot command)
        if key is None:
            console.print(f"No worlds stored yet (no database at {escape(str(path))}).", soft_wrap=True)
            return 0
        console.print(f"[red]error:[/] no world {escape(key)!r}: there is no database at {escape(str(path))} yet",
                      soft_wrap=True)
        return EXIT_BAD_INPUT
    storage = storage_for(settings, read_only=True)  # an export never writes, not even an upgrade
    try:
        await storage.open()
        records = await storage.all_worlds()
        if key is None:
            _print_worlds(records, await storage.event_counts())
            return 0
        found = _find_world(records, key)
        if isinstance(found, str):
            console.print(f"[red]error:[/] {escape(found)}", soft_wrap=True)
            return EXIT_BAD_INPUT
        stored = await storage.load_world(found.id)
        # The machine's operator: thoughts and memories included, words as they were posted.
        log = as_posted(await storage.read_events(found.id), await storage.outbox_entries(found.id), thoughts=True)
    except StorageError as error:
        return _report_failure(console, settings, error)
    finally:
        await storage.close()
    try:
        world = TinyWorld.from_state(world_state_from_storage(stored), DemoModel())
    except (PersonaError, WorldError, ValueError) as error:
        console.print(f"[red]error:[/] the stored world {escape(found.name)!r} could not be read: {escape(str(error))}",
                      soft_wrap=True)
        return 1
    filename, body = render_export(world, fmt, _export_model_name(log, settings), log, moderator=True)
    if out is None:
        sys.stdout.write(body.decode())
        sys.stdout.flush()
        return 0
    into_folder = out.is_dir() or _names_a_folder(out_arg)
    target = out / filename if into_folder else out
    database = path.resolve()
    if target.resolve() in {database, *(database.with_name(database.name + end) for end in ("-wal", "-shm", ".lock"))}:
        console.print(f"[red]error:[/] {escape(str(target))} is the database itself (or its journal); "
                      "choose another path", soft_wrap=True)
        return EXIT_BAD_INPUT
    if target.exists() and not into_folder and not force:
        console.print(f"[red]error:[/] {escape(str(target))} already exists; choose another path, or pass "
                      "--force to overwrite it", soft_wrap=True)
        return EXIT_BAD_INPUT
    try:
        if into_folder:
            target = free_path(out, filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    except OSError as error:
        console.print(f"[red]error:[/] could not write {escape(str(target))}: {escape(str(error))}", soft_wrap=True)
        return EXIT_BAD_INPUT
    console.print(f"Exported “{escape(found.name)}” ({len(log)} events, {fmt}) to {escape(str(target))}",
                  soft_wrap=True)
    return 0


def _print_worlds(records: list[WorldRecord], counts: dict[str, int]) -> None:
    if not records:
        print("No worlds stored yet.")
        return
    # A branch's log starts with its parent's first ``fork_event`` events, shared, not stored twice.
    names = {r.id: r.name for r in records}
    branches = any(r.parent_id for r in records)
    rows = [("ID", "NAME", "CHANNEL", "STATUS", "EVENTS", "CREATED", *(["BRANCH OF"] if branches else []))]
    for r in records:
        branch_of = [f"{names.get(r.parent_id, r.parent_id)} at event {r.fork_event}" if r.parent_id else ""]
        rows.append((r.id, r.name, r.channel_key, r.status.value, str(counts.get(r.id, 0) + r.fork_event),
                     r.created_at.strftime("%Y-%m-%d %H:%M"), *(branch_of if branches else [])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.rjust(w) if i == 4 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())


def _find_world(records: list[WorldRecord], key: str) -> WorldRecord | str:
    """The world ``key`` names (id, unique id prefix, or name), or a message saying why there is none."""
    for record in records:
        if record.id == key:
            return record
    folded = key.casefold()
    by_name = [r for r in records if r.name.casefold() == folded]
    if not by_name and len(key) >= 4:
        by_name = [r for r in records if r.id.startswith(key)]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        which = ", ".join(f"{r.id} ({r.status.value}, {r.channel_key})" for r in by_name)
        return f"{len(by_name)} worlds match {key!r}: {which}; give the id"
    recent = list(dict.fromkeys(r.name for r in reversed(records)))[:10]
    known = ", ".join(repr(name) for name in recent) or "none"
    return f"no world {key!r}; stored worlds: {known} (`troupe export` lists them with their ids)"


def _export_model_name(events: list[Event], settings: Settings) -> str:
    """The model(s) stored action events name; else the configured model's name."""
    from simulation.llm.demo import DEMO_MODEL_NAME
    from simulation.llm.openai_model import DEFAULT_OPENAI_MODEL

    demo = "offline demo model"
    names = dict.fromkeys(e.model for e in events if e.kind is EventKind.ACTION and e.model)
    if names:
        return ", ".join(demo if name == DEMO_MODEL_NAME else name for name in names)
    llm = settings.llm
    provider = llm.resolved_provider
    if provider == "demo":
        return demo
    if provider == "azure":
        return llm.model or llm.azure_deployment or "an Azure OpenAI deployment"
    return llm.model or DEFAULT_OPENAI_MODEL


def _print_event(console: Console, event: Event, thoughts: bool, demo: bool) -> None:
    """One event as a transcript line. Names and words are shown, never obeyed (no terminal control,
    no Rich markup), and the later lines of a message are indented: none can pass for another line."""
    def shown(text: str) -> str:
        return escape(visible(text)).replace("\n", "\n  ")

    def name(text: str) -> str:
        return escape(" ".join(visible(text).split()))

    when = event.time.strftime("%H:%M")
    label = " [dim](demo model)[/]" if demo and event.kind is EventKind.ACTION else ""
    to = f" → {name(event.target)}" if event.target else ""
    if event.kind is EventKind.NOTICE:
        console.print(f"[dim]{when} {shown(event.content)}[/]")
    elif event.kind is EventKind.STIMULUS:
        console.print(f"[dim]{when}[/] [bold cyan]{name(event.source)}[/]{to}: {shown(event.content)}")
    elif event.type == "THINK":
        if thoughts:
            console.print(f"[dim]{when} {name(event.source)} thinks: {shown(event.content)}[/]")
    else:
        console.print(f"[dim]{when}[/] [bold]{name(event.source)}[/]{to}{label}: {shown(event.content)}")


if __name__ == "__main__":
    sys.exit(main())
