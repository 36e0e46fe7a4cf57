"""How often one person may run commands, or have the personas answer, so that nobody floods a
channel with answers, the model with work or the host with files.

Each person has an allowance for commands of any kind and a smaller one for commands that make a
file, both larger for moderators, and one for the messages in a channel the personas answer
(``bot.rate_limits``). An allowance is counted over a moving window: ``3 per 10 minutes`` means
never more than three within any ten minutes. Counts live in memory, so a restart starts them afresh.
"""

from __future__ import annotations

import functools
import logging
import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from adapters.base import CommandInvocation, IncomingMessage
from config.settings import CommandRateSettings

log = logging.getLogger(__name__)

#: Commands whose answer is a file.
FILE_COMMANDS = ("export", "extract")


@functools.cache
def _rate(text: str) -> RateLimitItem:
    return parse(text)


class CommandRateLimiter:
    """Counts each person's commands and refuses the ones past their allowance."""

    def __init__(self, settings: CommandRateSettings) -> None:
        self.settings = settings
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        #: When each person over their message allowance in a channel was last told so.
        self._told: dict[tuple[str, str, str], float] = {}

    def unanswered(self, message: IncomingMessage, *, moderator: bool) -> str | None:
        """None when the personas may answer ``message`` (and it is counted); else what to tell its
        writer, once a window (an empty string when they were told already)."""
        text = self.settings.moderator_messages if moderator else self.settings.messages
        if text is None:
            return None
        rate = _rate(text)
        who = (message.channel.platform, message.user.id, message.channel.key)
        if self._limiter.hit(rate, *who, "messages"):
            return None
        reset = self._limiter.get_window_stats(rate, *who, "messages").reset_time
        now = time.time()
        if self._told.get(who, 0.0) > now:
            return ""
        self._told[who] = reset
        if len(self._told) > 10_000:  # forget those whose window has passed
            self._told = {k: v for k, v in self._told.items() if v > now}
        log.info("not answering %s:%s in %s: over the message allowance (%s)", who[0], who[1], who[2], rate)
        setting = f"bot.rate_limits.{'moderator_' if moderator else ''}messages"
        return (f"You have written {_count(rate.amount, 'message')} here in the last {_window(rate)}, the most the "
                f"personas answer from one person ({setting} in the bot's settings). They hear what you write, and "
                f"take it into account when they next speak; a message gets its own answer again in "
                f"{_duration(reset - now)}.")

    def refusal(self, invocation: CommandInvocation, *, moderator: bool) -> str | None:
        """Why ``invocation`` may not run now, said to its caller alone; None lets it run (and counts it)."""
        word = invocation.text.split(maxsplit=1)[0].lower() if invocation.text.strip() else ""
        settings = self.settings
        allowances = [("commands", settings.moderator_commands if moderator else settings.commands)]
        if word in FILE_COMMANDS:
            allowances.append(("files", settings.moderator_files if moderator else settings.files))
        counted = [(kind, _rate(text)) for kind, text in allowances if text is not None]
        who = (invocation.channel.platform, invocation.user.id)
        for kind, rate in counted:
            if not self._limiter.test(rate, *who, kind):
                reset = self._limiter.get_window_stats(rate, *who, kind).reset_time
                log.info("refused %r from %s:%s: over the %s allowance (%s)", word, *who, kind, rate)
                return _refusal(kind, rate, reset - time.time(), moderator)
        for kind, rate in counted:
            self._limiter.hit(rate, *who, kind)
        return None


def _refusal(kind: str, rate: RateLimitItem, wait_s: float, moderator: bool) -> str:
    what = (f"{_count(rate.amount, 'file')} ({' or '.join(f'`{c}`' for c in FILE_COMMANDS)})" if kind == "files"
            else _count(rate.amount, "command"))
    setting = f"bot.rate_limits.{'moderator_' if moderator else ''}{kind}"
    return (f"You have asked for {what} in the last {_window(rate)}, the most one person may ({setting} in the "
            f"bot's settings). Try again in {_duration(wait_s)}.")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def _window(rate: RateLimitItem) -> str:
    unit = rate.GRANULARITY.name
    return unit if rate.multiples in (None, 1) else f"{rate.multiples} {unit}s"


def _duration(seconds: float) -> str:
    """A wait in words, rounded up: "12 seconds", "3 minutes", "2 hours"."""
    seconds = max(1, math.ceil(seconds))
    for size, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds >= 2 * size or (unit == "minute" and seconds >= size):
            return _count(math.ceil(seconds / size), unit)
    return _count(seconds, "second")
