"""The branch commands: ``fork`` a channel's world into a branch with a thread of its own, and
``branch NAME TEXT`` to talk in one where there are no threads (the console)."""

from __future__ import annotations

from adapters.base import AdapterError, literal
from bots.context import CommandContext, Handler
from bots.forks import SECTION_PREFIX, Branches
from bots.reply import Reply
from bots.session import ChannelSession


async def fork(ctx: CommandContext, *, name: str, at: int | None = None) -> Reply:
    parent = ctx.session
    branches: Branches = ctx.services.branches
    # Checked and copied before a thread is opened: a refused fork leaves nothing behind.
    world = await branches.fork_world(parent, name, at=at)
    where = f"“{parent.world.name}”" if not branches.is_branch(parent) else f"the branch “{parent.world.name}”"
    intro = (f"**Branch “{name}”** of {where}, forked at event #{world.event_count}: the same personas, memories "
             "and conversation up to there. Everything written in this thread is heard by this branch only.")
    channel = ctx.channel.model_copy(update={"thread": None})
    try:
        opened = await ctx.adapter.open_thread(channel, f"Branch {name}", intro)
    except AdapterError as error:
        return Reply(f"Could not open a thread for the branch: {error}. Nothing was forked.", private=True, failed=True)
    if opened is not None:
        thread, there = opened.id, f"in {opened.link}"
    else:
        thread = f"{SECTION_PREFIX}{name}"
        there = (f"with `branch {name} TEXT` (its personas' posts are labelled “branch {name}”; "
                 "this platform has no threads)")
    await branches.bind(parent, world, thread)
    start = f"right after event #{at}" if at is not None else f"at event #{world.event_count}"
    return Reply(f"Forked the branch “{name}” from {where} {start}, without a model call. Talk to it {there}: "
                 f"only the branch hears what is said there, and {where} never hears it. "
                 f"`compare main {name}` compares them; `stop` in the branch ends it.")


async def branch(ctx: CommandContext, *, name: str, text: str) -> Reply:
    session = _named(ctx, name)
    if session is None:
        return Reply(_unknown(ctx, name), private=True, failed=True)
    await session.hear(ctx.user, text)
    if session.paused:
        return Reply(f"Said in the branch “{session.world.name}”; it is paused, so its personas answer after `resume`.",
                     private=True)
    return Reply(f"Said in the branch “{session.world.name}”.", private=True)


def _named(ctx: CommandContext, name: str) -> ChannelSession | None:
    return ctx.services.branches.named(ctx.channel.key, name)


def _unknown(ctx: CommandContext, name: str) -> str:
    known = ", ".join(literal(s.world.name) for s in ctx.services.branches.of_channel(ctx.channel.key))
    return (f"There is no running branch named “{literal(name)}” here; " +
            (f"the branches are {known}." if known else "`fork NAME` makes one."))


def status_lines(ctx: CommandContext, session: ChannelSession) -> list[str]:
    """What ``status`` says about branches: which branch this is, and the channel's running branches."""
    branches: Branches = ctx.services.branches
    lines = []
    if branches.is_branch(session):
        lines.append(f"This is the branch “{session.world.name}”, forked at event #{session.record.fork_event}; "
                     "`stop` here ends it alone.")
    running = branches.of_channel(ctx.channel.key)
    if running:
        listed = "; ".join(
            f"{literal(s.world.name)} ({'paused' if s.paused else 'active'}{', answering' if s.busy else ''}, "
            f"forked at #{s.record.fork_event}, {s.world.event_count - s.record.fork_event} event(s) since)"
            for s in running)
        lines.append(f"Branches: {listed}.")
    return lines


HANDLERS: dict[str, Handler] = {"fork": fork, "branch": branch}
