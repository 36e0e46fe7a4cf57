"""The moderator commands (worlds, personas, talk, review, output) run against a channel's session.

Each is a handler: the command's context and its arguments by name in, the answer to its caller out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from adapters.base import AdapterError, Card, inert, literal, quoted
from bots.branch_commands import status_lines
from bots.commands import CommandError, help_text
from bots.context import CommandContext, CommandServices, Handler
from bots.exports import as_posted, render_export
from bots.persona_names import unshowable
from bots.reply import Reply
from bots.session import ChannelSession, RunReport
from bots.storage import AuditRecord, NotStoredError, OutboxEntry, OutboxStatus, WorldStatus
from bots.verification.personas import check_persona_spec
from config.turn_taking import POLICY_DESCRIPTIONS
from simulation.persona import PersonaSpec, bundled_personas, find_bundled_persona, load_persona, parse_persona_text
from simulation.prompts import render_persona
from simulation.scenario import Scenario, ScenarioError, load_scenario, resolve_persona
from simulation.world import TinyWorld

log = logging.getLogger(__name__)


#: The tag of a held message a moderator edited before it was posted: the words are theirs.
EDITED_TAG = "edited by a moderator"


def over_budget(services: CommandServices, session: ChannelSession) -> Reply | None:
    """The answer to anything that would make personas talk in a world whose budget is spent."""
    budget = services.stack.budget
    reached = budget.reached(session.world.id) if budget is not None else None
    if reached is None:
        return None
    return Reply(f"“{session.world.name}” stays paused: it reached {reached}, or start a new world.",
                 private=True, failed=True)


# -- worlds -----------------------------------------------------------------------------------------


def _read_scenario(ctx: CommandContext, name: str) -> tuple[Scenario, list[PersonaSpec]]:
    """A scenario and its personas, every file read under the caller's rights; refused whole
    when it lists more personas than a world may have. Blocking: run it in a worker thread."""
    folders = ctx.readable_folders()
    scenario, base = load_scenario(ctx.readable_file(name))
    most = ctx.services.settings.max_personas
    if len(scenario.personas) > most:
        raise ScenarioError(
            f"{name}: the scenario lists {len(scenario.personas)} personas, but a world here has at most {most} "
            "(bot.max_personas). List fewer, or ask the bot's operator to raise bot.max_personas. "
            "Nothing was started."
        )
    return scenario, [resolve_persona(entry, base, folders) for entry in scenario.personas]


#: The longest world name: it heads cards and status lines.
WORLD_NAME_MAX = 100


def _world_name_problem(name: str) -> str | None:
    """What would keep a world's name (typed, or a scenario file's) from showing as written in the
    bot's messages, or None. "#" and "_" are fine inside a name ("Q4 #2", "pricing_v2")."""
    if len(name) > WORLD_NAME_MAX:
        return f"{len(name)} characters; a world name is at most {WORLD_NAME_MAX}"
    if "://" in name:
        return "a link"
    return unshowable(name.replace("#", "").replace("_", ""))


async def start(ctx: CommandContext, *, name: str | None, reopen: bool, situation: str | None = None,
                scenario: str | None = None) -> Reply:
    sessions = ctx.services.sessions
    if ctx.found_session is not None:
        return Reply(
            f"This channel already has the world “{ctx.found_session.world.name}”. `stop` it first to start another.",
            private=True, failed=True,
        )
    stopped = await sessions.last_stopped(ctx.channel)
    if reopen:
        if stopped is None:
            return Reply("No world was stopped in this channel; `start NAME` begins one.", private=True, failed=True)
        session = await sessions.reopen(stopped)
        await ctx.services.branches.restore(session)
        names = ", ".join(literal(a.name) for a in session.world.agents) or "no personas"
        return Reply(f"Reopened the world “{session.world.name}” with {names}: its conversation and the "
                     "personas' memories are as they were.")
    specs: list[PersonaSpec] = []
    read = None
    if scenario:
        # Files are read and checked in a worker thread: other channels keep talking meanwhile.
        read, specs = await asyncio.to_thread(_read_scenario, ctx, scenario)
        seen: set[str] = set()
        for spec in specs:
            if spec.name.casefold() in seen:
                return Reply(f"The scenario lists {spec.name} twice; a world has each persona once. "
                             "Nothing was started.", private=True, failed=True)
            seen.add(spec.name.casefold())
        situation = situation or read.situation
        name = name or read.name
    if name and (problem := _world_name_problem(name)) is not None:
        from_file = read is not None and name == read.name
        whose = f"{inert(scenario or '')}: the scenario's name" if from_file else "The world name"
        return Reply(f"{whose} “{literal(name)}” contains {problem}. It is shown in the bot's messages: "
                     "write it as plain words. Nothing was started.", private=True, failed=True)
    name = name or (f"#{ctx.channel.name}" if ctx.channel.name else "Troupe world")
    session = await sessions.start(ctx.channel, ctx.user, name, situation)
    added = []
    try:
        for spec in specs:
            added.append((await session.add_persona(spec)).name)
    except BaseException:
        # A scenario is started whole or not at all: no half-built world stays bound here.
        await sessions.stop(ctx.channel)
        raise
    lines = [f"Started the world “{name}” in this channel ({ctx.services.model_label})."]
    if stopped is not None:
        lines.append(f"(The world “{stopped.name}” stopped here earlier is kept: `stop` this one, then "
                     "`start --reopen`, to go back to it.)")
    if added:
        lines.append("Personas: " + ", ".join(literal(name) for name in added) + ".")
    else:
        lines.append("Add personas with `persona add NAME` (`personas` lists the bundled ones).")
    lines.append("Everything people write here is now heard by the personas.")
    if read is not None:
        lines += await _apply_scenario(ctx, session, read)
    return Reply("\n".join(lines))


async def _apply_scenario(ctx: CommandContext, session: ChannelSession, scenario: Scenario) -> list[str]:
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
        ctx.services.spawn(session.hear(ctx.user, scenario.opening))
    return lines


async def stop(ctx: CommandContext, *, confirm: bool) -> Reply:
    session = ctx.session
    name = session.world.name
    branches = ctx.services.branches
    if branches.is_branch(session):
        if not confirm:
            return Reply(f"`stop confirm` ends the branch “{name}” (and any branch forked from it); the channel's "
                         "world and the other branches go on. Its history is kept.", private=True)
        await ctx.services.focus_groups.cancel(session)
        stopped = await branches.stop(session)
        also = f" (with {', '.join(literal(n) for n in stopped[1:])}, forked from it)" if len(stopped) > 1 else ""
        return Reply(f"Stopped the branch “{name}”{also}; the channel's world and the other branches go on. "
                     "Its history is kept.")
    running = branches.of_channel(ctx.channel.key)
    if not confirm:
        also = (f" Its branches ({', '.join(literal(s.world.name) for s in running)}) stop with it, and come back "
                "with it." if running else "")
        return Reply(f"`stop confirm` ends the world “{name}” in this channel: personas stop hearing it. Its "
                     f"history is kept, and `start --reopen` brings it back.{also}", private=True)
    focus = "; the focus group running in it is cancelled" if await ctx.services.focus_groups.cancel(session) else ""
    branches.forget(ctx.channel.key)
    await ctx.services.sessions.stop(ctx.channel)
    return Reply(f"Stopped the world “{name}”{focus}. Its history is kept: `start --reopen` brings it back, "
                 "`start NAME` begins a new one.")


async def status(ctx: CommandContext) -> Reply:
    session = ctx.found_session
    if session is None:
        return Reply("No world in this channel. `start NAME` begins one.", private=True)
    world = session.world
    people = ", ".join(literal(a.name) for a in world.agents) or "none yet"
    state = "paused" if session.paused else "active"
    thinking = " (personas are answering)" if session.busy else ""
    observed = ", ".join(literal(name) for name in session.config.observers) or "nobody"
    lines = [
        f"World “{world.name}”: {state}{thinking}; {ctx.services.model_label}.",
        f"Personas: {people}.",
        f"Policy: {session.config.policy}, {session.config.exchanges} persona exchange(s) after each message.",
        f"Step {world.clock.step}, {world.event_count} events; observed: {observed}.",
        *status_lines(ctx, session),
    ]
    return Reply("\n".join(lines))


async def pause(ctx: CommandContext) -> Reply:
    session = ctx.session
    if session.paused:
        return Reply(f"“{session.world.name}” is already paused; `resume` lets personas answer again.", private=True)
    await session.set_status(WorldStatus.PAUSED)
    return Reply("Paused: personas still hear the channel but do not answer until `resume`.")


async def resume(ctx: CommandContext) -> Reply:
    session = ctx.session
    if (spent := over_budget(ctx.services, session)) is not None:
        return spent
    if not session.paused:
        return Reply(f"“{session.world.name}” is not paused: personas are answering.", private=True)
    await session.set_status(WorldStatus.ACTIVE)
    return Reply("Resumed: personas answer again.")


async def reset(ctx: CommandContext, *, confirm: bool) -> Reply:
    session = ctx.session
    if ctx.services.branches.is_branch(session):
        return Reply(f"A branch cannot be reset: it starts from its parent's conversation. `stop confirm` here ends "
                     f"“{session.world.name}”; `fork NAME` in the channel makes a fresh branch.", private=True, failed=True)
    if await ctx.services.storage.branches(session.record.id):
        return Reply(f"“{session.world.name}” has branches, which share its conversation, so it cannot be reset. "
                     "`start NAME` after `stop confirm` begins a new world instead.", private=True, failed=True)
    if not confirm:
        people = len(session.world.agents)
        return Reply(f"`reset confirm` forgets the conversation of “{session.world.name}” and the memories of "
                     f"its {people} persona(s); the personas stay. It cannot be undone.", private=True)
    focus = "; the focus group that was running is cancelled" if await ctx.services.focus_groups.cancel(session) else ""
    dropped = await session.reset()
    held = (f" The {dropped} message(s) held for review were dropped with it." if dropped else "")
    return Reply(f"Reset: the conversation and the personas' memories are forgotten{focus}; the personas stay."
                 + held)


async def run(ctx: CommandContext, *, steps: int) -> Reply:
    session = ctx.session
    if not session.world.agents:
        return Reply("There are no personas to run. Add one with `persona add NAME`.", private=True, failed=True)
    if (spent := over_budget(ctx.services, session)) is not None:
        return spent
    report = await session.run_steps(steps)
    return Reply(_run_said(report, session), private=True)


# -- personas ---------------------------------------------------------------------------------------


async def persona_add(ctx: CommandContext, *, json: str | None = None, file: str | None = None,
                      bundled: str | None = None) -> Reply:
    session = ctx.session
    if len(session.world.agents) >= ctx.services.settings.max_personas:
        return Reply(
            f"This world already has {len(session.world.agents)} personas, the most allowed "
            "(bot.max_personas). Remove one first.",
            private=True, failed=True,
        )
    # Parsed and checked in a worker thread: other channels keep talking meanwhile.
    if json is not None:
        spec = await asyncio.to_thread(parse_persona_text, json, source="pasted persona")
    elif file is not None:
        spec = await asyncio.to_thread(load_persona, ctx.readable_file(file))
    else:
        spec = await asyncio.to_thread(find_bundled_persona, bundled or "")
    agent = await session.add_persona(spec)
    return Reply(f"{literal(agent.name)} joined: {literal(spec.summary())}.")


async def persona_list(ctx: CommandContext) -> Reply:
    session = ctx.session
    if not session.world.agents:
        return Reply("No personas yet. Add one with `persona add NAME`.", private=True)
    return Reply("\n".join(f"• {literal(a.spec.summary())}" for a in session.world.agents), private=True)


async def persona_remove(ctx: CommandContext, *, name: str) -> Reply:
    agent, dropped = await ctx.session.remove_persona(name)
    held = f" {dropped} of their message(s) held for review were dropped with them." if dropped else ""
    return Reply(f"{literal(agent.name)} left the world.{held}")


async def persona_show(ctx: CommandContext, *, name: str) -> Reply:
    agent = ctx.session.world.get(name)
    lines = [agent.spec.summary(), *render_persona(agent.spec.to_tinytroupe_dict())]
    return Reply("\n".join(_indented_literal(line) for line in lines), private=True)


async def personas(ctx: CommandContext) -> Reply:
    seen: dict[str, str] = {}
    for path in bundled_personas().values():
        if str(path) not in seen:
            seen[str(path)] = load_persona(path).summary()
    return Reply("Bundled personas (`persona add NAME`):\n" + "\n".join(f"• {s}" for s in seen.values()), private=True)


# -- talk -------------------------------------------------------------------------------------------


async def policy(ctx: CommandContext, *, policy: str | None = None, exchanges: int | None = None) -> Reply:
    session = ctx.session
    if policy is not None or exchanges is not None:
        await session.set_policy(policy, exchanges)
    config = session.config
    return Reply(
        f"Policy: {config.policy} — "
        + POLICY_DESCRIPTIONS[config.policy]
        + ("; no persona-to-persona exchange follows." if config.exchanges == 0 else
           f"; then up to {config.exchanges} persona-to-persona exchange{'s' if config.exchanges != 1 else ''}.")
    )


async def pick(ctx: CommandContext, *, names: list[str]) -> Reply:
    session = ctx.session
    picked = _persona_names(session.world, names)
    if session.config.policy != "moderator":
        return Reply("`pick` works with the moderator policy: `policy moderator` first.", private=True, failed=True)
    waiting = {agent.name for agent in session.world.pick(*picked)}
    if waiting:  # no step stores the picks that wait; a restart meanwhile keeps them
        await session.save_config()
    now = [name for name in picked if name not in waiting]
    if not now:
        return Reply(f"Next: {_listed(picked)}. Nothing to answer yet: the pick waits for the next message.",
                     private=True)
    later = "" if not waiting else (
        f" {_listed(n for n in picked if n in waiting)} {'have' if len(waiting) > 1 else 'has'} nothing new "
        "to answer yet, and will answer the next message.")
    if session.paused:
        return Reply(f"Next: {_listed(now)}, after `resume` (“{session.world.name}” is paused).{later}", private=True)
    session.allow_steps(1)
    return Reply(f"Next: {_listed(now)}.{later}", private=True)


async def ask(ctx: CommandContext, *, name: str, text: str) -> Reply:
    session = ctx.session
    # "ask Priya Nair Is the budget ok?": the full name, unquoted, is the persona's, not the question's.
    found = session.world.find_leading(f"{name} {text}")
    if found is not None and found[1]:
        agent, text = found
    else:
        agent = session.world.get(name)
    if ctx.interviewed is not None:
        # A question in an interview thread is a 1:1 conversation: the others hear it but do not
        # chime in, and the answer in the thread is the only reply.
        ctx.services.interviews.asked(ctx.channel, agent.name)
        await session.ask(ctx.user, agent.name, text, exchanges=0)
        return Reply("", private=True)
    await session.ask(ctx.user, agent.name, text)
    if (spent := over_budget(ctx.services, session)) is not None:
        return Reply(f"Asked {literal(agent.name)}; {spent.text[0].lower()}{spent.text[1:]}", private=True)
    if session.paused:
        return Reply(f"Asked {literal(agent.name)}; “{session.world.name}” is paused, so the answer comes after `resume`.",
                     private=True)
    return Reply(f"Asked {literal(agent.name)}.", private=True)


async def interview(ctx: CommandContext, *, name: str) -> Reply:
    """Open a thread where everything written is put to one persona."""
    agent = ctx.session.world.find(name)
    if agent is None:
        return Reply(f"There is no persona called {literal(name)} here; `persona list` shows them.",
                     private=True, failed=True)
    if ctx.channel.thread is not None:
        return Reply("Interviews open from the channel, not from a thread.", private=True, failed=True)
    shown = literal(agent.name)
    try:
        opened = await ctx.adapter.open_thread(
            ctx.channel, f"Interview with {agent.name}",
            f"**Interview with {shown}**: everything written in this thread is put to {shown}, who answers here.")
    except AdapterError as error:
        return Reply(f"Could not open the interview thread: {error}", private=True, failed=True)
    if opened is None:
        return Reply(f"Interviews are held in threads, and there are none here: `ask {shown} QUESTION` talks "
                     "with one persona.", private=True, failed=True)
    await ctx.services.interviews.opened(ctx.channel, opened.id, agent.name)
    return Reply(f"Opened {opened.link} to talk with {shown}.", private=True)


async def observe(ctx: CommandContext, *, name: str, on: bool) -> Reply:
    session = ctx.session
    agent = session.world.get(name)
    watchers = [u for u in session.config.observers.get(agent.name, []) if u.id != ctx.user.id]
    if on:
        watchers.append(ctx.user)
    if watchers:
        session.config.observers[agent.name] = watchers
    else:
        session.config.observers.pop(agent.name, None)
    await session.save_config()
    if on:
        return Reply(f"You now privately see what {literal(agent.name)} thinks, as it happens.", private=True)
    return Reply(f"You no longer see {literal(agent.name)}'s thoughts.", private=True)


# -- review -----------------------------------------------------------------------------------------


async def review(ctx: CommandContext) -> Reply:
    held = await ctx.services.storage.held_outbox(ctx.channel.key)
    if not held:
        return Reply("Nothing is waiting for review.", private=True)
    lines = [f"{len(held)} message(s) held for review:"]
    for entry in held:
        reasons = "; ".join(entry.verdict.get("reasons", [])) or "held"
        lines.append(f"#{entry.id} {literal(entry.persona)} — {literal(reasons)}\n{quoted(entry.text)}")
    lines.append("`approve ID` posts one, `edit ID NEW TEXT` posts your version, `reject ID` drops it.")
    return Reply("\n".join(lines), private=True)


async def _decide(ctx: CommandContext, entry_id: int, status: OutboxStatus, action: str,
                  text: str | None = None) -> OutboxEntry:
    """Settle a held message. An edited one is posted as the moderator's words under the persona's
    name: tagged "edited by a moderator", never with the model's label."""
    storage = ctx.services.storage
    try:
        entry = await storage.get_outbox(entry_id)
    except NotStoredError:
        entry = None
    if entry is None or entry.channel_key != ctx.channel.key:
        raise CommandError(f"there is no held message #{entry_id} in this channel; `review` lists them")
    if entry.status is not OutboxStatus.HELD:
        audit = await storage.audit_log(entry.channel_key)
        rejected = any(a.outbox_id == entry_id and a.action == "reject" for a in audit)
        raise CommandError(f"message #{entry_id} is not waiting for review: {_fate(entry, rejected)}")
    detail: dict[str, object] = {"persona": entry.persona, "reasons": entry.verdict.get("reasons", [])}
    if text is not None:
        detail.update({"before": entry.text, "after": text})
    audit = AuditRecord(
        world_id=entry.world_id,
        channel_key=entry.channel_key,
        actor=actor(ctx),
        action=action,
        outbox_id=entry_id,
        detail=detail,
    )
    identity = {**entry.identity, "tag": EDITED_TAG} if text is not None else None
    return await storage.decide_outbox(entry_id, status, audit, text=text, identity=identity)


async def approve(ctx: CommandContext, *, id: int) -> Reply:
    entry = await _decide(ctx, id, OutboxStatus.PENDING, "approve")
    await ctx.services.outbox.deliver(entry.channel_key)
    if (said_in := _world_of(ctx, entry)) is not None:
        await said_in.hear_approved(entry)
    return Reply(f"Approved #{entry.id}: {literal(entry.persona)}'s message is posted.", private=True)


async def edit(ctx: CommandContext, *, id: int, text: str) -> Reply:
    entry = await _decide(ctx, id, OutboxStatus.PENDING, "edit", text=text)
    await ctx.services.outbox.deliver(entry.channel_key)
    if (said_in := _world_of(ctx, entry)) is not None:
        await said_in.hear_approved(entry)
    return Reply(f"Posted your version of #{entry.id} as {literal(entry.persona)}.", private=True)


def _world_of(ctx: CommandContext, entry: OutboxEntry) -> ChannelSession | None:
    """The running world that said a held message: the channel's, or one of its branches (their
    event ids overlap, so the message is heard only where it was said); None when it stopped."""
    main = ctx.services.sessions.get(ctx.channel.key)
    candidates = [*([main] if main is not None else []), *ctx.services.branches.of_channel(ctx.channel.key)]
    return next((s for s in candidates if s.record.id == entry.world_id), None)


async def reject(ctx: CommandContext, *, id: int) -> Reply:
    entry = await _decide(ctx, id, OutboxStatus.BLOCKED, "reject")
    return Reply(f"Rejected #{entry.id}: it will never be posted.", private=True)


async def safety(ctx: CommandContext, *, mode: str | None) -> Reply:
    session = ctx.session
    if mode is not None and mode != session.config.safety_mode:
        if mode != "red-team":
            red_team_only = [a.name for a in session.world.agents
                             if not check_persona_spec(a.persona_data, mode).allowed]
            if red_team_only:
                return Reply(
                    f"Still in red-team mode: {_listed(red_team_only)} may only run there. "
                    f"`persona remove NAME` first, then `safety {mode}`.", private=True, failed=True)
        await session.set_safety_mode(mode)
        await ctx.services.storage.record_audit(
            AuditRecord(
                world_id=session.record.id,
                channel_key=ctx.channel.key,
                actor=actor(ctx),
                action="safety_mode",
                detail={"mode": mode},
            )
        )
    checks = session.verification_policy()
    lines = [f"Safety mode: {session.config.safety_mode}. Checks on every persona message: "
             + ", ".join(checks.enabled_checks()) + "."]
    if session.config.safety_mode == "red-team":
        lines.append(
            "Red-team mode is for testing other AI systems against bad outputs: personas with "
            "malicious descriptions may run here, and each of their posts is labelled as red-team simulation."
        )
    return Reply("\n".join(lines))


# -- output -----------------------------------------------------------------------------------------


async def export(ctx: CommandContext, *, format: str) -> Reply:
    session = ctx.session
    world = session.world
    moderator = ctx.services.permissions.is_moderator(ctx.user, ctx.channel.platform)
    posts = await ctx.services.storage.outbox_entries(session.record.id)
    events = as_posted(await session.whole_log(), posts, thoughts=moderator)
    filename, body = render_export(world, format, ctx.services.model_name, events, moderator=moderator)
    return Reply(f"Export of “{world.name}” ({len(events)} events) as {format}.", file=(filename, body))


async def usage(ctx: CommandContext) -> Reply:
    session = ctx.session
    ledger = ctx.services.stack.ledger
    totals = ledger.totals(world=session.world.id)
    lines = [
        f"Usage of “{session.world.name}” ({ctx.services.model_label}): {totals.calls:,} model calls "
        f"({totals.cached_calls:,} from cache), {totals.prompt_tokens:,} prompt + "
        f"{totals.completion_tokens:,} completion tokens, ${totals.cost_usd:.4f}."
    ]
    for persona, row in sorted(ledger.by_persona(session.world.id).items(), key=lambda kv: kv[0] or ""):
        lines.append(f"• {literal(persona) if persona else '(world)'}: {row.calls:,} call{'s' if row.calls != 1 else ''}, "
                     f"{row.total_tokens:,} tokens, ${row.cost_usd:.4f}")
    budget = ctx.services.stack.budget
    if budget is not None:
        limits = budget.limits_for(session.world.id)
        lines.append("Budget: " + ("none" if limits.unlimited else limits.describe()))
    return Reply("\n".join(lines), private=True)


async def help(ctx: CommandContext, *, topic: str | None = None) -> Reply:
    topic = (topic or "").lstrip("/") or None
    text = help_text(topic)
    title, _, body = text.partition("\n") if not topic else (f"Troupe: {topic}", "", text)
    return Reply(text, private=True, card=Card(title=title.rstrip(":"), text=body))


#: The moderator commands, by name.
HANDLERS: dict[str, Handler] = {
    "start": start,
    "stop": stop,
    "status": status,
    "pause": pause,
    "resume": resume,
    "reset": reset,
    "run": run,
    "persona add": persona_add,
    "persona list": persona_list,
    "persona remove": persona_remove,
    "persona show": persona_show,
    "personas": personas,
    "policy": policy,
    "pick": pick,
    "ask": ask,
    "interview": interview,
    "observe": observe,
    "review": review,
    "approve": approve,
    "edit": edit,
    "reject": reject,
    "safety": safety,
    "export": export,
    "usage": usage,
    "help": help,
}


def actor(ctx: CommandContext) -> str:
    """How the audit trail names the person who ran a command."""
    return f"{ctx.channel.platform}:{ctx.user.id} ({ctx.user.name})"


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
