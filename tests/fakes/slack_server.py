"""A local stand-in for Slack (Web API, Socket Mode, and Slack's own requests to an app), for driving
the real ``slack_sdk`` / ``slack_bolt`` clients.

It speaks the wire protocol those clients expect, so nothing of ours is bypassed:

* Web API under ``/api/<method>`` (GET or POST; query string, form, multipart or JSON bodies, merged
  the way Slack reads them). The token counts only from the ``Authorization: Bearer`` header — a token
  in a body is ignored, as slack-sdk never sends one there. Failures are HTTP 200 with
  ``{"ok": false, "error": ...}`` (``not_authed``, ``invalid_auth``, ``missing_scope`` with
  ``needed``/``provided``, ``channel_not_found``, ``msg_too_long``, ``invalid_blocks``...), rate limits
  are HTTP 429 with ``Retry-After``. Every answer carries ``X-OAuth-Scopes`` (Bolt reads the bot's
  scopes from it on ``auth.test``) and ``X-Accepted-OAuth-Scopes``.
* Socket Mode: ``apps.connections.open`` (app-level ``xapp-`` token only) hands out a
  ``ws://127.0.0.1:PORT/link/?ticket=...`` URL; the socket gets ``hello``, then envelopes
  (``events_api``, ``slash_commands``) that must be acked with ``{"envelope_id": ...}`` within 3 s.
  Pings are answered (aiohttp autoping). ``drop_socket()`` cuts the TCP connection without a close
  frame; ``request_refresh()`` sends ``{"type": "disconnect", "reason": "refresh_requested"}``.
* HTTP mode: ``http_event`` / ``http_slash_command`` play Slack calling the app's Request URL, signed
  with ``X-Slack-Signature`` = ``v0=`` + HMAC-SHA256(``v0:{timestamp}:{body}``).
* Many workspaces: ``add_team`` adds one the app is not installed in yet; a person installs it through
  the OAuth flow: ``GET /oauth/v2/authorize`` (``authorize_url``; approved at once for the team
  ``install_into`` chose, or denied) redirects to the app's redirect URL with ``code`` and ``state``,
  and ``oauth.v2.access`` trades the code for that team's bot token (``xoxb-…``; with
  ``token_lifetime_s``, a rotating ``xoxe.xoxb-…`` token, its ``expires_in`` and a ``refresh_token``
  that ``grant_type=refresh_token`` trades for a new one). Every Web API method acts in the token's
  team: another team's channel is ``channel_not_found``, its users ``user_not_found``; an expired
  token is ``token_expired``. ``uninstall`` / ``revoke_bot_token`` revoke a team's tokens and send
  ``app_uninstalled`` / ``tokens_revoked``. The constructor's team is installed from the start, with
  ``bot_token``.
* ``files.getUploadURLExternal`` → upload URL on the fake → ``files.completeUploadExternal`` (what
  ``files_upload_v2`` does), and ``response_url`` endpoints for slash commands (5 uses, 30 minutes).

    async with FakeSlack() as slack:
        slack.add_channel("C0GENERAL", "general")
        slack.add_user("U0ALICE", "alice")
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_base)
        await slack.send_message("C0GENERAL", "U0ALICE", "hello")

Faults: ``fail_next(method)`` fails chosen calls; ``chaos(rate, seed=...)`` answers a random share of
Web API calls with HTTP 429 (``Retry-After``), 500 or 503, or — for ``chat.postMessage`` — stores and
shows the message and then cuts the connection, so the client sees an error for a post that happened.
``faults_injected`` counts them by kind. ``send_message(..., offline_ok=True)`` stores a person's
message even while no socket is connected (Slack keeps it in the channel's history).

Everything the app did is recorded in order: ``calls`` (every Web API call), ``posts``, ``ephemerals``,
``updates``, ``deletes``, ``files``, ``responses`` (response_url bodies), ``command_replies`` (slash
command ack payloads), ``acks`` / ``unacked``; ``messages_in(channel)`` is what a person would see.

Faithfulness choices worth knowing:

* ``username``/``icon_url``/``icon_emoji`` are silently ignored without ``chat:write.customize``
  (the post succeeds as the app; the record keeps ``requested_username``). A customised post comes
  back as a ``message`` event with ``subtype: bot_message``, ``bot_id`` and no ``user``; a plain bot
  post comes back with ``user`` = the bot user *and* ``bot_id`` (no subtype), as Slack does for bot
  tokens. ``chat.update``/``chat.delete`` come back as ``message_changed``/``message_deleted``, which
  Bolt leaves unacked unless a listener handles them.
* Events are delivered only when the app is subscribed *and* holds the scope: ``message.channels``
  needs ``channels:history``, ``message.groups`` ``groups:history``, ``message.im`` ``im:history``,
  ``app_mention`` ``app_mentions:read``. Anything Slack would not deliver lands in ``undelivered``.
* ``messages_in(channel)`` is the channel view (top-level messages and thread broadcasts);
  ``messages_in(channel, thread_ts)`` is the thread view (parent, then replies).
* Unacked envelopes are recorded in ``unacked`` after 3 s; with ``auto_retry=True`` Events API
  envelopes are then re-sent (``retry_attempt`` + 1, ``retry_reason`` ``"timeout"``, same
  ``event_id``) up to 3 times, as Slack does, to any live connection; an envelope whose write
  failed on a dying socket counts as unacked (``failed_sends``), and that socket is routed no more.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import random
import re
import secrets
import string
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import WSMsgType, web

from tests.fakes.chaos import FaultDice

#: chat.postMessage rejects longer ``text`` with ``msg_too_long``.
MAX_TEXT = 40_000
#: A message holds at most this many blocks.
MAX_BLOCKS = 50
#: Envelopes (and HTTP requests) must be acknowledged within this many seconds.
ACK_DEADLINE = 3.0
#: A response_url accepts this many uses ...
RESPONSE_URL_USES = 5
#: ... within this many seconds.
RESPONSE_URL_LIFETIME = 30 * 60
#: A trigger_id is good for this many seconds.
TRIGGER_LIFETIME = 3.0
#: Slack retries an unacknowledged Events API delivery this many times.
MAX_EVENT_RETRIES = 3
#: An OAuth ``code`` must be traded within this many seconds, once.
CODE_LIFETIME = 600

DEFAULT_SCOPES = (
    "chat:write",
    "chat:write.customize",
    "commands",
    "channels:history",
    "groups:history",
    "channels:read",
    "users:read",
    "usergroups:read",
    "files:write",
    "im:write",
)

#: Event subscriptions and the scope each needs.
EVENT_SCOPES = {
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "message.mpim": "mpim:history",
    "app_mention": "app_mentions:read",
}
DEFAULT_SUBSCRIPTIONS = tuple(EVENT_SCOPES)

#: Block types Slack accepts in messages.
BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
        "call",
    }
)

#: What ``FakeSlack.chaos`` picks from by default; ``drop`` applies to ``chat.postMessage`` only.
CHAOS_FAULTS = ("rate_limit", "server_error_500", "server_error_503", "drop")
#: Web API methods that post a message, where ``drop`` may strike.
_POST_METHODS = frozenset({"chat.postMessage"})

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_ALNUM = string.ascii_uppercase + string.digits


def _slack_id(prefix: str, length: int = 10) -> str:
    """A Slack-looking object id (``F0ABC...``)."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def _flag(value: Any) -> bool | None:
    """A boolean argument as Slack reads it from JSON, a form (``true``) or slack-sdk's query (``1``)."""
    if value is None or isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


class SlackApiFailure(Exception):
    """Raised inside Web API handlers to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class NotConnected(RuntimeError):
    """``send_event`` and friends were called while no Socket Mode connection is open."""


@dataclass
class SlackChannel:
    """A conversation: public channel, private channel (group) or DM (im)."""

    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    im_user: str | None = None
    is_member: bool = True
    created: int = field(default_factory=lambda: int(time.time()))
    #: The workspace it is in.
    team_id: str = ""
    #: Slack-shaped messages, oldest first, thread replies included; deleted ones removed.
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def channel_type(self) -> str:
        """``channel_type`` as message events carry it."""
        if self.is_im:
            return "im"
        return "group" if self.is_private else "channel"

    @property
    def subscription(self) -> str:
        """The event subscription that carries this conversation's messages."""
        return {"im": "message.im", "group": "message.groups"}.get(self.channel_type, "message.channels")

    def read_scope(self) -> str:
        """The scope conversations.info needs for this conversation."""
        return {"im": "im:read", "group": "groups:read"}.get(self.channel_type, "channels:read")

    def history_scope(self) -> str:
        """The scope conversations.history/replies need for this conversation."""
        return {"im": "im:history", "group": "groups:history"}.get(self.channel_type, "channels:history")

    def find(self, ts: str) -> dict[str, Any] | None:
        """The message with this ``ts``."""
        return next((m for m in self.messages if m.get("ts") == ts), None)

    def payload(self) -> dict[str, Any]:
        """The conversation object of conversations.info."""
        if self.is_im:
            return {
                "id": self.id,
                "created": self.created,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": None,
                "updated": self.created * 1000,
                "user": self.im_user,
                "is_user_deleted": False,
                "priority": 0,
            }
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "is_archived": False,
            "is_general": self.name == "general",
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": None,
            "updated": self.created * 1000,
            "parent_conversation": None,
            "creator": "U0CREATOR",
            "is_ext_shared": False,
            "shared_team_ids": [],
            "pending_connected_team_ids": [],
            "is_member": self.is_member,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "previous_names": [],
        }


@dataclass
class SlackTeam:
    """A workspace, and the app's installation in it (bot user, granted scopes, live tokens)."""

    id: str
    name: str
    domain: str
    bot_user_id: str
    bot_id: str
    scopes: list[str]
    #: Live bot tokens → when each expires (None: never). Several may be live after a refresh.
    tokens: dict[str, float | None] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)

    @property
    def installed(self) -> bool:
        return bool(self.tokens)


#: The workspace the Web API call being answered (or the event being built) is about.
_acting: ContextVar[SlackTeam | None] = ContextVar("acting_team", default=None)


@dataclass
class SlackUser:
    """A workspace member."""

    id: str
    name: str
    team_id: str
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False
    display_name: str | None = None
    real_name: str | None = None
    deleted: bool = False
    #: Other workspaces they are seen in through a shared channel (Slack Connect), keeping their own ``team_id``.
    connected_to: set[str] = field(default_factory=set)

    def payload(self) -> dict[str, Any]:
        """The user object of users.info."""
        display = self.display_name if self.display_name is not None else self.name
        real = self.real_name if self.real_name is not None else self.name
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": real,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": {
                "title": "",
                "phone": "",
                "skype": "",
                "real_name": real,
                "real_name_normalized": real,
                "display_name": display,
                "display_name_normalized": display,
                "fields": None,
                "status_text": "",
                "status_emoji": "",
                "status_expiration": 0,
                "avatar_hash": "g0000000000",
                "image_24": "https://secure.gravatar.com/avatar/0.jpg?s=24",
                "image_48": "https://secure.gravatar.com/avatar/0.jpg?s=48",
                "image_72": "https://secure.gravatar.com/avatar/0.jpg?s=72",
                "team": self.team_id,
            },
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": self.is_owner,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
            "is_email_confirmed": not self.is_bot,
            "who_can_share_contact_card": "EVERYONE",
        }


@dataclass
class SlackUsergroup:
    """A user group (``@handle``)."""

    id: str
    handle: str
    users: list[str]
    team_id: str
    name: str = ""

    def payload(self, *, include_users: bool) -> dict[str, Any]:
        """The usergroup object of usergroups.list."""
        data: dict[str, Any] = {
            "id": self.id,
            "team_id": self.team_id,
            "is_usergroup": True,
            "is_subteam": True,
            "name": self.name or self.handle,
            "description": "",
            "handle": self.handle,
            "is_external": False,
            "date_create": 1700000000,
            "date_update": 1700000000,
            "date_delete": 0,
            "auto_type": None,
            "created_by": "U0CREATOR",
            "updated_by": "U0CREATOR",
            "deleted_by": None,
            "prefs": {"channels": [], "groups": []},
            "user_count": len(self.users),
        }
        if include_users:
            data["users"] = list(self.users)
        return data


@dataclass
class SocketConnection:
    """One Socket Mode websocket, as seen by the fake."""

    ws: web.WebSocketResponse
    request: web.Request
    ticket: str
    opened: float = field(default_factory=time.monotonic)
    #: Everything the client sent that was not an ack (parsed JSON or raw text).
    received: list[Any] = field(default_factory=list)
    #: Sent ``disconnect``: Slack stops routing envelopes here.
    retiring: bool = False

    @property
    def live(self) -> bool:
        """Open and still routed to."""
        return not self.ws.closed and not self.retiring


@dataclass
class _Fault:
    method: str
    status: int
    retry_after: int
    error: str | None
    remaining: int


@dataclass
class _Envelope:
    envelope: dict[str, Any]
    sent: float
    connection: SocketConnection
    deadline: asyncio.TimerHandle | None = None


@dataclass
class _Upload:
    file_id: str
    filename: str
    length: int
    alt_txt: str | None
    data: bytes | None = None


class FakeSlack:
    """A Slack stand-in on 127.0.0.1: Web API under ``/api/``, Socket Mode under ``/link/``."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        signing_secret: str = "test-signing-secret",
        scopes: Iterable[str] = DEFAULT_SCOPES,
        team_id: str = "T0TEAM",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A0APP",
        echo_posts: bool = True,
        bot_name: str = "troupe",
        team_domain: str = "troupe-test",
        event_subscriptions: Iterable[str] = DEFAULT_SUBSCRIPTIONS,
        ack_deadline: float = ACK_DEADLINE,
        auto_retry: bool = False,
        verification_token: str = "fake-verification-token",
        connection_seed: int = 0,
        client_id: str = "1111.2222",
        client_secret: str = "fake-client-secret",
        redirect_urls: Iterable[str] = (),
        token_lifetime_s: float | None = None,
    ) -> None:
        self.bot_token = bot_token
        #: The app's credentials for the OAuth flow, and its registered Redirect URLs (empty: any).
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_urls: list[str] = list(redirect_urls)
        #: Seconds a token issued by ``oauth.v2.access`` lasts; set, tokens rotate (None: they never expire).
        self.token_lifetime_s = token_lifetime_s
        self.teams: dict[str, SlackTeam] = {}
        self._default_team = SlackTeam(team_id, "Troupe Test", team_domain, bot_user_id, bot_id, list(scopes),
                                       tokens={bot_token: None})
        self.teams[team_id] = self._default_team
        #: Who approves the next authorization, in which team (``install_into``); None: deny it.
        self._installer: tuple[str, str] | None = (team_id, "U0INSTALLER")
        self._codes: dict[str, dict[str, Any]] = {}
        #: Every authorization asked for (the authorize page's query), in order.
        self.authorizations: list[dict[str, str]] = []
        #: Picks the Socket Mode connection of each payload when several are open (seeded: repeatable).
        self._connection_choice = random.Random(connection_seed)
        self.app_token = app_token
        self.signing_secret = signing_secret
        #: The app-level token's scopes.
        self.app_scopes: list[str] = ["connections:write"]
        self.app_id = app_id
        self.bot_name = bot_name
        self.echo_posts = echo_posts
        self.event_subscriptions: set[str] = set(event_subscriptions)
        self.ack_deadline = ack_deadline
        self.auto_retry = auto_retry
        #: The deprecated verification token Slack still puts in payloads.
        self.verification_token = verification_token
        self.revoked_tokens: set[str] = set()

        self.channels: dict[str, SlackChannel] = {}
        self.users: dict[str, SlackUser] = {}
        self.usergroups: dict[str, SlackUsergroup] = {}
        self.add_user(bot_user_id, bot_name, is_bot=True)

        # Records, appended in order.
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: Every connection Web API calls came over.
        self._api_transports: set[asyncio.BaseTransport] = set()
        self.posts: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.deletes: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        #: Payloads of slash command acks (what Slack shows the invoker), with envelope/channel/user.
        self.command_replies: list[dict[str, Any]] = []
        #: Every envelope sent over Socket Mode, in order.
        self.envelopes: list[dict[str, Any]] = []
        self.acks: dict[str, dict[str, Any]] = {}
        #: Seconds from sending an envelope to its ack.
        self.ack_latency: dict[str, float] = {}
        #: Acks that came after the deadline (Slack had already given up on them).
        self.late_acks: list[dict[str, Any]] = []
        #: Envelopes (and HTTP deliveries) not acked within the deadline.
        self.unacked: list[dict[str, Any]] = []
        #: Events Slack would not (or could not) deliver, with the reason.
        self.undelivered: list[dict[str, Any]] = []
        #: Envelopes whose write failed on a dying socket (with ``auto_retry``, re-sent like unacked ones).
        self.failed_sends: list[dict[str, Any]] = []
        #: Requests sent to the app's HTTP endpoint: (url, headers, body, status, response text).
        self.http_deliveries: list[dict[str, Any]] = []
        self.connections: list[SocketConnection] = []

        self._faults: list[_Fault] = []
        #: Faults ``chaos`` injected, by kind, and each as (method, kind, ts of a dropped post or None).
        self.faults_injected: Counter[str] = Counter()
        self.injected: list[tuple[str, str, str | None]] = []
        self._chaos = FaultDice(CHAOS_FAULTS)
        self._chaos_retry_after = 1
        self._chaos_methods: frozenset[str] | None = None
        self._tickets: set[str] = set()
        self._pending: dict[str, _Envelope] = {}
        self._events: dict[str, dict[str, Any]] = {}
        self._event_envelopes: dict[str, list[str]] = {}
        self._uploads: dict[str, _Upload] = {}
        self._upload_keys: dict[str, str] = {}
        self._response_urls: dict[str, dict[str, Any]] = {}
        self._triggers: dict[str, float] = {}
        self._last_ts = 0
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }
        #: Scopes a method needs regardless of its arguments (conversation-dependent ones are checked inside).
        self._method_scopes: dict[str, str] = {
            "chat.postMessage": "chat:write",
            "chat.postEphemeral": "chat:write",
            "chat.update": "chat:write",
            "chat.delete": "chat:write",
            "conversations.open": "im:write",
            "users.info": "users:read",
            "usergroups.list": "usergroups:read",
            "usergroups.users.list": "usergroups:read",
            "files.getUploadURLExternal": "files:write",
            "files.completeUploadExternal": "files:write",
        }

    # ------------------------------------------------------------------ workspaces

    @property
    def team(self) -> SlackTeam:
        """The workspace of the call (or event) at hand; outside one, the constructor's."""
        return _acting.get() or self._default_team

    @property
    def team_id(self) -> str:
        return self.team.id

    @property
    def team_domain(self) -> str:
        return self.team.domain

    @property
    def bot_user_id(self) -> str:
        return self.team.bot_user_id

    @property
    def bot_id(self) -> str:
        return self.team.bot_id

    @property
    def scopes(self) -> list[str]:
        """The bot token's scopes in this workspace; change freely between calls."""
        return self.team.scopes

    @scopes.setter
    def scopes(self, value: Iterable[str]) -> None:
        self.team.scopes = list(value)

    @contextmanager
    def acting_in(self, team_id: str | None) -> Iterator[SlackTeam]:
        """Answer and build events as workspace ``team_id`` (None: the constructor's) within the block."""
        team = self.teams[team_id] if team_id else self._default_team
        token = _acting.set(team)
        try:
            yield team
        finally:
            _acting.reset(token)

    def add_team(self, team_id: str, name: str, *, bot_user_id: str | None = None, bot_id: str | None = None) -> None:
        """A workspace the app is not installed in yet (``install_into`` it, then run the OAuth flow)."""
        suffix = team_id.removeprefix("T")
        team = SlackTeam(team_id, name, name.lower().replace(" ", "-"), bot_user_id or f"UBOT{suffix}",
                         bot_id or f"BBOT{suffix}", [])
        self.teams[team_id] = team
        with self.acting_in(team_id):
            self.add_user(team.bot_user_id, self.bot_name, is_bot=True)

    def install_into(self, team_id: str | None, user_id: str = "U0INSTALLER") -> None:
        """The next person on the authorize page approves the installation into ``team_id`` as
        ``user_id``; None: they press Cancel (Slack redirects with ``error=access_denied``)."""
        self._installer = (team_id, user_id) if team_id else None

    def token_of(self, team_id: str) -> str:
        """The newest live bot token of a team."""
        tokens = self.teams[team_id].tokens
        if not tokens:
            raise KeyError(f"the app is not installed in {team_id}")
        return list(tokens)[-1]

    def expire_tokens(self, team_id: str) -> None:
        """Every live token of the team has expired (rotating tokens only; ``token_expired`` from now)."""
        team = self.teams[team_id]
        for token, expires in team.tokens.items():
            if expires is not None:
                team.tokens[token] = time.time() - 1

    def _team_of_token(self, token: str) -> SlackTeam | None:
        return next((t for t in self.teams.values() if token in t.tokens), None)

    # ------------------------------------------------------------------ setup

    def add_channel(self, id: str, name: str, *, is_private: bool = False, is_member: bool = True) -> None:
        """Add a channel (``is_private`` makes it a private channel, as ``G...``/``C...`` ids both can
        be) to the workspace at hand (``acting_in``)."""
        self.channels[id] = SlackChannel(id, name.lstrip("#"), is_private=is_private, is_member=is_member,
                                         team_id=self.team_id)

    def add_user(
        self,
        id: str,
        name: str,
        *,
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
        display_name: str | None = None,
        real_name: str | None = None,
    ) -> None:
        """Add a workspace member (``display_name`` defaults to ``name``)."""
        self.users[id] = SlackUser(
            id,
            name,
            self.team_id,
            is_admin=is_admin,
            is_owner=is_owner,
            is_bot=is_bot,
            display_name=display_name,
            real_name=real_name,
        )

    def connect_user(self, id: str, team_id: str) -> None:
        """A member of another workspace is seen in ``team_id`` too, as through a channel shared with it
        (Slack Connect): users.info there answers with their own workspace's ``team_id``."""
        self.users[id].connected_to.add(team_id)

    def add_usergroup(self, id: str, handle: str, users: list[str]) -> None:
        """Add a user group."""
        self.usergroups[id] = SlackUsergroup(id, handle, list(users), self.team_id)

    def dm_channel(self, user: str) -> str:
        """The id of the bot's DM with ``user`` (created if needed), as conversations.open answers."""
        for channel in self.channels.values():
            if channel.is_im and channel.im_user == user:
                return channel.id
        channel_id = _slack_id("D")
        self.channels[channel_id] = SlackChannel(channel_id, user, is_im=True, im_user=user, team_id=self.team_id)
        return channel_id

    def revoke_token(self, token: str) -> None:
        """Calls with this token now fail with ``token_revoked``."""
        self.revoked_tokens.add(token)
        for team in self.teams.values():
            team.tokens.pop(token, None)

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_base(self) -> str:
        """For ``AsyncWebClient(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def base_url(self) -> str:
        """The server root."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def authorize_url(self) -> str:
        """Where an installation is approved (Slack's ``https://slack.com/oauth/v2/authorize``)."""
        return f"{self.base_url}/oauth/v2/authorize"

    async def start(self) -> FakeSlack:
        """Serve on a random port of 127.0.0.1."""
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._socket)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/upload/v1/{key}", self._upload)
        app.router.add_post("/commands/{team}/{id}/{secret}", self._response_url)
        app.router.add_get("/oauth/v2/authorize", self._authorize)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        """Close every socket (going away) and stop serving. Close clients first, or they reconnect."""
        for pending in self._pending.values():
            if pending.deadline is not None:
                pending.deadline.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.connections:
            if not conn.ws.closed:
                await conn.ws.close(code=1001)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ test helpers

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; ``TimeoutError`` if it does not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)

    def messages_in(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """What a person sees, oldest first: the channel view (top-level messages and thread broadcasts)
        or, with ``thread_ts``, the thread view (parent then replies). Posts, file shares, people's
        messages and in-channel command responses; edits applied, deleted messages gone."""
        conv = self.channels.get(channel)
        if conv is None:
            return []
        if thread_ts is None:
            return [dict(m) for m in conv.messages if _is_top_level(m)]
        return [dict(m) for m in conv.messages if m.get("ts") == thread_ts or m.get("thread_ts") == thread_ts]

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The params of every call to ``method``."""
        return [params for name, params in self.calls if name == method]

    def fail_next(
        self, method: str, *, status: int = 429, retry_after: int = 1, error: str | None = None, times: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail: 429 → HTTP 429 with ``Retry-After`` and
        ``ratelimited``; ``error="x"`` → HTTP 200 ``{"ok": false, "error": "x"}``; 500/503 → server error.

        Note slack-sdk's ``AsyncRateLimitErrorRetryHandler`` sleeps ``int(Retry-After[0]) + random()``
        seconds — the *first digit* of the header — so keep ``retry_after`` small in tests."""
        self._faults.append(_Fault(method, 200 if error is not None else status, retry_after, error, times))

    def chaos(
        self,
        rate: float,
        *,
        seed: int | None = None,
        kinds: Sequence[str] = CHAOS_FAULTS,
        retry_after: int = 1,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Answer a random ``rate`` (0–1) of Web API calls with a fault picked at random among ``kinds``.

        ``rate_limit``: HTTP 429 ``ratelimited`` with ``Retry-After: retry_after`` (slack-sdk sleeps that
        many seconds plus up to one); ``server_error_500`` / ``server_error_503``: ``fatal_error`` with that
        status; ``drop``: for ``chat.postMessage`` only, the message is stored and shown (and echoed as an
        event), then the connection is cut before the answer. ``methods`` limits chaos to those Web API
        methods. Seeded by ``seed``; ``rate=0`` turns it off. Counted in ``faults_injected``.
        """
        self._chaos.configure(rate, kinds, seed, known=CHAOS_FAULTS.__contains__, choices=", ".join(CHAOS_FAULTS))
        self._chaos_retry_after = retry_after
        self._chaos_methods = frozenset(methods) if methods is not None else None

    def _random_fault(self, method: str) -> str | None:
        eligible = self._chaos_methods is None or method in self._chaos_methods
        return self._chaos.roll(eligible=eligible, allowed=lambda kind: kind != "drop" or method in _POST_METHODS)

    # ------------------------------------------------------------------ Web API

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.transport is not None:
            self._api_transports.add(request.transport)
        try:
            params = await self._read_params(request)
        except SlackApiFailure as failure:
            self.calls.append((method, {}))
            return self._api_json({"ok": False, "error": failure.error, **failure.extra})
        self.calls.append((method, params))

        fault = next((f for f in self._faults if f.method == method and f.remaining > 0), None)
        if fault is not None:
            fault.remaining -= 1
            if fault.error is not None:
                return self._api_json({"ok": False, "error": fault.error})
            if fault.status == 429:
                return self._api_json(
                    {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(fault.retry_after)}
                )
            return self._api_json({"ok": False, "error": "fatal_error"}, status=fault.status)

        if method == "oauth.v2.access":
            return self._api_json(self._oauth_v2_access(request, params))
        token = _bearer(request)
        if token is None:
            return self._api_json({"ok": False, "error": "not_authed"})
        if token in self.revoked_tokens:
            return self._api_json({"ok": False, "error": "token_revoked"})
        is_app_token = token == self.app_token
        team = None if is_app_token else self._team_of_token(token)
        if team is None and not is_app_token:
            return self._api_json({"ok": False, "error": "invalid_auth"})
        expires = team.tokens[token] if team is not None else None
        if expires is not None and expires < time.time():
            return self._api_json({"ok": False, "error": "token_expired"})
        with self.acting_in(team.id if team is not None else None):
            return await self._answer(request, method, params, is_app_token)

    async def _answer(self, request: web.Request, method: str, params: dict[str, Any],
                      is_app_token: bool) -> web.Response:
        """A Web API call whose token is good, in the token's workspace."""
        scopes = self.app_scopes if is_app_token else self.scopes
        headers = {"X-OAuth-Scopes": ",".join(scopes)}

        chaos = self._random_fault(method)
        if chaos is not None and chaos != "drop":
            self.faults_injected[chaos] += 1
            self.injected.append((method, chaos, None))
            if chaos == "rate_limit":
                return self._api_json({"ok": False, "error": "ratelimited"}, status=429,
                                      headers={**headers, "Retry-After": str(self._chaos_retry_after)})
            return self._api_json({"ok": False, "error": "fatal_error"}, status=int(chaos.rsplit("_", 1)[1]))

        if method == "apps.connections.open":
            if not is_app_token:
                return self._api_json({"ok": False, "error": "not_allowed_token_type"}, headers=headers)
            headers["X-Accepted-OAuth-Scopes"] = "connections:write"
            if "connections:write" not in scopes:
                return self._missing_scope("connections:write", scopes, headers)
            ticket = str(uuid.uuid4())
            self._tickets.add(ticket)
            url = f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"
            return self._api_json({"ok": True, "url": url}, headers=headers)

        handler = self._methods.get(method)
        if handler is None:
            return self._api_json({"ok": False, "error": "unknown_method", "req_method": method}, status=404)
        if is_app_token:
            return self._api_json({"ok": False, "error": "not_allowed_token_type"}, headers=headers)
        needed = self._method_scopes.get(method)
        if needed is not None:
            headers["X-Accepted-OAuth-Scopes"] = needed
            if needed not in scopes:
                return self._missing_scope(needed, scopes, headers)
        try:
            body = await handler(params)
        except SlackApiFailure as failure:
            return self._api_json({"ok": False, "error": failure.error, **failure.extra}, headers=headers)
        if chaos == "drop":
            # Done and shown to everyone; the app never hears back.
            self.faults_injected["drop"] += 1
            self.injected.append((method, "drop", body.get("ts")))
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        return self._api_json({"ok": True, **body}, headers=headers)

    def _missing_scope(self, needed: str, scopes: list[str], headers: dict[str, str]) -> web.Response:
        body = {"ok": False, "error": "missing_scope", "needed": needed, "provided": ",".join(scopes)}
        return self._api_json(body, headers=headers)

    def _require_scope(self, needed: str) -> None:
        if needed not in self.scopes:
            raise SlackApiFailure("missing_scope", needed=needed, provided=",".join(self.scopes))

    @staticmethod
    def _api_json(data: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        all_headers = {"X-Slack-Req-Id": secrets.token_hex(16)}
        all_headers.update(headers or {})
        return web.json_response(data, status=status, headers=all_headers)

    @staticmethod
    async def _read_params(request: web.Request) -> dict[str, Any]:
        """Query string, then the body (form, multipart or JSON) on top, as Slack merges them; the
        ``token`` argument is dropped because only the Authorization header counts here."""
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.body_exists:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise SlackApiFailure("invalid_json") from exc
                if not isinstance(body, dict):
                    raise SlackApiFailure("invalid_json")
                params.update(body)
            elif ctype == "application/x-www-form-urlencoded" or ctype.startswith("multipart/"):
                form = await request.post()
                for key, value in form.items():
                    params[key] = value.file.read() if isinstance(value, web.FileField) else value
        params.pop("token", None)
        return params

    # -- helpers shared by the methods

    def _next_ts(self) -> str:
        """A message ``ts``: unique and increasing, like ``"1700000000.000100"``."""
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, value: Any, *, allow_user: bool = False) -> SlackChannel:
        """The conversation an argument names: an id, ``#name``, or (for posting) a user id → their DM."""
        if not value:
            raise SlackApiFailure("channel_not_found")
        ref = str(value)
        found = self.channels.get(ref)
        if found is not None and found.team_id == self.team_id:
            return found
        if ref.startswith("#"):
            for channel in self.channels.values():
                if channel.team_id == self.team_id and channel.name == ref[1:] and not channel.is_im:
                    return channel
        if allow_user and self._member(ref) is not None:
            return self.channels[self.dm_channel(ref)]
        raise SlackApiFailure("channel_not_found")

    def _member(self, user_id: str) -> SlackUser | None:
        """The user, if they are in the workspace at hand."""
        user = self.users.get(user_id)
        return user if user is not None and self.team_id in (user.team_id, *user.connected_to) else None

    def _check_member(self, channel: SlackChannel) -> None:
        if channel.is_member:
            return
        if channel.is_private:
            raise SlackApiFailure("channel_not_found")
        if "chat:write.public" not in self.scopes:
            raise SlackApiFailure("not_in_channel")

    def _content(
        self, params: dict[str, Any], *, required: bool = True
    ) -> tuple[str | None, list[dict[str, Any]] | None]:
        text = params.get("text")
        text = None if text is None else str(text)
        blocks = _parse_blocks(params.get("blocks"))
        attachments = params.get("attachments")
        markdown_text = params.get("markdown_text")
        if required and not text and not blocks and not attachments and not markdown_text:
            raise SlackApiFailure("no_text")
        if text is not None and len(text) > MAX_TEXT:
            raise SlackApiFailure("msg_too_long")
        if markdown_text is not None and len(str(markdown_text)) > 12_000:
            raise SlackApiFailure("markdown_text_too_long")
        return text, blocks

    def _bot_profile(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "deleted": False,
            "name": self.bot_name,
            "updated": 1700000000,
            "app_id": self.app_id,
            "icons": {
                "image_36": "https://a.slack-edge.com/bot_36.png",
                "image_48": "https://a.slack-edge.com/bot_48.png",
            },
            "team_id": self.team_id,
        }

    def _is_own(self, message: dict[str, Any]) -> bool:
        return message.get("bot_id") == self.bot_id or message.get("user") == self.bot_user_id

    def _attach_to_thread(self, channel: SlackChannel, message: dict[str, Any], thread_ts: str, author: str) -> None:
        message["thread_ts"] = thread_ts
        parent = channel.find(thread_ts)
        if parent is None:
            return
        message["parent_user_id"] = parent.get("user") or parent.get("bot_id")
        parent["thread_ts"] = thread_ts
        parent["reply_count"] = parent.get("reply_count", 0) + 1
        users = parent.setdefault("reply_users", [])
        if author not in users:
            users.append(author)
        parent["reply_users_count"] = len(users)
        parent["latest_reply"] = message["ts"]
        parent.setdefault("is_locked", False)
        parent.setdefault("subscribed", False)

    def _echo(self, channel: SlackChannel, message: dict[str, Any]) -> None:
        """Deliver a ``message`` event for something the bot did, as Slack does, without blocking the reply."""
        if not self.echo_posts:
            return
        event = {
            **message,
            "channel": channel.id,
            "event_ts": message.get("event_ts", message.get("ts")),
            "channel_type": channel.channel_type,
        }
        self._spawn(self._deliver_subscribed(channel, event))

    async def _deliver_subscribed(self, channel: SlackChannel, event: dict[str, Any]) -> None:
        reason = self._subscription_gap(channel.subscription)
        if reason is not None:
            self.undelivered.append({"event": event, "reason": reason})
            return
        try:
            await self.send_event(event)
        except NotConnected:
            self.undelivered.append({"event": event, "reason": "no socket connected"})
        except ConnectionError as exc:
            self.undelivered.append({"event": event, "reason": f"socket failed: {exc}"})

    def _subscription_gap(self, subscription: str) -> str | None:
        """Why Slack would not deliver events of this subscription (None if it would)."""
        if subscription not in self.event_subscriptions:
            return f"app not subscribed to {subscription}"
        scope = EVENT_SCOPES.get(subscription)
        if scope is not None and scope not in self.scopes:
            return f"{subscription} needs the {scope} scope"
        return None

    # -- methods

    async def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team.name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _author_fields(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The message fields that say who posted, and what was asked for (for the record)."""
        requested = {k: params.get(k) for k in ("username", "icon_url", "icon_emoji")}
        customize = "chat:write.customize" in self.scopes and any(requested.values())
        if customize:
            fields: dict[str, Any] = {"subtype": "bot_message", "username": requested["username"] or self.bot_name}
            icons: dict[str, str] = {}
            if requested["icon_url"]:
                icons["image_48"] = str(requested["icon_url"])
            if requested["icon_emoji"]:
                icons["emoji"] = str(requested["icon_emoji"])
            if icons:
                fields["icons"] = icons
        else:
            fields = {"user": self.bot_user_id}
        fields.update(bot_id=self.bot_id, app_id=self.app_id, bot_profile=self._bot_profile())
        applied = {k: (requested[k] if customize else None) for k in requested}
        return fields, {"applied": applied, "requested": requested}

    async def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"), allow_user=True)
        self._check_member(channel)
        text, blocks = self._content(params)
        author, names = self._author_fields(params)
        ts = self._next_ts()
        message: dict[str, Any] = {"type": "message", **author, "text": text or "", "ts": ts, "team": self.team_id}
        if blocks is not None:
            message["blocks"] = blocks
        if params.get("attachments") is not None:
            message["attachments"] = _maybe_json(params["attachments"])
        if params.get("metadata") is not None:
            message["metadata"] = _maybe_json(params["metadata"])
        thread_ts = params.get("thread_ts")
        broadcast = bool(_flag(params.get("reply_broadcast")))
        if thread_ts:
            self._attach_to_thread(channel, message, str(thread_ts), self.bot_user_id)
            if broadcast:
                message["subtype"] = "thread_broadcast"
        channel.messages.append(message)
        self.posts.append(
            {
                "channel": channel.id,
                "team": self.team_id,
                "text": text,
                "blocks": blocks,
                "ts": ts,
                "thread_ts": str(thread_ts) if thread_ts else None,
                "reply_broadcast": broadcast,
                "username": names["applied"]["username"],
                "icon_url": names["applied"]["icon_url"],
                "icon_emoji": names["applied"]["icon_emoji"],
                "requested_username": names["requested"]["username"],
                "requested_icon_url": names["requested"]["icon_url"],
                "mrkdwn": _flag(params.get("mrkdwn")),
                "unfurl_links": _flag(params.get("unfurl_links")),
                "unfurl_media": _flag(params.get("unfurl_media")),
                "link_names": _flag(params.get("link_names")),
                "parse": params.get("parse"),
                "markdown_text": params.get("markdown_text"),
                "attachments": message.get("attachments"),
                "metadata": message.get("metadata"),
                "params": dict(params),
            }
        )
        self._echo(channel, message)
        return {"channel": channel.id, "ts": ts, "message": dict(message)}

    async def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"), allow_user=True)
        user = params.get("user")
        if not user or self._member(str(user)) is None:
            raise SlackApiFailure("user_not_in_channel")
        self._check_member(channel)
        text, blocks = self._content(params)
        _, names = self._author_fields(params)
        ts = self._next_ts()
        self.ephemerals.append(
            {
                "channel": channel.id,
                "user": str(user),
                "text": text,
                "blocks": blocks,
                "thread_ts": params.get("thread_ts"),
                "username": names["applied"]["username"],
                "icon_url": names["applied"]["icon_url"],
                "message_ts": ts,
                "params": dict(params),
            }
        )
        return {"message_ts": ts}

    async def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        ts = str(params.get("ts") or "")
        message = channel.find(ts)
        if message is None:
            raise SlackApiFailure("message_not_found")
        if not self._is_own(message):
            raise SlackApiFailure("cant_update_message")
        text, blocks = self._content(params, required=False)
        if text is None and blocks is None and params.get("attachments") is None:
            raise SlackApiFailure("no_text")
        previous = dict(message)
        if text is not None:
            message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks
        edit_ts = self._next_ts()
        message["edited"] = {"user": self.bot_user_id, "ts": edit_ts}
        self.updates.append({"channel": channel.id, "ts": ts, "text": text, "blocks": blocks, "params": dict(params)})
        self._echo(
            channel,
            {
                "type": "message",
                "subtype": "message_changed",
                "message": dict(message),
                "previous_message": previous,
                "hidden": True,
                "ts": edit_ts,
                "event_ts": edit_ts,
            },
        )
        return {"channel": channel.id, "ts": ts, "text": message.get("text", ""), "message": dict(message)}

    async def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        ts = str(params.get("ts") or "")
        message = channel.find(ts)
        if message is None:
            raise SlackApiFailure("message_not_found")
        if not self._is_own(message):
            raise SlackApiFailure("cant_delete_message")
        channel.messages.remove(message)
        self.deletes.append({"channel": channel.id, "ts": ts, "message": message})
        event_ts = self._next_ts()
        self._echo(
            channel,
            {
                "type": "message",
                "subtype": "message_deleted",
                "hidden": True,
                "deleted_ts": ts,
                "previous_message": message,
                "ts": event_ts,
                "event_ts": event_ts,
            },
        )
        return {"channel": channel.id, "ts": ts}

    async def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        self._require_scope(channel.read_scope())
        return {"channel": channel.payload()}

    def _readable(self, params: dict[str, Any]) -> SlackChannel:
        channel = self._channel(params.get("channel"))
        self._require_scope(channel.history_scope())
        if not channel.is_member:
            raise SlackApiFailure("not_in_channel")
        return channel

    async def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable(params)
        messages = [m for m in reversed(channel.messages) if _is_top_level(m)]
        inclusive = bool(_flag(params.get("inclusive")))
        latest, oldest = params.get("latest"), params.get("oldest")
        if latest:
            messages = [m for m in messages if float(m["ts"]) < float(latest) or (inclusive and m["ts"] == latest)]
        if oldest:
            messages = [m for m in messages if float(m["ts"]) > float(oldest) or (inclusive and m["ts"] == oldest)]
        page, cursor = _paginate(messages, params)
        return {
            "messages": [dict(m) for m in page],
            "has_more": bool(cursor),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    async def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable(params)
        ts = str(params.get("ts") or "")
        target = channel.find(ts)
        if target is None:
            raise SlackApiFailure("thread_not_found")
        root = target.get("thread_ts") or ts
        thread = [m for m in channel.messages if m["ts"] == root or m.get("thread_ts") == root]
        # ``oldest``/``latest`` bound the replies; the thread's first message comes first whatever they say.
        inclusive = bool(_flag(params.get("inclusive")))
        latest, oldest = params.get("latest"), params.get("oldest")
        replies = thread[1:]
        if latest:
            replies = [m for m in replies if float(m["ts"]) < float(latest) or (inclusive and m["ts"] == latest)]
        if oldest:
            replies = [m for m in replies if float(m["ts"]) > float(oldest) or (inclusive and m["ts"] == oldest)]
        thread = thread[:1] + replies
        page, cursor = _paginate(thread, params)
        return {
            "messages": [dict(m) for m in page],
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    async def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            channel = self._channel(params["channel"])
            return {"channel": {"id": channel.id}}
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if not users:
            raise SlackApiFailure("users_list_not_supplied")
        if len(users) > 1:
            self._require_scope("mpim:write")
            raise SlackApiFailure("not_supported_by_fake", detail="group DMs are not modelled")
        if self._member(users[0]) is None:
            raise SlackApiFailure("user_not_found")
        existed = any(c.is_im and c.im_user == users[0] for c in self.channels.values())
        channel = self.channels[self.dm_channel(users[0])]
        body: dict[str, Any] = {"channel": {"id": channel.id}}
        if existed:
            body.update(no_op=True, already_open=True)
        if _flag(params.get("return_im")):
            body["channel"] = channel.payload()
        return body

    async def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self._member(str(params.get("user") or ""))
        if user is None:
            raise SlackApiFailure("user_not_found")
        return {"user": user.payload()}

    async def _usergroups_list(self, params: dict[str, Any]) -> dict[str, Any]:
        include_users = bool(_flag(params.get("include_users")))
        groups = [g for g in self.usergroups.values() if g.team_id == self.team_id]
        return {"usergroups": [g.payload(include_users=include_users) for g in groups]}

    async def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self.usergroups.get(str(params.get("usergroup") or ""))
        if group is None or group.team_id != self.team_id:
            raise SlackApiFailure("no_such_subteam")
        return {"users": list(group.users)}

    async def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        if not filename or length is None or not str(length).isdigit():
            problem = "[ERROR] missing required field: " + ("filename" if not filename else "length")
            raise SlackApiFailure("invalid_arguments", response_metadata={"messages": [problem]})
        file_id = _slack_id("F")
        key = base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")
        self._uploads[file_id] = _Upload(file_id, str(filename), int(length), params.get("alt_txt"))
        self._upload_keys[key] = file_id
        return {"upload_url": f"{self.base_url}/upload/v1/{key}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: raw bytes (what slack-sdk sends) or a multipart ``file`` field."""
        file_id = self._upload_keys.get(request.match_info["key"])
        if file_id is None:
            return web.Response(status=404, text="not_found", content_type="text/plain")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = next((v for v in form.values() if isinstance(v, web.FileField)), None)
            data = part.file.read() if part is not None else b""
        else:
            data = await request.read()
        self._uploads[file_id].data = data
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = _maybe_json(params.get("files"))
        if not isinstance(entries, list) or not entries:
            raise SlackApiFailure("invalid_arguments")
        uploads: list[tuple[_Upload, str]] = []
        for entry in entries:
            upload = self._uploads.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if upload is None or upload.data is None:
                raise SlackApiFailure("file_not_found")
            uploads.append((upload, str(entry.get("title") or upload.filename)))
        targets: list[SlackChannel] = []
        if params.get("channel_id"):
            targets.append(self._channel(params["channel_id"], allow_user=True))
        for ref in str(params.get("channels") or "").split(","):
            if ref:
                targets.append(self._channel(ref, allow_user=True))
        for channel in targets:
            self._check_member(channel)
        thread_ts = params.get("thread_ts")
        if thread_ts and not targets:
            raise SlackApiFailure("invalid_arguments")
        comment = params.get("initial_comment")
        file_objects = [
            {
                "id": u.file_id,
                "name": u.filename,
                "title": title,
                "mimetype": "application/octet-stream",
                "size": len(u.data or b""),
                "user": self.bot_user_id,
            }
            for u, title in uploads
        ]
        for upload, title in uploads:
            self._uploads.pop(upload.file_id, None)
            for channel in targets or [None]:
                self.files.append(
                    {
                        "channel": channel.id if channel else None,
                        "file_id": upload.file_id,
                        "filename": upload.filename,
                        "title": title,
                        "data": upload.data,
                        "length": upload.length,
                        "alt_txt": upload.alt_txt,
                        "initial_comment": comment,
                        "thread_ts": thread_ts,
                    }
                )
        for channel in targets:
            ts = self._next_ts()
            # A bot's file share carries ``user`` (the bot user) — do not count on ``bot_id`` here.
            message: dict[str, Any] = {
                "type": "message",
                "subtype": "file_share",
                "text": comment or "",
                "files": [dict(f) for f in file_objects],
                "upload": False,
                "user": self.bot_user_id,
                "display_as_bot": False,
                "ts": ts,
            }
            if thread_ts:
                self._attach_to_thread(channel, message, str(thread_ts), self.bot_user_id)
            channel.messages.append(message)
            self._echo(channel, message)
        return {"files": [{"id": f["id"], "title": f["title"]} for f in file_objects]}

    # ------------------------------------------------------------------ Socket Mode

    @property
    def connected(self) -> bool:
        """Whether a Socket Mode connection is open and routed to."""
        return any(c.live for c in self.connections)

    async def wait_connected(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` socket connections have been opened in total (a reconnect is ``count=2``)
        and one is live."""
        await self.wait_for(lambda: len(self.connections) >= count and self.connected, timeout)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = SocketConnection(ws, request, ticket)
        live = 1 + sum(1 for c in self.connections if c.live)
        # Registered only after hello, so no envelope can overtake it.
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": live,
                    "debug_info": {
                        "host": f"applink-fake-{len(self.connections) + 1}",
                        "build_number": 118,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        self.connections.append(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_socket_text(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        except ConnectionResetError:
            pass
        return ws

    def _on_socket_text(self, conn: SocketConnection, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            conn.received.append(data)
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not envelope_id:
            conn.received.append(message)
            return
        if envelope_id in self.acks:
            return
        self.acks[envelope_id] = message
        pending = self._pending.pop(envelope_id, None)
        if pending is None:
            return
        if pending.deadline is not None:
            pending.deadline.cancel()
        elapsed = time.monotonic() - pending.sent
        self.ack_latency[envelope_id] = elapsed
        if elapsed > self.ack_deadline:
            self.late_acks.append(message)
            return
        envelope = pending.envelope
        payload = message.get("payload")
        if envelope["type"] == "slash_commands" and isinstance(payload, dict) and payload:
            self._command_reply(envelope, payload)

    def _command_reply(self, envelope: dict[str, Any], payload: dict[str, Any]) -> None:
        """A slash command ack with a payload is shown to the invoker (or the channel, ``in_channel``)."""
        command = envelope["payload"]
        self.command_replies.append(
            {
                "envelope_id": envelope["envelope_id"],
                "channel": command["channel_id"],
                "user": command["user_id"],
                "response_type": payload.get("response_type", "ephemeral"),
                "text": payload.get("text"),
                "blocks": payload.get("blocks"),
                "payload": payload,
            }
        )
        if payload.get("response_type") == "in_channel":
            self._show_command_response(command["channel_id"], payload)

    def _show_command_response(self, channel_id: str, body: dict[str, Any]) -> None:
        channel = self.channels.get(channel_id)
        if channel is None:
            return
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": body.get("text") or "",
            "ts": self._next_ts(),
            "bot_id": self.bot_id,
            "app_id": self.app_id,
        }
        if body.get("blocks") is not None:
            message["blocks"] = body["blocks"]
        channel.messages.append(message)

    def _live_connection(self) -> SocketConnection:
        """The connection a payload goes to: with several open (several instances of the app, up to
        ten), Slack sends each payload to one of them at random."""
        live = [conn for conn in self.connections if conn.live]
        if not live:
            raise NotConnected("no Socket Mode connection is open")
        return live[0] if len(live) == 1 else self._connection_choice.choice(live)

    async def _send_envelope(self, envelope: dict[str, Any]) -> str:
        conn = self._live_connection()
        envelope_id = envelope["envelope_id"]
        pending = _Envelope(envelope, time.monotonic(), conn)
        self._pending[envelope_id] = pending
        try:
            await conn.ws.send_str(json.dumps(envelope))
        except ConnectionError as exc:
            conn.retiring = True  # a socket that failed a write gets nothing more
            if not (self.auto_retry and envelope["type"] == "events_api"):
                self._pending.pop(envelope_id, None)
                raise NotConnected(f"the socket failed while sending: {exc}") from exc
            # Slack took the event; one its app never acknowledged is sent again to a live
            # connection (Events API retries), whether the socket died before or after the write.
            self.failed_sends.append({"envelope": envelope, "reason": f"the socket failed while sending: {exc}"})
        else:
            self.envelopes.append(envelope)
        pending.deadline = asyncio.get_running_loop().call_later(self.ack_deadline, self._ack_overdue, envelope_id)
        return envelope_id

    def _ack_overdue(self, envelope_id: str) -> None:
        pending = self._pending.get(envelope_id)
        if pending is None or envelope_id in self.acks:
            return
        envelope = pending.envelope
        self.unacked.append(envelope)
        if not self.auto_retry or envelope["type"] != "events_api":
            return
        attempt = int(envelope.get("retry_attempt", 0)) + 1
        if attempt > MAX_EVENT_RETRIES:
            return
        payload = envelope["payload"]

        async def retry() -> None:
            try:
                await self._send_events_api(payload, retry_attempt=attempt, retry_reason="timeout")
            except NotConnected:
                self.undelivered.append({"event": payload["event"], "reason": "no socket connected (retry)"})

        self._spawn(retry())

    def _event_callback(self, event: dict[str, Any], event_id: str, team_id: str | None = None) -> dict[str, Any]:
        """The Events API outer payload, as Slack wraps every event: for the workspace of the event's
        channel (or ``team_id``, or the one at hand)."""
        channel = self.channels.get(str(event.get("channel") or ""))
        with self.acting_in(team_id or (channel.team_id if channel is not None else self.team_id)):
            return self._event_payload(event, event_id)

    def _event_payload(self, event: dict[str, Any], event_id: str) -> dict[str, Any]:
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + _b64(json.dumps({"et": event.get("type"), "tid": self.team_id})),
        }

    async def _send_events_api(self, payload: dict[str, Any], *, retry_attempt: int, retry_reason: str) -> str:
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        envelope_id = await self._send_envelope(envelope)
        self._event_envelopes.setdefault(payload["event_id"], []).append(envelope_id)
        return envelope_id

    async def send_event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry_attempt: int = 0, retry_reason: str = "",
        team_id: str | None = None,
    ) -> str:
        """Deliver an event over Socket Mode in an ``events_api`` envelope; return the envelope id.

        Re-using an ``event_id`` re-sends that event's original payload, as a Slack retry does (pass
        ``retry_attempt``/``retry_reason`` too). Raises ``NotConnected`` if no socket is open."""
        if event_id is not None and event_id in self._events:
            payload = self._events[event_id]
        else:
            event = dict(event)
            event.setdefault("event_ts", event.get("ts") or self._next_ts())
            event_id = event_id or _slack_id("Ev", 9)
            payload = self._event_callback(event, event_id, team_id)
            self._events[event_id] = payload
        return await self._send_events_api(payload, retry_attempt=retry_attempt, retry_reason=retry_reason)

    def envelopes_for(self, event_id: str) -> list[str]:
        """The envelope ids that carried this event (first delivery, then retries)."""
        return list(self._event_envelopes.get(event_id, []))

    def _user_message(self, channel: SlackChannel, user: str, text: str, thread_ts: str | None,
                      broadcast: bool = False) -> dict[str, Any]:
        ts = self._next_ts()
        message: dict[str, Any] = {
            "user": user,
            "type": "message",
            "ts": ts,
            "client_msg_id": str(uuid.uuid4()),
            "text": text,
            "team": channel.team_id,
            "blocks": [_rich_text(text)],
        }
        if thread_ts:
            self._attach_to_thread(channel, message, thread_ts, user)
            if broadcast:  # "Also send to #channel": shown in the channel view too
                message["subtype"] = "thread_broadcast"
        channel.messages.append(message)
        return message

    async def send_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        event_id: str | None = None,
        retry_attempt: int = 0,
        offline_ok: bool = False,
    ) -> str:
        """A person posts ``text``: the message is stored (``messages_in``, ``conversations.history``) and a
        ``message`` event delivered if Slack would (see ``undelivered``), plus ``app_mention`` when the
        text mentions the bot and the app is subscribed. Returns the event id (``envelopes_for`` it).
        Raises ``NotConnected`` (storing nothing) if the event is due but no socket is open — unless
        ``offline_ok``: then the message is stored all the same and its event recorded in ``undelivered``,
        as Slack keeps what people say while the app is down.

        Passing the ``event_id`` of an earlier message re-delivers that same event as a retry."""
        if event_id is not None and event_id in self._events:
            reason = "timeout" if retry_attempt else ""
            await self.send_event({}, event_id=event_id, retry_attempt=retry_attempt, retry_reason=reason)
            return event_id
        conv = self.channels.get(channel)
        if conv is None:
            raise KeyError(f"unknown channel {channel!r}: add_channel() it first")
        with self.acting_in(conv.team_id):
            return await self._person_writes(conv, user, text, thread_ts, event_id, retry_attempt, offline_ok)

    async def _person_writes(self, conv: SlackChannel, user: str, text: str, thread_ts: str | None,
                             event_id: str | None, retry_attempt: int, offline_ok: bool) -> str:
        if self._member(user) is None:
            raise KeyError(f"unknown user {user!r} in {conv.team_id}: add_user() it first")
        reason = self._subscription_gap(conv.subscription)
        if reason is None and not offline_ok:
            self._live_connection()  # NotConnected before anything is stored
        message = self._user_message(conv, user, text, thread_ts)
        event = {**message, "channel": conv.id, "event_ts": message["ts"], "channel_type": conv.channel_type}
        event_id = event_id or _slack_id("Ev", 9)
        if reason is not None:
            self.undelivered.append({"event": event, "reason": reason})
        else:
            self._events[event_id] = self._event_callback(event, event_id)
            reason_text = "timeout" if retry_attempt else ""
            try:
                await self._send_events_api(self._events[event_id], retry_attempt=retry_attempt,
                                            retry_reason=reason_text)
            except NotConnected as exc:
                if not offline_ok:
                    raise
                self.undelivered.append({"event": event, "reason": str(exc)})
        if f"<@{self.bot_user_id}>" in text or f"<@{self.bot_user_id}|" in text:
            mention = {k: v for k, v in event.items() if k not in ("channel_type",)}
            mention["type"] = "app_mention"
            gap = self._subscription_gap("app_mention")
            if gap is not None:
                self.undelivered.append({"event": mention, "reason": gap})
            else:
                await self.send_event(mention)
        return event_id

    async def send_slash_command(self, text: str, *, user_id: str, channel_id: str, command: str = "/troupe") -> str:
        """A person runs ``command text`` in a channel: a ``slash_commands`` envelope with a working
        ``response_url`` and ``trigger_id``. Returns the envelope id."""
        payload = self._slash_payload(text, user_id=user_id, channel_id=channel_id, command=command)
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": "slash_commands",
            "accepts_response_payload": True,
        }
        envelope_id = await self._send_envelope(envelope)
        self._response_urls[payload["response_url"].split("/commands/", 1)[1]]["envelope_id"] = envelope_id
        return envelope_id

    def _slash_payload(self, text: str, *, user_id: str, channel_id: str, command: str,
                       team_id: str | None = None) -> dict[str, Any]:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise KeyError(f"unknown channel {channel_id!r}: add_channel() it first")
        with self.acting_in(team_id or channel.team_id):
            return self._command_payload(text, user_id=user_id, channel=channel, command=command)

    def _command_payload(self, text: str, *, user_id: str, channel: SlackChannel, command: str) -> dict[str, Any]:
        channel_id = channel.id
        if "commands" not in self.scopes:
            raise RuntimeError(f"the app lacks the commands scope; Slack would not offer {command}")
        user = self._member(user_id)
        if user is None:
            raise KeyError(f"unknown user {user_id!r} in {self.team_id}: add_user() it first")
        channel_name = {"im": "directmessage", "group": "privategroup"}.get(channel.channel_type, channel.name)
        hook_id = str(1_000_000_000_000 + next(self._ids))
        secret = secrets.token_hex(12)
        key = f"{self.team_id}/{hook_id}/{secret}"
        self._response_urls[key] = {
            "uses": 0,
            "created": time.monotonic(),
            "channel": channel_id,
            "user": user_id,
            "command": command,
        }
        trigger_id = f"{next(self._ids) + 10_000_000_000}.{next(self._ids) + 1_000_000_000}.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = time.monotonic()
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": f"{self.base_url}/commands/{key}",
            "trigger_id": trigger_id,
        }

    def trigger_valid(self, trigger_id: str) -> bool:
        """Whether a trigger_id could still open a modal (they last 3 s)."""
        issued = self._triggers.get(trigger_id)
        return issued is not None and time.monotonic() - issued <= TRIGGER_LIFETIME

    async def wait_ack(self, envelope_id: str, timeout: float = 3.0) -> dict[str, Any] | None:
        """The ack message for an envelope (with its ``payload`` if any), or None if none came in time."""
        try:
            await self.wait_for(lambda: envelope_id in self.acks, timeout)
        except TimeoutError:
            return None
        return self.acks[envelope_id]

    @property
    def api_connections(self) -> int:
        """How many connections Web API calls came over."""
        return len(self._api_transports)

    def close_api_connections(self) -> None:
        """Close the Web API's idle kept-open connections, as Slack's load balancers do after a while."""
        for transport in self._api_transports:
            if not transport.is_closing():
                transport.close()

    async def drop_socket(self) -> None:
        """Cut every open socket without a close frame, as a network failure does. The SDK only notices at
        its next ping check, so expect a reconnect after about ``ping_interval`` seconds."""
        cut = [conn for conn in self.connections if not conn.ws.closed]
        for conn in cut:
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        # Only the sockets cut here: the client may already have opened a new one, which stays open.
        await self.wait_for(lambda: all(c.ws.closed for c in cut), 2.0)

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send ``{"type": "disconnect", "reason": ...}`` to every live socket; they get no more envelopes
        and are closed 10 s later, as Slack does, unless the client closes them first."""
        for conn in self.connections:
            if conn.live:
                conn.retiring = True
                await conn.ws.send_str(
                    json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}})
                )
                self._spawn(self._close_later(conn, 10.0))

    async def request_refresh(self) -> None:
        """Ask the client to reconnect (``disconnect``, ``refresh_requested``)."""
        await self.send_disconnect("refresh_requested")

    @staticmethod
    async def _close_later(conn: SocketConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        if not conn.ws.closed:
            await conn.ws.close(code=1000)

    # ------------------------------------------------------------------ OAuth (installing the app)

    async def _authorize(self, request: web.Request) -> web.Response:
        """The page a person approves the installation on. Approved (or cancelled, ``install_into``) at
        once: a redirect to the app's redirect URL with a one-time ``code`` (or ``error``) and the
        ``state`` it was given. A wrong client id or redirect URL gets an error page, as on Slack."""
        query = dict(request.query)
        self.authorizations.append(query)
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="invalid_client_id", content_type="text/html")
        redirect = query.get("redirect_uri") or (self.redirect_urls[0] if self.redirect_urls else "")
        if not redirect or (self.redirect_urls and redirect not in self.redirect_urls):
            return web.Response(status=400, text="bad_redirect_uri", content_type="text/html")
        scopes = [x for x in query.get("scope", "").split(",") if x]
        if not scopes:
            return web.Response(status=400, text="invalid_scope: the app asks for no bot scope", content_type="text/html")
        answer: dict[str, str] = {"state": query.get("state", "")}
        if self._installer is None:
            answer["error"] = "access_denied"
        else:
            team_id, user_id = self._installer
            code = f"{next(self._ids)}.{secrets.token_hex(12)}"
            self._codes[code] = {"team": team_id, "user": user_id, "scopes": scopes, "redirect_uri":
                                 query.get("redirect_uri"), "issued": time.monotonic()}
            answer["code"] = code
        parts = urlsplit(redirect)
        query_string = "&".join(x for x in (parts.query, urlencode(answer)) if x)
        raise web.HTTPFound(urlunsplit((parts.scheme, parts.netloc, parts.path, query_string, "")))

    def _client_credentials(self, request: web.Request, params: dict[str, Any]) -> tuple[str, str]:
        """The app's id and secret: HTTP Basic (what slack-sdk sends) or form fields."""
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:].strip()).decode().partition(":")
            except ValueError:
                return "", ""
            return client_id, secret
        return str(params.get("client_id") or ""), str(params.get("client_secret") or "")

    def _oauth_v2_access(self, request: web.Request, params: dict[str, Any]) -> dict[str, Any]:
        """Trade a code for the team's bot token (the installation), or a refresh token for a new one."""
        client_id, secret = self._client_credentials(request, params)
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        if params.get("grant_type") == "refresh_token":
            refresh = str(params.get("refresh_token") or "")
            team = next((t for t in self.teams.values() if refresh in t.refresh_tokens), None)
            if team is None:
                return {"ok": False, "error": "invalid_refresh_token"}
            return {"ok": True, **self._grant(team, refresh_token=refresh)}
        code = self._codes.pop(str(params.get("code") or ""), None)
        if code is None or time.monotonic() - code["issued"] > CODE_LIFETIME:
            return {"ok": False, "error": "invalid_code"}
        if code["redirect_uri"] and params.get("redirect_uri") != code["redirect_uri"]:
            return {"ok": False, "error": "bad_redirect_uri"}
        team = self.teams[code["team"]]
        team.scopes = list(code["scopes"])
        answer = self._grant(team)
        answer["authed_user"] = {"id": code["user"]}
        return {"ok": True, **answer}

    def _grant(self, team: SlackTeam, *, refresh_token: str | None = None) -> dict[str, Any]:
        """A new bot token for the team, as ``oauth.v2.access`` answers."""
        rotating = self.token_lifetime_s is not None
        token = ("xoxe.xoxb-1-" if rotating else "xoxb-") + f"{team.id}-{secrets.token_hex(8)}"
        team.tokens[token] = time.time() + self.token_lifetime_s if self.token_lifetime_s is not None else None
        answer: dict[str, Any] = {
            "access_token": token,
            "token_type": "bot",
            "scope": ",".join(team.scopes),
            "bot_user_id": team.bot_user_id,
            "app_id": self.app_id,
            "team": {"id": team.id, "name": team.name},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if rotating:
            assert self.token_lifetime_s is not None
            refresh_token = refresh_token or f"xoxe-1-{team.id}-{secrets.token_hex(8)}"
            team.refresh_tokens.add(refresh_token)
            answer.update(expires_in=int(self.token_lifetime_s), refresh_token=refresh_token)
        return answer

    async def uninstall(self, team_id: str, *, url: str | None = None) -> tuple[int, str] | None:
        """The workspace removes the app: every token of it there is revoked, then ``app_uninstalled`` is
        sent (to the app's Request URL ``url``, else over Socket Mode). Returns the HTTP answer, if any."""
        team = self.teams[team_id]
        self.revoked_tokens.update(team.tokens)
        team.tokens.clear()
        team.refresh_tokens.clear()
        return await self._tell_app({"type": "app_uninstalled"}, team_id, url)

    async def revoke_bot_token(self, team_id: str, *, url: str | None = None) -> tuple[int, str] | None:
        """An admin revokes the app's bot token in the workspace: ``tokens_revoked`` follows."""
        team = self.teams[team_id]
        self.revoked_tokens.update(team.tokens)
        team.tokens.clear()
        team.refresh_tokens.clear()
        event = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": [team.bot_user_id]}}
        return await self._tell_app(event, team_id, url)

    async def _tell_app(self, event: dict[str, Any], team_id: str, url: str | None) -> tuple[int, str] | None:
        if url is not None:
            return await self.http_event(url, event, team_id=team_id)
        await self.send_event(event, team_id=team_id)
        return None

    # ------------------------------------------------------------------ response_url

    async def _response_url(self, request: web.Request) -> web.Response:
        key = "/".join((request.match_info["team"], request.match_info["id"], request.match_info["secret"]))
        hook = self._response_urls.get(key)
        if hook is None:
            return web.Response(status=404, text="invalid_token", content_type="text/plain")
        if time.monotonic() - hook["created"] > RESPONSE_URL_LIFETIME:
            return web.Response(status=404, text="expired_url", content_type="text/plain")
        if hook["uses"] >= RESPONSE_URL_USES:
            return web.Response(status=404, text="used_url", content_type="text/plain")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        if not body.get("delete_original") and not any(body.get(k) for k in ("text", "blocks", "attachments")):
            return web.Response(status=400, text="no_text", content_type="text/plain")
        if body.get("blocks") is not None:
            try:
                _parse_blocks(body["blocks"])
            except SlackApiFailure:
                return web.Response(status=400, text="invalid_blocks", content_type="text/plain")
        hook["uses"] += 1
        self.responses.append(body)
        if body.get("response_type") == "in_channel" and not body.get("delete_original"):
            self._show_command_response(hook["channel"], body)
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ HTTP mode (Slack → app)

    def sign(self, body: bytes, timestamp: int) -> str:
        """``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret."""
        base = b"v0:" + str(timestamp).encode() + b":" + body
        return "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()

    async def _post_to_app(
        self,
        url: str,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None,
        signature: str | None,
        sign: bool,
        extra_headers: dict[str, str] | None = None,
        timeout: float = ACK_DEADLINE,
    ) -> tuple[int, str]:
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "Accept": "application/json,*/*",
        }
        if sign:
            headers["X-Slack-Request-Timestamp"] = str(ts)
            headers["X-Slack-Signature"] = signature if signature is not None else self.sign(body, ts)
        headers.update(extra_headers or {})
        assert self._session is not None, "start() the fake first"
        record: dict[str, Any] = {"url": url, "headers": headers, "body": body}
        self.http_deliveries.append(record)
        try:
            limit = aiohttp.ClientTimeout(total=timeout)
            async with self._session.post(url, data=body, headers=headers, timeout=limit) as resp:
                text = await resp.text()
                record.update(status=resp.status, response=text)
                return resp.status, text
        except TimeoutError:
            record.update(status=0, response="")
            self.unacked.append({"url": url, "body": body, "reason": "http_timeout"})
            return 0, ""

    async def http_event(
        self,
        url: str,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
        sign: bool = True,
        team_id: str | None = None,
    ) -> tuple[int, str]:
        """POST an Events API ``event_callback`` to the app's Request URL; return (status, body text),
        status 0 if it did not answer within 3 s. Reusing ``event_id`` resends the same payload. The
        event is from its channel's workspace, or ``team_id``'s."""
        if event_id is not None and event_id in self._events:
            payload = self._events[event_id]
        else:
            event = dict(event)
            event.setdefault("event_ts", event.get("ts") or self._next_ts())
            event_id = event_id or _slack_id("Ev", 9)
            payload = self._event_callback(event, event_id, team_id)
            self._events[event_id] = payload
        extra: dict[str, str] = {}
        if retry_num is not None:
            extra["X-Slack-Retry-Num"] = str(retry_num)
            extra["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        body = json.dumps(payload).encode()
        return await self._post_to_app(
            url, body, "application/json", timestamp=timestamp, signature=signature, sign=sign, extra_headers=extra
        )

    async def http_message(self, url: str, channel: str, user: str, text: str, *,
                           thread_ts: str | None = None) -> tuple[int, str]:
        """A person posts ``text`` (kept in the channel's history) and Slack sends the ``message`` event
        to the app's Request URL ``url``; returns the app's (status, body text)."""
        conv = self.channels[channel]
        with self.acting_in(conv.team_id):
            if self._member(user) is None:
                raise KeyError(f"unknown user {user!r} in {conv.team_id}: add_user() it first")
            message = self._user_message(conv, user, text, thread_ts)
            event = {**message, "channel": conv.id, "event_ts": message["ts"], "channel_type": conv.channel_type}
            return await self.http_event(url, event)

    async def http_url_verification(self, url: str) -> tuple[int, str]:
        """The ``url_verification`` challenge Slack sends when a Request URL is saved."""
        challenge = secrets.token_urlsafe(32)
        payload = {"token": self.verification_token, "challenge": challenge, "type": "url_verification"}
        body = json.dumps(payload).encode()
        return await self._post_to_app(url, body, "application/json", timestamp=None, signature=None, sign=True)

    async def http_ssl_check(self, url: str) -> tuple[int, str]:
        """The ``ssl_check`` Slack sends to a slash command's Request URL to check its certificate."""
        body = urlencode({"ssl_check": "1", "token": self.verification_token}).encode()
        return await self._post_to_app(url, body, "application/x-www-form-urlencoded", timestamp=None, signature=None,
                                       sign=True)

    async def http_slash_command(
        self,
        url: str,
        text: str,
        *,
        user_id: str,
        channel_id: str,
        command: str = "/troupe",
        timestamp: int | None = None,
        signature: str | None = None,
        sign: bool = True,
        team_id: str | None = None,
    ) -> tuple[int, str]:
        """POST a slash command (form-encoded) to the app's Request URL; return (status, body text).
        A 200 answer with a body is what Slack shows the invoker, recorded in ``command_replies``.
        ``team_id``: sent for that workspace, the invoker's, rather than the channel's (a member of
        another workspace in a channel shared with it)."""
        payload = self._slash_payload(text, user_id=user_id, channel_id=channel_id, command=command, team_id=team_id)
        body = urlencode(payload).encode()
        status, answer = await self._post_to_app(
            url, body, "application/x-www-form-urlencoded", timestamp=timestamp, signature=signature, sign=sign
        )
        if status == 200 and answer.strip():
            reply = _maybe_json(answer)
            envelope = {"envelope_id": None, "payload": payload}
            self._command_reply(envelope, reply if isinstance(reply, dict) else {"text": answer})
        return status, answer


# ---------------------------------------------------------------------- module helpers


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    token = header[7:].strip()
    return token or None


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _maybe_json(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _is_top_level(message: dict[str, Any]) -> bool:
    """Shown in the channel view: not a thread reply, or a reply also sent to the channel."""
    thread_ts = message.get("thread_ts")
    return thread_ts is None or thread_ts == message.get("ts") or message.get("subtype") == "thread_broadcast"


def _paginate(items: list[dict[str, Any]], params: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    limit = int(params.get("limit") or 100)
    cursor = str(params.get("cursor") or "")
    start = 0
    if cursor:
        try:
            start = int(base64.b64decode(cursor).decode().split(":", 1)[1])
        except (ValueError, IndexError) as exc:
            raise SlackApiFailure("invalid_cursor") from exc
    page = items[start : start + limit]
    end = start + limit
    next_cursor = base64.b64encode(f"next_ts:{end}".encode()).decode() if end < len(items) else ""
    return page, next_cursor


def _rich_text(text: str) -> dict[str, Any]:
    """The rich_text block Slack's clients attach to a typed message (mentions become user elements)."""
    elements: list[dict[str, Any]] = []
    pos = 0
    for match in _MENTION.finditer(text):
        if match.start() > pos:
            elements.append({"type": "text", "text": text[pos : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        pos = match.end()
    if pos < len(text):
        elements.append({"type": "text", "text": text[pos:]})
    return {
        "type": "rich_text",
        "block_id": secrets.token_urlsafe(4)[:5],
        "elements": [{"type": "rich_text_section", "elements": elements}],
    }


def _invalid_blocks(problem: str) -> SlackApiFailure:
    return SlackApiFailure("invalid_blocks", errors=[problem], response_metadata={"messages": [f"[ERROR] {problem}"]})


def _text_len(obj: Any) -> int:
    return len(str(obj.get("text", ""))) if isinstance(obj, dict) else 0


def _parse_blocks(raw: Any) -> list[dict[str, Any]] | None:
    """Blocks as Slack validates them: a JSON array (or its string form) of at most 50 objects, each of a
    known ``type`` with the basic limits (section text 3,000, header 150 plain_text, 10 context elements)."""
    if raw is None:
        return None
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise SlackApiFailure("invalid_blocks_format") from exc
    if not isinstance(raw, list):
        raise SlackApiFailure("invalid_blocks_format")
    if len(raw) > MAX_BLOCKS:
        raise _invalid_blocks(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for index, block in enumerate(raw):
        where = f"[json-pointer:/blocks/{index}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid_blocks(f"missing required field: type {where}")
        kind = block["type"]
        if kind not in BLOCK_TYPES:
            raise _invalid_blocks(f"unsupported type: {kind} {where}")
        if kind == "section":
            if "text" not in block and "fields" not in block and "expand" not in block:
                raise _invalid_blocks(f"must provide either text or fields {where}")
            if _text_len(block.get("text")) > 3000:
                raise _invalid_blocks(f"must be less than 3001 characters {where}/text/text")
            if len(block.get("fields") or []) > 10:
                raise _invalid_blocks(f"no more than 10 items allowed {where}/fields")
        elif kind == "header":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                raise _invalid_blocks(f"must be a plain_text object {where}/text")
            if _text_len(text) > 150:
                raise _invalid_blocks(f"must be less than 151 characters {where}/text/text")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > 10:
                raise _invalid_blocks(f"must have 1 to 10 elements {where}/elements")
        elif kind in ("actions", "rich_text"):
            if not isinstance(block.get("elements"), list):
                raise _invalid_blocks(f"missing required field: elements {where}")
        elif kind == "markdown":
            if not isinstance(block.get("text"), str) or len(block["text"]) > 12_000:
                raise _invalid_blocks(f"text must be a string of at most 12000 characters {where}/text")
        elif kind == "image":
            if not (block.get("image_url") or block.get("slack_file")) or not block.get("alt_text"):
                raise _invalid_blocks(f"missing required field: image_url and alt_text {where}")
    return raw
