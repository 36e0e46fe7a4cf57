"""A local stand-in for Discord's REST API and gateway, for driving the real ``discord.py`` client.

It speaks the wire protocol discord.py expects: exact ``application/json`` bodies, real rate-limit
headers on 429s (with ``Via`` so the client retries), the gateway handshake (HELLO, IDENTIFY → READY
then GUILD_CREATE, heartbeats, RESUME replay by sequence, INVALID_SESSION), ``zlib-stream`` transport
compression when the connection URL asks for it, interaction callbacks with their 3-second window,
and webhook executions with Discord's validation rules.

    async with FakeDiscord() as discord:
        discord_py.http.Route.BASE = discord.api_base
        discord_py.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(discord.gateway_url)
        await discord.user_says(discord.channel_id("general"), "hello")

Everything a Discord user would see is recorded: ``channel_messages(channel_id)`` for public messages
(bot posts, webhook posts, interaction replies), ``ephemeral(user_id)`` for ephemeral replies and
``dms(user_id)`` for direct messages. Messages keep their embeds (checked against Discord's embed
limits), their uploaded files (``attachments``, from multipart ``files[n]`` parts) and their earlier
versions (``revisions``) after edits; ``delete_message`` deletes one as a moderator would.
``run_slash_command`` runs a command, ``run_autocomplete`` asks the bot for suggestions while an option
is typed (interaction type 4, answered with callback type 8).

Faults: ``rate_limit(route)`` answers chosen requests with a 429; ``chaos(rate, seed=...)`` answers a
random share of REST calls with a 429 (Discord's headers, ``Via`` included), a 500 or a 503, or — for
message posts — creates the message and then cuts the connection, so the client sees an error for a
post that happened (what ``find_post`` exists for). ``faults_injected`` counts them by kind.

Shards: an IDENTIFY may carry ``shard: [id, count]``; the session then hears only guilds with
``(guild_id >> 22) % count == id`` (direct messages reach shard 0), and one session per shard id is
kept, so several clients (or one ``AutoShardedClient``) are connected at once. An invalid shard is
closed with 4010, a shard holding more than ``max_guilds_per_shard`` guilds with 4011 (sharding
required). ``GET /gateway/bot`` gives the recommended count and ``max_concurrency``; with
``identify_interval`` set (Discord's is ``IDENTIFY_INTERVAL_S``), an IDENTIFY arriving sooner than
that after the last accepted one of its bucket (``shard_id % max_concurrency``) is answered with
Invalid Session, as Discord documents. ``add_guild`` adds guilds (``guild_id`` is the first);
``guild_id_for_shard`` makes ids that land on a chosen shard.

Behaviour of the real client worth knowing in tests: discord.py sleeps 5 s before every IDENTIFY but
the first (``Client.before_identify_hook``), so a non-resumable close takes that long to recover unless
the hook is overridden; ``on_ready`` waits ``guild_ready_timeout`` (2 s by default) after the last
GUILD_CREATE; stop the client before leaving ``async with FakeDiscord()``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import re
import secrets
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

from tests.fakes.chaos import FaultDice

DISCORD_EPOCH_MS = 1420070400000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADD_REACTIONS = 1 << 6
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
MANAGE_WEBHOOKS = 1 << 29
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_MESSAGES = 1 << 13
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
MODERATE_MEMBERS = 1 << 40

EVERYONE_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | USE_APPLICATION_COMMANDS | ADD_REACTIONS
BOT_PERMISSIONS = (
    EVERYONE_PERMISSIONS
    | EMBED_LINKS
    | ATTACH_FILES
    | MANAGE_WEBHOOKS
    | MANAGE_THREADS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
MODERATOR_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_MESSAGES | MANAGE_THREADS | MODERATE_MEMBERS

# Gateway intents that gate the events this fake dispatches.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

EVENT_INTENTS = {
    "GUILD_CREATE": INTENT_GUILDS,
    "THREAD_CREATE": INTENT_GUILDS,
    "THREAD_UPDATE": INTENT_GUILDS,
    "CHANNEL_CREATE": INTENT_GUILDS,
    "MESSAGE_CREATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_UPDATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_DELETE": INTENT_GUILD_MESSAGES,
}

# Gateway opcodes.
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME, OP_RECONNECT = 0, 1, 2, 6, 7
OP_REQUEST_MEMBERS, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 8, 9, 10, 11

#: Discord's identify window: one IDENTIFY per rate-limit bucket per this many seconds.
IDENTIFY_INTERVAL_S = 5.0
#: Most guilds one shard may hold before Discord refuses it with 4011 (sharding required).
MAX_GUILDS_PER_SHARD = 2500
#: Guilds per shard Discord's recommended count aims at.
RECOMMENDED_GUILDS_PER_SHARD = 1000

#: Close codes after which Discord lets the session be resumed.
NON_RESUMABLE_CLOSE_CODES = frozenset({4004, 4007, 4009, 4010, 4011, 4012, 4013, 4014})

# Option types of application commands.
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, NUMBER = 1, 2, 3, 4, 5, 6, 7, 8, 10

EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Interaction types and the callback types each accepts.
APPLICATION_COMMAND, APPLICATION_COMMAND_AUTOCOMPLETE = 2, 4
CALLBACK_TYPES = {APPLICATION_COMMAND: (4, 5, 9), APPLICATION_COMMAND_AUTOCOMPLETE: (8,)}

# Embed limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
EMBED_LIMITS = {"title": 256, "description": 4096, "footer.text": 2048, "author.name": 256}
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBEDS_TOTAL_MAX = 6000
#: What a bot may upload per message without a boosted guild (interactions carry ``attachment_size_limit``).
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
#: What ``FakeDiscord.chaos`` picks from by default. ``drop`` (the message is created, then the connection
#: is cut before the answer) applies to message posts only; other calls get one of the rest.
CHAOS_FAULTS = ("rate_limit", "server_error_500", "server_error_503", "drop")
#: REST calls that create a message: bot posts, webhook executions, interaction follow-ups.
_MESSAGE_POST = re.compile(r"^/channels/\d+/messages$|^/webhooks/\d+/[^/]+$")

#: ``attachment://NAME`` in an embed resolves only for names made of these characters.
_ATTACHMENT_REFERENCE = re.compile(r"^attachment://([A-Za-z0-9_.-]+)$")

_snowflake_counter = itertools.count()

#: Where the middleware leaves a request's decoded JSON (or multipart ``payload_json``) body.
_PAYLOAD: web.RequestKey[Any] = web.RequestKey("payload", object)
#: Where it leaves the files of a multipart body (``files[n]`` parts), by ``n``.
_FILES: web.RequestKey[dict[int, FakeAttachment]] = web.RequestKey("files", dict)


def snowflake() -> int:
    """A fresh, time-ordered Discord snowflake."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(_snowflake_counter) & 0x3FFFFF)


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a guild's events to."""
    return (guild_id >> 22) % shard_count


def guild_id_for_shard(shard_id: int, shard_count: int) -> int:
    """A fresh snowflake whose guild would be on shard ``shard_id`` of ``shard_count``."""
    flake = snowflake()
    ms = flake >> 22
    ms += (shard_id - ms) % shard_count
    return (ms << 22) | (flake & 0x3FFFFF)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response whose Content-Type is exactly ``application/json``, as Discord sends it."""
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    return web.Response(status=status, body=json.dumps(data).encode(), headers=all_headers)


def _error(status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return _json(body, status)


def _form_error(field_name: str, code: str, message: str) -> web.Response:
    return _error(400, 50035, "Invalid Form Body", {field_name: {"_errors": [{"code": code, "message": message}]}})


def _nested_form_error(path: tuple[str, ...], code: str, message: str) -> web.Response:
    """An Invalid Form Body error for a nested field, e.g. ``("embeds", "0", "fields", "3", "value")``."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        errors = {key: errors}
    return _error(400, 50035, "Invalid Form Body", errors)


class DiscordHTTPError(Exception):
    """Raised inside handlers to answer with a Discord error body."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class FakeUser:
    """A Discord user (and guild member)."""

    id: int
    name: str
    bot: bool = False
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None

    def payload(self) -> dict[str, Any]:
        """The user object."""
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }

    def member_payload(self, *, with_user: bool = True) -> dict[str, Any]:
        """The guild member object."""
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.role_ids],
            "nick": self.nick,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "avatar": None,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.payload()
        return data


@dataclass
class FakeRole:
    """A guild role."""

    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    def payload(self) -> dict[str, Any]:
        """The role object."""
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }


@dataclass
class FakeChannel:
    """A guild text channel, a thread (type 11 public thread, 12 private thread) or a DM (type 1)."""

    id: int
    guild_id: int
    name: str
    type: int = 0
    parent_id: int | None = None
    owner_id: int | None = None
    position: int = 0
    archived: bool = False
    #: When the thread was last archived or unarchived (Discord's ``archive_timestamp``).
    archive_changed_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    #: The id of the last message sent here (Discord keeps it after the message is deleted).
    last_message_id: int | None = None
    #: The other side of a DM.
    recipient: FakeUser | None = None

    @property
    def is_thread(self) -> bool:
        """Whether this is a thread."""
        return self.type in (10, 11, 12)

    @property
    def is_dm(self) -> bool:
        """Whether this is a direct-message channel (not part of the guild)."""
        return self.type == 1

    def payload(self) -> dict[str, Any]:
        """The channel object."""
        if self.is_dm:
            recipients = [self.recipient.payload()] if self.recipient else []
            return {"id": str(self.id), "type": 1, "last_message_id": _snowflake_or_none(self.last_message_id),
                    "flags": 0, "recipients": recipients}
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "last_message_id": _snowflake_or_none(self.last_message_id),
            "rate_limit_per_user": 0,
            "flags": 0,
            "nsfw": False,
        }
        if self.is_thread:
            data.update(
                owner_id=str(self.owner_id) if self.owner_id else None,
                member_count=1,
                message_count=0,
                total_message_sent=0,
                thread_metadata={
                    "archived": self.archived,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": self.archive_changed_at.isoformat(),
                    "locked": False,
                    "invitable": True,
                    "create_timestamp": _now_iso(),
                },
            )
        else:
            data.update(position=self.position, permission_overwrites=[], topic=None)
        return data


@dataclass
class FakeWebhook:
    """An incoming webhook of a channel."""

    id: int
    channel_id: int
    guild_id: int
    name: str
    token: str
    creator_id: int
    application_id: int | None = None

    def payload(self, creator: FakeUser | None = None) -> dict[str, Any]:
        """The webhook object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": 1,
            "guild_id": str(self.guild_id),
            "channel_id": str(self.channel_id),
            "name": self.name,
            "avatar": None,
            "token": self.token,
            "application_id": str(self.application_id) if self.application_id else None,
        }
        if creator is not None:
            data["user"] = creator.payload()
        return data


@dataclass
class FakeAttachment:
    """A file uploaded with a message (a ``files[n]`` part of a multipart request)."""

    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None
    id: int = field(default_factory=lambda: snowflake())

    @property
    def url(self) -> str:
        """Where Discord's CDN would serve it."""
        return f"https://cdn.discordapp.com/attachments/0/{self.id}/{self.filename}"

    def dimensions(self) -> tuple[int, int] | None:
        """Width and height of a PNG (Discord reports them for images)."""
        if self.data[:8] == b"\x89PNG\r\n\x1a\n" and len(self.data) >= 24:
            return int.from_bytes(self.data[16:20], "big"), int.from_bytes(self.data[20:24], "big")
        return None

    def payload(self) -> dict[str, Any]:
        """The attachment object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url.replace("cdn.discordapp.com", "media.discordapp.net"),
        }
        size = self.dimensions()
        # Discord detects the type of what it stores rather than trusting the upload's header.
        content_type = "image/png" if size is not None else self.content_type
        if content_type:
            data["content_type"] = content_type
        if self.description:
            data["description"] = self.description
        if size is not None:
            data["width"], data["height"] = size
        return data


@dataclass
class SentMessage:
    """A message as a Discord user would see it.

    ``embeds`` are as the bot sent them (``attachment://`` references included); ``payload["embeds"]``
    is what clients get, with references resolved to the attachment's URL.
    """

    id: int
    channel_id: int
    content: str
    author_id: int
    author_name: str
    payload: dict[str, Any]
    webhook_id: int | None = None
    avatar_url: str | None = None
    embeds: list[dict[str, Any]] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    reference_id: int | None = None
    ephemeral: bool = False
    recipient_id: int | None = None
    interaction_id: int | None = None
    pinged_user_ids: list[int] = field(default_factory=list)
    edits: int = 0
    attachments: list[FakeAttachment] = field(default_factory=list)
    #: Earlier versions, oldest first: ``{"content": ..., "embeds": [...]}`` before each edit.
    revisions: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False


@dataclass
class InteractionCallback:
    """The bot's initial response to an interaction."""

    type: int
    data: dict[str, Any]
    elapsed: float

    @property
    def ephemeral(self) -> bool:
        """Whether the response (or the deferral) is ephemeral."""
        return bool(int(self.data.get("flags", 0) or 0) & EPHEMERAL)

    @property
    def deferred(self) -> bool:
        """Whether this was a deferral (type 5)."""
        return self.type == 5


@dataclass
class FakeInteraction:
    """An application command interaction the fake dispatched, with everything the bot answered."""

    id: int
    token: str
    name: str
    options: list[dict[str, Any]]
    user_id: int
    channel_id: int
    created: float
    owner: FakeDiscord
    #: 2 for a command, 4 for autocomplete of one of its options.
    type: int = APPLICATION_COMMAND
    callback: InteractionCallback | None = None
    original: SentMessage | None = None
    followup_messages: list[SentMessage] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)

    async def response(self, timeout: float = 5.0) -> InteractionCallback:
        """Wait for the bot's initial response (reply or deferral)."""
        await self.owner.wait_for(lambda: self.callback is not None, timeout)
        assert self.callback is not None
        return self.callback

    async def message(self, timeout: float = 5.0) -> SentMessage:
        """Wait for the visible original response (a reply, or a deferral once it was filled in)."""
        await self.owner.wait_for(
            lambda: self.original is not None and not (int(self.original.payload.get("flags", 0)) & LOADING),
            timeout,
        )
        assert self.original is not None
        return self.original

    async def choices(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait for the bot's autocomplete answer (callback type 8) and return its choices."""
        callback = await self.response(timeout)
        assert callback.type == 8, f"expected an autocomplete result, got callback type {callback.type}"
        return list(callback.data.get("choices") or [])

    async def followups(self, count: int = 1, timeout: float = 5.0) -> list[SentMessage]:
        """Wait until at least ``count`` follow-up messages were sent, and return them all."""
        await self.owner.wait_for(lambda: len(self.followup_messages) >= count, timeout)
        return list(self.followup_messages)


@dataclass
class _Session:
    """One gateway session: its events by sequence, for resuming."""

    id: str
    intents: int
    events: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0
    valid: bool = True
    #: ``(shard id, shard count)``; an unsharded session is ``(0, 1)``.
    shard: tuple[int, int] = (0, 1)

    def hears(self, guild_id: int | None) -> bool:
        """Whether Discord sends this session the guild's events (events of no guild go to shard 0)."""
        shard_id, count = self.shard
        return shard_id == 0 if guild_id is None else shard_of(guild_id, count) == shard_id


@dataclass
class FakeGuild:
    """A guild (server) the bot is in."""

    id: int
    name: str


@dataclass
class GatewayConnection:
    """A websocket connection to the gateway, as seen by the fake."""

    ws: web.WebSocketResponse
    path: str
    query: dict[str, str]
    compressor: Any = None
    session: _Session | None = None
    heartbeats: int = 0
    closed_code: int | None = None


@dataclass
class _RateLimit:
    route: str
    method: str | None
    times: int
    retry_after: float
    is_global: bool


class FakeDiscord:
    """A Discord stand-in on 127.0.0.1 (REST under ``/api/v10``, gateway under ``/gateway``)."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        heartbeat_interval: float = 1.0,
        interaction_deadline: float = 3.0,
        bot_permissions: int = BOT_PERMISSIONS,
        manage_webhooks: bool = True,
        privileged_intents: int = PRIVILEGED_INTENTS,
        bot_name: str = "Troupe",
        max_concurrency: int = 1,
        identify_interval: float = 0.0,
        recommended_shards: int | None = None,
        max_guilds_per_shard: int = MAX_GUILDS_PER_SHARD,
        guild_id: int | None = None,
    ) -> None:
        """``identify_interval`` 0 (the default) accepts every IDENTIFY at once, so tests may reconnect
        quickly; ``IDENTIFY_INTERVAL_S`` paces them as Discord does. ``recommended_shards`` None
        recommends one shard per ``RECOMMENDED_GUILDS_PER_SHARD`` guilds."""
        self.token = token
        self.max_concurrency = max_concurrency
        self.identify_interval = identify_interval
        self.recommended_shards = recommended_shards
        self.max_guilds_per_shard = max_guilds_per_shard
        self.heartbeat_interval = heartbeat_interval
        self.interaction_deadline = interaction_deadline
        self.privileged_intents = privileged_intents
        if not manage_webhooks:
            bot_permissions &= ~MANAGE_WEBHOOKS
        self.application_id = snowflake()
        self.guild_id = guild_id or snowflake()
        self.guilds: dict[int, FakeGuild] = {self.guild_id: FakeGuild(self.guild_id, "Troupe Test Guild")}
        self.bot_user = FakeUser(snowflake(), bot_name, bot=True)
        self.owner_user = FakeUser(snowflake(), "owner")
        self.roles: dict[int, FakeRole] = {}
        self.everyone_role = self._role(self.guild_id, "@everyone", EVERYONE_PERMISSIONS, position=0)
        self.bot_role = self._role(snowflake(), bot_name, bot_permissions, position=2, managed=True)
        self.moderator_role = self._role(snowflake(), "Moderator", MODERATOR_PERMISSIONS, position=1)
        self.bot_user.role_ids = [self.bot_role.id]
        self.users: dict[int, FakeUser] = {}
        for user in (self.bot_user, self.owner_user):
            self.users[user.id] = user
        self.moderator = self.add_user("mod", role_ids=[self.moderator_role.id])
        self.guest = self.add_user("guest")
        self.channels: dict[int, FakeChannel] = {}
        self.add_channel("general")
        self.add_channel("random")
        #: Direct-message channels by channel id (not part of the guild).
        self.dm_channels: dict[int, FakeChannel] = {}
        #: Users who accept no direct messages from the bot (privacy settings): sending gets 50007.
        self.closed_dms: set[int] = set()

        self.webhooks: dict[int, FakeWebhook] = {}
        self.messages: dict[int, list[SentMessage]] = {}
        self._ephemeral: dict[int, list[SentMessage]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self.global_commands: list[dict[str, Any]] = []
        self._guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.command_syncs: list[tuple[int | None, list[dict[str, Any]]]] = []
        self.typing: list[int] = []
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.rate_limited: list[tuple[str, str]] = []
        #: Faults ``chaos`` injected, by kind, and each as (method, path, kind, message id or None).
        self.faults_injected: Counter[str] = Counter()
        self.injected: list[tuple[str, str, str, int | None]] = []
        self._chaos = FaultDice(CHAOS_FAULTS)
        self._chaos_retry_after = 0.2
        self._chaos_routes: tuple[str, ...] | None = None
        self._rate_limits: list[_RateLimit] = []
        self.connections: list[GatewayConnection] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.member_requests: list[dict[str, Any]] = []
        #: IDENTIFYs refused for coming too early in their rate-limit bucket.
        self.refused_identifies: list[dict[str, Any]] = []
        #: The live session of each shard id.
        self._sessions: dict[int, _Session] = {}
        #: When each rate-limit bucket last accepted an IDENTIFY.
        self._identified_at: dict[int, float] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ setup

    def _role(self, role_id: int, name: str, permissions: int, *, position: int, managed: bool = False) -> FakeRole:
        role = FakeRole(role_id, name, permissions, position, managed)
        self.roles[role.id] = role
        return role

    def add_user(self, name: str, *, role_ids: list[int] | None = None, bot: bool = False) -> FakeUser:
        """Add a guild member."""
        user = FakeUser(snowflake(), name, bot=bot, role_ids=list(role_ids or []))
        self.users[user.id] = user
        return user

    def add_channel(self, name: str, *, guild_id: int | None = None) -> int:
        """Add a text channel (to the first guild unless ``guild_id`` names another); return its id."""
        guild = guild_id or self.guild_id
        if guild not in self.guilds:
            raise KeyError(f"unknown guild {guild}")
        position = sum(1 for c in getattr(self, "channels", {}).values() if c.guild_id == guild)
        channel = FakeChannel(snowflake(), guild, name, position=position)
        self.channels[channel.id] = channel
        return channel.id

    def add_guild(self, name: str, *, channels: Sequence[str] = (), shard: tuple[int, int] | None = None) -> int:
        """Add a guild the bot is in, with these text channels (names unique across guilds); with
        ``shard=(id, count)`` its id lands on that shard. Return its id. Add guilds before clients
        connect: a connected session learns of guilds at IDENTIFY."""
        guild_id = guild_id_for_shard(*shard) if shard is not None else snowflake()
        self.guilds[guild_id] = FakeGuild(guild_id, name)
        for channel in channels:
            self.add_channel(channel, guild_id=guild_id)
        return guild_id

    def guild_of(self, channel_id: int) -> int | None:
        """The guild of a channel or thread (None for a direct message)."""
        channel = self.channels.get(channel_id)
        return channel.guild_id if channel is not None else None

    def connected_shards(self) -> list[tuple[int, int]]:
        """``(shard id, shard count)`` of every identified, live connection, sorted."""
        return sorted(c.session.shard for c in self.connections
                      if c.session is not None and c.session.valid and not c.ws.closed)

    async def add_thread(
        self, parent_id: int, name: str, *, owner: FakeUser | None = None, private: bool = False
    ) -> int:
        """Create a thread under a channel (dispatching THREAD_CREATE); return its id."""
        thread = self._new_thread(snowflake(), parent_id, name, (owner or self.guest).id, private)
        await self.dispatch("THREAD_CREATE", {**thread.payload(), "newly_created": True})
        return thread.id

    async def archive_thread(self, thread_id: int) -> None:
        """Archive a thread, as Discord does after ``auto_archive_duration`` without a message
        (dispatching THREAD_UPDATE): it leaves the gateway's list of active threads."""
        thread = self.channels[thread_id]
        thread.archived, thread.archive_changed_at = True, dt.datetime.now(dt.UTC)
        await self.dispatch("THREAD_UPDATE", thread.payload())

    def _new_thread(self, thread_id: int, parent_id: int, name: str, owner_id: int, private: bool) -> FakeChannel:
        guild = self.channels[parent_id].guild_id
        thread = FakeChannel(thread_id, guild, name, 12 if private else 11, parent_id, owner_id)
        self.channels[thread.id] = thread
        return thread

    def channel_id(self, name: str) -> int:
        """The id of the channel or thread with this name."""
        for channel in self.channels.values():
            if channel.name == name:
                return channel.id
        raise KeyError(name)

    def user(self, name: str) -> FakeUser:
        """The user with this name."""
        for user in self.users.values():
            if user.name == name:
                return user
        raise KeyError(name)

    def permissions_of(self, user: FakeUser) -> int:
        """The guild-level permissions of a member (the owner and administrators have all)."""
        if user.id == self.owner_user.id:
            return (1 << 53) - 1
        perms = self.everyone_role.permissions
        for role_id in user.role_ids:
            perms |= self.roles[role_id].permissions
        return (1 << 53) - 1 if perms & ADMINISTRATOR else perms

    @property
    def bot_permissions(self) -> int:
        """The bot's guild-level permissions."""
        return self.permissions_of(self.bot_user)

    def set_bot_permission(self, bit: int, allowed: bool) -> None:
        """Grant or revoke one permission bit of the bot's role."""
        role = self.bot_role
        role.permissions = role.permissions | bit if allowed else role.permissions & ~bit

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` should be."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` should be (as a ``yarl.URL``)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """The URL READY hands out for resuming."""
        return f"ws://127.0.0.1:{self.port}/gateway/resume"

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Serve on a random port of 127.0.0.1."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/resume", self._gateway)
        api = "/api/v10"
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/users/@me", self._get_me),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("PUT", "/applications/{app}/commands", self._put_commands),
            ("GET", "/applications/{app}/commands", self._get_commands),
            ("PUT", "/applications/{app}/guilds/{guild}/commands", self._put_commands),
            ("GET", "/applications/{app}/guilds/{guild}/commands", self._get_commands),
            ("GET", "/guilds/{guild}", self._get_guild),
            ("GET", "/guilds/{guild}/channels", self._get_guild_channels),
            ("GET", "/guilds/{guild}/members/{user}", self._get_member),
            ("GET", "/channels/{channel}", self._get_channel),
            ("GET", "/channels/{channel}/messages", self._get_messages),
            ("GET", "/channels/{channel}/messages/{message}", self._get_message),
            ("POST", "/channels/{channel}/messages", self._post_message),
            ("PATCH", "/channels/{channel}/messages/{message}", self._patch_message),
            ("DELETE", "/channels/{channel}/messages/{message}", self._delete_message),
            ("GET", "/users/{user}", self._get_user),
            ("POST", "/users/@me/channels", self._post_dm_channel),
            ("POST", "/channels/{channel}/typing", self._post_typing),
            ("POST", "/channels/{channel}/webhooks", self._post_webhook),
            ("GET", "/channels/{channel}/webhooks", self._get_channel_webhooks),
            ("GET", "/guilds/{guild}/webhooks", self._get_guild_webhooks),
            ("DELETE", "/webhooks/{webhook}", self._delete_webhook),
            ("GET", "/webhooks/{webhook}", self._get_webhook),
            ("POST", "/channels/{channel}/threads", self._post_thread),
            ("GET", "/channels/{channel}/threads/archived/public", self._get_archived_threads),
            ("POST", "/channels/{channel}/messages/{message}/threads", self._post_thread),
            ("POST", "/interactions/{interaction}/{token}/callback", self._post_callback),
            ("POST", "/webhooks/{webhook}/{token}", self._execute_webhook),
            ("GET", "/webhooks/{webhook}/{token}", self._get_webhook_with_token),
            ("PATCH", "/webhooks/{webhook}/{token}/messages/{message}", self._edit_webhook_message),
            ("GET", "/webhooks/{webhook}/{token}/messages/{message}", self._get_webhook_message),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, api + path, handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close every gateway socket and stop serving."""
        for conn in list(self.connections):
            if not conn.ws.closed:
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ test helpers

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (re-checked whenever the fake's state changes)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def channel_messages(self, channel_id: int) -> list[SentMessage]:
        """Every public message of a channel or thread, oldest first."""
        return list(self.messages.get(channel_id, []))

    def ephemeral(self, user_id: int) -> list[SentMessage]:
        """Ephemeral messages only this user saw, oldest first."""
        return list(self._ephemeral.get(user_id, []))

    def dms(self, user_id: int) -> list[SentMessage]:
        """Direct messages the bot sent this user, oldest first."""
        channels = [c.id for c in self.dm_channels.values() if c.recipient and c.recipient.id == user_id]
        return [m for c in channels for m in self.messages.get(c, [])]

    def find_message(self, message_id: int) -> SentMessage | None:
        """A public message (or DM) anywhere, by id."""
        for messages in self.messages.values():
            for message in messages:
                if message.id == message_id:
                    return message
        return None

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        """Delete a message as a moderator would (dispatching MESSAGE_DELETE)."""
        message = self._find_message(channel_id, message_id)
        if message is None:
            raise KeyError(message_id)
        await self._remove_message(message)

    def guild_commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The application commands registered for the guild."""
        return list(self._guild_commands.get(guild_id or self.guild_id, []))

    async def wait_for_message(
        self, channel_id: int, predicate: Callable[[SentMessage], bool] | None = None, timeout: float = 5.0
    ) -> SentMessage:
        """Wait for a public message in a channel (matching ``predicate``, if given) and return the latest."""

        def found() -> list[SentMessage]:
            return [m for m in self.messages.get(channel_id, []) if predicate is None or predicate(m)]

        await self.wait_for(lambda: bool(found()), timeout)
        return found()[-1]

    async def wait_until_ready(self, timeout: float = 5.0) -> None:
        """Wait until a client has identified (or resumed) and is connected."""
        await self.wait_for(self._live_connection_exists, timeout)

    def _live_connection_exists(self) -> bool:
        return any(c.session is not None and not c.ws.closed for c in self.connections)

    def rate_limit(
        self,
        route: str,
        *,
        times: int = 1,
        retry_after: float = 0.2,
        method: str | None = None,
        is_global: bool = False,
    ) -> None:
        """Answer the next ``times`` requests whose path contains ``route`` with a 429."""
        self._rate_limits.append(_RateLimit(route, method.upper() if method else None, times, retry_after, is_global))

    def chaos(
        self,
        rate: float,
        *,
        seed: int | None = None,
        kinds: Sequence[str] = CHAOS_FAULTS,
        retry_after: float = 0.2,
        routes: Sequence[str] | None = None,
    ) -> None:
        """Answer a random ``rate`` (0–1) of REST calls with a fault picked at random among ``kinds``.

        ``rate_limit``: 429 with ``Retry-After``, ``X-RateLimit-*`` and ``Via`` (so discord.py waits
        ``retry_after`` and retries); ``server_error_500`` / ``server_error_503``; ``drop``: for a message
        post only, the message is created (and dispatched), then the connection is cut before the answer.
        ``routes`` limits chaos to paths containing one of these strings. Seeded by ``seed``; ``rate=0``
        turns it off. Counted in ``faults_injected`` and listed in ``injected``.
        """
        self._chaos.configure(rate, kinds, seed, known=CHAOS_FAULTS.__contains__, choices=", ".join(CHAOS_FAULTS))
        self._chaos_retry_after = retry_after
        self._chaos_routes = tuple(routes) if routes is not None else None

    def _random_fault(self, method: str, api_path: str) -> str | None:
        eligible = self._chaos_routes is None or any(r in api_path for r in self._chaos_routes)
        post = method == "POST" and _MESSAGE_POST.match(api_path) is not None
        return self._chaos.roll(eligible=eligible, allowed=lambda kind: post or kind != "drop")

    async def delete_webhook(self, webhook_id: int) -> None:
        """Delete a webhook as a server admin would."""
        self.webhooks.pop(webhook_id, None)
        await self._notify()

    async def user_says(
        self,
        channel_id: int,
        text: str,
        *,
        user: FakeUser | None = None,
        reply_to: int | None = None,
    ) -> SentMessage:
        """A member posts a message: store it and dispatch MESSAGE_CREATE."""
        author = user or self.guest
        if channel_id not in self.channels:
            raise KeyError(f"unknown channel {channel_id}")
        return await self._create_message(channel_id, author, {"content": text}, reference_id=reply_to)

    async def run_slash_command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: FakeUser | None = None,
        channel_id: int | None = None,
    ) -> FakeInteraction:
        """A member runs a registered slash command (``"cmd"``, ``"cmd sub"`` or ``"cmd group sub"``)."""
        return await self._interact(name, options, user=user, channel_id=channel_id)

    async def run_autocomplete(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        focused: str,
        user: FakeUser | None = None,
        channel_id: int | None = None,
    ) -> FakeInteraction:
        """A member is typing option ``focused`` of a slash command: Discord asks the bot for suggestions.

        ``options`` holds what is typed so far (the focused option's partial text included, as a string).
        Discord only asks for options registered with ``autocomplete: true``; the bot answers with a type 8
        callback, whose choices ``FakeInteraction.choices()`` returns.
        """
        return await self._interact(name, options, user=user, channel_id=channel_id, focused=focused)

    async def _interact(
        self,
        name: str,
        options: dict[str, Any] | None,
        *,
        user: FakeUser | None,
        channel_id: int | None,
        focused: str | None = None,
    ) -> FakeInteraction:
        invoker = user or self.guest
        channel = channel_id or self.channel_id("general")
        guild_id = self.channels[channel].guild_id
        parts = name.split()
        command = self._find_command(parts[0], guild_id)
        if command is None:
            raise LookupError(f"command {parts[0]!r} is not registered; Discord would not show it")
        required = command.get("default_member_permissions")
        if required is not None and (self.permissions_of(invoker) & int(required)) != int(required):
            raise PermissionError(f"{invoker.name} lacks the permissions of /{parts[0]}; Discord would refuse it")
        option_defs = command.get("options") or []
        path_defs: list[dict[str, Any]] = []
        for part in parts[1:]:
            found = next((o for o in option_defs if o.get("name") == part), None)
            if found is None:
                raise LookupError(f"/{name}: no subcommand {part!r}")
            path_defs.append(found)
            option_defs = found.get("options") or []
        typed = dict(options or {})
        if focused is not None:
            definition = next((o for o in option_defs if o.get("name") == focused), None)
            if definition is None or not definition.get("autocomplete"):
                raise LookupError(f"/{name} {focused}: not an autocomplete option; Discord would not ask the bot")
            typed.setdefault(focused, "")
        resolved: dict[str, Any] = {}
        leaf: list[dict[str, Any]] = []
        for key, value in typed.items():
            if key == focused:
                # What is typed so far, as text, whatever the option's type.
                definition = next(o for o in option_defs if o.get("name") == key)
                leaf.append({"name": key, "type": int(definition.get("type", STRING)), "value": str(value),
                             "focused": True})
            else:
                leaf.append(self._option(key, value, option_defs, resolved))
        nested: list[dict[str, Any]] = leaf
        for definition in reversed(path_defs):
            nested = [{"type": definition.get("type", SUB_COMMAND), "name": definition["name"], "options": nested}]
        kind = APPLICATION_COMMAND if focused is None else APPLICATION_COMMAND_AUTOCOMPLETE
        interaction = FakeInteraction(
            id=snowflake(),
            token="aW50ZXJhY3Rpb24" + secrets.token_urlsafe(32),
            name=name,
            options=nested,
            user_id=invoker.id,
            channel_id=channel,
            created=time.monotonic(),
            owner=self,
            type=kind,
        )
        self.interactions[interaction.id] = interaction
        self._interactions_by_token[interaction.token] = interaction
        data: dict[str, Any] = {
            "id": command["id"],
            "name": parts[0],
            "type": 1,
            "guild_id": str(guild_id),
            "options": nested,
        }
        if resolved:
            data["resolved"] = resolved
        payload = {
            "id": str(interaction.id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel),
            "channel": self.channels[channel].payload(),
            "member": {**invoker.member_payload(), "permissions": str(self.permissions_of(invoker))},
            "token": interaction.token,
            "version": 1,
            "app_permissions": str(self.bot_permissions),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    def _option(
        self, key: str, value: Any, definitions: list[dict[str, Any]], resolved: dict[str, Any]
    ) -> dict[str, Any]:
        definition = next((o for o in definitions if o.get("name") == key), None)
        if definition is not None:
            kind = int(definition.get("type", STRING))
        elif isinstance(value, bool):
            kind = BOOLEAN
        elif isinstance(value, int):
            kind = INTEGER
        elif isinstance(value, float):
            kind = NUMBER
        elif isinstance(value, FakeUser):
            kind = USER
        else:
            kind = STRING
        if kind == USER:
            target = value if isinstance(value, FakeUser) else self.users[int(value)]
            resolved.setdefault("users", {})[str(target.id)] = target.payload()
            member = target.member_payload(with_user=False)
            member["permissions"] = str(self.permissions_of(target))
            resolved.setdefault("members", {})[str(target.id)] = member
            value = str(target.id)
        elif kind == CHANNEL:
            target_channel = self.channels[int(value)]
            entry = target_channel.payload()
            entry["permissions"] = str(self.bot_permissions)
            resolved.setdefault("channels", {})[str(target_channel.id)] = entry
            value = str(target_channel.id)
        return {"name": key, "type": kind, "value": value}

    def _find_command(self, name: str, guild_id: int) -> dict[str, Any] | None:
        for command in self._guild_commands.get(guild_id, []) + self.global_commands:
            if command["name"] == name:
                return command
        return None

    # ------------------------------------------------------------------ gateway

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Dispatch a gateway event to every live session whose shard holds its guild (kept for replay
        if nobody is connected); events of no guild (direct messages) go to shard 0."""
        guild = self._event_guild(event, data)
        for session in list(self._sessions.values()):
            if session.valid and session.hears(guild):
                await self._deliver(session, event, data)
        await self._notify()

    @staticmethod
    def _event_guild(event: str, data: dict[str, Any]) -> int | None:
        if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):  # the guild object itself
            return int(data["id"])
        return int(data["guild_id"]) if data.get("guild_id") else None

    async def _deliver(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        """One event to one session, as its intents let it see the event."""
        needed = EVENT_INTENTS.get(event)
        if event.startswith("MESSAGE_") and "guild_id" not in data:
            needed = INTENT_DIRECT_MESSAGES
        if needed is not None and not session.intents & needed:
            return
        if event == "MESSAGE_CREATE" and not session.intents & INTENT_MESSAGE_CONTENT:
            mentioned = any(m.get("id") == str(self.bot_user.id) for m in data.get("mentions", []))
            if not mentioned and data.get("author", {}).get("id") != str(self.bot_user.id):
                data = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
        session.seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        for conn in self.connections:
            if conn.session is session and not conn.ws.closed:
                await self._send(conn, frame)

    def _live(self, shard: int | None) -> list[GatewayConnection]:
        """Open connections: all of them, or those of the session of shard ``shard``."""
        return [c for c in self.connections if not c.ws.closed
                and (shard is None or (c.session is not None and c.session.shard[0] == shard))]

    def _sessions_of(self, shard: int | None) -> list[_Session]:
        return [s for s in self._sessions.values() if shard is None or s.shard[0] == shard]

    async def drop_gateway(self, code: int = 4000, *, invalidate: bool | None = None, shard: int | None = None) -> None:
        """Close gateway sockets (every one, or shard ``shard``'s) with ``code``; non-resumable codes (or
        ``invalidate``) end their sessions."""
        if invalidate is None:
            invalidate = code in NON_RESUMABLE_CLOSE_CODES
        if invalidate:
            for session in self._sessions_of(shard):
                session.valid = False
        for conn in self._live(shard):
            conn.closed_code = code
            await conn.ws.close(code=code)
        await self._notify()

    async def invalidate_session(self, *, resumable: bool = False, shard: int | None = None) -> None:
        """Send INVALID_SESSION (op 9) on the live connections (or shard ``shard``'s)."""
        if not resumable:
            for session in self._sessions_of(shard):
                session.valid = False
        for conn in self._live(shard):
            await self._send(conn, {"op": OP_INVALID_SESSION, "d": resumable, "s": None, "t": None})

    async def request_reconnect(self, *, shard: int | None = None) -> None:
        """Send RECONNECT (op 7): the client should resume on ``resume_gateway_url``."""
        for conn in self._live(shard):
            await self._send(conn, {"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    async def _send(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        text = json.dumps(frame)
        try:
            if conn.compressor is not None:
                data = conn.compressor.compress(text.encode()) + conn.compressor.flush(zlib.Z_SYNC_FLUSH)
                await conn.ws.send_bytes(data)
            else:
                await conn.ws.send_str(text)
        except (ConnectionResetError, RuntimeError):
            pass

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(ws, request.path, dict(request.query))
        compress = request.query.get("compress")
        if compress == "zlib-stream":
            conn.compressor = zlib.compressobj()
        elif compress is not None:
            await ws.close(code=4000, message=f"unsupported compression {compress}".encode())
            return ws
        if request.query.get("encoding", "json") != "json":
            await ws.close(code=4002, message=b"Error while decoding payload.")
            return ws
        self.connections.append(conn)
        hello = {"heartbeat_interval": int(self.heartbeat_interval * 1000)}
        await self._send(conn, {"op": OP_HELLO, "d": hello, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                await self._on_frame(conn, frame)
        finally:
            await self._notify()
        return ws

    async def _on_frame(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        data = frame.get("d")
        if op == OP_HEARTBEAT:
            conn.heartbeats += 1
            await self._send(conn, {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == OP_IDENTIFY:
            await self._identify(conn, data)
        elif op == OP_RESUME:
            await self._resume(conn, data)
        elif op == OP_REQUEST_MEMBERS:
            self.member_requests.append(data)
            members = [u.member_payload() for u in self.users.values()]
            guild = data.get("guild_id") or self.guild_id
            chunk = {"guild_id": str(guild), "members": members, "chunk_index": 0, "chunk_count": 1}
            if data.get("nonce"):
                chunk["nonce"] = data["nonce"]
            await self.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    async def _identify(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard = self._shard(data.get("shard", [0, 1]))
        if shard is None:
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        held = [g for g in self.guilds if shard_of(g, shard[1]) == shard[0]]
        if len(held) > self.max_guilds_per_shard:
            await conn.ws.close(code=4011, message=b"Sharding required.")
            return
        bucket = shard[0] % max(1, self.max_concurrency)
        last = self._identified_at.get(bucket)
        if self.identify_interval > 0 and last is not None and time.monotonic() - last < self.identify_interval:
            self.refused_identifies.append(data)
            await self._send(conn, {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            await self._notify()
            return
        self._identified_at[bucket] = time.monotonic()
        replaced = self._sessions.get(shard[0])
        if replaced is not None:
            replaced.valid = False
        session = _Session(secrets.token_hex(16), intents, shard=shard)
        self._sessions[shard[0]] = session
        conn.session = session
        ready = {
            "v": 10,
            "user": {**self.bot_user.payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g), "unavailable": True} for g in held],
            "session_id": session.id,
            "resume_gateway_url": self.resume_gateway_url,
            "shard": list(shard),
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "session_type": "normal",
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth_session_id_hash": "",
            "_trace": ["fake-discord"],
        }
        await self._deliver(session, "READY", ready)
        for guild in held:
            await self._deliver(session, "GUILD_CREATE", self._guild_payload(guild, intents))
        await self._notify()

    @staticmethod
    def _shard(value: Any) -> tuple[int, int] | None:
        """``[id, count]`` of an IDENTIFY, if valid: two integers, ``0 <= id < count``."""
        if not isinstance(value, list | tuple) or len(value) != 2:
            return None
        shard_id, count = value
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (shard_id, count)):
            return None
        return (shard_id, count) if 0 <= shard_id < count else None

    async def _resume(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        self.resumes.append(data)
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        session = next((s for s in self._sessions.values() if s.id == data.get("session_id")), None)
        if session is None or not session.valid:
            await self._send(conn, {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        seq = int(data.get("seq") or 0)
        while pending := [f for f in session.events if f["s"] > seq]:
            for frame in pending:
                await self._send(conn, frame)
                seq = frame["s"]
        conn.session = session
        await self._deliver(session, "RESUMED", {"_trace": ["fake-discord"]})
        await self._notify()

    def _guild_channels(self, guild_id: int) -> list[FakeChannel]:
        return [c for c in self.channels.values() if c.guild_id == guild_id]

    def _guild_roles(self, guild_id: int) -> list[FakeRole]:
        """The guild's roles: its own @everyone (whose id is the guild's), then the shared ones."""
        everyone = self.everyone_role
        own = FakeRole(guild_id, everyone.name, everyone.permissions, everyone.position, everyone.managed)
        return [own] + [r for r in self.roles.values() if r is not everyone]

    def _guild_payload(self, guild_id: int, intents: int = 0) -> dict[str, Any]:
        """The guild object; without the presences intent Discord lists only the bot among its members."""
        bot_member = self.bot_user.member_payload()
        members = [bot_member]
        if intents & INTENT_GUILD_PRESENCES:
            members += [u.member_payload() for u in self.users.values() if u.id != self.bot_user.id]
        return {
            "id": str(guild_id),
            "name": self.guilds[guild_id].name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_user.id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in self._guild_roles(guild_id)],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "large": False,
            "unavailable": False,
            "member_count": len(self.users),
            "members": members,
            "channels": [c.payload() for c in self._guild_channels(guild_id) if not c.is_thread],
            "threads": [c.payload() for c in self._guild_channels(guild_id) if c.is_thread and not c.archived],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    # ------------------------------------------------------------------ REST plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/api/"):
            return await handler(request)
        body: Any = None
        files: dict[int, FakeAttachment] = {}
        if request.can_read_body:
            try:
                body, files = await self._read_body(request)
            except DiscordHTTPError as exc:
                return exc.response
        request[_PAYLOAD] = body
        request[_FILES] = files
        api_path = path[len("/api/v10") :]
        self.requests.append((request.method, api_path, dict(request.query), body))
        for limit in self._rate_limits:
            if limit.times > 0 and limit.route in api_path and limit.method in (None, request.method):
                limit.times -= 1
                self.rate_limited.append((request.method, api_path))
                return self._too_many_requests(limit)
        token_routes = api_path.startswith("/interactions/") or re.match(r"^/webhooks/\d+/[^/]+", api_path)
        if not token_routes and request.headers.get("Authorization") != f"Bot {self.token}":
            return _error(401, 0, "401: Unauthorized")
        fault = self._random_fault(request.method, api_path)
        if fault is not None and fault != "drop":
            self.faults_injected[fault] += 1
            self.injected.append((request.method, api_path, fault, None))
            if fault == "rate_limit":
                return self._too_many_requests(_RateLimit(api_path, None, 1, self._chaos_retry_after, False))
            status = int(fault.rsplit("_", 1)[1])
            return _error(status, 0, f"{status}: {'Internal Server Error' if status == 500 else 'Service Unavailable'}")
        try:
            response = await handler(request)
        except DiscordHTTPError as exc:
            return exc.response
        except web.HTTPNotFound:
            return _error(404, 0, "404: Not Found")
        await self._notify()
        if fault == "drop":
            self._drop(request, api_path, response)
        return response

    def _drop(self, request: web.Request, api_path: str, response: web.StreamResponse) -> None:
        """The request was carried out; now cut the connection so its answer never arrives."""
        message_id: int | None = None
        body = getattr(response, "body", None)
        if response.status < 300 and isinstance(body, bytes | bytearray):
            try:
                message_id = int(json.loads(body)["id"])
            except (ValueError, KeyError, TypeError):
                message_id = None
        self.faults_injected["drop"] += 1
        self.injected.append((request.method, api_path, "drop", message_id))
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Any, dict[int, FakeAttachment]]:
        """The JSON body (a multipart body's ``payload_json``) and the uploaded ``files[n]`` by ``n``."""
        if request.content_type.startswith("multipart/"):
            payload: Any = {}
            files: dict[int, FakeAttachment] = {}
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                data = await part.read()
                if part.name == "payload_json":
                    payload = json.loads(data.decode())
                    continue
                match = re.fullmatch(r"files\[(\d+)\]", part.name or "")
                if match is None:
                    continue
                if len(data) > ATTACHMENT_SIZE_LIMIT:
                    raise DiscordHTTPError(_error(413, 40005, "Request entity too large"))
                files[int(match.group(1))] = FakeAttachment(
                    part.filename or f"file{match.group(1)}", bytes(data), part.headers.get("Content-Type")
                )
            return payload, files
        text = await request.text()
        return (json.loads(text) if text else None), {}

    @staticmethod
    def _too_many_requests(limit: _RateLimit) -> web.Response:
        reset = time.time() + limit.retry_after
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(limit.retry_after + 0.5))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{reset:.3f}",
            "X-RateLimit-Reset-After": f"{limit.retry_after:.3f}",
            "X-RateLimit-Bucket": "fakebucket" + str(abs(hash(limit.route)) % 10000),
            "X-RateLimit-Scope": "global" if limit.is_global else "user",
        }
        if limit.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": limit.retry_after, "global": limit.is_global}
        return _json(body, 429, headers)

    @staticmethod
    def _ok(data: Any, status: int = 200) -> web.Response:
        headers = {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
        }
        return _json(data, status, headers)

    @staticmethod
    def _no_content() -> web.Response:
        return web.Response(status=204)

    def _channel(self, request: web.Request, key: str = "channel") -> FakeChannel:
        channel_id = int(request.match_info[key])
        channel = self.channels.get(channel_id) or self.dm_channels.get(channel_id)
        if channel is None:
            raise DiscordHTTPError(_error(404, 10003, "Unknown Channel"))
        return channel

    def _require(self, permission: int) -> None:
        if not self.bot_permissions & permission:
            raise DiscordHTTPError(_error(403, 50013, "Missing Permissions"))

    # ------------------------------------------------------------------ messages

    def _validate_message(
        self, payload: dict[str, Any], files: dict[int, FakeAttachment] | None = None, *, at: tuple[str, ...] = ()
    ) -> None:
        """Discord's checks of a message body; ``at`` is where the body sits (``("data",)`` in a callback)."""
        content = payload.get("content") or ""
        self._validate_content(content, at)
        embeds = payload.get("embeds") or []
        self._validate_embeds(embeds, at)
        others = ("attachments", "components", "sticker_ids", "poll")
        if not content and not embeds and not files and not any(payload.get(key) for key in others):
            raise DiscordHTTPError(_error(400, 50006, "Cannot send an empty message"))

    @staticmethod
    def _validate_content(content: str, at: tuple[str, ...] = ()) -> None:
        if len(content) > 2000:
            raise DiscordHTTPError(
                _nested_form_error((*at, "content"), "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
            )

    @staticmethod
    def _validate_embeds(embeds: list[dict[str, Any]], at: tuple[str, ...] = ()) -> None:
        """Embed limits as Discord enforces them: each field's own length, then 6,000 characters in all."""

        def refuse(path: tuple[str, ...], code: str, message: str) -> DiscordHTTPError:
            return DiscordHTTPError(_nested_form_error((*at, "embeds", *path), code, message))

        if len(embeds) > 10:
            raise refuse((), "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        total = 0
        for index, embed in enumerate(embeds):
            where = str(index)
            for dotted, limit in EMBED_LIMITS.items():
                outer, _, inner = dotted.partition(".")
                value = embed.get(outer)
                if inner:
                    if value is None:
                        continue
                    if not isinstance(value, dict) or not isinstance(value.get(inner), str) or not value[inner]:
                        raise refuse((where, outer, inner), "BASE_TYPE_REQUIRED", "This field is required")
                    value = value[inner]
                if value is None:
                    continue
                text = str(value)
                if len(text) > limit:
                    raise refuse((where, *dotted.split(".")), "BASE_TYPE_MAX_LENGTH",
                                 f"Must be {limit} or fewer in length.")
                total += len(text)
            colour = embed.get("color")
            if colour is not None and (not isinstance(colour, int) or not 0 <= colour <= 0xFFFFFF):
                raise refuse((where, "color"), "NUMBER_TYPE_MAX", "int value should be less than or equal to 16777215.")
            fields = embed.get("fields") or []
            if len(fields) > EMBED_FIELDS_MAX:
                raise refuse((where, "fields"), "BASE_TYPE_MAX_LENGTH",
                             f"Must be {EMBED_FIELDS_MAX} or fewer in length.")
            for number, embed_field in enumerate(fields):
                for key, limit in (("name", EMBED_FIELD_NAME_MAX), ("value", EMBED_FIELD_VALUE_MAX)):
                    text = embed_field.get(key)
                    path = (where, "fields", str(number), key)
                    if not isinstance(text, str) or not text.strip():
                        raise refuse(path, "BASE_TYPE_REQUIRED", "This field is required")
                    if len(text) > limit:
                        raise refuse(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
                    total += len(text)
        if total > EMBEDS_TOTAL_MAX:
            raise refuse((), "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {EMBEDS_TOTAL_MAX}")

    @staticmethod
    def _attachments(
        payload: dict[str, Any], files: dict[int, FakeAttachment] | None, kept: list[FakeAttachment] | None = None
    ) -> list[FakeAttachment]:
        """The attachments a message ends up with: uploaded ``files[n]`` named by the ``attachments`` entry
        whose ``id`` is ``n``, plus (on an edit) the existing ones the entry list keeps by their id."""
        files = dict(files or {})
        declared = payload.get("attachments")
        result: list[FakeAttachment] = []
        if declared is None:
            result = list(kept or [])
        else:
            existing = {a.id: a for a in kept or []}
            for entry in declared:
                ref = int(entry.get("id", -1))
                if ref in files:
                    upload = files.pop(ref)
                    upload.filename = entry.get("filename") or upload.filename
                    upload.description = entry.get("description")
                    result.append(upload)
                elif ref in existing:
                    result.append(existing[ref])
                else:
                    raise DiscordHTTPError(_nested_form_error(
                        ("attachments", str(len(result))), "ATTACHMENT_NOT_FOUND", "Attachment data not found"))
        return result + [files[n] for n in sorted(files)]

    @staticmethod
    def _resolved_embeds(embeds: list[dict[str, Any]], attachments: list[FakeAttachment]) -> list[dict[str, Any]]:
        """Embeds as clients get them: ``attachment://NAME`` images point at the uploaded file."""
        by_name = {a.filename: a for a in attachments}
        resolved = []
        for embed in embeds:
            embed = dict(embed)
            for key in ("image", "thumbnail"):
                media = embed.get(key)
                match = _ATTACHMENT_REFERENCE.match(str((media or {}).get("url", "")))
                if match is None:
                    continue
                attachment = by_name.get(match.group(1))
                if attachment is None:
                    embed.pop(key)  # Discord drops a reference to no file of the message
                    continue
                embed[key] = {"url": attachment.url, "proxy_url": attachment.payload()["proxy_url"]}
                size = attachment.dimensions()
                if size is not None:
                    embed[key]["width"], embed[key]["height"] = size
            resolved.append(embed)
        return resolved

    def _pings(self, content: str, allowed: dict[str, Any] | None, reply_author: int | None) -> list[int]:
        """User ids a message would notify, honouring ``allowed_mentions``."""
        mentioned = [int(m) for m in re.findall(r"<@!?(\d+)>", content)]
        if allowed is None:
            pinged = [u for u in mentioned if u in self.users]
        else:
            parse = allowed.get("parse", [])
            listed = {int(u) for u in allowed.get("users", [])}
            pinged = [u for u in mentioned if u in self.users and ("users" in parse or u in listed)]
            if reply_author is not None and not allowed.get("replied_user", False):
                reply_author = None
        if reply_author is not None and reply_author not in pinged:
            pinged.append(reply_author)
        return pinged

    async def _create_message(
        self,
        channel_id: int,
        author: FakeUser,
        payload: dict[str, Any],
        *,
        reference_id: int | None = None,
        webhook: FakeWebhook | None = None,
        interaction: FakeInteraction | None = None,
        ephemeral: bool = False,
        loading: bool = False,
        files: dict[int, FakeAttachment] | None = None,
    ) -> SentMessage:
        message_id = snowflake()
        content = payload.get("content") or ""
        attachments = self._attachments(payload, files)
        embeds = list(payload.get("embeds") or [])
        in_dm = channel_id in self.dm_channels
        allowed = payload.get("allowed_mentions")
        referenced = self._find_message(channel_id, reference_id) if reference_id else None
        flags = int(payload.get("flags", 0) or 0) & EPHEMERAL | (LOADING if loading else 0)
        if ephemeral:
            flags |= EPHEMERAL
        author_payload = author.payload()
        if webhook is not None:
            author_payload = {
                "id": str(webhook.id),
                "username": payload.get("username") or webhook.name,
                "avatar": None,
                "discriminator": "0000",
                "bot": True,
                "global_name": None,
            }
        pings = self._pings(content, allowed, referenced.author_id if referenced else None)
        guild_id = self.guild_of(channel_id) or self.guild_id
        data: dict[str, Any] = {
            "id": str(message_id),
            "type": 19 if referenced else (20 if interaction else 0),
            "channel_id": str(channel_id),
            "guild_id": str(guild_id),
            "author": author_payload,
            "content": content,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts", False)),
            "mention_everyone": False,
            "mentions": [self.users[u].payload() for u in pings if u in self.users],
            "mention_roles": [],
            "attachments": [a.payload() for a in attachments],
            "embeds": self._resolved_embeds(embeds, attachments),
            "pinned": False,
            "flags": flags,
            "components": list(payload.get("components") or []),
        }
        if in_dm:
            del data["guild_id"]
        elif webhook is None:
            data["member"] = author.member_payload(with_user=False)
        else:
            data["webhook_id"] = str(webhook.id)
            if webhook.application_id:
                data["application_id"] = str(webhook.application_id)
        if interaction is not None:
            data["webhook_id"] = str(self.application_id)
            data["application_id"] = str(self.application_id)
            invoker = self.users[interaction.user_id]
            data["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": 2,
                "user": invoker.payload(),
                "authorizing_integration_owners": {"0": str(guild_id)},
                "name": interaction.name,
                "command_type": 1,
            }
            data["interaction"] = {"id": str(interaction.id), "type": 2, "name": interaction.name, "user": invoker.payload()}
        if referenced is not None:
            data["message_reference"] = {
                "type": 0,
                "message_id": str(referenced.id),
                "channel_id": str(channel_id),
                "guild_id": str(guild_id),
            }
            data["referenced_message"] = referenced.payload
        message = SentMessage(
            id=message_id,
            channel_id=channel_id,
            content=content,
            author_id=webhook.id if webhook else author.id,
            author_name=author_payload["username"],
            payload=data,
            webhook_id=webhook.id if webhook else None,
            avatar_url=payload.get("avatar_url") if webhook else None,
            embeds=embeds,
            allowed_mentions=allowed,
            reference_id=referenced.id if referenced else None,
            ephemeral=bool(flags & EPHEMERAL),
            recipient_id=interaction.user_id if interaction and flags & EPHEMERAL else None,
            interaction_id=interaction.id if interaction else None,
            pinged_user_ids=pings,
            attachments=attachments,
        )
        if message.ephemeral and message.recipient_id is not None:
            self._ephemeral.setdefault(message.recipient_id, []).append(message)
        else:
            self.messages.setdefault(channel_id, []).append(message)
            if (where := self.channels.get(channel_id)) is not None:
                where.last_message_id = message.id
            await self.dispatch("MESSAGE_CREATE", data)
        await self._notify()
        return message

    def _find_message(self, channel_id: int, message_id: int | None) -> SentMessage | None:
        for message in self.messages.get(channel_id, []):
            if message.id == message_id:
                return message
        return None

    def _reference(self, payload: dict[str, Any], channel_id: int) -> int | None:
        reference = payload.get("message_reference")
        if not reference:
            return None
        message_id = int(reference["message_id"])
        if self._find_message(channel_id, message_id) is None and reference.get("fail_if_not_exists", True):
            raise DiscordHTTPError(
                _form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            )
        return message_id

    async def _post_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        payload = request[_PAYLOAD] or {}
        if channel.is_dm:
            recipient = channel.recipient
            if recipient is None or recipient.bot or recipient.id in self.closed_dms:
                return _error(403, 50007, "Cannot send messages to this user")
        else:
            self._require(SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES)
        if request[_FILES] and not channel.is_dm:
            self._require(ATTACH_FILES)
        self._validate_message(payload, request[_FILES])
        if payload.get("embeds") and not channel.is_dm and not self.bot_permissions & EMBED_LINKS:
            payload = {**payload, "embeds": []}  # Discord drops a bot's embeds silently without Embed Links
        reference = self._reference(payload, channel.id)
        message = await self._create_message(channel.id, self.bot_user, payload, reference_id=reference,
                                             files=request[_FILES])
        return self._ok(message.payload)

    async def _patch_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._find_message(channel.id, int(request.match_info["message"]))
        if message is None:
            return _error(404, 10008, "Unknown Message")
        if message.author_id != self.bot_user.id:
            return _error(403, 50005, "Cannot edit a message authored by another user")
        self._edit(message, request[_PAYLOAD] or {}, request[_FILES])
        await self.dispatch("MESSAGE_UPDATE", message.payload)
        return self._ok(message.payload)

    async def _delete_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._find_message(channel.id, int(request.match_info["message"]))
        if message is None:
            return _error(404, 10008, "Unknown Message")
        if message.author_id != self.bot_user.id:
            self._require(MANAGE_MESSAGES)
        await self._remove_message(message)
        return self._no_content()

    async def _remove_message(self, message: SentMessage) -> None:
        self.messages[message.channel_id].remove(message)
        message.deleted = True
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.channel_id not in self.dm_channels:
            data["guild_id"] = str(self.guild_of(message.channel_id) or self.guild_id)
        await self.dispatch("MESSAGE_DELETE", data)
        await self._notify()

    def _edit(
        self, message: SentMessage, payload: dict[str, Any], files: dict[int, FakeAttachment] | None = None
    ) -> None:
        """Apply an edit (only the keys it names change), keeping the previous version in ``revisions``."""
        content = (payload.get("content") or "") if "content" in payload else message.content
        embeds = list(payload.get("embeds") or []) if "embeds" in payload else message.embeds
        self._validate_content(content)
        self._validate_embeds(embeds)
        attachments = self._attachments(payload, files, message.attachments)
        if not content and not embeds and not attachments and not message.payload.get("components"):
            raise DiscordHTTPError(_error(400, 50006, "Cannot send an empty message"))
        message.revisions.append({"content": message.content, "embeds": message.embeds})
        message.content = content
        message.payload["content"] = content
        message.embeds = embeds
        message.attachments = attachments
        message.payload["attachments"] = [a.payload() for a in attachments]
        message.payload["embeds"] = self._resolved_embeds(embeds, attachments)
        if "allowed_mentions" in payload:
            message.allowed_mentions = payload["allowed_mentions"]
        message.payload["flags"] = int(message.payload.get("flags", 0)) & ~LOADING
        message.payload["edited_timestamp"] = _now_iso()
        message.edits += 1

    async def _get_archived_threads(self, request: web.Request) -> web.Response:
        """A channel's archived public threads, most recently archived first, archived before
        ``before`` (an ISO 8601 timestamp) if given; ``has_more`` says whether more are older."""
        channel = self._channel(request)
        self._require(READ_MESSAGE_HISTORY)
        limit = int(request.query.get("limit", 50))
        if not 2 <= limit <= 100:
            return _form_error("limit", "NUMBER_TYPE_MIN" if limit < 2 else "NUMBER_TYPE_MAX",
                               "int value should be between 2 and 100.")
        threads = sorted((c for c in self.channels.values() if c.parent_id == channel.id and c.type == 11 and c.archived),
                         key=lambda c: c.archive_changed_at, reverse=True)
        if "before" in request.query:
            before = dt.datetime.fromisoformat(request.query["before"])
            threads = [c for c in threads if c.archive_changed_at < before]
        return self._ok({"threads": [c.payload() for c in threads[:limit]], "members": [],
                         "has_more": len(threads) > limit})

    async def _get_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._require(READ_MESSAGE_HISTORY)
        limit = int(request.query.get("limit", 50))
        if not 1 <= limit <= 100:
            return _form_error("limit", "NUMBER_TYPE_MAX", "int value should be less than or equal to 100.")
        messages = self.messages.get(channel.id, [])
        if "before" in request.query:
            messages = [m for m in messages if m.id < int(request.query["before"])]
        if "after" in request.query:
            messages = [m for m in messages if m.id > int(request.query["after"])]
            return self._ok([m.payload for m in messages[:limit]][::-1])
        return self._ok([m.payload for m in reversed(messages[-limit:])])

    async def _get_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._find_message(channel.id, int(request.match_info["message"]))
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return self._ok(message.payload)

    async def _post_typing(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self.typing.append(channel.id)
        return self._no_content()

    # ------------------------------------------------------------------ users, guild, channels, app

    async def _get_me(self, request: web.Request) -> web.Response:
        return self._ok({**self.bot_user.payload(), "verified": True, "mfa_enabled": False, "flags": 0})

    async def _get_user(self, request: web.Request) -> web.Response:
        user = self.users.get(int(request.match_info["user"]))
        if user is None:
            return _error(404, 10013, "Unknown User")
        return self._ok(user.payload())

    async def _post_dm_channel(self, request: web.Request) -> web.Response:
        """Open (or find) the DM channel with a user; whether a message may be sent is decided on sending."""
        payload = request[_PAYLOAD] or {}
        user = self.users.get(int(payload.get("recipient_id") or 0))
        if user is None:
            return _error(400, 50033, "Invalid Recipient(s)")
        for channel in self.dm_channels.values():
            if channel.recipient is not None and channel.recipient.id == user.id:
                return self._ok(channel.payload())
        channel = FakeChannel(snowflake(), 0, user.name, type=1, recipient=user)
        self.dm_channels[channel.id] = channel
        return self._ok(channel.payload())

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return self._ok({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        remaining = max(0, 1000 - len(self.identifies))
        limit = {"total": 1000, "remaining": remaining, "reset_after": 14_400_000,
                 "max_concurrency": self.max_concurrency}
        return self._ok({"url": self.gateway_url, "shards": self.recommended_shard_count,
                         "session_start_limit": limit})

    @property
    def recommended_shard_count(self) -> int:
        """What ``GET /gateway/bot`` recommends: as set, or one shard per ``RECOMMENDED_GUILDS_PER_SHARD``."""
        if self.recommended_shards is not None:
            return self.recommended_shards
        return max(1, -(-len(self.guilds) // RECOMMENDED_GUILDS_PER_SHARD))

    async def _get_application(self, request: web.Request) -> web.Response:
        return self._ok(
            {
                "id": str(self.application_id),
                "name": self.bot_user.name,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": self.owner_user.payload(),
                "team": None,
                "bot": self.bot_user.payload(),
                "interactions_endpoint_url": None,
                "redirect_uris": [],
            }
        )

    async def _get_guild(self, request: web.Request) -> web.Response:
        guild_id = int(request.match_info["guild"])
        if guild_id not in self.guilds:
            return _error(404, 10004, "Unknown Guild")
        data = self._guild_payload(guild_id)
        for key in ("members", "channels", "threads", "presences", "voice_states"):
            data.pop(key)
        return self._ok(data)

    async def _get_guild_channels(self, request: web.Request) -> web.Response:
        guild_id = int(request.match_info["guild"])
        if guild_id not in self.guilds:
            return _error(404, 10004, "Unknown Guild")
        return self._ok([c.payload() for c in self._guild_channels(guild_id) if not c.is_thread])

    async def _get_member(self, request: web.Request) -> web.Response:
        user = self.users.get(int(request.match_info["user"]))
        if user is None:
            return _error(404, 10007, "Unknown Member")
        return self._ok(user.member_payload())

    async def _get_channel(self, request: web.Request) -> web.Response:
        return self._ok(self._channel(request).payload())

    async def _put_commands(self, request: web.Request) -> web.Response:
        if int(request.match_info["app"]) != self.application_id:
            return _error(403, 50001, "Missing Access")
        guild = request.match_info.get("guild")
        guild_id = int(guild) if guild else None
        if guild_id is not None and guild_id not in self.guilds:
            return _error(403, 50001, "Missing Access")
        commands: list[dict[str, Any]] = []
        for entry in request[_PAYLOAD] or []:
            name = entry.get("name", "")
            if not re.fullmatch(r"[-_\w]{1,32}", name) or name != name.lower():
                return _form_error("name", "APPLICATION_COMMAND_INVALID_NAME", f"Invalid command name {name!r}")
            command = {
                "id": str(snowflake()),
                "application_id": str(self.application_id),
                "version": str(snowflake()),
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "contexts": None,
                "integration_types": [0],
                **entry,
            }
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            commands.append(command)
        if guild_id is None:
            self.global_commands = commands
        else:
            self._guild_commands[guild_id] = commands
        self.command_syncs.append((guild_id, commands))
        return self._ok(commands)

    async def _get_commands(self, request: web.Request) -> web.Response:
        guild = request.match_info.get("guild")
        return self._ok(self._guild_commands.get(int(guild), []) if guild else self.global_commands)

    # ------------------------------------------------------------------ threads

    async def _post_thread(self, request: web.Request) -> web.Response:
        parent = self._channel(request)
        if parent.is_thread:
            return _error(400, 50024, "Cannot execute action on this channel type")
        self._require(CREATE_PUBLIC_THREADS)
        payload = request[_PAYLOAD] or {}
        name = payload.get("name") or ""
        if not 1 <= len(name) <= 100:
            return _form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if "message" in request.match_info:
            message_id = int(request.match_info["message"])
            if self._find_message(parent.id, message_id) is None:
                return _error(404, 10008, "Unknown Message")
            if message_id in self.channels:
                return _error(400, 160004, "A thread has already been created for this message")
            thread = self._new_thread(message_id, parent.id, name, self.bot_user.id, False)
        else:
            thread = self._new_thread(snowflake(), parent.id, name, self.bot_user.id, payload.get("type") == 12)
        await self.dispatch("THREAD_CREATE", {**thread.payload(), "newly_created": True})
        return self._ok(thread.payload(), 201)

    # ------------------------------------------------------------------ webhooks

    def _check_webhook_name(self, name: Any, field_name: str) -> None:
        if not isinstance(name, str) or not 1 <= len(name) <= 80:
            raise DiscordHTTPError(_form_error(field_name, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length."))
        lowered = name.lower()
        for banned in ("discord", "clyde"):
            if banned in lowered:
                raise DiscordHTTPError(
                    _form_error(field_name, "USERNAME_INVALID_CONTAINS", f'Username cannot contain "{banned}"')
                )

    async def _post_webhook(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if channel.is_thread:
            return _error(400, 50024, "Cannot execute action on this channel type")
        self._require(MANAGE_WEBHOOKS)
        payload = request[_PAYLOAD] or {}
        self._check_webhook_name(payload.get("name"), "name")
        if sum(1 for w in self.webhooks.values() if w.channel_id == channel.id) >= 15:
            return _error(400, 30007, "Maximum number of webhooks reached (15)")
        webhook = FakeWebhook(
            snowflake(), channel.id, channel.guild_id, payload["name"], secrets.token_urlsafe(48), self.bot_user.id,
            self.application_id,
        )
        self.webhooks[webhook.id] = webhook
        return self._ok(webhook.payload(self.bot_user))

    async def _get_channel_webhooks(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._require(MANAGE_WEBHOOKS)
        hooks = [w.payload(self.users.get(w.creator_id)) for w in self.webhooks.values() if w.channel_id == channel.id]
        return self._ok(hooks)

    async def _get_guild_webhooks(self, request: web.Request) -> web.Response:
        self._require(MANAGE_WEBHOOKS)
        guild_id = int(request.match_info["guild"])
        return self._ok([w.payload(self.users.get(w.creator_id)) for w in self.webhooks.values() if w.guild_id == guild_id])

    async def _get_webhook(self, request: web.Request) -> web.Response:
        webhook = self.webhooks.get(int(request.match_info["webhook"]))
        if webhook is None:
            return _error(404, 10015, "Unknown Webhook")
        return self._ok(webhook.payload(self.users.get(webhook.creator_id)))

    async def _delete_webhook(self, request: web.Request) -> web.Response:
        self._require(MANAGE_WEBHOOKS)
        if self.webhooks.pop(int(request.match_info["webhook"]), None) is None:
            return _error(404, 10015, "Unknown Webhook")
        return self._no_content()

    def _webhook_by_token(self, request: web.Request) -> FakeWebhook:
        webhook = self.webhooks.get(int(request.match_info["webhook"]))
        if webhook is None:
            raise DiscordHTTPError(_error(404, 10015, "Unknown Webhook"))
        if webhook.token != request.match_info["token"]:
            raise DiscordHTTPError(_error(401, 50027, "Invalid Webhook Token"))
        return webhook

    async def _get_webhook_with_token(self, request: web.Request) -> web.Response:
        data = self._webhook_by_token(request).payload()
        return self._ok(data)

    async def _execute_webhook(self, request: web.Request) -> web.Response:
        if int(request.match_info["webhook"]) == self.application_id:
            return await self._followup(request)
        webhook = self._webhook_by_token(request)
        payload = request[_PAYLOAD] or {}
        if "username" in payload and payload["username"] is not None:
            self._check_webhook_name(payload["username"], "username")
        avatar_url = payload.get("avatar_url")
        if avatar_url is not None and not re.match(r"^https?://", str(avatar_url)):
            return _form_error("avatar_url", "URL_TYPE_INVALID_URL", "Not a well formed URL.")
        self._validate_message(payload, request[_FILES])
        channel_id = webhook.channel_id
        thread_id = request.query.get("thread_id")
        if thread_id is not None:
            thread = self.channels.get(int(thread_id))
            if thread is None or thread.parent_id != webhook.channel_id:
                return _error(400, 10003, "Unknown Channel")
            if thread.archived:
                return _error(400, 50083, "Thread is archived")
            channel_id = thread.id
        message = await self._create_message(channel_id, self.bot_user, payload, webhook=webhook,
                                             files=request[_FILES])
        if request.query.get("wait", "false").lower() in ("true", "1"):
            return self._ok(message.payload)
        return self._no_content()

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        message = self._webhook_message(request)
        return self._ok(message.payload)

    def _webhook_message(self, request: web.Request) -> SentMessage:
        if int(request.match_info["webhook"]) == self.application_id:
            interaction = self._interaction_for_token(request.match_info["token"])
            ref = request.match_info["message"]
            candidates = ([interaction.original] if interaction.original else []) + interaction.followup_messages
            if ref == "@original":
                if interaction.original is None:
                    raise DiscordHTTPError(_error(404, 10008, "Unknown Message"))
                return interaction.original
            for message in candidates:
                if message.id == int(ref):
                    return message
            raise DiscordHTTPError(_error(404, 10008, "Unknown Message"))
        webhook = self._webhook_by_token(request)
        for message in self.messages.get(webhook.channel_id, []) + [
            m for c in self.channels.values() if c.parent_id == webhook.channel_id for m in self.messages.get(c.id, [])
        ]:
            if message.webhook_id == webhook.id and str(message.id) == request.match_info["message"]:
                return message
        raise DiscordHTTPError(_error(404, 10008, "Unknown Message"))

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        message = self._webhook_message(request)
        self._edit(message, request[_PAYLOAD] or {}, request[_FILES])
        if not message.ephemeral:
            await self.dispatch("MESSAGE_UPDATE", message.payload)
        return self._ok(message.payload)

    # ------------------------------------------------------------------ interactions

    def _interaction_for_token(self, token: str) -> FakeInteraction:
        interaction = self._interactions_by_token.get(token)
        if interaction is None or time.monotonic() - interaction.created > 15 * 60:
            raise DiscordHTTPError(_error(404, 10015, "Unknown Webhook"))
        return interaction

    async def _post_callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(int(request.match_info["interaction"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            return _error(404, 10062, "Unknown interaction")
        elapsed = time.monotonic() - interaction.created
        payload = request[_PAYLOAD] or {}
        kind = int(payload.get("type", 0))
        if elapsed > self.interaction_deadline:
            interaction.rejected.append(10062)
            return _error(404, 10062, "Unknown interaction")
        if interaction.callback is not None:
            interaction.rejected.append(40060)
            return _error(400, 40060, "Interaction has already been acknowledged.")
        if kind not in CALLBACK_TYPES[interaction.type]:
            return _form_error("type", "INTERACTION_CALLBACK_TYPE_INVALID", "Invalid interaction response type")
        data = payload.get("data") or {}
        if kind == 4:
            self._validate_message(data, request[_FILES], at=("data",))
        if kind == 8:
            self._validate_choices(data.get("choices"))
        callback = InteractionCallback(kind, data, elapsed)
        ephemeral = callback.ephemeral
        body: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": ephemeral,
            }
        }
        if kind in (4, 5):
            message = await self._create_message(
                interaction.channel_id,
                self.bot_user,
                data if kind == 4 else {"flags": data.get("flags", 0)},
                interaction=interaction,
                ephemeral=ephemeral,
                loading=kind == 5,
                files=request[_FILES] if kind == 4 else None,
            )
            interaction.original = message
            body["interaction"]["response_message_id"] = str(message.id)
            body["resource"] = {"type": kind, "message": message.payload}
        else:
            body["resource"] = {"type": kind}
        interaction.callback = callback
        return self._ok(body)

    @staticmethod
    def _validate_choices(choices: Any) -> None:
        """Autocomplete choices: at most 25, each with a 1–100 character name and a value of at most 100."""
        where = ("data", "choices")
        if not isinstance(choices, list):
            raise DiscordHTTPError(_nested_form_error(where, "BASE_TYPE_REQUIRED", "This field is required"))
        if len(choices) > 25:
            raise DiscordHTTPError(_nested_form_error(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."))
        for index, choice in enumerate(choices):
            name, value = choice.get("name"), choice.get("value")
            if not isinstance(name, str) or not 1 <= len(name) <= 100:
                raise DiscordHTTPError(_nested_form_error(
                    (*where, str(index), "name"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."))
            if isinstance(value, str) and len(value) > 100:
                raise DiscordHTTPError(_nested_form_error(
                    (*where, str(index), "value"), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."))

    async def _followup(self, request: web.Request) -> web.Response:
        interaction = self._interaction_for_token(request.match_info["token"])
        if interaction.callback is None or interaction.type != APPLICATION_COMMAND:
            return _error(404, 10015, "Unknown Webhook")
        payload = request[_PAYLOAD] or {}
        self._validate_message(payload, request[_FILES])
        original = interaction.original
        if (
            interaction.callback.deferred
            and original is not None
            and int(original.payload.get("flags", 0)) & LOADING
        ):
            # The first follow-up after a deferral fills in the "thinking…" message and keeps its flags.
            self._edit(original, payload, request[_FILES])
            if not original.ephemeral:
                await self.dispatch("MESSAGE_UPDATE", original.payload)
            interaction.followup_messages.append(original)
            return self._ok(original.payload)
        message = await self._create_message(
            interaction.channel_id,
            self.bot_user,
            payload,
            interaction=interaction,
            ephemeral=bool(int(payload.get("flags", 0) or 0) & EPHEMERAL),
            files=request[_FILES],
        )
        interaction.followup_messages.append(message)
        return self._ok(message.payload)


def _snowflake_or_none(value: int | None) -> str | None:
    return str(value) if value is not None else None
