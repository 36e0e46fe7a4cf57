"""The contract every chat platform implements, and the platform-neutral events it yields.

The bot only ever sees these models; mention syntax, markup, length limits, webhooks, ephemeral
messages and the like stay inside each adapter.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from adapters.menu import MenuCommand


def _now() -> datetime:
    return datetime.now(UTC)


#: Most messages ``find_post`` reads of a channel's history. A busy channel writes more than one page
#: (100 on Discord) in the seconds a look covers, above all while a backlog is posted after a restart.
HISTORY_LOOKED_MAX = 1000


class AdapterError(Exception):
    """A platform operation failed. ``retryable`` tells the outbox whether to try again later."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ChannelRef(BaseModel):
    """A channel (or a thread in it) on a platform."""

    model_config = ConfigDict(frozen=True)

    platform: str
    id: str
    name: str | None = None
    #: A thread inside the channel, when the message came from one.
    thread: str | None = None

    @property
    def key(self) -> str:
        """Storage key of the channel: threads share their channel's world."""
        return f"{self.platform}:{self.id}"


class UserRef(BaseModel):
    """A person (or bot) on a platform, with what the permission policy needs to know."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    is_bot: bool = False
    #: Platform role / user-group ids.
    roles: tuple[str, ...] = ()
    #: The platform says this user may manage the channel (Discord ``manage_channels``, console user).
    can_manage: bool = False


class Identity(BaseModel):
    """How a persona appears on a platform."""

    model_config = ConfigDict(frozen=True)

    name: str
    avatar_url: str | None = None
    #: ``#rrggbb``
    colour: str | None = None
    #: A label every post must carry, e.g. ``demo model`` when the offline demo model wrote it.
    tag: str | None = None

    def display_name(self, limit: int) -> str:
        """Name plus tag, e.g. ``Priya Nair (demo model)``, in at most ``limit`` characters.

        The tag must stay visible, so the name is shortened first; unprintable characters go.
        """
        name = re.sub(r"\s+", " ", "".join(ch for ch in self.name if ch.isprintable())).strip() or "Persona"
        suffix = f" ({self.tag.strip()})" if self.tag and self.tag.strip() else ""
        suffix = suffix[: limit - 1]
        room = limit - len(suffix)
        if len(name) > room:
            name = name[: room - 1].rstrip() + "…"
        return name + suffix


class IncomingMessage(BaseModel):
    """Someone wrote in a channel.

    A platform that delivers a message again until it is acknowledged (Slack) acknowledges it only
    once the bot has kept it (``keeping`` / ``kept``): a worker killed in between leaves the message
    to be delivered again, perhaps to another worker, instead of losing it.
    """

    kind: Literal["message"] = "message"
    channel: ChannelRef
    user: UserRef
    text: str
    message_id: str
    received_at: datetime = Field(default_factory=_now)
    _kept: asyncio.Future[bool] | None = PrivateAttr(default=None)

    def keeping(self) -> asyncio.Future[bool]:
        """Before the message is handed to the bot: what ``kept`` settles (True: kept, False: it could not be)."""
        self._kept = asyncio.get_running_loop().create_future()
        return self._kept

    def kept(self, ok: bool = True) -> None:
        """The bot kept the message (or, ``ok`` False, could not); the platform may be told it arrived."""
        if self._kept is not None and not self._kept.done():
            self._kept.set_result(ok)


class CommandInvocation(BaseModel):
    """Someone ran a Troupe command (``/troupe …`` or its platform equivalent).

    ``text`` is everything after the command word, e.g. ``persona add Priya Nair``.
    ``reply_token`` lets the adapter answer this very invocation (an interaction, a response URL).
    """

    kind: Literal["command"] = "command"
    channel: ChannelRef
    user: UserRef
    text: str
    reply_token: str | None = None
    received_at: datetime = Field(default_factory=_now)


#: A field label longer than this is shown on a line of its own, its value below.
STACKED_LABEL_CHARS = 60


class CardField(BaseModel):
    """One labelled value of a card (a persona's stance, an option's votes)."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: str
    inline: bool = False

    @property
    def label(self) -> str:
        """The name as written before its value on one line: "Priya Nair:", but "Why?" as it is."""
        return self.name if self.name.rstrip().endswith(("?", "!", ":", "…")) else f"{self.name}:"

    @property
    def stacked(self) -> bool:
        """A question (or a long label) reads as a question with its answer below it, not run together."""
        return self.name.rstrip().endswith("?") or len(self.name) > STACKED_LABEL_CHARS


class Card(BaseModel):
    """A structured result (summary, poll, focus-group report) that platforms render richly.

    Discord shows it as an embed, Slack as Block Kit sections, the console as a panel; ``as_text`` is
    the plain rendering every platform can fall back to. ``footer`` carries the line every research
    result must show (simulated answers, which model). The title and the field names are plain text,
    shown as written (they often hold persona names); the text and the field values are Markdown.
    """

    model_config = ConfigDict(frozen=True)

    title: str
    text: str = ""
    fields: tuple[CardField, ...] = ()
    footer: str | None = None
    #: ``#rrggbb``
    colour: str | None = None
    #: An image shown with the card (a chart): (filename, PNG bytes).
    image: tuple[str, bytes] | None = None

    def as_text(self) -> str:
        lines = [f"**{literal(self.title)}**"]
        if self.text:
            lines.append(self.text)
        for f in self.fields:
            label = literal(f.label)
            lines += [f"**{label}**", f.value] if f.stacked else [f"**{label}** {f.value}"]
        if self.footer:
            lines.append(f"_{self.footer}_")
        return "\n".join(lines)


AdapterEvent = Annotated[IncomingMessage | CommandInvocation, Field(discriminator="kind")]


#: Where a long message may be cut, best first: paragraph, line, sentence end, any whitespace.
#: Group 1 is the separator that is dropped; text before it stays with the piece.
_BREAKS = (
    re.compile(r"(\n[ \t]*\n\s*)"),
    re.compile(r"(\n\s*)"),
    re.compile(r"[.!?…][\"'”’)\]]*(\s+)"),
    re.compile(r"(\s+)"),
)


#: Characters a terminal or a chat client would act on rather than show: C0 controls but newline and
#: tab, DEL, C1 controls, and the bidirectional overrides that reorder what is shown. Lone
#: surrogates cannot be sent at all.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _shown_as(match: re.Match[str]) -> str:
    char = match.group()
    if char < "\x20":
        return chr(0x2400 + ord(char))  # ␛ for ESC, ␍ for CR: seen, not obeyed
    if char == "\x7f":
        return "\u2421"
    return "\ufffd"


def visible(text: str) -> str:
    """``text`` as a person should see it: control characters shown as symbols, not obeyed, so words
    from a persona file, a model or a script can neither clear a terminal, recolour it nor fake a
    line, on any platform. One character for one, so styled spans keep their place. Every post goes
    through ``split_message`` or ``clip``, which apply it."""
    return _UNSHOWABLE.sub(_shown_as, text) if not (text.isascii() and text.isprintable()) else text


#: Characters the markup of the bot's messages gives a meaning to (emphasis, code, spoilers, links,
#: quotes, mentions, headings). After a backslash each stands for itself, as in Markdown; every
#: platform shows it so.
MARKUP_CHARACTERS = "\\*_~`|[]<>#"
#: Escaped where they could act: always, but ``_`` only at a word's edge (inside "long_term_goals"
#: no platform reads it as emphasis).
_MARKUP = re.compile(r"[\\*~`|\[\]<>#]|(?<![^\W_])_|_(?![^\W_])")
#: A markup character written to stand for itself (group 1).
ESCAPED = re.compile(r"\\([\\*_~`|\[\]<>#])")
#: What a chat client would turn into a link: a scheme's "://", and the dots of a host name
#: ("evil.example", "www.evil.example", "name@mail.example").
_SCHEME = re.compile(r"(?<=[A-Za-z0-9])://")
_HOST_DOT = re.compile(r"(?<=[^\W_])\.(?=[^\W\d_]{2,}(?![^\W_]))|(?<=\bwww)\.", re.IGNORECASE)


#: A poster's name in bold or italics ("**Priya Nair:** …", "*Priya Nair*: …", "> __Priya__: …") where
#: it reads as a new speaker: at a line's start, after a quote, list or heading mark ("- ", "1. ",
#: "# ", Discord's "-# "), or after a sentence's end. Inside a post the bot makes for a persona it
#: would pose as a second speaker.
SPEAKER_LABEL = re.compile(
    r"(?P<lead>^[ \t>]*(?:(?:[-*+•]|\d{1,9}[.)]|-?#{1,6})[ \t]+[ \t>]*)*|(?<=[.!?…;:])[ \t]+)"
    r"(?P<open>[*_~|]+)(?P<name>[^\n*_~|:]{1,100}?)(?P<close>:[*_~|]+|[*_~|]+:)", re.MULTILINE
)


def literal(text: str) -> str:
    """Outside text (a persona's name or description) placed in a message the bot writes, so that it
    shows as written and does nothing there: on one line, without invisible, direction-changing or
    control characters, its markup characters escaped, and whatever a client would make a link of
    written with the colon and dots in brackets (``https[:]//evil[.]example``), the way links are
    shown that must not be followed."""
    if not (text.isascii() and text.isprintable()):
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else " " if c.isspace() else c
                       for c in text if unicodedata.category(c) not in ("Cf", "Cc") or c.isspace())
    text = " ".join(text.split())
    text = _HOST_DOT.sub("[.]", _SCHEME.sub("[:]//", text))
    return _MARKUP.sub(r"\\\g<0>", text)


def quoted(text: str) -> str:
    """Outside text of any number of lines (a persona's thought, a held message) placed in a message
    the bot writes: each line as ``literal`` makes it, behind a quote mark. It keeps its line breaks,
    but no line of it can pass for a line of the bot's own (a speaker, a status, another entry)."""
    return "\n".join(f"> {literal(line)}" for line in text.splitlines() or [""])


#: Read left to right as a chat client reads markup: an escaped character (kept), a code span (kept:
#: a backslash inside would show, and nothing there links), or a bracket or angle bracket (escaped).
_LINKING = re.compile(r"\\[\\*_~`|\[\]<>#]|`[^`]*`|[\[\]<>]")


def inert(text: str) -> str:
    """Text the bot wrote around outside words it did not make ``literal`` one by one (an error that
    quotes a file's field or value), made safe as a whole: no bracket or angle bracket can form a
    link or a mention and no scheme a bare link, while the bot's own code spans and line breaks stay.
    What is already escaped stays as it is, so words made ``literal`` inside it show unchanged."""
    text = _SCHEME.sub("[:]//", visible(text))
    return _LINKING.sub(lambda m: "\\" + m.group() if len(m.group()) == 1 else m.group(), text)


def unescape(text: str) -> str:
    """``text`` with its escaped markup characters written plainly, for places that show text as it
    is (a plain-text header, a terminal)."""
    return ESCAPED.sub(r"\1", text) if "\\" in text else text


def split_message(text: str, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at the most natural breaks.

    Platforms reject over-long posts; cutting at a paragraph, line or sentence end keeps each piece
    readable on its own. A break in the second half of the allowed length is preferred, so pieces stay
    close to full; a single word longer than ``limit`` is cut hard.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    pieces: list[str] = []
    rest = visible(text)
    while len(rest) > limit:
        cut = _break_before(rest, limit)
        piece, rest = rest[: cut[0]].rstrip(), rest[cut[1] :]
        if piece:
            pieces.append(piece)
    if not pieces:
        return [rest]
    if rest.strip():
        pieces.append(rest.rstrip())
    return pieces


def free_path(folder: Path, filename: str) -> Path:
    """Where to save ``filename`` in ``folder`` (made if need be) without overwriting an earlier file:
    ``poll.png``, then ``poll-2.png``, …"""
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(filename).name
    path, number = folder / name, 1
    while path.exists():
        number += 1
        path = folder / f"{Path(name).stem}-{number}{Path(name).suffix}"
    return path


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis showing that something was cut."""
    text = visible(text).strip()
    if len(text) <= limit:
        return text
    if limit < 2:
        return "…"[:limit]
    return text[: limit - 1].rstrip() + "…"


def _break_before(text: str, limit: int) -> tuple[int, int]:
    """(end of this piece, start of the next) for the best break within the first ``limit`` characters."""
    window = text[: limit + 1]  # whitespace right after the limit still ends a full piece
    for earliest in (limit // 2, 1):
        for pattern in _BREAKS:
            found = [m.span(1) for m in pattern.finditer(window) if earliest <= m.start(1) <= limit]
            if found:
                return found[-1]
    return limit, limit


class AdapterState(ABC):
    """Where an adapter keeps what must survive a restart (a channel's webhook, say)."""

    @abstractmethod
    async def get(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def set(self, key: str, value: dict[str, Any] | None) -> None:
        """Store ``value`` under ``key``; None forgets it."""

    @abstractmethod
    async def take(self, key: str) -> dict[str, Any] | None:
        """Forget the value under ``key`` and return it: of several takers (any process), one gets it."""

    @abstractmethod
    async def forget_stale(self, prefix: str, stored_before: datetime) -> None:
        """Forget values under keys starting with ``prefix`` last stored before ``stored_before``."""


class Suggestions(ABC):
    """Names the application offers while someone types a command's option (autocomplete)."""

    @abstractmethod
    def personas(self, channel: ChannelRef) -> list[str]:
        """The personas of the world in ``channel`` (none where it has no world)."""

    @abstractmethod
    def bundled_personas(self) -> list[str]:
        """The bundled personas one may add."""


class NoSuggestions(Suggestions):
    """An adapter running on its own suggests nothing."""

    def personas(self, channel: ChannelRef) -> list[str]:
        return []

    def bundled_personas(self) -> list[str]:
        return []


class OpenedThread(BaseModel):
    """A thread an adapter opened in a channel."""

    model_config = ConfigDict(frozen=True)

    id: str
    #: How a message here points at it ("a thread", or a clickable mention of it).
    link: str


class Adapter(ABC):
    """A chat platform. Implementations keep every platform quirk inside."""

    #: Set by the application before ``connect`` (``attach``); None when the adapter runs on its own.
    state: AdapterState | None = None
    #: The commands to offer in the platform's menus, if it has any (``attach``).
    commands: tuple[MenuCommand, ...] = ()
    #: Where names suggested while typing come from (``attach``).
    suggestions: Suggestions = NoSuggestions()

    #: Short platform name used in channel keys: ``console``, ``discord``, ``slack``, ``memory``.
    platform: str = "platform"
    #: Longest text one post may carry; longer persona messages are split by the adapter.
    max_message_length: int = 2000
    #: Least time between two posts in one channel (the outbox paces to it).
    post_interval_s: float = 0.0
    #: Whether someone whose words get no answer (no world here, the world paused) is told why. A
    #: terminal has one person who would otherwise wait for nothing; a chat channel stays quiet.
    explains_silence: bool = False
    #: What a person types before a command here ("/" in the console); command hints in replies
    #: ("`start NAME` begins one") are written with it. Empty where the platform's own UI shows how.
    command_prefix: str = ""
    #: Whether the person using it sits at the bot's host (the console): replies may name files there,
    #: and commands are not rate-limited. Everyone on a chat platform is elsewhere.
    on_host: bool = False

    def message_id_at(self, when: datetime) -> str | None:
        """An id that sorts as a message written at ``when`` would, to read a channel's history from
        then (``catch_up``); None where ids tell no time."""
        return None

    def runs_here(self, channel_id: str) -> bool | None:
        """Where a channel's events arrive, for workers sharing a database: True, at this process only
        (its channel is kept here); False, at another process only (it is never taken here); None,
        at any process (the platform hands each event to any worker). Answered from what this
        process knows now, so a channel of a shard still connecting is not yet this process's."""
        return None

    def attach(self, state: AdapterState | None, commands: Sequence[MenuCommand], suggestions: Suggestions) -> None:
        """Called by the application once, before ``connect``: where to keep what must survive a
        restart, the commands to offer in the platform's menus, and where names to suggest come from."""
        self.state = state
        self.commands = tuple(commands)
        self.suggestions = suggestions

    @property
    def where(self) -> str:
        """Where the bot listens through this adapter, for the start-up line ("on Discord as Troupe#1")."""
        return f"on {self.platform}"

    @abstractmethod
    async def connect(self) -> None:
        """Log in / open the connection. Raises AdapterError with a clear message on failure."""

    @abstractmethod
    def listen(self) -> AsyncIterator[AdapterEvent]:
        """Platform-neutral events, until ``disconnect`` (then the iterator ends)."""

    @abstractmethod
    async def post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None = None) -> str:
        """Post a persona's words as ``identity``; returns the platform's message id (the first, if split).

        Every piece shows the persona's name: a persona never speaks with the bot's own voice, whatever
        it is called.
        """

    @abstractmethod
    async def announce(self, channel: ChannelRef, text: str, thread: str | None = None) -> str:
        """Post the bot's own words (a notice, an answer to a command) under its own name; returns the
        platform's message id (the first, if split)."""

    async def find_post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None,
                        since: datetime, taken: Collection[str] = ()) -> str | None:
        """The id of a post of ``text`` by ``identity`` made since ``since``, if the platform shows one.

        Asked before posting again after an attempt whose outcome is unknown (a timeout, a crash
        between posting and recording it), so such a message is not posted twice. None when nothing
        matches or the platform cannot tell. ``taken``: ids of posts that other messages are known
        to be (a persona may say the same words twice); never one of those. The whole of the history
        since ``since`` is read, page by page, up to ``HISTORY_LOOKED_MAX`` messages; past that an
        ``AdapterError`` says the channel could not be checked, never a "not there" it cannot know.
        """
        return None

    async def catch_up(self, channel: ChannelRef, after: str) -> list[IncomingMessage]:
        """People's messages in ``channel`` posted after message ``after``, oldest first.

        Asked at start-up for each bound channel, so what was said while the bot was down is heard.
        The default (a platform without history) has nothing to add.
        """
        return []

    @abstractmethod
    async def typing(self, channel: ChannelRef, identity: Identity | None = None) -> None:
        """Show that someone is composing a message (best effort)."""

    def command_failed(self, invocation: CommandInvocation) -> None:
        """A command could not be done; its caller is told why in the reply. By default nothing (a
        console script counts them for its exit status)."""

    async def stopped_typing(self, channel: ChannelRef, identity: Identity | None = None) -> None:
        """Someone stopped composing without posting (best effort). By default nothing: chat
        platforms let a typing indicator lapse on its own after a few seconds."""

    @abstractmethod
    async def reply_private(self, user: UserRef, channel: ChannelRef, text: str, *, reply_token: str | None = None) -> None:
        """Tell one person something only they see (ephemeral message, DM, dim console line)."""

    async def reply(self, invocation: CommandInvocation, text: str) -> None:
        """Answer a command where everyone in the channel sees it. Defaults to a bot post."""
        await self.announce(invocation.channel, text, invocation.channel.thread)

    async def upload(self, channel: ChannelRef, filename: str, data: bytes, comment: str = "") -> str | None:
        """Share a file in the channel; returns its message id, or None when the platform can't."""
        return None

    async def open_thread(self, channel: ChannelRef, title: str, text: str) -> OpenedThread | None:
        """Open a thread in ``channel`` called ``title``, starting with the bot's ``text``; None on a
        platform without threads. Raises AdapterError when the platform refused."""
        return None

    async def member(self, user: UserRef, channel: ChannelRef) -> UserRef | None:
        """``user`` as the platform knows them now (roles, whether they manage ``channel``), or None
        if they are no longer there: rights that outlast the command that used them are asked again
        with it. By default (a platform that cannot tell), as they were."""
        return user

    async def post_card(self, channel: ChannelRef, card: Card, *, invocation: CommandInvocation | None = None,
                        private: bool = False, thread: str | None = None) -> str | None:
        """Show ``card`` in the channel (answering ``invocation`` when given, only to its caller when
        ``private``); returns its message id when the platform gives one.

        The default is the card's text rendering, with its image uploaded after it where possible.
        """
        text = card.as_text()
        if invocation is not None and private:
            await self.reply_private(invocation.user, invocation.channel, text, reply_token=invocation.reply_token)
            return None
        if invocation is not None:
            await self.reply(invocation, text)
            posted = None
        else:
            posted = await self.announce(channel, text, thread)
        if card.image is not None:
            await self.upload(channel, card.image[0], card.image[1])
        return posted

    async def progress(self, channel: ChannelRef, text: str, *, handle: str | None = None,
                     thread: str | None = None) -> str | None:
        """Show progress of long work (``round 2/3: Priya is thinking``) in the channel.

        The first call posts a status message and returns a handle; later calls with that handle
        update it where the platform can edit messages. The default posts each update as a bot line.
        """
        return await self.announce(channel, text, thread)

    @property
    def bot_identity(self) -> Identity:
        return Identity(name="Troupe")

    @property
    def bot_names(self) -> tuple[str, ...]:
        """The names the bot goes by here (its name on the platform, once connected): no persona may
        be called so."""
        return (self.bot_identity.name,)

    #: Words the platform refuses anywhere in the name of someone who posts (Discord: "discord",
    #: "clyde"); a persona whose name holds one cannot join here.
    refused_name_parts: tuple[str, ...] = ()

    @abstractmethod
    async def disconnect(self) -> None:
        """Close the connection; ``listen`` ends."""
