"""An in-memory chat platform for tests: events are pushed in, everything the bot sends is recorded.

Tests drive the bot through the same contract as a real platform, then read back what it posted,
told someone privately or answered, and can make the platform fail at chosen moments.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any, Literal

from adapters.base import (
    Adapter,
    AdapterError,
    AdapterEvent,
    Card,
    ChannelRef,
    CommandInvocation,
    Identity,
    IncomingMessage,
    OpenedThread,
    UserRef,
    split_message,
)

_PLATFORM_IDS = count(1)

SentKind = Literal["post", "private", "reply", "typing", "stopped_typing", "card", "progress", "file"]

#: Called with the first record of the post that triggered it; may be a coroutine function.
PostHook = Callable[["Sent"], Any]


class SimulatedCrash(BaseException):
    """Raised after a post was delivered, as if the process died before noting the delivery.

    A ``BaseException`` so that ``except Exception`` recovery code lets it through, like a real crash.
    """


@dataclass(frozen=True)
class Sent:
    """One thing the bot sent. ``identity`` is the persona name (``None`` for private replies)."""

    kind: SentKind
    channel: str
    text: str
    identity: str | None = None
    #: The label shown beside a post's name (``demo model``, ``edited by a moderator``), if any.
    tag: str | None = None
    thread: str | None = None
    message_id: str | None = None
    #: The recipient of a private reply.
    user: str | None = None
    reply_token: str | None = None
    #: A card's structure (kind ``card``); a file's name and bytes (kind ``file``).
    card: Card | None = None
    file: tuple[str, bytes] | None = None
    #: A post of the bot's own words (``announce``), not a persona's.
    by_bot: bool = False
    #: When it was sent: a platform's history shows it, and ``find_post`` looks only after a moment.
    at: datetime = field(default_factory=lambda: datetime.now(UTC), compare=False)


@dataclass
class _Hook:
    remaining: int
    action: PostHook | None


@dataclass
class _End:
    """Queued marker: ``listen`` ends when it reaches this."""


@dataclass
class _Faults:
    failures_left: int = 0
    retryable: bool = True
    hooks: list[_Hook] = field(default_factory=list)


class MemoryAdapter(Adapter):
    """A platform that lives in memory, with any number of channels created on first use.

    Posts longer than ``max_message_length`` become several posts; a private or command reply is
    always recorded as one record, so a test reads one answer per command.
    """

    def __init__(self, *, max_message_length: int = 2000, bot_name: str = "Troupe") -> None:
        self.platform = "memory"
        #: Whether ``find_post`` may look at what was posted (as Slack's and Discord's histories can).
        self.history_visible = True
        #: Whether ``upload`` shares files; else it fails, as on a platform that refuses the file (or,
        #: with ``on_host`` set, as in the console, which cannot show files: the application saves them).
        self.uploads = False
        #: Whether the platform has threads (``open_thread``), as Discord and Slack do and the console does not.
        self.threads = True
        #: People's messages as the channel's history shows them (``catch_up`` reads it).
        self.history: list[IncomingMessage] = []
        #: People as the platform knows them now, by id, where that changed since their last event (a
        #: role taken away); ``member`` answers with them.
        self.members: dict[str, UserRef | None] = {}
        self.max_message_length = max_message_length
        self.sent: list[Sent] = []
        #: ``post`` calls made, including the ones made to fail.
        self.post_attempts = 0
        self.connected = False
        self._bot_name = bot_name
        # One sequence for every instance, like a platform's: a restarted bot never sees an old id again.
        self._ids = _PLATFORM_IDS
        self._events: asyncio.Queue[AdapterEvent | _End] = asyncio.Queue()
        self._popped: set[int] = set()
        self._arrived = asyncio.Condition()
        self._faults = _Faults()

    @property
    def bot_identity(self) -> Identity:
        return Identity(name=self._bot_name)

    # -- driving the bot ------------------------------------------------------------------------

    def channel(self, channel: str = "general", *, thread: str | None = None) -> ChannelRef:
        """The ref the bot gets for ``channel``, to post there from a test."""
        return ChannelRef(platform=self.platform, id=channel, name=channel, thread=thread)

    def user(self, user: str = "mod", *, user_is_moderator: bool = True, is_bot: bool = False,
             roles: tuple[str, ...] = ()) -> UserRef:
        """The ref pushed events carry for ``user``; a moderator may manage the channel."""
        return UserRef(id=user, name=user, is_bot=is_bot, roles=roles, can_manage=user_is_moderator)

    def push_message(self, text: str, *, user: str = "mod", channel: str = "general", thread: str | None = None,
                     user_is_moderator: bool = True, is_bot: bool = False,
                     roles: tuple[str, ...] = ()) -> IncomingMessage:
        """Queue a message for ``listen`` as if ``user`` wrote it in ``channel``."""
        event = IncomingMessage(
            channel=self.channel(channel, thread=thread),
            user=self.user(user, user_is_moderator=user_is_moderator, is_bot=is_bot, roles=roles),
            text=text,
            message_id=self._next_id(),
        )
        self.history.append(event)
        self._events.put_nowait(event)
        return event

    def write_while_away(self, text: str, *, user: str = "guest", channel: str = "general",
                         thread: str | None = None) -> IncomingMessage:
        """A message that reaches the channel's (or ``thread``'s) history but is never delivered (the bot is down)."""
        event = IncomingMessage(channel=self.channel(channel, thread=thread), user=self.user(user, user_is_moderator=False),
                                text=text, message_id=self._next_id())
        self.history.append(event)
        return event

    def deliver_again(self, event: IncomingMessage) -> None:
        """Queue a message already delivered, as a platform's retry delivers it a second time."""
        self._events.put_nowait(event)

    def push_command(self, text: str, *, user: str = "mod", channel: str = "general", thread: str | None = None,
                     user_is_moderator: bool = True, is_bot: bool = False,
                     roles: tuple[str, ...] = ()) -> CommandInvocation:
        """Queue a command invocation; ``text`` is what follows the command word (``persona add X``)."""
        event = CommandInvocation(
            channel=self.channel(channel, thread=thread),
            user=self.user(user, user_is_moderator=user_is_moderator, is_bot=is_bot, roles=roles),
            text=text,
            reply_token=f"token-{self._next_id()}",
        )
        self._events.put_nowait(event)
        return event

    def push_eof(self) -> None:
        """End ``listen`` once the events queued before this are consumed."""
        self._events.put_nowait(_End())

    # -- fault injection ------------------------------------------------------------------------

    def fail_next_posts(self, n: int, *, retryable: bool = True) -> None:
        """Make the next ``n`` ``post`` calls raise AdapterError without posting anything."""
        self._faults.failures_left = n
        self._faults.retryable = retryable

    def crash_after_post(self, n: int = 1, hook: PostHook | None = None) -> None:
        """After the ``n``-th successful ``post`` from now, run ``hook`` (default: raise SimulatedCrash).

        The post is recorded first, so the platform has it even though the caller sees the hook's
        exception — the case an outbox must survive without losing or doubling messages.
        """
        if n < 1:
            raise ValueError("n must be at least 1")
        self._faults.hooks.append(_Hook(remaining=n, action=hook))

    # -- reading what was sent ------------------------------------------------------------------

    def posts(self, channel: str | ChannelRef | None = None) -> list[Sent]:
        """Every post, in order, optionally in one channel (by id or ref)."""
        channel_id = channel.id if isinstance(channel, ChannelRef) else channel
        return [s for s in self.sent if s.kind == "post" and (channel_id is None or s.channel == channel_id)]

    async def pop(self, kind: SentKind | None = None, *, channel: str | None = None, timeout: float = 5) -> Sent:
        """The oldest record not popped yet (of that kind, in that channel), waiting for one to arrive."""

        def take() -> Sent | None:
            for index, record in enumerate(self.sent):
                if index in self._popped:
                    continue
                if (kind is None or record.kind == kind) and (channel is None or record.channel == channel):
                    self._popped.add(index)
                    return record
            return None

        found: list[Sent] = []

        def ready() -> bool:
            record = take()
            if record is not None:
                found.append(record)
            return record is not None

        async with self._arrived:
            try:
                await asyncio.wait_for(self._arrived.wait_for(ready), timeout)
            except TimeoutError:
                wanted = " ".join(filter(None, [kind or "record", channel and f"in {channel}"]))
                raise TimeoutError(f"no {wanted} sent within {timeout}s; sent so far: {self.sent!r}") from None
        return found[0]

    def pending(self, kind: SentKind | None = None) -> list[Sent]:
        """Records not popped yet."""
        return [r for i, r in enumerate(self.sent) if i not in self._popped and (kind is None or r.kind == kind)]

    # -- the contract ---------------------------------------------------------------------------

    async def connect(self) -> None:
        self.connected = True

    async def listen(self) -> AsyncIterator[AdapterEvent]:
        while True:
            event = await self._events.get()
            if isinstance(event, _End):
                return
            yield event

    async def post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None = None) -> str:
        self.post_attempts += 1
        if self._faults.failures_left > 0:
            self._faults.failures_left -= 1
            raise AdapterError("simulated platform failure", retryable=self._faults.retryable)
        pieces = split_message(text, self.max_message_length)
        records = await self._record("post", channel, pieces, identity=identity.name, tag=identity.tag, thread=thread)
        await self._after_post(records[0])
        assert records[0].message_id is not None
        return records[0].message_id

    async def announce(self, channel: ChannelRef, text: str, thread: str | None = None) -> str:
        """Recorded as kind ``post`` under the bot's name, marked ``by_bot``."""
        pieces = split_message(text, self.max_message_length)
        records = await self._record("post", channel, pieces, identity=self.bot_identity.name,
                                     thread=thread or channel.thread, by_bot=True)
        assert records[0].message_id is not None
        return records[0].message_id

    async def open_thread(self, channel: ChannelRef, title: str, text: str) -> OpenedThread | None:
        """A new thread, started by the bot's ``text`` (recorded as a bot ``post`` in that thread)."""
        if not self.threads:
            return None
        thread = self._next_id()
        await self._record("post", channel, [text], identity=self.bot_identity.name, thread=thread, by_bot=True)
        return OpenedThread(id=thread, link=f"the thread “{title}”")

    async def post_card(self, channel: ChannelRef, card: Card, *, invocation: CommandInvocation | None = None,
                        private: bool = False, thread: str | None = None) -> str | None:
        """Recorded whole (kind ``card``, its text rendering as ``text``); private cards are for ``user``."""
        user = invocation.user.id if invocation is not None and private else None
        records = await self._record("card", channel, [card.as_text()], card=card, user=user,
                                     thread=thread or channel.thread,
                                     reply_token=invocation.reply_token if invocation else None)
        return records[0].message_id

    async def progress(self, channel: ChannelRef, text: str, *, handle: str | None = None,
                       thread: str | None = None) -> str | None:
        """Recorded as kind ``progress``; the handle stays that of the first record, as an edited message."""
        records = await self._record("progress", channel, [text], thread=thread or channel.thread)
        return handle or records[0].message_id

    async def member(self, user: UserRef, channel: ChannelRef) -> UserRef | None:
        return self.members.get(user.id, user)

    async def upload(self, channel: ChannelRef, filename: str, data: bytes, comment: str = "") -> str | None:
        if not self.uploads:
            return None
        records = await self._record("file", channel, [comment], file=(filename, data), thread=channel.thread)
        return records[0].message_id

    async def catch_up(self, channel: ChannelRef, after: str) -> list[IncomingMessage]:
        if not self.history_visible:
            return []
        # A channel's catch-up holds its threads' messages too, as a platform's does; a thread's its own.
        return [m for m in self.history if m.channel.id == channel.id and channel.thread in (None, m.channel.thread)
                and int(m.message_id) > int(after)]

    async def find_post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None,
                        since: datetime, taken: Collection[str] = ()) -> str | None:
        """Like a platform's channel history: the first piece of ``text`` posted by ``identity``."""
        if not self.history_visible:
            return None
        first = split_message(text, self.max_message_length)[0]
        since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        for record in self.sent:  # the earliest: the same words posted twice are two messages
            if (record.kind == "post" and not record.by_bot and record.channel == channel.id and record.identity == identity.name
                    and record.text == first and record.thread == thread and record.message_id not in taken
                    and record.at >= since):
                return record.message_id
        return None

    async def typing(self, channel: ChannelRef, identity: Identity | None = None) -> None:
        record = Sent(kind="typing", channel=channel.id, text="", identity=identity.name if identity else None,
                      thread=channel.thread)
        await self._append([record])

    async def stopped_typing(self, channel: ChannelRef, identity: Identity | None = None) -> None:
        record = Sent(kind="stopped_typing", channel=channel.id, text="", identity=identity.name if identity else None,
                      thread=channel.thread)
        await self._append([record])

    async def reply_private(self, user: UserRef, channel: ChannelRef, text: str, *,
                            reply_token: str | None = None) -> None:
        await self._record("private", channel, [text], user=user.id, reply_token=reply_token, thread=channel.thread)

    async def reply(self, invocation: CommandInvocation, text: str) -> None:
        await self._record("reply", invocation.channel, [text], identity=self.bot_identity.name,
                           thread=invocation.channel.thread, reply_token=invocation.reply_token)

    async def disconnect(self) -> None:
        self.connected = False
        self.push_eof()

    # -- internals ------------------------------------------------------------------------------

    def _next_id(self) -> str:
        return str(next(self._ids))

    async def _record(self, kind: SentKind, channel: ChannelRef, pieces: list[str], **fields: Any) -> list[Sent]:
        records = [Sent(kind=kind, channel=channel.id, text=piece, message_id=self._next_id(), **fields)
                   for piece in pieces]
        await self._append(records)
        return records

    async def _append(self, records: list[Sent]) -> None:
        async with self._arrived:
            self.sent.extend(records)
            self._arrived.notify_all()

    async def _after_post(self, record: Sent) -> None:
        due = []
        for hook in self._faults.hooks:
            hook.remaining -= 1
            if hook.remaining == 0:
                due.append(hook)
        self._faults.hooks = [h for h in self._faults.hooks if h.remaining > 0]
        for hook in due:
            if hook.action is None:
                raise SimulatedCrash(f"simulated crash after posting message {record.message_id}")
            result = hook.action(record)
            if inspect.isawaitable(result):
                await result
