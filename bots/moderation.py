"""Runs moderator commands against a channel's session and answers the person who ran them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.base import Card, CommandInvocation, literal
from bots.exports import as_posted, render_export
from bots.commands import Command, CommandError, help_text, parse_command
from bots.permissions import ModeratorPolicy
from bots.research import Research
from bots.verification.personas import check_persona_spec
from simulation.llm.errors import BudgetExceededError, LLMError
from config import CONFIG_DIR
from bots.storage import AuditRecord, NotStoredError, OutboxEntry, OutboxStatus, StorageError, WorldStatus
from simulation.events import EventKind
from simulation.file_access import FileRefusedError, ReadableFolders
from simulation.persona import PersonaError, PersonaSpec, bundled_personas, find_bundled_persona, load_persona, parse_persona_text
from simulation.scenario import Scenario, ScenarioError, load_scenario, resolve_persona
from simulation.world import TinyWorld, WorldError

from bots.persona_admission import PersonaRefusedError
from bots.session import RunReport

if TYPE_CHECKING:
    from bots.app import TroupeApp
    from bots.session import ChannelSession

log = logging.getLogger(__name__)


#: The tag of a held message a moderator edited before it was posted: the words are theirs.
EDITED_TAG = "edited by a moderator"

class Reply:
    """What a command answers: text for everyone or only for its caller, maybe a file, maybe a card.

    ``card`` is the rich form of the same answer (an embed, Block Kit, a console panel); ``text``
    stays its plain equivalent.
    """

    def __init__(self, text: str, *, private: bool = False, file: tuple[str, bytes] | None = None,
                 card: Card | None = None, failed: bool = False) -> None:
        self.text = text
        self.private = private
        self.file = file
        self.card = card
        #: The command could not be done (a mistake, a refusal, an error); the text says why.
        self.failed = failed


class Moderation:
    def __init__(self, app: TroupeApp) -> None:
        self.app = app
        self.permissions = ModeratorPolicy(app.settings.bot)
        self.research = Research(app)

    async def handle(self, invocation: CommandInvocation) -> Reply:
        """Parse, authorise and run one command; every failure becomes a private explanation."""
        try:
            command = parse_command(invocation.text, max_run_steps=self.app.settings.bot.max_run_steps)
        except CommandError as error:
            return Reply(str(error), private=True, failed=True)
        spec = command.spec
        platform = invocation.channel.platform
        if not self.permissions.may_run(command, invocation.user, platform):
            return Reply(self.permissions.refusal(command.name), private=True, failed=True)
        session = self.app.sessions.get(invocation.channel.key)
        if spec.needs_world and session is None:
            return Reply(
                f"This channel has no world. Start one with `start NAME`, then add personas with "
                f"`persona add NAME` (`personas` lists the bundled ones).",
                private=True,
                failed=True,
            )
        try:
            name = "_" + command.name.replace(" ", "_")
            handler = getattr(self, name, None) or getattr(self.research, name)
            return await handler(invocation, command, session)
        except (CommandError, FileRefusedError, PersonaError, PersonaRefusedError, ScenarioError, WorldError) as error:
            return Reply(str(error), private=True, failed=True)
        except BudgetExceededError as error:
            if session is not None and (spent := self._over_budget(session)) is not None:
                return spent
            return Reply(f"`{command.name}` could not finish: {error.reason or error}.", private=True, failed=True)
        except LLMError as error:
            # The one who asked is told; the log keeps it for whoever runs the bot.
            log.info("%s failed: %s", command.name, error)
            return Reply(f"`{command.name}` could not finish: {error}. Nothing was changed; try again, or "
                         "`usage` shows the budget.", private=True, failed=True)
        except StorageError as error:
            log.exception("storage failed on %s", command.name)
            return Reply(f"Could not save that change: {error}. Nothing was changed.", private=True, failed=True)

    def readable_folders(self, inv: CommandInvocation) -> ReadableFolders | None:
        """The folders a command's caller may have files read from, or None for any file.

        The console's user owns the machine and may load any file. Moderators on a chat platform may
        load only files inside the bundled folders and ``bot.file_dirs``, so nobody reads the host's
        files through the bot; whether a refused path exists is never said.
        """
        if inv.channel.platform == "console":
            return None
        return ReadableFolders([CONFIG_DIR, *self.app.settings.bot.file_dirs],
                               setting="the bundled folders and bot.file_dirs (troupe.yaml)")

    def readable_file(self, inv: CommandInvocation, name: str) -> Path:
        """The file a command names, if its caller may read it (see ``readable_folders``)."""
        folders = self.readable_folders(inv)
        return Path(name).expanduser() if folders is None else folders.file(name)

    def _read_scenario(self, inv: CommandInvocation, name: str) -> tuple[Scenario, list[PersonaSpec]]:
        """A scenario and its personas, every file read under the caller's rights; refused whole
        when it lists more personas than a world may have. Blocking: run it in a worker thread."""
        folders = self.readable_folders(inv)
        scenario, base = load_scenario(self.readable_file(inv, name))
        most = self.app.settings.bot.max_personas
        if len(scenario.personas) > most:
            raise ScenarioError(
                f"{name}: the scenario lists {len(scenario.personas)} personas, but a world here has at most {most} "
                "(bot.max_personas). List fewer, or ask the bot's operator to raise bot.max_personas. "
                "Nothing was started."
            )
        return scenario, [resolve_persona(entry, base, folders) for entry in scenario.personas]

    # -- worlds -------------------------------------------------------------------------------

    async def _start(self, inv: CommandInvocation, cmd: Command, session: ChannelSession | None) -> Reply:
        if session is not None:
            return Reply(
                f"This channel already has the world “{session.world.name}”. `stop` it first to start another.",
                private=True, failed=True,
            )
        stopped = await self.app.sessions.last_stopped(inv.channel)
        if cmd.args.get("reopen"):
            if stopped is None:
                return Reply("No world was stopped in this channel; `start NAME` begins one.", private=True, failed=True)
            session = await self.app.sessions.reopen(stopped)
            names = ", ".join(literal(a.name) for a in session.world.agents) or "no personas"
            return Reply(f"Reopened the world “{session.world.name}” with {names}: its conversation and the "
                         "personas' memories are as they were.")
        specs: list[PersonaSpec] = []
        situation = cmd.args.get("situation")
        name = cmd.args.get("name")
        scenario = None
        if cmd.args.get("scenario"):
            # Files are read and checked in a worker thread: other channels keep talking meanwhile.
            scenario, specs = await asyncio.to_thread(self._read_scenario, inv, cmd.args["scenario"])
            seen: set[str] = set()
            for spec in specs:
                if spec.name.casefold() in seen:
                    return Reply(f"The scenario lists {spec.name} twice; a world has each persona once. "
                                 "Nothing was started.", private=True, failed=True)
                seen.add(spec.name.casefold())
            situation = situation or scenario.situation
            name = name or scenario.name
        name = name or (f"#{inv.channel.name}" if inv.channel.name else "Troupe world")
        session = await self.app.sessions.start(inv.channel, inv.user, name, situation)
        added = []
        try:
            for spec in specs:
                added.append((await session.add_persona(spec)).name)
        except BaseException:
            # A scenario is started whole or not at all: no half-built world stays bound here.
            await self.app.sessions.stop(inv.channel)
            raise
        lines = [f"Started the world “{name}” in this channel ({self.app.model_label})."]
        if stopped is not None:
            lines.append(f"(The world “{stopped.name}” stopped here earlier is kept: `stop` this one, then "
                         "`start --reopen`, to go back to it.)")
        if added:
            lines.append("Personas: " + ", ".join(literal(name) for name in added) + ".")
        else:
            lines.append("Add personas with `persona add NAME` (`personas` lists the bundled ones).")
        lines.append("Everything people write here is now heard by the personas.")
        if scenario is not None:
            lines += await self._apply_scenario(inv, session, scenario)
        return Reply("\n".join(lines))

    async def _apply_scenario(self, inv: CommandInvocation, session: ChannelSession, scenario: Scenario) -> list[str]:
        """What a scenario file sets beyond its personas: the talk policy, the steps after each
        message (as persona exchanges), and the opening, said to the personas as the moderator's."""
        given = scenario.model_fields_set
        lines = []
        if "policy" in given or "steps" in given:
            await session.set_policy(scenario.policy if "policy" in given else None,
                                     scenario.steps - 1 if "steps" in given else None)
            lines.append(f"Policy: {session.config.policy}, {session.config.exchanges} persona exchange(s) "
                         "after each message.")
        if scenario.messages:
            lines.append(f"Its {len(scenario.messages)} scripted message(s) are for `troupe simulate`; "
                         "here, the people in the channel talk.")
        if scenario.opening:
            lines.append(f"Opening: {scenario.opening}")
            self.app.spawn(session.hear(inv.user, scenario.opening))
        return lines

    async def _stop(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        name = session.world.name
        if not cmd.args.get("confirm"):
            return Reply(f"`stop confirm` ends the world “{name}” in this channel: personas stop hearing it. Its "
                         "history is kept, and `start --reopen` brings it back.", private=True)
        focus = "; the focus group running in it is cancelled" if await self.research.cancel_focus(session) else ""
        await self.app.sessions.stop(inv.channel)
        return Reply(f"Stopped the world “{name}”{focus}. Its history is kept: `start --reopen` brings it back, "
                     "`start NAME` begins a new one.")

    async def _status(self, inv: CommandInvocation, cmd: Command, session: ChannelSession | None) -> Reply:
        if session is None:
            return Reply("No world in this channel. `start NAME` begins one.", private=True)
        world = session.world
        people = ", ".join(literal(a.name) for a in world.agents) or "none yet"
        state = "paused" if session.paused else "active"
        thinking = " (personas are answering)" if session.busy else ""
        observed = ", ".join(literal(name) for name in session.config.observers) or "nobody"
        lines = [
            f"World “{world.name}”: {state}{thinking}; {self.app.model_label}.",
            f"Personas: {people}.",
            f"Policy: {session.config.policy}, {session.config.exchanges} persona exchange(s) after each message.",
            f"Step {world.clock.step}, {world.event_count} events; observed: {observed}.",
        ]
        return Reply("\n".join(lines))

    async def _pause(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if session.paused:
            return Reply(f"“{session.world.name}” is already paused; `resume` lets personas answer again.", private=True)
        await session.set_status(WorldStatus.PAUSED)
        return Reply("Paused: personas still hear the channel but do not answer until `resume`.")

    def _over_budget(self, session: ChannelSession) -> Reply | None:
        """The answer to anything that would make personas talk in a world whose budget is spent."""
        budget = self.app.stack.budget
        reached = budget.reached(session.world.id) if budget is not None else None
        if reached is None:
            return None
        return Reply(f"“{session.world.name}” stays paused: it reached {reached}, or start a new world.",
                     private=True, failed=True)

    async def _resume(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if (spent := self._over_budget(session)) is not None:
            return spent
        if not session.paused:
            return Reply(f"“{session.world.name}” is not paused: personas are answering.", private=True)
        await session.set_status(WorldStatus.ACTIVE)
        return Reply("Resumed: personas answer again.")

    async def _reset(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if not cmd.args.get("confirm"):
            people = len(session.world.agents)
            return Reply(f"`reset confirm` forgets the conversation of “{session.world.name}” and the memories of "
                         f"its {people} persona(s); the personas stay. It cannot be undone.", private=True)
        focus = "; the focus group that was running is cancelled" if await self.research.cancel_focus(session) else ""
        dropped = await session.reset()
        held = (f" The {dropped} message(s) held for review were dropped with it." if dropped else "")
        return Reply(f"Reset: the conversation and the personas' memories are forgotten{focus}; the personas stay."
                     + held)

    async def _run(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if not session.world.agents:
            return Reply("There are no personas to run. Add one with `persona add NAME`.", private=True, failed=True)
        if (spent := self._over_budget(session)) is not None:
            return spent
        report = await session.run_steps(cmd.args["steps"])
        return Reply(_run_said(report, session), private=True)

    # -- personas -----------------------------------------------------------------------------

    async def _persona_add(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if len(session.world.agents) >= self.app.settings.bot.max_personas:
            return Reply(
                f"This world already has {len(session.world.agents)} personas, the most allowed "
                "(bot.max_personas). Remove one first.",
                private=True, failed=True,
            )
        # Parsed and checked in a worker thread: other channels keep talking meanwhile.
        if "json" in cmd.args:
            spec = await asyncio.to_thread(parse_persona_text, cmd.args["json"], source="pasted persona")
        elif "file" in cmd.args:
            spec = await asyncio.to_thread(load_persona, self.readable_file(inv, cmd.args["file"]))
        else:
            spec = await asyncio.to_thread(find_bundled_persona, cmd.args["bundled"])
        agent = await session.add_persona(spec)
        return Reply(f"{literal(agent.name)} joined: {literal(spec.summary())}.")

    async def _persona_list(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if not session.world.agents:
            return Reply("No personas yet. Add one with `persona add NAME`.", private=True)
        return Reply("\n".join(f"• {literal(a.spec.summary())}" for a in session.world.agents), private=True)

    async def _persona_remove(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        agent, dropped = await session.remove_persona(cmd.args["name"])
        held = f" {dropped} of their message(s) held for review were dropped with them." if dropped else ""
        return Reply(f"{literal(agent.name)} left the world.{held}")

    async def _persona_show(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        agent = session.world.get(cmd.args["name"])
        from simulation.prompts import render_persona

        lines = [agent.spec.summary(), *render_persona(agent.spec.to_tinytroupe_dict())]
        return Reply("\n".join(_indented_literal(line) for line in lines), private=True)

    async def _personas(self, inv: CommandInvocation, cmd: Command, session: ChannelSession | None) -> Reply:
        seen: dict[str, str] = {}
        for path in bundled_personas().values():
            if str(path) not in seen:
                seen[str(path)] = load_persona(path).summary()
        return Reply("Bundled personas (`persona add NAME`):\n" + "\n".join(f"• {s}" for s in seen.values()), private=True)

    # -- talk ---------------------------------------------------------------------------------

    async def _policy(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if cmd.args:
            await session.set_policy(cmd.args.get("policy"), cmd.args.get("exchanges"))
        config = session.config
        return Reply(
            f"Policy: {config.policy} — "
            + {
                "everyone": "every persona answers a message",
                "addressed": "only personas named or mentioned answer",
                "round_robin": "personas take turns, one per step",
                "moderator": "only personas you `pick` answer",
                "model": "the model picks who speaks next",
            }[config.policy]
            + ("; no persona-to-persona exchange follows." if config.exchanges == 0 else
               f"; then up to {config.exchanges} persona-to-persona exchange{'s' if config.exchanges != 1 else ''}.")
        )

    async def _pick(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        names = _persona_names(session.world, cmd.args["names"])
        if session.config.policy != "moderator":
            return Reply("`pick` works with the moderator policy: `policy moderator` first.", private=True, failed=True)
        waiting = {agent.name for agent in session.world.pick(*names)}
        if waiting:  # no step stores the picks that wait; a restart meanwhile keeps them
            await session.save_config()
        now = [name for name in names if name not in waiting]
        if not now:
            return Reply(f"Next: {_listed(names)}. Nothing to answer yet: the pick waits for the next message.",
                         private=True)
        later = "" if not waiting else (
            f" {_listed(n for n in names if n in waiting)} {'have' if len(waiting) > 1 else 'has'} nothing new "
            "to answer yet, and will answer the next message.")
        if session.paused:
            return Reply(f"Next: {_listed(now)}, after `resume` (“{session.world.name}” is paused).{later}", private=True)
        session.allow_steps(1)
        return Reply(f"Next: {_listed(now)}.{later}", private=True)

    async def _ask(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        # "ask Priya Nair Is the budget ok?": the full name, unquoted, is the persona's, not the question's.
        found = session.world.find_leading(f"{cmd.args['name']} {cmd.args['text']}")
        if found is not None and found[1]:
            agent, cmd.args["text"] = found
        else:
            agent = session.world.get(cmd.args["name"])
        # A message in an interview thread (an ask with no command behind it) is a 1:1 conversation:
        # the others hear it but do not chime in, and the answer in the thread is the only reply.
        interview = inv.channel.thread is not None and inv.reply_token is None
        await session.ask(inv.user, agent.name, cmd.args["text"], exchanges=0 if interview else None)
        if interview:
            return Reply("", private=True)
        if (spent := self._over_budget(session)) is not None:
            return Reply(f"Asked {literal(agent.name)}; {spent.text[0].lower()}{spent.text[1:]}", private=True)
        if session.paused:
            return Reply(f"Asked {literal(agent.name)}; “{session.world.name}” is paused, so the answer comes after `resume`.",
                         private=True)
        return Reply(f"Asked {literal(agent.name)}.", private=True)

    async def _observe(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        agent = session.world.get(cmd.args["name"])
        watchers = [u for u in session.config.observers.get(agent.name, []) if u.id != inv.user.id]
        if cmd.args["on"]:
            watchers.append(inv.user)
        if watchers:
            session.config.observers[agent.name] = watchers
        else:
            session.config.observers.pop(agent.name, None)
        await session.save_config()
        if cmd.args["on"]:
            return Reply(f"You now privately see what {literal(agent.name)} thinks, as it happens.", private=True)
        return Reply(f"You no longer see {literal(agent.name)}'s thoughts.", private=True)

    # -- review -------------------------------------------------------------------------------

    async def _review(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        held = await self.app.storage.held_outbox(inv.channel.key)
        if not held:
            return Reply("Nothing is waiting for review.", private=True)
        lines = [f"{len(held)} message(s) held for review:"]
        for entry in held:
            reasons = "; ".join(entry.verdict.get("reasons", [])) or "held"
            lines.append(f"#{entry.id} {literal(entry.persona)} — {reasons}\n    {entry.text}")
        lines.append("`approve ID` posts one, `edit ID NEW TEXT` posts your version, `reject ID` drops it.")
        return Reply("\n".join(lines), private=True)

    async def _decide(self, inv: CommandInvocation, entry_id: int, status: OutboxStatus, action: str,
                      text: str | None = None) -> OutboxEntry:
        """Settle a held message. An edited one is posted as the moderator's words under the persona's
        name: tagged "edited by a moderator", never with the model's label."""
        try:
            entry = await self.app.storage.get_outbox(entry_id)
        except NotStoredError:
            entry = None
        if entry is None or entry.channel_key != inv.channel.key:
            raise CommandError(f"there is no held message #{entry_id} in this channel; `review` lists them")
        if entry.status is not OutboxStatus.HELD:
            audit = await self.app.storage.audit_log(entry.channel_key)
            rejected = any(a.outbox_id == entry_id and a.action == "reject" for a in audit)
            raise CommandError(f"message #{entry_id} is not waiting for review: {_fate(entry, rejected)}")
        detail: dict[str, object] = {"persona": entry.persona, "reasons": entry.verdict.get("reasons", [])}
        if text is not None:
            detail.update({"before": entry.text, "after": text})
        audit = AuditRecord(
            world_id=entry.world_id,
            channel_key=entry.channel_key,
            actor=actor(inv.user, inv.channel.platform),
            action=action,
            outbox_id=entry_id,
            detail=detail,
        )
        identity = {**entry.identity, "tag": EDITED_TAG} if text is not None else None
        return await self.app.storage.decide_outbox(entry_id, status, audit, text=text, identity=identity)

    async def _approve(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        entry = await self._decide(inv, cmd.args["id"], OutboxStatus.PENDING, "approve")
        await self.app.outbox.deliver(entry.channel_key)
        await session.hear_approved(entry)
        return Reply(f"Approved #{entry.id}: {literal(entry.persona)}'s message is posted.", private=True)

    async def _edit(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        entry = await self._decide(inv, cmd.args["id"], OutboxStatus.PENDING, "edit", text=cmd.args["text"])
        await self.app.outbox.deliver(entry.channel_key)
        await session.hear_approved(entry)
        return Reply(f"Posted your version of #{entry.id} as {literal(entry.persona)}.", private=True)

    async def _reject(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        entry = await self._decide(inv, cmd.args["id"], OutboxStatus.BLOCKED, "reject")
        return Reply(f"Rejected #{entry.id}: it will never be posted.", private=True)

    async def _safety(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        mode = cmd.args.get("mode")
        if mode is not None and mode != session.config.safety_mode:
            if mode != "red-team":
                red_team_only = [a.name for a in session.world.agents
                                 if not check_persona_spec(a.persona_data, mode).allowed]
                if red_team_only:
                    return Reply(
                        f"Still in red-team mode: {_listed(red_team_only)} may only run there. "
                        f"`persona remove NAME` first, then `safety {mode}`.", private=True, failed=True)
            await session.set_safety_mode(mode)
            await self.app.storage.record_audit(
                AuditRecord(
                    world_id=session.record.id,
                    channel_key=inv.channel.key,
                    actor=actor(inv.user, inv.channel.platform),
                    action="safety_mode",
                    detail={"mode": mode},
                )
            )
        policy = session.verification_policy()
        lines = [f"Safety mode: {session.config.safety_mode}. Checks on every persona message: "
                 + ", ".join(policy.enabled_checks()) + "."]
        if session.config.safety_mode == "red-team":
            lines.append(
                "Red-team mode is for testing other AI systems against bad outputs: personas with "
                "malicious descriptions may run here, and each of their posts is labelled as red-team simulation."
            )
        return Reply("\n".join(lines))

    # -- output -------------------------------------------------------------------------------

    async def _export(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        world = session.world
        fmt = cmd.args["format"]
        moderator = self.permissions.is_moderator(inv.user, inv.channel.platform)
        posts = await self.app.services.storage.outbox_entries(session.record.id)
        log = as_posted(await session.whole_log(), posts, thoughts=moderator)
        filename, body = render_export(world, fmt, self.app.model_name, log, moderator=moderator)
        return Reply(f"Export of “{world.name}” ({len(log)} events) as {fmt}.", file=(filename, body))

    async def _usage(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        ledger = self.app.stack.ledger
        totals = ledger.totals(world=session.world.id)
        lines = [
            f"Usage of “{session.world.name}” ({self.app.model_label}): {totals.calls:,} model calls "
            f"({totals.cached_calls:,} from cache), {totals.prompt_tokens:,} prompt + "
            f"{totals.completion_tokens:,} completion tokens, ${totals.cost_usd:.4f}."
        ]
        for persona, row in sorted(ledger.by_persona(session.world.id).items(), key=lambda kv: kv[0] or ""):
            lines.append(f"• {literal(persona) if persona else '(world)'}: {row.calls:,} call{'s' if row.calls != 1 else ''}, "
                         f"{row.total_tokens:,} tokens, ${row.cost_usd:.4f}")
        budget = self.app.stack.budget
        if budget is not None:
            limits = budget.limits_for(session.world.id)
            lines.append("Budget: " + ("none" if limits.unlimited else limits.describe()))
        return Reply("\n".join(lines), private=True)

    async def _help(self, inv: CommandInvocation, cmd: Command, session: ChannelSession | None) -> Reply:
        topic = (cmd.args.get("topic") or "").lstrip("/") or None
        text = help_text(topic)
        title, _, body = text.partition("\n") if not topic else (f"Troupe: {topic}", "", text)
        return Reply(text, private=True, card=Card(title=title.rstrip(":"), text=body))


def actor(user, platform: str) -> str:  # type: ignore[no-untyped-def]
    """How the audit trail names a person."""
    return f"{platform}:{user.id} ({user.name})"


def _listed(names: Iterable[str]) -> str:
    """Persona names as a list in a reply, each shown as written."""
    return ", ".join(literal(name) for name in names)


def _indented_literal(line: str) -> str:
    """A line of a persona's description in a reply: its indentation kept, its text shown as written."""
    body = line.lstrip(" ")
    return line[: len(line) - len(body)] + literal(body)


def _persona_names(world: TinyWorld, words: list[str]) -> list[str]:
    """Persona names in ``words``, each once, in order: full names may span words (``Priya Nair``)."""
    names: list[str] = []
    rest = " ".join(words)
    while rest.strip():
        found = world.find_leading(rest)
        if found is None:
            world.get(rest.split()[0])  # names what is not a persona here, and who is
            break
        agent, rest = found
        if agent.name not in names:
            names.append(agent.name)
    return names


def _run_said(report: RunReport, session: ChannelSession) -> str:
    """What ``run N`` came to in the moderator's terms (posts, held, thoughts), or why nothing happened."""
    head = f"Ran {report.steps} step(s)"
    if report.nothing:
        if not report.had_news:
            why = "no persona had anything new to react to; say something, or `ask NAME QUESTION`"
        elif session.config.policy == "addressed":
            why = ("under the `addressed` policy only personas a message names answer, and nobody was named; "
                   "name someone, `ask NAME QUESTION`, or `policy everyone`")
        elif session.config.policy == "moderator":
            why = "under the `moderator` policy a persona answers when you `pick NAME`"
        else:
            why = "the personas chose to stay quiet"
        return f"{head}: nothing happened: {why}."
    parts = [f"{report.posted} message(s) posted"]
    if report.held:
        parts.append(f"{report.held} held for review (`review`)")
    if report.blocked:
        parts.append(f"{report.blocked} blocked by verification")
    parts.append(f"{report.thoughts} thought(s)")
    if report.failed:
        parts.append(f"{report.failed} turn(s) failed (the moderator notices say why)")
    return f"{head}: {', '.join(parts)}."


def _fate(entry: OutboxEntry, rejected: bool) -> str:
    """What became of an outbox entry no longer held, in words."""
    if entry.status is OutboxStatus.BLOCKED:
        if rejected:
            return "a moderator rejected it"
        held = entry.verdict.get("action") == "hold"
        if held and entry.error and "left the world" in entry.error:
            return f"it was dropped when {literal(entry.persona)} left the world"
        return "it was dropped when the world was reset" if held else "verification blocked it"
    return {
        OutboxStatus.POSTED: "it is posted",
        OutboxStatus.PENDING: "it is approved and on its way",
        OutboxStatus.FAILED: "posting it failed",
    }.get(entry.status, f"it is {entry.status.value}")
