"""Slack as a chat platform, through slack-bolt's async app.

Socket Mode by default (an app-level ``xapp-`` token; no public URL), or HTTP mode (Events API and
slash-command requests signed with the signing secret; unsigned, badly signed and stale requests are
refused by Bolt's verification). One slash command, ``/troupe …``, carries every moderator command as
its text. Channel messages become ``IncomingMessage``s; bot messages (ours included) are ignored and a
delivery Slack repeats (same ``event_id``, or the same message ``ts``) is taken once.

One workspace through one bot token; or, with ``client_id`` set, an app installed in many workspaces
through OAuth (HTTP mode): each installation's token is kept in the bot's database, channels and
people are named ``TEAM:ID`` (so each workspace's worlds and moderators are its own, and a channel is
answered with its own workspace's token). A workspace that uninstalls the app (or revokes its token)
loses its installation, and nothing more is posted there.

Personas post with ``chat.postMessage`` under their own ``username`` and ``icon_url`` (scope
``chat:write.customize``); without that scope they post as the bot with their name in bold, and the
moderator is told why. Private answers go by ``chat.postEphemeral`` (or the command's ``response_url``
where the bot may not post); cards are Block Kit; progress of long work updates one message. A thread
is opened by posting its first message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_sdk.errors import SlackApiError, SlackClientError, SlackTokenRotationError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.base import (
    ESCAPED,
    HISTORY_LOOKED_MAX,
    SPEAKER_LABEL,
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
    clip,
    literal,
    split_message,
)
from adapters.slack_installations import StoredInstallations, StoredOAuthStates
from adapters.slack_oauth import oauth_settings
from config.settings import Settings, SlackSettings

log = logging.getLogger(__name__)

#: Slack shows a custom ``username`` of at most 80 characters.
USERNAME_MAX = 80
#: Slack advises keeping a message's text within 4,000 characters (it truncates at 40,000).
TEXT_MAX = 4000
#: Block Kit limits: a section's text, a header's text, fields per section, a field's text, blocks per message.
SECTION_MAX = 3000
HEADER_MAX = 150
FIELDS_PER_SECTION = 10
FIELD_MAX = 2000
BLOCKS_MAX = 50
#: A slash command's response_url is good for 30 minutes.
RESPONSE_URL_TTL_S = 29 * 60
#: Most messages read back at start-up from a channel's history.
CATCH_UP_MAX = 500
#: How long before the last message heard a thread may have started for its later replies to be
#: caught up (Slack lists threads by their first message, in the channel's history).
THREAD_LOOKBACK_S = 7 * 24 * 3600
#: How long a received message's acknowledgement waits for the bot to keep it (Slack allows 3 s).
KEEP_WAIT_S = 2.0
#: Deliveries remembered to spot Slack's retries.
SEEN_MAX = 10_000
#: Seconds a Web API call may take (slack-sdk's own default).
WEB_TIMEOUT_S = 30
#: How long a user's profile and a user group's members are trusted before asking Slack again.
PROFILE_TTL_S = 600.0
GROUPS_TTL_S = 60.0
#: Adapter state: a workspace's Enterprise Grid organisation.
ENTERPRISE = "enterprise:"
#: Message subtypes that are a person writing; every other subtype (edits, joins, bot posts) is ignored.
_PERSON_SUBTYPES = {None, "thread_broadcast", "file_share", "me_message"}
#: Errors that will not go away by posting again.
_FINAL_ERRORS = {
    "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "no_text", "invalid_blocks",
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "missing_scope", "restricted_action",
    "invalid_arguments", "too_many_attachments", "message_not_found", "cant_update_message",
}


# -- pure helpers -----------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Text as Slack shows it literally: ``<!channel>`` or ``<@U1>`` typed by a persona pings nobody."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")


def to_mrkdwn(text: str) -> str:
    """Our markdown (``**bold**``, ``[label](url)``, backticks) as Slack mrkdwn, with ``&<>`` escaped.

    A markup character escaped with a backslash (outside text placed in the bot's words) is shown as
    itself: it makes no link and no bold.
    """
    kept: list[str] = []

    def keep(shown: str) -> str:
        kept.append(shown)
        return f"\x00{len(kept) - 1}\x00"

    def restore(text: str) -> str:
        return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)

    text = ESCAPED.sub(lambda m: keep(escape(m.group(1))), text)
    text = _LINK.sub(lambda m: keep(f"<{m.group(2)}|{restore(escape(m.group(1))).replace('|', '¦')}>"), text)
    text = escape(text)
    text = _BOLD.sub(r"*\1*", text)
    return restore(text)


def fallback_prefix(identity: Identity) -> str:
    """How a persona's name leads each post the bot makes on its behalf: its name and tag in bold,
    shown as written (markup and links in a name do nothing)."""
    return f"*{to_mrkdwn(literal(identity.display_name(USERNAME_MAX)))}:* "


def unlabelled(text: str) -> str:
    """A persona's words as the bot posts them on its behalf: a line that starts like a poster's name
    in bold ("**Priya Nair:** …") loses those marks (Slack has no way to escape them), so one message
    shows one speaker."""
    return SPEAKER_LABEL.sub(lambda m: m["lead"] + m["name"] + ":", text)


def card_blocks(card: Card) -> list[dict[str, Any]]:
    """A card as Block Kit: header, sections (text and fields), context footer; within Slack's limits."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(card.title, HEADER_MAX), "emoji": True}}
    ]
    for piece in split_message(to_mrkdwn(card.text), SECTION_MAX) if card.text.strip() else []:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": piece}})
    fields = [
        {"type": "mrkdwn", "text": clip(f"*{escape(f.name)}*\n{to_mrkdwn(f.value)}", FIELD_MAX)}
        for f in card.fields
    ]
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]})
    footer_room = 1 if card.footer else 0
    if len(blocks) > BLOCKS_MAX - footer_room:
        blocks = blocks[: BLOCKS_MAX - footer_room - 1]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "_(shortened: too long for one message)_"}})
    if card.footer:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(escape(card.footer), SECTION_MAX)}]})
    return blocks


def _error_code(error: SlackApiError) -> str:
    data = getattr(error.response, "data", None)
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def _adapter_error(error: Exception, what: str) -> AdapterError:
    """A Slack failure as the outbox understands it: rate limits, 5xx and network trouble are worth a retry."""
    if isinstance(error, SlackApiError):
        code = _error_code(error)
        status = getattr(error.response, "status_code", 200)
        retryable = code not in _FINAL_ERRORS and (status == 429 or status >= 500 or code in ("ratelimited", "fatal_error", "internal_error", "request_timeout", "service_unavailable"))
        hint = {
            "not_in_channel": " (invite the app to the channel: /invite @Troupe)",
            "missing_scope": " (reinstall the app from config/slack-manifest.yaml to grant the scopes)",
            "invalid_auth": " (check TROUPE_SLACK_BOT_TOKEN, or install the app in the workspace again)",
            "token_revoked": " (the workspace revoked the app's token: install the app there again)",
        }.get(code, "")
        return AdapterError(f"Slack refused {what}: {code or f'HTTP {status}'}{hint}", retryable=retryable)
    return AdapterError(f"could not reach Slack for {what}: {type(error).__name__}: {error}", retryable=True)


#: Methods that create something: re-sent after a dropped connection, they could create it twice.
_NOT_REPEATABLE = ("chat.postMessage", "chat.postEphemeral", "chat.scheduleMessage", "files.completeUploadExternal",
                   "files.getUploadURLExternal", "conversations.create")


class _ReadOnlyConnectionRetry(AsyncConnectionErrorRetryHandler):
    """Retries after a connection error only where sending twice is harmless.

    A post whose connection dropped may have been accepted; the outbox settles that by looking at
    the channel (``find_post``) before posting again, which a blind library retry would skip.
    """

    async def _can_retry_async(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if str(getattr(request, "url", "")).rstrip("/").endswith(_NOT_REPEATABLE):
            return False
        return await super()._can_retry_async(state=state, request=request, response=response, error=error)


class _Seen:
    """The most recent keys, to take each of Slack's (re)deliveries once."""

    def __init__(self, size: int = SEEN_MAX) -> None:
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def forget(self, *keys: str) -> None:
        """Take the next delivery of ``keys`` as new (this one could not be kept)."""
        for key in keys:
            self._keys.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def first_time(self, *keys: str) -> bool:
        """True unless one of ``keys`` was seen before; remembers them all."""
        fresh = not any(k in self._keys for k in keys if k)
        for key in keys:
            if key:
                self._keys[key] = None
                self._keys.move_to_end(key)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return fresh


class _Invocation:
    """A slash command's way back: its response_url, valid for 30 minutes."""

    def __init__(self, response_url: str | None) -> None:
        self.response_url = response_url
        self.created = time.monotonic()

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.created > RESPONSE_URL_TTL_S


class _Closed:
    """Queued marker: ``listen`` ends."""


@dataclass(frozen=True)
class _Workspace:
    """The bot in one workspace: a client holding its token there, who it is there, what it may do."""

    client: AsyncWebClient
    team_id: str | None
    bot_user_id: str | None
    bot_id: str | None
    scopes: frozenset[str]

    @property
    def can_customize(self) -> bool:
        return "chat:write.customize" in self.scopes


class SlackAdapter(Adapter):
    """Slack, through a Bolt ``AsyncApp`` in Socket Mode (default) or HTTP mode (``http_port``)."""

    def __init__(self, settings: Settings | SlackSettings, *, http_port: int | None = None,
                 moderator_groups: list[str] | tuple[str, ...] = ()) -> None:
        self.platform = "slack"
        self.max_message_length = TEXT_MAX
        if isinstance(settings, Settings):
            self.settings = settings.slack
            moderator_groups = moderator_groups or tuple(settings.bot.moderator_roles)
        else:
            self.settings = settings
        self.post_interval_s = self.settings.post_interval_s
        #: Commands are typed as ``/troupe approve 7`` here: hints in replies are written that way.
        self.command_prefix = f"{self.settings.command} "
        #: HTTP mode's port (0 picks a free one); None for Socket Mode.
        self.http_port = http_port
        #: User groups whose members are moderators: membership is looked up for these only.
        self.moderator_groups = tuple(g for g in moderator_groups if g.startswith("S"))
        self.client: AsyncWebClient | None = None
        self.app: AsyncApp | None = None
        self.scopes: set[str] = set()
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        #: The bot user's name in the workspace (``auth.test``'s ``user``).
        self.bot_user_name: str | None = None
        #: HTTP mode: the URL Slack must be given as Request URL (known after ``connect``).
        self.http_url: str | None = None
        self._socket: Any = None
        self._runner: web.AppRunner | None = None
        #: The Web API's connections, kept open between calls (slack-sdk opens one a call without it).
        self._http: aiohttp.ClientSession | None = None
        self._events: asyncio.Queue[AdapterEvent | _Closed] = asyncio.Queue()
        self._seen = _Seen()
        self._invocations: dict[str, _Invocation] = {}
        self._users: dict[str, tuple[float, dict[str, Any]]] = {}
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        #: Workspaces (team ids; ``None`` for the single one) whose user groups the app may not read.
        self._groups_unreadable: set[str | None] = set()
        self._no_customize_told: set[str] = set()
        self._tokens = 0
        #: Installed in many workspaces through OAuth (``client_id``), rather than one bot token.
        self.distributed = bool(self.settings.client_id)
        if self.distributed and isinstance(settings, Settings):
            _warn_of_unscoped_moderators(settings.bot.moderator_user_ids)
        #: Distributed: where installations are kept, each team's organisation (Enterprise Grid), each team's client.
        self._installations: StoredInstallations | None = None
        self._enterprises: dict[str, str | None] = {}
        self._clients: dict[str, AsyncWebClient] = {}
        self._not_installed_told: set[str] = set()
        #: Distributed, HTTP mode: where a workspace installs the app (known after ``connect``).
        self.install_url: str | None = None

    # -- connection -----------------------------------------------------------------------------

    @property
    def bot_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for n in (self.bot_identity.name, self.bot_user_name) if n))

    @property
    def where(self) -> str:
        if self.install_url:
            return f"on Slack, receiving requests at {self.http_url}; workspaces install it at {self.install_url}"
        return f"on Slack, receiving requests at {self.http_url}" if self.http_url else "on Slack (Socket Mode)"

    @property
    def can_customize(self) -> bool:
        """Personas may post under their own name and icon (scope ``chat:write.customize``)."""
        return "chat:write.customize" in self.scopes

    def _web_client(self, token: str | None) -> AsyncWebClient:
        if self._http is None or self._http.closed:
            # aiohttp closes an idle connection after 15 s, before Slack's end does (60 s and more).
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEB_TIMEOUT_S))
        return AsyncWebClient(
            token=token,
            base_url=_api_base(self.settings.api_base),
            session=self._http,
            timeout=WEB_TIMEOUT_S,
            retry_handlers=[
                _ReadOnlyConnectionRetry(max_retry_count=2),
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),
                AsyncServerErrorRetryHandler(max_retry_count=2),
            ],
        )

    async def connect(self) -> None:
        try:
            await self._connect()
        except BaseException:
            await self._close_http()
            raise

    async def _close_http(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._clients.clear()

    async def _connect(self) -> None:
        if self.distributed:
            await self._connect_distributed()
            return
        bot_token = _secret(self.settings.bot_token)
        if not bot_token:
            raise AdapterError("no Slack bot token: set TROUPE_SLACK_BOT_TOKEN (api.slack.com/apps → your app → "
                               "OAuth & Permissions → Bot User OAuth Token, xoxb-…)", retryable=False)
        if not bot_token.startswith("xoxb-"):
            raise AdapterError("TROUPE_SLACK_BOT_TOKEN must be the bot token (xoxb-…), not a user or app token",
                               retryable=False)
        http_mode = self.http_port is not None
        signing_secret = _secret(self.settings.signing_secret)
        app_token = _secret(self.settings.app_token)
        if http_mode and not signing_secret:
            raise AdapterError("HTTP mode needs the signing secret: set TROUPE_SLACK_SIGNING_SECRET (api.slack.com/"
                               "apps → your app → Basic Information → Signing Secret)", retryable=False)
        if not http_mode and not app_token.startswith("xapp-"):
            raise AdapterError("Socket Mode needs an app-level token: set TROUPE_SLACK_APP_TOKEN (xapp-…; api.slack.com/"
                               "apps → your app → Basic Information → App-Level Tokens, scope connections:write), "
                               "or run `troupe slack --http PORT`", retryable=False)
        self.client = self._web_client(bot_token)
        await self._identify()
        # Listeners run before the answer to Slack: a message is acknowledged once it is kept.
        self.app = AsyncApp(client=self.client, signing_secret=signing_secret or "",
                            request_verification_enabled=http_mode, ssl_check_enabled=http_mode,
                            url_verification_enabled=http_mode, process_before_response=True)
        self._listen_to(self.app)
        if http_mode:
            await self._serve_http()
        else:
            await self._open_socket(app_token)

    def _listen_to(self, app: AsyncApp) -> None:
        app.command(self.settings.command)(self._on_command)
        app.event("message")(self._on_message)
        for kind in ("app_mention", "member_joined_channel", "app_home_opened"):
            app.event(kind)(_ignore)

    async def _connect_distributed(self) -> None:
        """An app for many workspaces: HTTP mode, the installation pages, installations in the database."""
        problems = []
        if not _secret(self.settings.client_secret):
            problems.append("set TROUPE_SLACK_CLIENT_SECRET (api.slack.com/apps → your app → Basic Information → "
                            "App Credentials → Client Secret)")
        signing_secret = _secret(self.settings.signing_secret)
        if not signing_secret:
            problems.append("set TROUPE_SLACK_SIGNING_SECRET (Basic Information → Signing Secret)")
        if self.http_port is None:
            problems.append("run it in HTTP mode (`troupe slack --http PORT`): workspaces install it through web "
                            "pages and Slack sends its events there")
        if self.state is None:
            problems.append("run it with the bot's database, where each workspace's installation is kept")
        if problems:
            raise AdapterError("a Slack app for many workspaces (TROUPE_SLACK_CLIENT_ID is set) needs more: "
                               + "; ".join(problems), retryable=False)
        assert self.state is not None
        self._installations = StoredInstallations(self.state)
        states = StoredOAuthStates(self.state, self.settings.install_link_ttl_s)
        self.client = self._web_client(None)
        self.app = AsyncApp(client=self.client, signing_secret=signing_secret, installation_store=self._installations,
                            oauth_settings=oauth_settings(self.settings, self._installations, states),
                            process_before_response=True)
        self._listen_to(self.app)
        self.app.event("app_uninstalled")(self._on_uninstalled)
        self.app.event("tokens_revoked")(self._on_tokens_revoked)
        root = await self._serve_http()
        self.install_url = f"{(self.settings.public_url or root).rstrip('/')}{self.settings.install_path}"

    async def _identify(self) -> None:
        """``auth.test``: the token works, who the bot is, and which scopes it was granted."""
        assert self.client is not None
        try:
            auth = await self.client.auth_test()
        except SlackApiError as error:
            code = _error_code(error)
            if code in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
                raise AdapterError(f"Slack rejected the bot token ({code}): check TROUPE_SLACK_BOT_TOKEN or "
                                   "reinstall the app", retryable=False) from None
            raise AdapterError(f"Slack refused auth.test: {code}") from None
        except (TimeoutError, SlackClientError, aiohttp.ClientError, OSError) as error:
            raise AdapterError(f"could not reach Slack at {self.settings.api_base}: {error}") from None
        self.bot_user_id = auth.get("user_id")
        self.bot_user_name = auth.get("user")
        self.bot_id = auth.get("bot_id")
        header = next((v for k, v in auth.headers.items() if k.lower() == "x-oauth-scopes"), "")
        if isinstance(header, list):
            header = ",".join(header)
        self.scopes = {s.strip() for s in str(header).split(",") if s.strip()}
        if self.scopes and not self.can_customize:
            log.warning("the Slack app lacks chat:write.customize: personas will post as the bot, with their name")

    # -- workspaces ---------------------------------------------------------------------------

    def _single(self) -> _Workspace:
        assert self.client is not None
        return _Workspace(self.client, None, self.bot_user_id, self.bot_id, frozenset(self.scopes))

    def _scoped(self, team: str | None, slack_id: str) -> str:
        """A channel's or person's id as Troupe knows it: in many workspaces ``TEAM:ID``, so each
        workspace's worlds, moderators and limits are its own; with one workspace, Slack's id."""
        if not self.distributed:
            return slack_id
        if not team:
            raise AdapterError(f"Slack sent {slack_id} without its workspace; it is ignored", retryable=False)
        return f"{team}:{slack_id}"

    def _raw(self, scoped_id: str) -> str:
        """Slack's own id of a channel or person Troupe knows as ``TEAM:ID``."""
        return scoped_id.rpartition(":")[2] if self.distributed else scoped_id

    async def _workspace(self, channel_id: str) -> _Workspace:
        """The bot in the channel's workspace, with a token good for at least the next few minutes."""
        if not self.distributed:
            return self._single()
        enterprise, team = await self._team_of(channel_id)
        return await self._installed(enterprise, team)

    async def _team_of(self, channel_id: str) -> tuple[str | None, str]:
        """The (enterprise, team) of a channel known as ``TEAM:CHANNEL``."""
        team, scoped, _ = channel_id.partition(":")
        if not scoped or not team:
            raise AdapterError(f"channel {channel_id!r} names no Slack workspace: with the app in many workspaces a "
                               "channel is TEAM:CHANNEL (e.g. slack:T0123ABCD:C0456EFGH)", retryable=False)
        if team not in self._enterprises:
            stored = await self.state.get(f"{ENTERPRISE}{team}") if self.state is not None else None
            self._enterprises[team] = stored.get("enterprise") if stored else None
        return self._enterprises[team], team

    async def _remember_team(self, enterprise: str | None, team: str | None) -> None:
        """The Enterprise Grid organisation a workspace belongs to, kept so any worker (and this one after
        a restart) finds its installation; a workspace outside one needs nothing kept."""
        if not self.distributed or not team or (team in self._enterprises and self._enterprises[team] == enterprise):
            return
        self._enterprises[team] = enterprise
        if self.state is not None and enterprise:
            await self.state.set(f"{ENTERPRISE}{team}", {"enterprise": enterprise})

    async def _installed(self, enterprise: str | None, team: str) -> _Workspace:
        """The workspace's installation, its token refreshed first when it rotates and expires soon."""
        assert self._installations is not None and self.client is not None
        bot = await self._installations.async_find_bot(enterprise_id=enterprise, team_id=team)
        if bot is None:
            if team not in self._not_installed_told:
                self._not_installed_told.add(team)
                log.warning("Troupe is not installed in Slack workspace %s (uninstalled, or its token revoked): "
                            "nothing is posted there until it is installed again at %s", team, self.install_url)
            raise AdapterError(f"Troupe is not installed in Slack workspace {team} (uninstalled, or its token "
                               f"revoked): install it there again at {self.install_url}", retryable=False)
        self._not_installed_told.discard(team)
        if bot.bot_refresh_token:
            rotator = AsyncTokenRotator(client_id=self.settings.client_id or "",
                                        client_secret=_secret(self.settings.client_secret), client=self.client)
            try:
                refreshed = await rotator.perform_bot_token_rotation(
                    bot=bot, minutes_before_expiration=self.settings.token_refresh_minutes)
            except SlackTokenRotationError as error:
                raise AdapterError(f"Slack refused to refresh the token of workspace {team}: {error.api_error}") from None
            except (TimeoutError, SlackClientError, aiohttp.ClientError, OSError) as error:
                raise AdapterError(f"could not reach Slack to refresh the token of workspace {team}: {error}") from None
            if refreshed is not None:
                await self._installations.async_save_bot(refreshed)
                log.info("refreshed the Slack token of workspace %s", team)
                bot = refreshed
        client = self._clients.get(team)
        if client is None:
            client = self._clients[team] = self._web_client(bot.bot_token)
        client.token = bot.bot_token
        return _Workspace(client, team, bot.bot_user_id, bot.bot_id, frozenset(bot.bot_scopes))

    async def _on_uninstalled(self, context: Any) -> None:
        """The workspace removed the app: its installation and tokens go (Slack revoked them already)."""
        assert self._installations is not None
        await self._installations.async_delete_all(enterprise_id=context.enterprise_id, team_id=context.team_id)
        self._clients.pop(str(context.team_id), None)
        log.warning("Slack workspace %s uninstalled Troupe: its installation and tokens are deleted; nothing is "
                    "posted there until it is installed again", context.team_id)

    async def _on_tokens_revoked(self, event: dict[str, Any], context: Any) -> None:
        """Tokens revoked in a workspace: the bot's (the workspace's installation goes quiet) or users'."""
        assert self._installations is not None
        tokens = event.get("tokens") or {}
        for user_id in tokens.get("oauth") or []:
            await self._installations.async_delete_installation(enterprise_id=context.enterprise_id,
                                                                team_id=context.team_id, user_id=user_id)
        if tokens.get("bot"):
            await self._installations.async_delete_bot(enterprise_id=context.enterprise_id, team_id=context.team_id)
            self._clients.pop(str(context.team_id), None)
            log.warning("Slack workspace %s revoked Troupe's bot token: it is deleted; nothing is posted there "
                        "until the app is installed again", context.team_id)

    async def _open_socket(self, app_token: str) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        assert self.app is not None and self.client is not None
        # apps.connections.open goes through the bot's client but with the app-level token.
        handler = AsyncSocketModeHandler(self.app, app_token, web_client=self.client,
                                         ping_interval=self.settings.ping_interval_s)
        try:
            # The first URL is asked for here, not by slack-sdk: its client retries every failure to
            # get one for ever, a refused token included, so a start would hang instead of saying
            # what to fix. Later reconnects are the library's (with this token, known good).
            opened = await self.client.apps_connections_open(app_token=app_token)
            handler.client.wss_uri = opened["url"]
            await handler.connect_async()
        except SlackApiError as error:
            await handler.close_async()
            code = _error_code(error)
            if _adapter_error(error, "apps.connections.open").retryable:
                # Slack's own trouble (5xx, rate limited): the start is tried again.
                raise AdapterError(f"Slack could not open a Socket Mode connection just now ({code or 'no answer'})") from None
            raise AdapterError(f"Slack refused the Socket Mode connection ({code}): check TROUPE_SLACK_APP_TOKEN "
                               "(an xapp- token with connections:write) and that Socket Mode is enabled",
                               retryable=False) from None
        except (TimeoutError, SlackClientError, aiohttp.ClientError, OSError) as error:
            await handler.close_async()
            raise AdapterError(f"could not open the Socket Mode connection: {error}") from None
        self._socket = handler

    async def _serve_http(self) -> str:
        """Listen for Slack's requests; returns the root URL served (``http://HOST:PORT``)."""
        assert self.app is not None
        server = AsyncSlackAppServer(port=self.http_port or 0, path=self.settings.http_path, app=self.app,
                                     host=self.settings.http_host)
        self._runner = web.AppRunner(server.web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.http_port or 0)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise AdapterError(f"could not listen on {self.settings.http_host}:{self.http_port}: {error}",
                               retryable=False) from None
        port = self._runner.addresses[0][1] if self._runner.addresses else self.http_port
        host = "127.0.0.1" if self.settings.http_host in ("0.0.0.0", "") else self.settings.http_host
        self.http_port = port
        self.http_url = f"http://{host}:{port}{self.settings.http_path}"
        return f"http://{host}:{port}"

    async def disconnect(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None
        await self._close_http()
        self._events.put_nowait(_Closed())

    async def listen(self) -> AsyncIterator[AdapterEvent]:
        while True:
            event = await self._events.get()
            if isinstance(event, _Closed):
                return
            yield event

    # -- incoming -------------------------------------------------------------------------------

    @staticmethod
    def _by_a_person(message: dict[str, Any], workspace: _Workspace) -> bool:
        """Written by someone (not a bot, not this app), and not an edit, a join or the like."""
        return (message.get("subtype") in _PERSON_SUBTYPES and not message.get("bot_id")
                and bool(message.get("user")) and message.get("user") != workspace.bot_user_id)

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
        """A message event: people's messages are heard once; bots', edits and joins are ignored."""
        await self._remember_team(context.enterprise_id, context.team_id)
        channel_id = self._scoped(context.team_id, str(event.get("channel", "")))
        workspace = await self._workspace(channel_id)
        if not self._by_a_person(event, workspace):
            return
        ts = str(event.get("ts", ""))
        if not self._seen.first_time(str(body.get("event_id", "")), f"{channel_id}/{ts}"):
            log.info("ignored a repeated delivery of message %s in %s", ts, channel_id)
            return
        text = _plain_text(str(event.get("text") or ""))
        if not text.strip():
            return
        user = await self._user(str(event["user"]), workspace)
        if user.is_bot:
            return
        thread = event.get("thread_ts")
        thread = str(thread) if thread and thread != ts else None
        channel = ChannelRef(platform="slack", id=channel_id, thread=thread)
        message = IncomingMessage(channel=channel, user=user, text=text, message_id=ts)
        keeping = message.keeping()
        self._events.put_nowait(message)
        # Acknowledged (this listener returning) once the bot has kept it: Slack sends an event nobody
        # acknowledged within 3 s again, so a worker killed before keeping it loses nothing.
        try:
            kept = await asyncio.wait_for(asyncio.shield(keeping), KEEP_WAIT_S)
        except TimeoutError:
            return  # still being written here: acknowledged rather than sent to a second worker
        if not kept:
            self._seen.forget(str(body.get("event_id", "")), f"{channel_id}/{ts}")
            raise AdapterError(f"could not keep message {ts} in {channel_id}; Slack will send it again")

    async def _on_command(self, ack: Callable[..., Any], command: dict[str, Any], context: Any) -> None:
        """``/troupe …``: acknowledged at once (Slack allows 3 s); the answer follows as messages."""
        await ack()
        text = str(command.get("text") or "").strip()
        await self._remember_team(context.enterprise_id, context.team_id)
        channel = ChannelRef(platform="slack", id=self._scoped(context.team_id, str(command.get("channel_id", ""))),
                             name=command.get("channel_name") or None)
        workspace = await self._workspace(channel.id)
        user = await self._user(str(command.get("user_id", "")), workspace, fallback_name=command.get("user_name"))
        self._tokens += 1
        token = f"slash-{self._tokens}"
        self._invocations[token] = _Invocation(command.get("response_url"))
        self._forget_expired()
        self._events.put_nowait(CommandInvocation(channel=channel, user=user, text=text, reply_token=token))

    def _forget_expired(self) -> None:
        for key in [k for k, v in self._invocations.items() if v.expired]:
            del self._invocations[key]

    async def _user(self, user_id: str, workspace: _Workspace, *, fallback_name: str | None = None) -> UserRef:
        """Who wrote: name, bot or not, workspace admin (manages channels), moderator user groups.

        With the app in many workspaces the person is ``TEAM:USER``, ``TEAM`` the channel's workspace:
        a moderator of another workspace writing in a channel shared with it is not one here, and their
        own workspace's admin rights give them nothing here."""
        profile = await self._profile(user_id, workspace)
        name = (profile.get("profile", {}) or {}).get("display_name") or profile.get("real_name") \
            or profile.get("name") or fallback_name or user_id
        roles = []
        for group in self.moderator_groups:
            if user_id in await self._group_members(group, workspace):
                roles.append(group)
        admin = bool(profile.get("is_admin") or profile.get("is_owner"))
        home = profile.get("team_id") or workspace.team_id
        return UserRef(id=self._scoped(workspace.team_id, user_id), name=str(name), is_bot=bool(profile.get("is_bot")),
                       roles=tuple(roles), can_manage=admin and (workspace.team_id is None or home == workspace.team_id))

    async def member(self, user: UserRef, channel: ChannelRef) -> UserRef | None:
        """``user`` in the channel's workspace now: admin or not, in the moderator user groups or not (as
        Slack said within ``PROFILE_TTL_S`` and ``GROUPS_TTL_S``); None once deactivated."""
        workspace = await self._workspace(channel.id)
        user_id = self._raw(user.id)
        current = await self._user(user_id, workspace, fallback_name=user.name)
        return None if (await self._profile(user_id, workspace)).get("deleted") else current

    async def _profile(self, user_id: str, workspace: _Workspace) -> dict[str, Any]:
        key = f"{workspace.team_id}/{user_id}"
        cached = self._users.get(key)
        if cached is not None and time.monotonic() - cached[0] < PROFILE_TTL_S:
            return cached[1]
        try:
            found = (await workspace.client.users_info(user=user_id)).get("user") or {}
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError, OSError) as error:
            log.info("could not look up Slack user %s: %s", user_id, error)
            return cached[1] if cached else {}
        self._users[key] = (time.monotonic(), found)
        return found

    async def _group_members(self, group_id: str, workspace: _Workspace) -> frozenset[str]:
        key = f"{workspace.team_id}/{group_id}"
        cached = self._groups.get(key)
        if cached is not None and time.monotonic() - cached[0] < GROUPS_TTL_S:
            return cached[1]
        if workspace.team_id in self._groups_unreadable:
            return frozenset()
        try:
            users = (await workspace.client.usergroups_users_list(usergroup=group_id)).get("users") or []
        except SlackApiError as error:
            if _error_code(error) == "missing_scope":
                self._groups_unreadable.add(workspace.team_id)
                log.warning("moderator user groups are configured but the app lacks usergroups:read")
            return cached[1] if cached else frozenset()
        except (TimeoutError, SlackClientError, aiohttp.ClientError, OSError):
            return cached[1] if cached else frozenset()
        members = frozenset(str(u) for u in users)
        self._groups[key] = (time.monotonic(), members)
        return members

    # -- answering ------------------------------------------------------------------------------

    async def reply_private(self, user: UserRef, channel: ChannelRef, text: str, *,
                            reply_token: str | None = None) -> None:
        await self._ephemeral(user, channel, to_mrkdwn(text), None, reply_token)

    async def _ephemeral(self, user: UserRef, channel: ChannelRef, text: str,
                         blocks: list[dict[str, Any]] | None, reply_token: str | None) -> None:
        """``chat.postEphemeral``; where the bot may not post, the command's response_url."""
        workspace = await self._workspace(channel.id)
        try:
            await workspace.client.chat_postEphemeral(channel=self._raw(channel.id), user=self._raw(user.id), text=clip(text, TEXT_MAX),
                                                 blocks=blocks, thread_ts=channel.thread)
            return
        except SlackApiError as error:
            failure: Exception = error
            if _error_code(error) not in ("not_in_channel", "channel_not_found", "user_not_in_channel"):
                raise _adapter_error(error, "a private reply") from error
        except (TimeoutError, SlackClientError, aiohttp.ClientError, OSError) as error:
            failure = error
        invocation = self._invocations.get(reply_token or "")
        if invocation is None or invocation.expired or not invocation.response_url:
            raise _adapter_error(failure, "a private reply")
        try:
            response = await AsyncWebhookClient(invocation.response_url).send(
                text=clip(text, TEXT_MAX), blocks=blocks, response_type="ephemeral")
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise _adapter_error(error, "a private reply") from error
        if response.status_code != 200:
            raise AdapterError(f"Slack refused a private reply: HTTP {response.status_code} {response.body}")

    async def reply(self, invocation: CommandInvocation, text: str) -> None:
        """A public answer, posted in the channel; where the app is not a member yet, through the
        command's response_url with a hint to invite it (persona posts need it in the channel)."""
        try:
            await self.announce(invocation.channel, text, invocation.channel.thread)
            return
        except AdapterError as error:
            invited = "not_in_channel" not in str(error) and "channel_not_found" not in str(error)
            entry = self._invocations.get(invocation.reply_token or "")
            if invited or entry is None or entry.expired or not entry.response_url:
                raise
        hint = "\n_Invite me to this channel (`/invite @Troupe`) so the personas can post here._"
        response = await AsyncWebhookClient(entry.response_url).send(
            text=clip(to_mrkdwn(text) + hint, TEXT_MAX), response_type="in_channel")
        if response.status_code != 200:
            raise AdapterError(f"Slack refused a reply: HTTP {response.status_code} {response.body}")

    async def post_card(self, channel: ChannelRef, card: Card, *, invocation: CommandInvocation | None = None,
                        private: bool = False, thread: str | None = None) -> str | None:
        """A card as Block Kit; its image (a chart) is uploaded right after it, in the same place."""
        blocks = card_blocks(card)
        fallback = clip(to_mrkdwn(card.as_text()), TEXT_MAX)
        thread = thread or channel.thread
        if invocation is not None and private:
            await self._ephemeral(invocation.user, channel, fallback, blocks, invocation.reply_token)
            return None
        ts = await self._send(channel.id, fallback, blocks=blocks, thread=thread, what="a card")
        if card.image is not None:
            await self.upload(channel, card.image[0], card.image[1], thread=thread)
        return ts

    async def progress(self, channel: ChannelRef, text: str, *, handle: str | None = None,
                     thread: str | None = None) -> str | None:
        """Progress of long work in one message: posted once, then updated with ``chat.update``."""
        if handle is not None:
            workspace = await self._workspace(channel.id)
            try:
                await workspace.client.chat_update(channel=self._raw(channel.id), ts=handle, text=to_mrkdwn(text))
                return handle
            except SlackApiError as error:
                if _error_code(error) not in ("message_not_found", "cant_update_message"):
                    raise _adapter_error(error, "a status update") from error
            except (TimeoutError, SlackClientError, aiohttp.ClientError, OSError) as error:
                raise _adapter_error(error, "a status update") from error
        return await self._send(channel.id, to_mrkdwn(text), thread=thread or channel.thread, what="a status message")

    async def upload(self, channel: ChannelRef, filename: str, data: bytes, comment: str = "", *,
                     thread: str | None = None) -> str | None:
        """Share a file in the channel (``files.getUploadURLExternal`` + ``files.completeUploadExternal``)."""
        workspace = await self._workspace(channel.id)
        try:
            response = await workspace.client.files_upload_v2(
                channel=self._raw(channel.id), file=data, filename=filename, title=filename,
                initial_comment=to_mrkdwn(comment) if comment else None, thread_ts=thread or channel.thread)
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError, OSError) as error:
            log.warning("upload of %s failed: %s", filename, error)
            return None
        files = response.get("files") or [response.get("file") or {}]
        return str(files[0].get("id")) if files and files[0].get("id") else filename

    # -- posting --------------------------------------------------------------------------------

    async def post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None = None) -> str:
        """Under the persona's own name and icon (``chat:write.customize``); without that scope, through
        the bot with the persona's name leading every piece."""
        thread = thread or channel.thread
        workspace = await self._workspace(channel.id)
        if workspace.can_customize:
            bodies = [to_mrkdwn(piece) for piece in split_message(text, self.max_message_length)]
            return await self._send_all(channel.id, bodies, identity=identity, thread=thread, what="a persona message",
                                        workspace=workspace)
        await self._explain_no_customize(channel.id, workspace)
        return await self._send_all(channel.id, self._on_behalf(identity, text), thread=thread, what="a persona message",
                                    workspace=workspace)

    def _on_behalf(self, identity: Identity, text: str) -> list[str]:
        """The pieces of a persona's post made through the bot, each led by the persona's name."""
        prefix = fallback_prefix(identity)
        return [prefix + to_mrkdwn(piece)
                for piece in split_message(unlabelled(text), self.max_message_length - len(prefix))]

    async def announce(self, channel: ChannelRef, text: str, thread: str | None = None) -> str:
        bodies = [to_mrkdwn(piece) for piece in split_message(text, self.max_message_length)]
        return await self._send_all(channel.id, bodies, thread=thread or channel.thread, what="a message")

    async def _send_all(self, channel_id: str, bodies: list[str], *, identity: Identity | None = None,
                        thread: str | None, what: str, workspace: _Workspace | None = None) -> str:
        first: str | None = None
        workspace = workspace or await self._workspace(channel_id)
        for body in bodies:
            ts = await self._send(channel_id, body, identity=identity, thread=thread, what=what, workspace=workspace)
            first = first or ts
        assert first is not None
        return first

    async def _send(self, channel_id: str, text: str, *, identity: Identity | None = None,
                    blocks: list[dict[str, Any]] | None = None, thread: str | None = None, what: str,
                    workspace: _Workspace | None = None) -> str:
        workspace = workspace or await self._workspace(channel_id)
        options: dict[str, Any] = {}
        if identity is not None:
            options["username"] = identity.display_name(USERNAME_MAX)
            if identity.avatar_url:
                options["icon_url"] = identity.avatar_url
        try:
            response = await workspace.client.chat_postMessage(
                channel=self._raw(channel_id), text=text, blocks=blocks, thread_ts=thread, unfurl_links=False,
                unfurl_media=False, **options)
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError, OSError) as error:
            raise _adapter_error(error, what) from error
        return str(response.get("ts"))

    async def _explain_no_customize(self, channel_id: str, workspace: _Workspace) -> None:
        """Say once per channel why personas post as the bot here."""
        if channel_id in self._no_customize_told or not workspace.scopes:
            return  # told already, or the scopes are unknown (Slack did not say): nothing sure to tell
        self._no_customize_told.add(channel_id)
        text = ("This app lacks the chat:write.customize scope, so personas post through me with their name in "
                "bold. Reinstall the app from config/slack-manifest.yaml to let each persona post under its own "
                "name and icon.")
        try:
            await self._send(channel_id, text, what="a notice", workspace=workspace)
        except AdapterError as error:
            log.warning("could not explain the missing scope: %s", error)

    def message_id_at(self, when: datetime) -> str | None:
        """A message's ``ts`` is its time in seconds."""
        return f"{when.timestamp():.6f}"

    async def catch_up(self, channel: ChannelRef, after: str) -> list[IncomingMessage]:
        """People's messages after ``after`` (a ``ts``), oldest first, each with its thread.

        A thread's come from ``conversations.replies`` (which lists the thread's first message too,
        whatever ``oldest`` says). A channel's from ``conversations.history``, which leaves out
        replies in threads: so the replies since ``after`` of every thread that got any are read too.
        A thread's first message tells when its latest reply came; threads started up to
        ``THREAD_LOOKBACK_S`` before ``after`` are looked at, in the same read of the history.
        """
        workspace = await self._workspace(channel.id)
        client, raw = workspace.client, self._raw(channel.id)
        try:
            if channel.thread:
                found = await _pages(client.conversations_replies, channel=raw, ts=channel.thread, oldest=after)
            else:
                # Newest first: what came after ``after``, then the threads started before it.
                found = await _pages(client.conversations_history, most=2 * CATCH_UP_MAX, channel=raw,
                                     oldest=f"{float(after) - THREAD_LOOKBACK_S:.6f}")
                for start in [m for m in found if _replied_after(m, after)]:
                    found += await _pages(client.conversations_replies, channel=raw, ts=start["ts"], oldest=after)
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError, OSError) as error:
            raise _adapter_error(error, "reading the channel's history") from error
        # By ts: a reply also sent to the channel is found in its thread and in the channel; and
        # neither the history read for older threads nor a thread's first message is news.
        by_ts = {str(m["ts"]): m for m in found
                 if float(m.get("ts", 0)) > float(after) and m.get("ts") != channel.thread}
        missed: list[IncomingMessage] = []
        for ts in sorted(by_ts, key=float)[:CATCH_UP_MAX]:
            message = by_ts[ts]
            if not self._by_a_person(message, workspace):
                continue
            text = _plain_text(str(message.get("text") or ""))
            if not text.strip() or f"{channel.id}/{ts}" in self._seen:
                continue  # (delivered as an event; a catch-up only reads, the bot hears each message once)
            user = await self._user(str(message["user"]), workspace)
            if not user.is_bot:
                thread = message.get("thread_ts")
                missed.append(IncomingMessage(
                    channel=ChannelRef(platform="slack", id=channel.id, name=channel.name,
                                       thread=str(thread) if thread and thread != ts else None),
                    user=user, text=text, message_id=ts))
        return missed

    async def find_post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None,
                        since: datetime, taken: Collection[str] = ()) -> str | None:
        """Our post of ``text`` as ``identity`` in the channel's (or thread's) history since ``since``."""
        workspace = await self._workspace(channel.id)
        wanted = {to_mrkdwn(split_message(text, self.max_message_length)[0]), self._on_behalf(identity, text)[0]}
        username = identity.display_name(USERNAME_MAX)
        oldest = f"{since.timestamp() - 5:.6f}"
        thread = thread or channel.thread
        found: str | None = None
        for message in await self._history_since(workspace, channel, thread, oldest):
            ours = message.get("bot_id") == workspace.bot_id or message.get("user") == workspace.bot_user_id
            named = message.get("username") in (username, None)
            ts = str(message.get("ts"))
            if ours and named and message.get("text") in wanted and ts not in taken and (found is None or float(ts) < float(found)):
                found = ts  # the earliest: the same words posted twice are two messages
        return found

    async def _history_since(self, workspace: _Workspace, channel: ChannelRef, thread: str | None,
                             oldest: str) -> list[dict[str, Any]]:
        """Every message of the channel (or thread) after ``oldest``, a page of 200 at a time: Slack
        gives the newest page first, so one page of a busy channel misses the earliest posts."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            while True:
                if thread:
                    response = await workspace.client.conversations_replies(
                        channel=self._raw(channel.id), ts=thread, oldest=oldest, limit=200, cursor=cursor)
                else:
                    response = await workspace.client.conversations_history(
                        channel=self._raw(channel.id), oldest=oldest, limit=200, cursor=cursor)
                messages += response.get("messages") or []
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not response.get("has_more") or not cursor:
                    return messages
                if len(messages) >= HISTORY_LOOKED_MAX:
                    raise AdapterError(f"could not check the channel's history: more than {HISTORY_LOOKED_MAX} "
                                       "messages since the post was written")
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError, OSError) as error:
            raise _adapter_error(error, "reading the channel's history") from error

    async def typing(self, channel: ChannelRef, identity: Identity | None = None) -> None:
        """Slack offers bots no typing indicator in channels; progress shows through ``status`` instead."""

    async def open_thread(self, channel: ChannelRef, title: str, text: str) -> OpenedThread:
        """A thread is a message's replies: ``text`` is posted in the channel and starts it."""
        ts = await self._send(channel.id, to_mrkdwn(text), what="the first message of a thread")
        return OpenedThread(id=ts, link="a thread")


_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")


def _warn_of_unscoped_moderators(user_ids: list[str]) -> None:
    """Slack moderators named without their workspace moderate nowhere once the app is in many."""
    bare = [u.strip() for u in user_ids if _SLACK_USER.fullmatch(u.strip().removeprefix("slack:"))]
    if bare:
        log.warning("bot.moderator_user_ids names Slack users without their workspace (%s): with the app in many "
                    "workspaces write each as slack:TEAM:USER (e.g. slack:T0123ABCD:U0456EFGH), so they moderate in "
                    "their own workspace only; as written they moderate nowhere", ", ".join(bare))


async def _ignore(ack: Callable[..., Any] | None = None) -> None:
    """Events the manifest subscribes to but Troupe does not act on: handled, so Slack does not retry."""


def _secret(value: Any) -> str:
    return value.get_secret_value().strip() if value is not None else ""


def _api_base(base: str) -> str:
    return base if base.endswith("/") else base + "/"


_MENTION = re.compile(r"<([@#!])([^>|]+)(?:\|([^>]*))?>")
_URL = re.compile(r"<((?:https?|mailto):[^>|]+)(?:\|([^>]*))?>")


async def _pages(method: Callable[..., Awaitable[Any]], *, most: int = CATCH_UP_MAX,
                 **params: Any) -> list[dict[str, Any]]:
    """The messages a paginated ``conversations.*`` read lists, page after page until ``most``."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(found) < most:
        response = await method(**params, limit=200, cursor=cursor)
        found += response.get("messages") or []
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not response.get("has_more") or not cursor:
            break
    return found


def _replied_after(message: dict[str, Any], after: str) -> bool:
    """Whether ``message`` starts a thread whose latest reply came after ``after``."""
    thread, latest = message.get("thread_ts"), message.get("latest_reply")
    return thread == message.get("ts") and latest is not None and float(latest) > float(after)


def _plain_text(text: str) -> str:
    """A Slack message as a person reads it: ``<@U1|ana>`` → ``@ana``, ``<url|label>`` → ``label (url)``."""

    def mention(match: re.Match[str]) -> str:
        sigil, ident, label = match.groups()
        if sigil == "!":
            return "@" + (label or ident.split("^")[0])
        return ("@" if sigil == "@" else "#") + (label or ident)

    def link(match: re.Match[str]) -> str:
        url, label = match.groups()
        return f"{label} ({url})" if label and label != url else url

    text = _URL.sub(link, text)
    text = _MENTION.sub(mention, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
