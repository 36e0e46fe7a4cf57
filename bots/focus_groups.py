"""Focus groups under way: each is driven in the background, shows one status line while it runs,
and posts its report at the end; stopping or resetting the world ends it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.base import Card, clip, literal
from bots.outbox import Outbox
from bots.screening import summary_parts
from bots.session import ChannelSession
from simulation.events import EventKind
from simulation.focus_group import FocusGroup, FocusProgress, FocusReport
from simulation.llm.errors import BudgetExceededError, LLMError

log = logging.getLogger(__name__)

#: The colour of research cards.
COLOUR = "#5865f2"


class FocusGroups:
    """The focus groups running in every channel."""

    def __init__(self, outbox: Outbox, spawn: Callable[[Awaitable[Any]], asyncio.Task]) -> None:
        self.outbox = outbox
        self.spawn = spawn
        #: The tasks driving focus groups, with their sessions, until their report is posted: a stop
        #: or reset ends them.
        self._tasks: dict[asyncio.Task, ChannelSession] = {}

    def begin(self, session: ChannelSession, group: FocusGroup) -> None:
        session.focus = session.last_focus = group
        task = self.spawn(self._run(session, group))
        self._tasks[task] = session
        task.add_done_callback(lambda done: self._tasks.pop(done, None))

    async def _run(self, session: ChannelSession, group: FocusGroup) -> None:
        """Drive the group, keeping one status line up to date, and post its report at the end."""
        adapter = session.adapter
        handle: str | None = None
        thinking: str | None = None

        async def progress(update: FocusProgress) -> None:
            nonlocal handle, thinking
            text = f"Focus group: {literal(update.text)}"
            handle = await adapter.progress(session.channel, text, handle=handle)
            thinking = update.persona if update.stage == "thinking" else None
            if thinking:
                await session._quietly(adapter.typing(session.channel, session.identity(thinking)))

        group.on_progress = progress
        failure: str | None = None
        try:
            report: FocusReport | None = await group.run()
        except asyncio.CancelledError:
            # A stop or reset ended it: that command says so and decides what the world does next.
            session.focus = None
            await session._quietly(adapter.progress(session.channel, "Focus group: cancelled", handle=handle))
            if thinking:
                await session._quietly(adapter.stopped_typing(session.channel, session.identity(thinking)))
            raise
        except BudgetExceededError:
            report = None  # the session already said the world is paused
        except LLMError as error:
            report, failure = None, f"The focus group stopped: {error}"
        except Exception:
            log.exception("focus group failed")
            report, failure = None, "The focus group stopped because of an internal error."
        session.focus = None
        session.kick()
        if failure is not None:
            await session._quietly(adapter.announce(session.channel, failure))
        if report is not None:
            card = await self.report_card(session, report)
            await session._quietly(adapter.post_card(session.channel, card))

    async def cancel(self, session: ChannelSession) -> bool:
        """End the focus group running in ``session`` (or posting its report) before it is stopped
        or reset.

        What its personas said before is posted now, so nothing of it reaches the channel after the
        command's answer. False when no focus group was running.
        """
        tasks = [task for task, of in self._tasks.items() if of is session and not task.done()]
        if not tasks:
            return False
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)  # their end, without taking on their cancellation
        session.focus = None  # also when one was cancelled before it began
        await self.outbox.deliver(session.record.channel_key)
        return True

    async def report_card(self, session: ChannelSession, report: FocusReport) -> Card:
        said = [e for turn in report.turns for e in turn.events if e.kind is EventKind.ACTION and e.type == "TALK"]
        body, fields = await summary_parts(session, report.summary, said, max_points=8)
        if report.probes:
            body += f"\nProbes: {'; '.join(report.probes)}"
        return Card(title=clip(f"Focus group: {report.question}", 240), text=body, fields=tuple(fields),
                    footer=f"{report.rounds} round(s), {len(report.turns)} turns. {report.disclaimer}", colour=COLOUR)
