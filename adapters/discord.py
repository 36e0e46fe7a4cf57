"""Discord as a chat platform, through discord.py.

Slash commands (``/troupe …``) become ``CommandInvocation``s whose ``text`` is the equivalent command
line; channel messages become ``IncomingMessage``s. Personas post through one webhook per channel so
each appears under its own name and avatar (with its tag, e.g. ``Priya Nair (demo model)``); without
the Manage Webhooks permission they post through the bot as ``**Name:** text``.

Interviews: ``/troupe interview NAME`` opens a public thread; each message written there is put to
that persona as ``ask NAME …`` and the persona's next answer is posted into the thread. Which thread
interviews whom is kept in ``Adapter.state`` too, so a thread keeps working after a restart.

Cards (summaries, polls, reports) are embeds, cut to Discord's embed limits rather than refused; their
image is uploaded with the message and shown inside the embed. Status lines of long work are one bot
message, edited as the work goes on.

A channel's webhook is cached in memory and in the application's storage (``Adapter.state``), so a
restart posts through the same webhook without asking Discord; without stored state the bot's
existing webhook is found again through the channel's webhook list, else a new one is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import shlex
import time
from datetime import datetime, timedelta
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import aiohttp
import discord
import yarl
from discord import app_commands

from adapters.base import (
    Adapter,
    AdapterError,
    AdapterEvent,
    Card,
    ChannelRef,
    CommandInvocation,
    Identity,
    IncomingMessage,
    SPEAKER_LABEL,
    UserRef,
    clip,
    literal,
    split_message,
)
from adapters.interviews import OwedAnswers
from config.settings import DiscordSettings, Settings
from config.turn_taking import PolicyName

log = logging.getLogger(__name__)

#: Discord's limits on a webhook execution's username.
USERNAME_MAX = 80
#: Words Discord refuses anywhere in a webhook username (case-insensitive).
REFUSED_NAME_PARTS = ("discord", "clyde")
_REFUSED_IN_NAMES = re.compile("|".join(REFUSED_NAME_PARTS), re.IGNORECASE)
#: Ephemeral message flag.
EPHEMERAL = 64
#: Follow-ups to an interaction are accepted for 15 minutes; stay clear of the edge.
INTERACTION_TTL_S = 14 * 60
#: Seconds a member's roles and permissions, as asked of Discord, are taken as current.
MEMBER_TTL_S = 60.0
#: Discord's JSON error code for an unknown (deleted) webhook.
UNKNOWN_WEBHOOK = 10015
#: Discord's embed limits; a message's embeds may hold 6,000 characters in all (title, description,
#: field names and values, footer, author).
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000
#: Stands in for an empty field name or value, which Discord refuses.
_BLANK = "\u200b"
WEBHOOK_NAME = "Troupe"
#: Most messages read back at start-up from a channel's history.
CATCH_UP_MAX = 500

#: Where a command lives under ``/troupe`` when not at its own name (Discord allows 25 sub-commands a group).
SLASH_NAMES = {
    "personas": "persona library",
    "generate": "persona generate",
    "review": "review list",
    "approve": "review approve",
    "edit": "review edit",
    "reject": "review reject",
    "focus": "focus start",
    "probe": "focus probe",
}

POLICY_CHOICES = PolicyName
EXPORT_CHOICES = Literal["json", "csv", "md"]
ON_OFF = Literal["on", "off"]
SAFETY_CHOICES = Literal["team", "red-team"]


# -- pure helpers -----------------------------------------------------------------------------------


def webhook_username(identity: Identity) -> str:
    """The webhook username for ``identity``: its name plus its tag, within Discord's rules.

    The tag (``demo model``, ``red-team simulation``) must stay visible, so the name is shortened
    first. Words Discord refuses in a username are left out (personas so named cannot join a
    Discord channel; one stored before that rule posts under the rest of its name).
    """
    name = " ".join(_REFUSED_IN_NAMES.sub(" ", identity.name).split())
    return identity.model_copy(update={"name": name}).display_name(USERNAME_MAX)


def fallback_prefix(identity: Identity) -> str:
    """How a persona's name leads each post the bot makes on its behalf: its name and tag in bold,
    shown as written (markup and links in a name do nothing)."""
    return f"**{literal(identity.display_name(USERNAME_MAX))}:** "


def _escape_marks(marks: str) -> str:
    return "".join(mark if mark == ":" else "\\" + mark for mark in marks)


def unlabelled(text: str) -> str:
    """A persona's words as the bot posts them on its behalf: a line that starts like a poster's name
    in bold ("**Priya Nair:** …") has its marks escaped, so one message shows one speaker."""
    return SPEAKER_LABEL.sub(lambda m: m["lead"] + _escape_marks(m["open"]) + m["name"] + _escape_marks(m["close"]),
                             text)


def attachment_filename(filename: str) -> str:
    """A filename an embed can reference as ``attachment://NAME``: Discord resolves only ``[A-Za-z0-9_.-]``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", filename.strip()).strip("._")
    return safe or "image.png"


def card_colour(colour: str | None) -> int | None:
    """``#rrggbb`` as the integer Discord wants; None for anything else."""
    if colour and re.fullmatch(r"#?[0-9a-fA-F]{6}", colour.strip()):
        return int(colour.strip().lstrip("#"), 16)
    return None


def _cap(lengths: list[int], budget: int) -> int | None:
    """The largest length cap that makes ``lengths`` fit ``budget`` (None when they fit as they are)."""
    if sum(lengths) <= budget:
        return None
    low, high = 0, max(lengths)
    while low < high:
        middle = (low + high + 1) // 2
        if sum(min(n, middle) for n in lengths) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def card_embed(card: Card) -> discord.Embed:
    """``card`` as an embed within Discord's limits: over-long text is cut with an ellipsis, not refused.

    The title and footer (the footer says the answers are simulated) are kept whole up to their own
    limits; if everything together exceeds 6,000 characters, the longest texts (description, field
    names and values) are cut to a common length, so every field stays visible. Fields beyond 25 are
    summarised in the last one. The image, if any, is referenced as an attachment of the same message.
    """
    title = clip(card.title, EMBED_TITLE_MAX)
    footer = clip(card.footer, EMBED_FOOTER_MAX) if card.footer else ""
    fields = [(f.name, f.value, f.inline) for f in card.fields]
    if len(fields) > EMBED_FIELDS_MAX:
        hidden = len(fields) - (EMBED_FIELDS_MAX - 1)
        fields = fields[: EMBED_FIELDS_MAX - 1] + [("…", f"{hidden} more not shown", False)]
    description = clip(card.text, EMBED_DESCRIPTION_MAX)
    names = [clip(name, EMBED_FIELD_NAME_MAX) or _BLANK for name, _, _ in fields]
    values = [clip(value, EMBED_FIELD_VALUE_MAX) or _BLANK for _, value, _ in fields]
    texts = [description, *names, *values]
    cap = _cap([len(t) for t in texts], EMBED_TOTAL_MAX - len(title) - len(footer))
    if cap is not None:
        description = clip(description, cap)
        names = [clip(n, max(cap, 1)) for n in names]
        values = [clip(v, max(cap, 1)) for v in values]
    embed = discord.Embed(title=title or None, description=description or None, colour=card_colour(card.colour))
    for name, value, (_, _, inline) in zip(names, values, fields):
        embed.add_field(name=name, value=value, inline=inline)
    if footer:
        embed.set_footer(text=footer)
    if card.image is not None:
        embed.set_image(url=f"attachment://{attachment_filename(card.image[0])}")
    return embed


def card_file(card: Card) -> discord.File | None:
    """A fresh upload of the card's image (a ``discord.File`` can be sent only once)."""
    if card.image is None:
        return None
    filename, data = card.image
    return discord.File(io.BytesIO(data), filename=attachment_filename(filename))


def quote_word(value: str) -> str:
    """``value`` as one word of a command line, readable when it needs no quoting."""
    value = value.strip()
    if value and not re.search(r"[\s'\"\\]", value):
        return value
    if '"' not in value and "\\" not in value:
        return f'"{value}"'
    return shlex.quote(value)


def command_text(command: str, /, **options: Any) -> str:
    """The command line a slash command stands for, e.g. ``persona add Priya Nair``.

    Free text (a question, an edit, pasted JSON) is passed as typed; names and options are quoted
    only when they need it.
    """
    o = {k: v for k, v in options.items() if v is not None and v != ""}
    name = command
    if name == "start":
        parts = ["start"]
        if o.get("reopen"):
            return "start --reopen"
        if "name" in o:
            parts.append(quote_word(o["name"]))
        if "situation" in o:
            parts += ["--situation", shlex.quote(o["situation"])]
        if "scenario" in o:
            parts += ["--scenario", shlex.quote(o["scenario"])]
        return " ".join(parts)
    if name == "persona add":
        source = o["source"].strip()
        return f"persona add {source}"
    if name in ("persona remove", "persona show"):
        return f"{name} {quote_word(o['name'])}"
    if name == "policy":
        parts = ["policy"]
        if "policy" in o:
            parts.append(o["policy"])
        if "exchanges" in o:
            parts += ["--exchanges", str(o["exchanges"])]
        return " ".join(parts)
    if name == "pick":
        return "pick " + " ".join(quote_word(n) for n in o["names"] if n and n.strip())
    if name == "run":
        return f"run {o['steps']}"
    if name in ("stop", "reset"):
        return f"{name} confirm" if o.get("confirm") else name
    if name == "observe":
        return f"observe {quote_word(o['name'])} {o['state']}"
    if name == "ask":
        return f"ask {quote_word(o['name'])} {o['question'].strip()}"
    if name in ("approve", "reject"):
        return f"{name} {o['id']}"
    if name == "edit":
        return f"edit {o['id']} {o['text'].strip()}"
    if name == "safety":
        return f"safety {o['mode']}" if "mode" in o else "safety"
    if name == "export":
        return f"export {o['format']}"
    if name == "focus":
        parts = ["focus", shlex.quote(o["question"].strip())]
        if "rounds" in o:
            parts += ["--rounds", str(o["rounds"])]
        if "personas" in o:
            parts += ["--personas", shlex.quote(o["personas"])]
        return " ".join(parts)
    if name == "probe":
        return f"probe {o['question'].strip()}"
    if name == "summary":
        return f"summary --since {o['since']}" if "since" in o else "summary"
    if name == "poll":
        options = [x.strip() for x in re.split(r"[,;\n]", o["options"]) if x.strip()]
        return " ".join(["poll", shlex.quote(o["question"].strip()), *(shlex.quote(x) for x in options)])
    if name == "extract":
        fields = [f for f in re.split(r"[\s,]+", o["fields"]) if f]
        return " ".join(["extract", *fields, "--format", o.get("format", "json")])
    if name == "generate":
        parts = ["generate", str(o["count"]), shlex.quote(o["description"].strip())]
        if "plan" in o:
            parts += ["--plan", shlex.quote(o["plan"])]
        return " ".join(parts)
    if name == "enrich":
        parts = ["enrich", shlex.quote(o["content"].strip())]
        if "requirements" in o:
            parts += ["--requirements", shlex.quote(o["requirements"])]
        return " ".join(parts)
    if name == "story":
        return "story inject" if o.get("action") == "inject" else "story"
    if name == "validate":
        return f"validate {shlex.quote(o['name'].strip())} {shlex.quote(o['expectations'].strip())}"
    if name == "help":
        return f"help {o['command']}" if "command" in o else "help"
    return name


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, discord.HTTPException):
        return error.status == 429 or error.status >= 500
    return isinstance(error, (aiohttp.ClientError, OSError, asyncio.TimeoutError))


def _post_error(error: BaseException, what: str) -> AdapterError:
    if isinstance(error, discord.HTTPException):
        detail = f"HTTP {error.status}" + (f" (code {error.code})" if error.code else "") + f": {error.text or ''}"
    else:
        detail = f"{type(error).__name__}: {error}"
    return AdapterError(f"Discord refused {what}: {detail}".rstrip(": "), retryable=_is_retryable(error))


# -- interaction bookkeeping ------------------------------------------------------------------------


@dataclass
class _Pending:
    """A slash command waiting for its answer: Discord wants a first response within 3 s."""

    interaction: discord.Interaction
    #: The command line it stands for.
    text: str = ""
    created: float = field(default_factory=time.monotonic)
    deferred: bool = False
    answered: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.created > INTERACTION_TTL_S


class _Closed:
    """Queued marker: ``listen`` ends."""


class DiscordAdapter(Adapter):
    """Discord, through a ``discord.Client`` with a ``/troupe`` command tree."""

    def __init__(self, settings: Settings | DiscordSettings) -> None:
        self.platform = "discord"
        self.max_message_length = 2000
        #: Commands are typed as ``/troupe approve 7`` here: hints in replies are written that way.
        self.command_prefix = "/troupe "
        self.settings = settings.discord if isinstance(settings, Settings) else settings
        self.refused_name_parts = REFUSED_NAME_PARTS
        #: Set by the application: the personas of a channel (by channel key), for autocomplete.
        self.persona_names: Callable[[str], list[str]] | None = None
        #: Set by the application: the bundled personas one may add, for autocomplete.
        self.bundled_persona_names: Callable[[], list[str]] | None = None
        self.client, self.tree = self._new_client()
        self._events: asyncio.Queue[AdapterEvent | _Closed] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._runner: asyncio.Task | None = None
        self._pending: dict[str, _Pending] = {}
        #: The latest interaction of a user in a channel, for private messages that answer no command.
        self._recent: dict[tuple[str, str], _Pending] = {}
        self._webhooks: dict[str, discord.Webhook] = {}
        self._webhook_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._own_webhook_ids: set[int] = set()
        #: Channels where webhooks may not be created: personas post through the bot.
        self._no_webhooks: set[str] = set()
        #: Interview threads: thread id -> (channel id, persona name); also kept in ``state``.
        self._interviews: dict[str, tuple[str, str]] = {}
        #: Threads known not to be interviews (so their messages need no storage look-up).
        self._not_interviews: set[str] = set()
        #: Storage look-ups in flight, shared so messages of one thread stay in order.
        self._interview_lookups: dict[str, asyncio.Future[tuple[str, str] | None]] = {}
        #: Answers owed to interview threads.
        self._owed = OwedAnswers()
        #: Members as Discord last described them, by (user id, channel id): (when, who, or None if gone).
        self._members: dict[tuple[str, str], tuple[float, UserRef | None]] = {}

    @property
    def bot_names(self) -> tuple[str, ...]:
        user = self.client.user
        names = [self.bot_identity.name]
        if user is not None:
            names += [n for n in (user.name, user.global_name, user.display_name) if n]
        return tuple(dict.fromkeys(names))

    def _new_client(self) -> tuple[discord.Client, app_commands.CommandTree]:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.message_content = True
        client = discord.Client(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        tree = app_commands.CommandTree(client)
        tree.add_command(self._build_group())
        client.event(self.on_ready)
        client.event(self.on_message)
        return client, tree

    # -- connection -----------------------------------------------------------------------------

    async def connect(self) -> None:
        token = self.settings.token.get_secret_value().strip() if self.settings.token else ""
        if not token:
            raise AdapterError(
                "no Discord bot token: set TROUPE_DISCORD_TOKEN (Developer Portal → your application → Bot → "
                "Reset Token)",
                retryable=False,
            )
        if self.client.is_closed():  # an earlier attempt failed and closed it: start afresh
            self.client, self.tree = self._new_client()
            self._runner = None
            self._events = asyncio.Queue()  # without the stale end-of-connection marker
        discord.http.Route.BASE = self.settings.api_base.rstrip("/")
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.settings.gateway_url)
        try:
            await self.client.login(token)
        except discord.LoginFailure:
            await self.client.close()
            raise AdapterError("Discord rejected the bot token (TROUPE_DISCORD_TOKEN); reset it in the "
                               "Developer Portal and try again", retryable=False) from None
        except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
            await self.client.close()
            raise AdapterError(f"could not reach Discord at {self.settings.api_base}: {error}") from None
        self._runner = asyncio.ensure_future(self.client.connect(reconnect=True))
        self._runner.add_done_callback(self._connection_ended)
        ready = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait({self._runner, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            error = self._runner.exception() if self._runner.done() else None
            await self.client.close()
            if isinstance(error, discord.PrivilegedIntentsRequired):
                raise AdapterError("enable the Message Content intent: Developer Portal → your application → Bot → "
                                   "Privileged Gateway Intents", retryable=False)
            raise AdapterError(f"could not connect to the Discord gateway: {error or 'timed out'}")
        await self._sync_commands()

    def _connection_ended(self, task: asyncio.Task) -> None:
        """The client gave up (or was closed): ``listen`` ends, so the application stops too."""
        if not task.cancelled() and task.exception() is not None:
            log.error("the Discord connection ended: %s", task.exception())
        self._events.put_nowait(_Closed())

    async def _sync_commands(self) -> None:
        """Register ``/troupe`` in the configured guilds (instant) and, if asked or none is named, globally."""
        try:
            for guild_id in self.settings.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            if self.settings.sync_global or not self.settings.guild_ids:
                await self.tree.sync()
        except discord.HTTPException as error:
            log.warning("could not register the slash commands: %s", error)

    async def on_ready(self) -> None:
        self._ready.set()

    async def disconnect(self) -> None:
        await self.client.close()
        if self._runner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._runner, timeout=5)
        self._events.put_nowait(_Closed())

    async def listen(self) -> AsyncIterator[AdapterEvent]:
        while True:
            event = await self._events.get()
            if isinstance(event, _Closed):
                return
            yield event

    # -- incoming -------------------------------------------------------------------------------

    def _user(self, member: discord.abc.User, channel: Any) -> UserRef:
        roles = tuple(str(r.id) for r in getattr(member, "roles", []) if not getattr(r, "is_default", lambda: False)())
        can_manage = False
        if isinstance(member, discord.Member) and channel is not None and hasattr(channel, "permissions_for"):
            with contextlib.suppress(Exception):
                can_manage = channel.permissions_for(member).manage_channels
        return UserRef(id=str(member.id), name=getattr(member, "display_name", None) or member.name,
                       is_bot=member.bot, roles=roles, can_manage=can_manage)

    async def member(self, user: UserRef, channel: ChannelRef) -> UserRef | None:
        """``user`` in the channel's server now: roles and Manage Channels as Discord says (asked at most
        once a ``MEMBER_TTL_S`` per person and channel; without the members intent discord.py's cache
        does not follow role changes); None once they left the server. If Discord cannot say just
        now, as last known."""
        key = (user.id, channel.id)
        known = self._members.get(key)
        if known is not None and time.monotonic() - known[0] < MEMBER_TTL_S:
            return known[1]
        try:
            target = await self._channel(channel.thread or channel.id)
            guild = getattr(target, "guild", None)
            if guild is None:  # a direct message: nobody's roles to look up
                return user
            try:
                found: UserRef | None = self._user(await guild.fetch_member(int(user.id)), target)
            except discord.NotFound:
                found = None
        except (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as error:
            log.info("could not look up Discord member %s: %s", user.id, error)
            return known[1] if known is not None else user
        self._members[key] = (time.monotonic(), found)
        return found

    @staticmethod
    def _channel_ref(channel: Any) -> ChannelRef:
        if isinstance(channel, discord.Thread):
            parent = channel.parent
            return ChannelRef(platform="discord", id=str(channel.parent_id),
                              name=getattr(parent, "name", None), thread=str(channel.id))
        return ChannelRef(platform="discord", id=str(channel.id), name=getattr(channel, "name", None))

    async def on_message(self, message: discord.Message) -> None:
        """A channel message: ours and other bots' are ignored; one in an interview thread is a question."""
        if message.webhook_id is not None and message.webhook_id in self._own_webhook_ids:
            return
        if message.author.bot or (self.client.user is not None and message.author.id == self.client.user.id):
            return
        if message.guild is None or not message.content.strip():
            return
        channel = self._channel_ref(message.channel)
        user = self._user(message.author, message.channel)
        interview = await self._interview_of(channel.thread) if channel.thread else None
        if interview is not None:
            channel_id, persona = interview
            self._owed.asked(channel_id, persona, channel.thread or "")
            text = f"ask {quote_word(persona)} {message.content.strip()}"
            self._events.put_nowait(CommandInvocation(channel=channel, user=user, text=text))
            return
        self._events.put_nowait(IncomingMessage(channel=channel, user=user, text=message.content,
                                                message_id=str(message.id)))

    async def _interview_of(self, thread_id: str) -> tuple[str, str] | None:
        """(channel id, persona) of an interview thread, from memory or, after a restart, from storage."""
        known = self._interviews.get(thread_id)
        if known is not None or self.state is None or thread_id in self._not_interviews:
            return known
        lookup = self._interview_lookups.get(thread_id)
        if lookup is None:
            lookup = asyncio.ensure_future(self._stored_interview(thread_id))
            self._interview_lookups[thread_id] = lookup
            lookup.add_done_callback(lambda _: self._interview_lookups.pop(thread_id, None))
        return await asyncio.shield(lookup)

    async def _stored_interview(self, thread_id: str) -> tuple[str, str] | None:
        assert self.state is not None
        try:
            stored = await self.state.get(_interview_key(thread_id))
        except Exception:  # storage trouble: the message is taken as a plain one, and asked about again
            log.warning("could not read the stored interview of thread %s", thread_id, exc_info=True)
            return None
        if not stored or not stored.get("channel") or not stored.get("persona"):
            self._not_interviews.add(thread_id)
            return None
        interview = (str(stored["channel"]), str(stored["persona"]))
        self._interviews[thread_id] = interview
        return interview

    async def _remember_interview(self, thread_id: str, channel_id: str, persona: str) -> None:
        self._interviews[thread_id] = (channel_id, persona)
        self._not_interviews.discard(thread_id)
        if self.state is None:
            return
        try:
            await self.state.set(_interview_key(thread_id), {"channel": channel_id, "persona": persona})
        except Exception:
            log.warning("could not store the interview of thread %s", thread_id, exc_info=True)

    async def _invoke(self, interaction: discord.Interaction, text: str) -> None:
        """Queue a slash command for the application; defer if its answer is slow to come."""
        token = str(interaction.id)
        pending = _Pending(interaction, text)
        self._pending[token] = pending
        channel = self._channel_ref(interaction.channel) if interaction.channel else ChannelRef(
            platform="discord", id=str(interaction.channel_id))
        user = self._user(interaction.user, interaction.channel)
        self._recent[(user.id, channel.id)] = pending
        self._forget_expired()
        self._events.put_nowait(CommandInvocation(channel=channel, user=user, text=text, reply_token=token))
        await asyncio.sleep(self.settings.defer_after_s)
        async with pending.lock:
            if not pending.answered and not pending.deferred:
                # Not known yet whether the answer is private: "thinking…" shows only to the caller,
                # a public answer is then posted in the channel.
                with contextlib.suppress(discord.HTTPException):
                    await interaction.response.defer(ephemeral=True, thinking=True)
                    pending.deferred = True

    def _forget_expired(self) -> None:
        for key in [k for k, p in self._pending.items() if p.expired]:
            del self._pending[key]
        for key in [k for k, p in self._recent.items() if p.expired]:
            del self._recent[key]

    # -- answering ------------------------------------------------------------------------------

    def _live_pending(self, reply_token: str | None) -> _Pending | None:
        """The interaction a reply token stands for, while Discord still accepts answers to it."""
        pending = self._pending.get(reply_token or "")
        return None if pending is None or pending.expired else pending

    async def reply_private(self, user: UserRef, channel: ChannelRef, text: str, *,
                            reply_token: str | None = None) -> None:
        pending = self._live_pending(reply_token)
        if pending is None:
            pending = self._recent.get((user.id, channel.id))
            if pending is not None and (pending.expired or not (pending.answered or pending.deferred)):
                pending = None
        if pending is None:
            await self._direct_message(user, text)
            return
        try:
            await self._answer(pending, text, ephemeral=True)
        except discord.HTTPException as error:
            raise _post_error(error, "a private reply") from error

    async def reply(self, invocation: CommandInvocation, text: str) -> None:
        pending = self._live_pending(invocation.reply_token)
        if pending is None:
            await self.announce(invocation.channel, text, invocation.channel.thread)
            return
        try:
            await self._answer(pending, text, ephemeral=False)
        except discord.HTTPException as error:
            raise _post_error(error, "a reply") from error

    async def _answer(self, pending: _Pending, text: str, *, ephemeral: bool) -> None:
        pieces = split_message(text, self.max_message_length)
        interaction = pending.interaction
        mentions = discord.AllowedMentions.none()
        async with pending.lock:
            if not pending.answered and not pending.deferred:
                pending.answered = True
                await interaction.response.send_message(pieces[0], ephemeral=ephemeral, allowed_mentions=mentions)
                pieces = pieces[1:]
            elif pending.deferred and not pending.answered:
                pending.answered = True
                if not ephemeral:
                    # The deferral was private; say where the answer went and post it for everyone.
                    await interaction.edit_original_response(content="Answered in the channel.")
                    ref = self._channel_ref(interaction.channel) if interaction.channel else None
                    if ref is not None:
                        for piece in pieces:
                            await self._bot_send(ref.thread or ref.id, piece)
                    return
            for piece in pieces:
                await interaction.followup.send(piece, ephemeral=ephemeral, allowed_mentions=mentions)

    async def post_card(self, channel: ChannelRef, card: Card, *, invocation: CommandInvocation | None = None,
                        private: bool = False, thread: str | None = None) -> str | None:
        """Show ``card`` as an embed (its image inside it); answers ``invocation``'s interaction if it waits.

        A public card is for everyone: an interaction not yet answered gets it as its public response;
        one already deferred (privately, see ``_invoke``) gets a pointer to the card posted in the
        channel, since the first follow-up would inherit the deferral's ephemeral flag. A private card
        is an ephemeral answer (a direct message when no interaction waits).
        """
        target = thread or channel.thread or channel.id
        pending = self._live_pending(invocation.reply_token) if invocation is not None else None
        if private and invocation is not None:
            return await self._private_card(invocation, card, pending)
        try:
            if pending is not None:
                return await self._answer_card(pending, card, target)
            return str((await self._send_card(target, card)).id)
        except (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            raise _post_error(error, "a card") from error

    async def _private_card(self, invocation: CommandInvocation, card: Card, pending: _Pending | None) -> str | None:
        if pending is None:
            await self._direct_message(invocation.user, card.as_text())
            return None
        interaction = pending.interaction
        mentions = discord.AllowedMentions.none()
        try:
            async with pending.lock:
                if not pending.answered and not pending.deferred:
                    pending.answered = True
                    await interaction.response.send_message(embed=card_embed(card), ephemeral=True,
                                                            allowed_mentions=mentions)
                    return str(interaction.id)
                pending.answered = True
                message = await interaction.followup.send(embed=card_embed(card), ephemeral=True,
                                                          allowed_mentions=mentions, wait=True)
                return str(message.id)
        except (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            raise _post_error(error, "a private card") from error

    async def _answer_card(self, pending: _Pending, card: Card, target: str) -> str:
        interaction = pending.interaction
        mentions = discord.AllowedMentions.none()
        async with pending.lock:
            if not pending.answered and not pending.deferred:
                pending.answered = True
                response = await interaction.response.send_message(
                    embed=card_embed(card), file=card_file(card) or discord.utils.MISSING, allowed_mentions=mentions)
                return str(response.message_id or interaction.id)
            if pending.deferred and not pending.answered:
                pending.answered = True
                try:
                    posted = await self._send_card(target, card)
                except discord.HTTPException as error:
                    with contextlib.suppress(discord.HTTPException):
                        await interaction.edit_original_response(
                            content=f"Could not post the result in the channel: {error.text or error}")
                    raise
                with contextlib.suppress(discord.HTTPException):
                    await interaction.edit_original_response(content=f"Posted in the channel: {posted.jump_url}")
                return str(posted.id)
            message = await interaction.followup.send(
                embed=card_embed(card), file=card_file(card) or discord.utils.MISSING, allowed_mentions=mentions,
                wait=True)
            return str(message.id)

    async def _send_card(self, target_id: str, card: Card) -> discord.Message:
        """Post the card as a bot message; as text where Discord would hide the bot's embeds."""
        channel = await self._channel(target_id)
        mentions = discord.AllowedMentions.none()
        if self._may_embed(channel):
            return await channel.send(embed=card_embed(card), file=card_file(card), allowed_mentions=mentions)
        pieces = split_message(card.as_text(), self.max_message_length)
        first: discord.Message | None = None
        for number, piece in enumerate(pieces, 1):
            file = card_file(card) if number == len(pieces) else None
            message = await channel.send(piece, file=file, allowed_mentions=mentions)
            first = first or message
        assert first is not None
        return first

    @staticmethod
    def _may_embed(channel: Any) -> bool:
        """Whether the bot has Embed Links here: without it Discord drops a bot message's embeds silently."""
        guild = getattr(channel, "guild", None)
        me = getattr(guild, "me", None)
        if me is None or not hasattr(channel, "permissions_for"):
            return True
        try:
            return bool(channel.permissions_for(me).embed_links)
        except Exception:  # incomplete cache: try the embed
            return True

    async def progress(self, channel: ChannelRef, text: str, *, handle: str | None = None,
                     thread: str | None = None) -> str | None:
        """One bot message showing progress, edited in place; a deleted one is posted again.

        The handle names the channel as well as the message, so an update edits the right message
        whatever ``thread`` a later call passes.
        """
        text = clip(text, self.max_message_length) or "…"
        if handle:
            where, _, message_id = handle.partition("/")
            try:
                target = await self._channel(where)
                await target.get_partial_message(int(message_id)).edit(
                    content=text, allowed_mentions=discord.AllowedMentions.none())
                return handle
            except discord.NotFound:
                log.info("the status message %s is gone; posting a new one", handle)
            except ValueError:
                log.warning("not a status handle: %r", handle)
            except (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
                raise _post_error(error, "a status update") from error
        target_id = thread or channel.thread or channel.id
        return f"{target_id}/{await self._bot_send(target_id, text)}"

    async def _direct_message(self, user: UserRef, text: str) -> None:
        """A private message that answers no recent command: a DM (best effort)."""
        try:
            target = self.client.get_user(int(user.id)) or await self.client.fetch_user(int(user.id))
            for piece in split_message(text, self.max_message_length):
                await target.send(piece, allowed_mentions=discord.AllowedMentions.none())
        except (discord.HTTPException, ValueError) as error:
            log.info("could not send a private message to %s: %s", user.id, error)

    # -- posting --------------------------------------------------------------------------------

    async def post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None = None) -> str:
        """Through the channel's webhook, under the persona's name and avatar; without Manage Webhooks,
        through the bot with the persona's name leading every piece."""
        thread = thread or channel.thread
        if thread is None:
            thread = self._owed.thread_for(channel.id, identity.name)
        try:
            return await self._webhook_post(channel.id, identity, split_message(text, self.max_message_length), thread)
        except _NoWebhooks:
            return await self._bot_post(thread or channel.id, self._on_behalf(identity, text))

    def _on_behalf(self, identity: Identity, text: str) -> list[str]:
        """The pieces of a persona's post made through the bot, each led by the persona's name."""
        prefix = fallback_prefix(identity)
        return [prefix + piece for piece in split_message(unlabelled(text), self.max_message_length - len(prefix))]

    async def announce(self, channel: ChannelRef, text: str, thread: str | None = None) -> str:
        return await self._bot_post(thread or channel.thread or channel.id, split_message(text, self.max_message_length))

    async def _bot_post(self, target_id: str, pieces: list[str]) -> str:
        first: str | None = None
        for piece in pieces:
            message_id = await self._bot_send(target_id, piece)
            first = first or message_id
        assert first is not None
        return first

    async def _bot_send(self, target_id: str, text: str) -> str:
        try:
            target = await self._channel(target_id)
            message = await target.send(text, allowed_mentions=discord.AllowedMentions.none())
        except (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            raise _post_error(error, "a message") from error
        return str(message.id)

    async def _channel(self, channel_id: str) -> Any:
        channel = self.client.get_channel(int(channel_id))
        if channel is None:
            channel = await self.client.fetch_channel(int(channel_id))
        return channel

    async def _webhook_post(self, channel_id: str, identity: Identity, pieces: list[str], thread: str | None) -> str:
        first: str | None = None
        for piece in pieces:
            for attempt in (1, 2):
                webhook = await self._webhook(channel_id)
                try:
                    message = await webhook.send(
                        piece,
                        username=webhook_username(identity),
                        avatar_url=identity.avatar_url or discord.utils.MISSING,
                        allowed_mentions=discord.AllowedMentions.none(),
                        thread=discord.Object(id=int(thread)) if thread else discord.utils.MISSING,
                        wait=True,
                    )
                except discord.NotFound as error:
                    if error.code == UNKNOWN_WEBHOOK and attempt == 1:
                        await self._drop_webhook(channel_id, webhook)
                        continue
                    raise _post_error(error, "a persona message") from error
                except (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
                    raise _post_error(error, "a persona message") from error
                first = first or str(message.id)
                break
        assert first is not None
        return first

    async def _drop_webhook(self, channel_id: str, webhook: discord.Webhook) -> None:
        """Forget a webhook Discord no longer knows, here and in storage, before making another."""
        if self._webhooks.get(channel_id) is webhook:
            del self._webhooks[channel_id]
        if self.state is not None:
            try:
                await self.state.set(_webhook_key(channel_id), None)
            except Exception:
                log.warning("could not forget the stored webhook of channel %s", channel_id, exc_info=True)

    async def _stored_webhook(self, channel_id: str) -> discord.Webhook | None:
        if self.state is None:
            return None
        try:
            stored = await self.state.get(_webhook_key(channel_id))
        except Exception:  # storage trouble: fall back to asking Discord
            log.warning("could not read the stored webhook of channel %s", channel_id, exc_info=True)
            return None
        if not stored or not stored.get("token"):
            return None
        return discord.Webhook.partial(int(stored["id"]), stored["token"], client=self.client)

    async def _store_webhook(self, channel_id: str, webhook: discord.Webhook) -> None:
        if self.state is None or not webhook.token:
            return
        try:
            await self.state.set(_webhook_key(channel_id), {"id": str(webhook.id), "token": webhook.token})
        except Exception:
            log.warning("could not store the webhook of channel %s", channel_id, exc_info=True)

    async def _webhook(self, channel_id: str) -> discord.Webhook:
        """The channel's webhook: cached, else the bot's existing one, else a new one."""
        if channel_id in self._no_webhooks:
            raise _NoWebhooks()
        async with self._webhook_locks[channel_id]:
            webhook = self._webhooks.get(channel_id)
            if webhook is not None:
                return webhook
            webhook = await self._stored_webhook(channel_id)
            if webhook is not None:
                self._webhooks[channel_id] = webhook
                self._own_webhook_ids.add(webhook.id)
                return webhook
            try:
                channel = await self._channel(channel_id)
            except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
                raise _post_error(error, "access to the channel") from error
            try:
                webhook = await self._existing_webhook(channel) or await channel.create_webhook(name=WEBHOOK_NAME)
            except discord.Forbidden:
                self._no_webhooks.add(channel_id)
                await self._explain_no_webhooks(channel_id)
                raise _NoWebhooks() from None
            except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
                raise _post_error(error, "creating the channel's webhook") from error
            self._webhooks[channel_id] = webhook
            self._own_webhook_ids.add(webhook.id)
            await self._store_webhook(channel_id, webhook)
            return webhook

    async def _existing_webhook(self, channel: Any) -> discord.Webhook | None:
        me = self.client.user
        try:
            hooks = await channel.webhooks()
        except discord.Forbidden:
            raise
        except discord.HTTPException:
            return None
        for hook in hooks:
            if hook.token and hook.user is not None and me is not None and hook.user.id == me.id:
                return hook
        return None

    async def _explain_no_webhooks(self, channel_id: str) -> None:
        """Say once, in the channel, why personas post through the bot here."""
        text = ("I lack the Manage Webhooks permission in this channel, so personas post through me with their "
                "name in bold. Give me Manage Webhooks to let each persona post under its own name and avatar.")
        try:
            await self._bot_send(channel_id, text)
        except AdapterError as error:
            log.warning("could not explain the missing webhook permission: %s", error)

    async def catch_up(self, channel: ChannelRef, after: str) -> list[IncomingMessage]:
        """People's messages after message ``after`` in the channel's history, oldest first."""
        missed: list[IncomingMessage] = []
        try:
            target = await self._channel(channel.id)
            async for message in target.history(limit=CATCH_UP_MAX, after=discord.Object(id=int(after)),
                                                oldest_first=True):
                if message.webhook_id is not None or message.author.bot or not message.content.strip():
                    continue
                missed.append(IncomingMessage(channel=self._channel_ref(message.channel),
                                              user=self._user(message.author, message.channel),
                                              text=message.content, message_id=str(message.id)))
        except (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as error:
            raise _post_error(error if not isinstance(error, ValueError) else OSError(str(error)),
                              "reading the channel's history") from error
        return missed

    async def find_post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None,
                        since: datetime, taken: Collection[str] = ()) -> str | None:
        """Our post of ``text`` as ``identity`` in the channel's (or thread's) recent history."""
        first = split_message(text, self.max_message_length)[0]
        prefixed = self._on_behalf(identity, text)[0]
        username = webhook_username(identity)
        me = self.client.user.id if self.client.user is not None else None
        try:
            target = await self._channel(thread or channel.thread or channel.id)
            async for message in target.history(limit=100, after=since - timedelta(seconds=5), oldest_first=True):
                by_webhook = message.webhook_id is not None and message.author.name == username and message.content == first
                by_bot = me is not None and message.author.id == me and message.content == prefixed
                if (by_webhook or by_bot) and str(message.id) not in taken:
                    return str(message.id)  # the earliest: the same words posted twice are two messages
        except (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            raise _post_error(error, "reading the channel's history") from error
        return None

    async def typing(self, channel: ChannelRef, identity: Identity | None = None) -> None:
        with contextlib.suppress(Exception):
            target = await self._channel(channel.thread or channel.id)
            await target.typing()

    async def upload(self, channel: ChannelRef, filename: str, data: bytes, comment: str = "") -> str | None:
        """Share a file in the channel; an ``/troupe export`` waiting for its answer is answered with it."""
        file = discord.File(io.BytesIO(data), filename=filename)
        mentions = discord.AllowedMentions.none()
        waiting = self._waiting_export(channel)
        try:
            if waiting is not None:
                async with waiting.lock:
                    if not waiting.answered and not waiting.deferred:
                        # Marked answered only once Discord took it: a refused file leaves the
                        # interaction open for the explanation.
                        await waiting.interaction.response.send_message(comment or None, file=file,
                                                                        allowed_mentions=mentions)
                        waiting.answered = True
                        return str(waiting.interaction.id)
            target = await self._channel(channel.thread or channel.id)
            message = await target.send(comment or None, file=file, allowed_mentions=mentions)
        except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
            log.warning("upload of %s failed: %s", filename, error)
            return None
        if waiting is not None:
            async with waiting.lock:
                if not waiting.answered:
                    waiting.answered = True
                    with contextlib.suppress(discord.HTTPException):
                        await waiting.interaction.edit_original_response(content="Shared in the channel.")
        return str(message.id)

    def _waiting_export(self, channel: ChannelRef) -> _Pending | None:
        for pending in reversed(list(self._pending.values())):
            inside = str(pending.interaction.channel_id) in (channel.id, channel.thread)
            if inside and not pending.answered and pending.text.startswith("export"):
                return pending
        return None

    # -- slash commands -------------------------------------------------------------------------

    def _channel_personas(self, interaction: discord.Interaction) -> list[str]:
        if self.persona_names is None or interaction.channel is None:
            return []
        try:
            return list(self.persona_names(self._channel_ref(interaction.channel).key))
        except Exception:
            log.warning("persona autocomplete failed", exc_info=True)
            return []

    async def _complete_persona(self, interaction: discord.Interaction,
                                current: str) -> list[app_commands.Choice[str]]:
        return _choices(self._channel_personas(interaction), current)

    async def _complete_bundled(self, interaction: discord.Interaction,
                                current: str) -> list[app_commands.Choice[str]]:
        names: list[str] = []
        if self.bundled_persona_names is not None:
            with contextlib.suppress(Exception):
                names = list(self.bundled_persona_names())
        return _choices(names, current)

    async def _interview(self, interaction: discord.Interaction, name: str) -> None:
        """Open a thread where every message is put to one persona."""
        known = self._channel_personas(interaction)
        match = next((n for n in known if n.casefold() == name.strip().casefold()), None)
        if known and match is None:
            await interaction.response.send_message(
                f"There is no persona called {literal(name)} here; `/troupe persona list` shows them.", ephemeral=True)
            return
        persona = match or name.strip()
        channel = interaction.channel
        if not isinstance(channel, discord.TextChannel):
            await interaction.response.send_message("Interviews open from a text channel, not a thread.",
                                                    ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        pending = _Pending(interaction, deferred=True, answered=True)
        self._recent[(str(interaction.user.id), str(channel.id))] = pending
        try:
            thread = await channel.create_thread(name=f"Interview with {persona}"[:100],
                                                 type=discord.ChannelType.public_thread,
                                                 auto_archive_duration=1440)
            shown = literal(persona)
            await thread.send(f"Interview with {shown}: everything written in this thread is put to "
                              f"{shown}, who answers here.", allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as error:
            await interaction.followup.send(f"Could not open a thread: {error.text or error}", ephemeral=True)
            return
        await self._remember_interview(str(thread.id), str(channel.id), persona)
        await interaction.followup.send(f"Opened {thread.mention} to talk with {literal(persona)}.", ephemeral=True)

    def _build_group(self) -> app_commands.Group:
        adapter = self
        troupe = app_commands.Group(name="troupe", description="Simulated personas in this channel",
                                    guild_only=True)
        persona = app_commands.Group(name="persona", description="The personas of this channel's world",
                                     parent=troupe)

        def simple(name: str, description: str) -> None:
            async def callback(interaction: discord.Interaction) -> None:
                await adapter._invoke(interaction, command_text(name))
            troupe.add_command(app_commands.Command(name=name, description=description, callback=callback))

        for name, description in (
            ("status", "What this channel's world is doing"),
            ("pause", "Personas stop answering (messages are still heard)"),
            ("resume", "Personas answer again"),
            ("usage", "Model calls, tokens and cost of this channel"),
        ):
            simple(name, description)

        @troupe.command(name="stop", description="End this channel's world (its history is kept)")
        @app_commands.describe(confirm="true to stop it; without, the bot says what stopping does")
        async def stop(interaction: discord.Interaction, confirm: Optional[bool] = None) -> None:
            await adapter._invoke(interaction, command_text("stop", confirm=confirm))

        @troupe.command(name="reset", description="Forget the conversation and memories (personas stay)")
        @app_commands.describe(confirm="true to reset; without, the bot says what a reset forgets")
        async def reset(interaction: discord.Interaction, confirm: Optional[bool] = None) -> None:
            await adapter._invoke(interaction, command_text("reset", confirm=confirm))

        @troupe.command(name="start", description="Bind this channel to a new world, or reopen the stopped one")
        @app_commands.describe(name="the world's name", situation="what the personas are told is going on",
                               scenario="a scenario file on the bot's machine",
                               reopen="true to reopen the world stopped in this channel")
        async def start(interaction: discord.Interaction, name: Optional[str] = None,
                        situation: Optional[str] = None, scenario: Optional[str] = None,
                        reopen: Optional[bool] = None) -> None:
            await adapter._invoke(interaction, command_text("start", name=name, situation=situation,
                                                            scenario=scenario, reopen=reopen))

        @persona.command(name="add", description="Add a bundled persona, a persona file or pasted JSON")
        @app_commands.describe(source="a bundled persona's name, a file path, or JSON")
        async def persona_add(interaction: discord.Interaction, source: str) -> None:
            await adapter._invoke(interaction, command_text("persona add", source=source))

        @persona.command(name="list", description="List the personas here")
        async def persona_list(interaction: discord.Interaction) -> None:
            await adapter._invoke(interaction, "persona list")

        @persona.command(name="remove", description="Remove a persona")
        async def persona_remove(interaction: discord.Interaction, name: str) -> None:
            await adapter._invoke(interaction, command_text("persona remove", name=name))

        @persona.command(name="show", description="Show a persona's spec")
        async def persona_show(interaction: discord.Interaction, name: str) -> None:
            await adapter._invoke(interaction, command_text("persona show", name=name))

        @troupe.command(name="policy", description="Who answers a human message, and how many exchanges follow")
        async def policy(interaction: discord.Interaction, policy: Optional[POLICY_CHOICES] = None,
                         exchanges: Optional[app_commands.Range[int, 0, 20]] = None) -> None:
            await adapter._invoke(interaction, command_text("policy", policy=policy, exchanges=exchanges))

        @troupe.command(name="pick", description="Choose who speaks next (moderator policy)")
        async def pick(interaction: discord.Interaction, name: str, second: Optional[str] = None,
                       third: Optional[str] = None) -> None:
            await adapter._invoke(interaction, command_text("pick", names=[name, second, third]))

        @troupe.command(name="run", description="Let the world run N steps")
        async def run(interaction: discord.Interaction, steps: app_commands.Range[int, 1, 100]) -> None:
            await adapter._invoke(interaction, command_text("run", steps=steps))

        @troupe.command(name="observe", description="Privately receive a persona's thoughts as they happen")
        async def observe(interaction: discord.Interaction, name: str, state: ON_OFF) -> None:
            await adapter._invoke(interaction, command_text("observe", name=name, state=state))

        @troupe.command(name="ask", description="Talk to one persona")
        async def ask(interaction: discord.Interaction, name: str, question: str) -> None:
            await adapter._invoke(interaction, command_text("ask", name=name, question=question))

        @troupe.command(name="interview", description="Open a thread to talk with one persona")
        async def interview(interaction: discord.Interaction, name: str) -> None:
            await adapter._interview(interaction, name)

        held = app_commands.Group(name="review", description="Persona messages held for a moderator", parent=troupe)

        @held.command(name="list", description="Held persona messages waiting for a moderator")
        async def review_list(interaction: discord.Interaction) -> None:
            await adapter._invoke(interaction, "review")

        @persona.command(name="library", description="The bundled personas you can add")
        async def persona_library(interaction: discord.Interaction) -> None:
            await adapter._invoke(interaction, "personas")

        @held.command(name="approve", description="Post a held message as it is")
        async def approve(interaction: discord.Interaction, id: app_commands.Range[int, 1]) -> None:
            await adapter._invoke(interaction, command_text("approve", id=id))

        @held.command(name="edit", description="Post a held message with your changes")
        async def edit(interaction: discord.Interaction, id: app_commands.Range[int, 1], text: str) -> None:
            await adapter._invoke(interaction, command_text("edit", id=id, text=text))

        @held.command(name="reject", description="Never post a held message")
        async def reject(interaction: discord.Interaction, id: app_commands.Range[int, 1]) -> None:
            await adapter._invoke(interaction, command_text("reject", id=id))

        @troupe.command(name="safety", description="Show the checks, or switch the channel's safety mode")
        async def safety(interaction: discord.Interaction, mode: Optional[SAFETY_CHOICES] = None) -> None:
            await adapter._invoke(interaction, command_text("safety", mode=mode))

        @troupe.command(name="export", description="The world's conversation as a file")
        async def export(interaction: discord.Interaction, format: EXPORT_CHOICES) -> None:
            await adapter._invoke(interaction, command_text("export", format=format))

        focus_group = app_commands.Group(name="focus", description="Focus groups in this channel", parent=troupe)

        @focus_group.command(name="start", description="Every persona answers the question in turn, then a summary")
        @app_commands.describe(question="the question put to the group", rounds="rounds of answers (1-5)",
                               personas="who takes part, names separated by commas (default: everyone)")
        async def focus(interaction: discord.Interaction, question: str,
                        rounds: Optional[app_commands.Range[int, 1, 5]] = None, personas: Optional[str] = None) -> None:
            await adapter._invoke(interaction, command_text("focus", question=question, rounds=rounds,
                                                            personas=personas))

        @focus_group.command(name="probe", description="Ask the running focus group this in its next round")
        async def probe(interaction: discord.Interaction, question: str) -> None:
            await adapter._invoke(interaction, command_text("probe", question=question))

        @troupe.command(name="summary", description="The conversation so far and where each persona stands")
        @app_commands.describe(since="summarise only events after this event id")
        async def summary(interaction: discord.Interaction, since: Optional[app_commands.Range[int, 0]] = None) -> None:
            await adapter._invoke(interaction, command_text("summary", since=since))

        @troupe.command(name="poll", description="Every persona picks an option and says why; a chart shows the tally")
        @app_commands.describe(question="the poll's question", options="the options, separated by commas")
        async def poll(interaction: discord.Interaction, question: str, options: str) -> None:
            await adapter._invoke(interaction, command_text("poll", question=question, options=options))

        @troupe.command(name="extract", description="Structured answers from each persona, as a file")
        @app_commands.describe(fields="field names separated by spaces or commas, e.g. stance reasons budget")
        async def extract(interaction: discord.Interaction, fields: str, format: Optional[Literal["json", "csv"]] = None) -> None:
            await adapter._invoke(interaction, command_text("extract", fields=fields, format=format or "json"))

        @persona.command(name="generate", description="Add generated personas to this world")
        @app_commands.describe(count="how many (1-12)", description="the population, e.g. nurses in Lisbon",
                               plan="a sampling plan, e.g. 40% under 30, half in cities")
        async def generate(interaction: discord.Interaction, count: app_commands.Range[int, 1, 12], description: str,
                           plan: Optional[str] = None) -> None:
            await adapter._invoke(interaction, command_text("generate", count=count, description=description, plan=plan))

        @troupe.command(name="enrich", description="Make an artifact (an email, an ad) realistic for the simulation")
        async def enrich(interaction: discord.Interaction, content: str, requirements: Optional[str] = None) -> None:
            await adapter._invoke(interaction, command_text("enrich", content=content, requirements=requirements))

        @troupe.command(name="story", description="Suggest the next beat of the simulation, or inject the suggestion")
        async def story(interaction: discord.Interaction, action: Optional[Literal["suggest", "inject"]] = None) -> None:
            await adapter._invoke(interaction, command_text("story", action=action))

        @troupe.command(name="validate", description="Interview a persona and score it against expectations")
        async def validate(interaction: discord.Interaction, name: str, expectations: str) -> None:
            await adapter._invoke(interaction, command_text("validate", name=name, expectations=expectations))

        @troupe.command(name="help", description="Troupe's commands")
        async def help(interaction: discord.Interaction, command: Optional[str] = None) -> None:
            await adapter._invoke(interaction, command_text("help", command=command))

        for command, param in ((persona_remove, "name"), (persona_show, "name"), (pick, "name"), (pick, "second"),
                               (pick, "third"), (observe, "name"), (ask, "name"), (interview, "name"),
                               (validate, "name")):
            command.autocomplete(param)(adapter._complete_persona)
        persona_add.autocomplete("source")(adapter._complete_bundled)
        return troupe


class _NoWebhooks(Exception):
    """Webhooks may not be created in this channel."""


def _choices(names: list[str], current: str) -> list[app_commands.Choice[str]]:
    """Up to 25 suggestions (Discord's limit) that contain what was typed."""
    folded = current.casefold().strip()
    return [app_commands.Choice(name=n[:100], value=n[:100]) for n in names if folded in n.casefold()][:25]


def _webhook_key(channel_id: str) -> str:
    return f"webhook:{channel_id}"


def _interview_key(thread_id: str) -> str:
    return f"interview:{thread_id}"

