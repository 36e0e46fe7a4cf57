"""Discord as a chat platform, through discord.py.

Slash commands (``/troupe …``, built from the commands the application offers) become
``CommandInvocation``s whose ``text`` is the equivalent command line; channel messages become
``IncomingMessage``s. Personas post through the channel's webhook (``webhooks``); cards are embeds
(``embeds``). Status lines of long work are one bot message, edited as the work goes on.

Sharding: with ``shard_count`` (and optionally ``shard_ids``) set, this process runs those shards of
the deployment (``shards``) and hears only their guilds' events; direct messages reach shard 0.
Application commands are registered once per deployment: by the process that runs shard 0 (every
process when unsharded, since it runs them all), so that workers starting together do not
overwrite each other's registration or spend the rate limit on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands

from adapters.base import (
    HISTORY_LOOKED_MAX,
    Adapter,
    AdapterError,
    AdapterEvent,
    AdapterState,
    Card,
    ChannelRef,
    CommandInvocation,
    Identity,
    IncomingMessage,
    OpenedThread,
    Suggestions,
    UserRef,
    clip,
    split_message,
)
from adapters.discord.commands import choices, command_group
from adapters.discord.embeds import card_embed, card_file
from adapters.discord.errors import NETWORK_ERRORS, post_error
from adapters.discord.shards import ShardedClient, runs_shard_zero
from adapters.discord.webhooks import (
    REFUSED_NAME_PARTS,
    NoWebhooks,
    Webhooks,
    fallback_prefix,
    unlabelled,
    webhook_username,
)
from adapters.menu import MenuCommand
from config.settings import DiscordSettings, Settings

log = logging.getLogger(__name__)

#: Follow-ups to an interaction are accepted for 15 minutes; stay clear of the edge.
INTERACTION_TTL_S = 14 * 60
#: Seconds a member's roles and permissions, as asked of Discord, are taken as current.
MEMBER_TTL_S = 60.0
#: Most messages read back at start-up from a channel's history.
CATCH_UP_MAX = 500
#: Archived threads a channel's catch-up looks at, most recently archived first.
ARCHIVED_THREADS_MAX = 100
#: Gateway close codes that refuse the shard count, with what to do about it.
SHARDING_REFUSED = {
    4010: "Discord refused the shard settings (invalid shard): give every process the same --shard-count "
          "(TROUPE_DISCORD_SHARD_COUNT, {count} here) and shard ids below it",
    4011: "Discord requires more shards: the bot is in too many servers for {count} shard(s); set --shard-count "
          "(TROUPE_DISCORD_SHARD_COUNT) to at least Discord's recommended {recommended}, in every process, or "
          "leave it unset to run the recommended count here",
}


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
        self.client, self.tree = self._new_client()
        self._events: asyncio.Queue[AdapterEvent | _Closed] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._runner: asyncio.Task | None = None
        self._pending: dict[str, _Pending] = {}
        #: The latest interaction of a user in a channel, for private messages that answer no command.
        self._recent: dict[tuple[str, str], _Pending] = {}
        self.webhooks = Webhooks(self)
        #: Members as Discord last described them, by (user id, channel id): (when, who, or None if gone).
        self._members: dict[tuple[str, str], tuple[float, UserRef | None]] = {}

    @property
    def bot_names(self) -> tuple[str, ...]:
        user = self.client.user
        names = [self.bot_identity.name]
        if user is not None:
            names += [n for n in (user.name, user.global_name, user.display_name) if n]
        return tuple(dict.fromkeys(names))

    @property
    def where(self) -> str:
        shards = self.settings.shards
        if self.settings.shard_count is None:
            return f"on Discord as {self.client.user}"
        running = "all" if shards is None else ", ".join(map(str, shards))
        return f"on Discord as {self.client.user}, shards {running} of {self.settings.shard_count}"

    def message_id_at(self, when: datetime) -> str | None:
        """A snowflake carries its time: the lowest one of ``when``."""
        return str(discord.utils.time_snowflake(when))

    def runs_here(self, channel_id: str) -> bool | None:
        """Its guild's events reach the process running the guild's shard only: a channel this
        process knows (its guild on one of the shards it runs, and connected) is kept here, and
        any other is left to the process that runs its shard."""
        try:
            return self.client.get_channel(int(channel_id)) is not None
        except ValueError:
            return False

    @property
    def syncs_commands(self) -> bool:
        """Whether this process registers the slash commands: the one running shard 0 does."""
        return runs_shard_zero(self.settings.shards)

    def attach(self, state: AdapterState | None, commands: Sequence[MenuCommand], suggestions: Suggestions) -> None:
        super().attach(state, commands, suggestions)
        self._offer_commands(self.tree)

    def _new_client(self) -> tuple[ShardedClient, app_commands.CommandTree]:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.message_content = True
        # Without a shard count, as many shards as Discord recommends (one for most bots), all here.
        client = ShardedClient(intents=intents, allowed_mentions=discord.AllowedMentions.none(),
                               shard_count=self.settings.shard_count, shard_ids=self.settings.shards)
        tree = app_commands.CommandTree(client)
        self._offer_commands(tree)
        client.event(self.on_ready)
        client.event(self.on_message)
        return client, tree

    def _offer_commands(self, tree: app_commands.CommandTree) -> None:
        """``/troupe`` with the application's commands, in place of any offered before."""
        tree.clear_commands(guild=None)
        if self.commands:
            tree.add_command(command_group(self.commands, self._invoke, {"personas": self._complete_persona,
                                                                         "bundled": self._complete_bundled}))

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
        try:
            await self.client.learn_identify_limits()
        except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
            log.warning("could not ask Discord how many shards may start at once (starting one at a time): %s",
                        error)
        self._runner = asyncio.ensure_future(self.client.connect(reconnect=True))
        self._runner.add_done_callback(self._connection_ended)
        ready = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait({self._runner, ready}, timeout=self._ready_timeout(),
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            error = self._runner.exception() if self._runner.done() else None
            await self.client.close()
            if isinstance(error, discord.PrivilegedIntentsRequired):
                raise AdapterError("enable the Message Content intent: Developer Portal → your application → Bot → "
                                   "Privileged Gateway Intents", retryable=False)
            if isinstance(error, discord.ConnectionClosed) and error.code in SHARDING_REFUSED:
                count = self.settings.shard_count or self.client.shard_count
                raise AdapterError(SHARDING_REFUSED[error.code].format(count=count,
                                                                       recommended=self.client.recommended_shards),
                                   retryable=False)
            raise AdapterError(f"could not connect to the Discord gateway: {error or 'timed out'}")
        if self.syncs_commands:
            await self._sync_commands()
        else:
            log.info("slash commands are left to the process running shard 0")

    def _ready_timeout(self) -> float:
        """Seconds to wait for every shard to be ready: a minute, and 5 s for each round of IDENTIFYs."""
        rounds = -(-self.client.shards_to_start() // self.client.identify_pacer.max_concurrency)
        return 60.0 + self.client.identify_pacer.interval * rounds

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
            target = await self.fetch_channel(channel.thread or channel.id)
            guild = getattr(target, "guild", None)
            if guild is None:  # a direct message: nobody's roles to look up
                return user
            try:
                found: UserRef | None = self._user(await guild.fetch_member(int(user.id)), target)
            except discord.NotFound:
                found = None
        except (TimeoutError, discord.HTTPException, aiohttp.ClientError, OSError, ValueError) as error:
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
        """A channel message (or one in a thread of it): ours and other bots' are ignored."""
        if self.webhooks.is_own(message.webhook_id):
            return
        if message.author.bot or (self.client.user is not None and message.author.id == self.client.user.id):
            return
        if message.guild is None or not message.content.strip():
            return
        channel = self._channel_ref(message.channel)
        user = self._user(message.author, message.channel)
        self._events.put_nowait(IncomingMessage(channel=channel, user=user, text=message.content,
                                                message_id=str(message.id)))

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
            raise post_error(error, "a private reply") from error

    async def reply(self, invocation: CommandInvocation, text: str) -> None:
        pending = self._live_pending(invocation.reply_token)
        if pending is None:
            await self.announce(invocation.channel, text, invocation.channel.thread)
            return
        try:
            await self._answer(pending, text, ephemeral=False)
        except discord.HTTPException as error:
            raise post_error(error, "a reply") from error

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
                            await self.send_as_bot(ref.thread or ref.id, piece)
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
        except NETWORK_ERRORS as error:
            raise post_error(error, "a card") from error

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
        except NETWORK_ERRORS as error:
            raise post_error(error, "a private card") from error

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
        channel = await self.fetch_channel(target_id)
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
                target = await self.fetch_channel(where)
                await target.get_partial_message(int(message_id)).edit(
                    content=text, allowed_mentions=discord.AllowedMentions.none())
                return handle
            except discord.NotFound:
                log.info("the status message %s is gone; posting a new one", handle)
            except ValueError:
                log.warning("not a status handle: %r", handle)
            except NETWORK_ERRORS as error:
                raise post_error(error, "a status update") from error
        target_id = thread or channel.thread or channel.id
        return f"{target_id}/{await self.send_as_bot(target_id, text)}"

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
        try:
            return await self.webhooks.post(channel.id, identity, split_message(text, self.max_message_length), thread)
        except NoWebhooks:
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
            message_id = await self.send_as_bot(target_id, piece)
            first = first or message_id
        assert first is not None
        return first

    async def send_as_bot(self, target_id: str, text: str) -> str:
        try:
            target = await self.fetch_channel(target_id)
            message = await target.send(text, allowed_mentions=discord.AllowedMentions.none())
        except NETWORK_ERRORS as error:
            raise post_error(error, "a message") from error
        return str(message.id)

    async def fetch_channel(self, channel_id: str) -> Any:
        channel = self.client.get_channel(int(channel_id))
        if channel is None:
            channel = await self.client.fetch_channel(int(channel_id))
        return channel

    async def catch_up(self, channel: ChannelRef, after: str) -> list[IncomingMessage]:
        """People's messages after message ``after``, oldest first, each with its thread.

        A thread is a channel of its own, whose history the parent's leaves out: a channel's
        catch-up also reads each of its threads that has had a message since: the active ones as
        the gateway lists them, and the public ones archived since (a thread is archived after a
        day or so without a message, so a long stop leaves its replies in one). Ids grow with time
        across channels, so one ``after`` serves them all.
        """
        missed: list[IncomingMessage] = []
        try:
            targets: list[Any] = [await self.fetch_channel(channel.thread or channel.id)]
            if channel.thread is None:
                threads = [*getattr(targets[0], "threads", ()), *await self._archived_since(targets[0], int(after))]
                targets += [thread for thread in {t.id: t for t in threads}.values()
                            if thread.last_message_id is None or thread.last_message_id > int(after)]
            for target in targets:
                async for message in target.history(limit=CATCH_UP_MAX, after=discord.Object(id=int(after)),
                                                    oldest_first=True):
                    if message.webhook_id is not None or message.author.bot or not message.content.strip():
                        continue
                    missed.append(IncomingMessage(channel=self._channel_ref(message.channel),
                                                  user=self._user(message.author, message.channel),
                                                  text=message.content, message_id=str(message.id)))
        except (TimeoutError, discord.HTTPException, aiohttp.ClientError, OSError, ValueError) as error:
            raise post_error(error if not isinstance(error, ValueError) else OSError(str(error)),
                              "reading the channel's history") from error
        return sorted(missed, key=lambda m: int(m.message_id))[:CATCH_UP_MAX]

    @staticmethod
    async def _archived_since(channel: Any, after: int) -> list[Any]:
        """``channel``'s public threads archived after message ``after`` was sent (listing them
        takes the permission reading the history takes)."""
        if not hasattr(channel, "archived_threads"):
            return []
        since = discord.utils.snowflake_time(after)
        found = []
        async for thread in channel.archived_threads(limit=ARCHIVED_THREADS_MAX):
            if thread.archive_timestamp < since:
                break  # archived before it: nothing in it is newer
            found.append(thread)
        return found

    async def find_post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None,
                        since: datetime, taken: Collection[str] = ()) -> str | None:
        """Our post of ``text`` as ``identity`` in the channel's (or thread's) recent history."""
        first = split_message(text, self.max_message_length)[0]
        prefixed = self._on_behalf(identity, text)[0]
        username = webhook_username(identity)
        me = self.client.user.id if self.client.user is not None else None
        read = 0
        try:
            target = await self.fetch_channel(thread or channel.thread or channel.id)
            # discord.py reads the history 100 messages a request, oldest first, until it ends or the limit.
            history = target.history(limit=HISTORY_LOOKED_MAX + 1, after=since - timedelta(seconds=5), oldest_first=True)
            async for message in history:
                read += 1
                by_webhook = message.webhook_id is not None and message.author.name == username and message.content == first
                by_bot = me is not None and message.author.id == me and message.content == prefixed
                if (by_webhook or by_bot) and str(message.id) not in taken:
                    return str(message.id)  # the earliest: the same words posted twice are two messages
        except NETWORK_ERRORS as error:
            raise post_error(error, "reading the channel's history") from error
        if read > HISTORY_LOOKED_MAX:
            raise AdapterError(f"could not check the channel's history: more than {HISTORY_LOOKED_MAX} messages "
                               "since the post was written")
        return None

    async def typing(self, channel: ChannelRef, identity: Identity | None = None) -> None:
        with contextlib.suppress(Exception):
            target = await self.fetch_channel(channel.thread or channel.id)
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
            target = await self.fetch_channel(channel.thread or channel.id)
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

    # -- slash commands and threads --------------------------------------------------------------

    async def _complete_persona(self, interaction: discord.Interaction,
                                current: str) -> list[app_commands.Choice[str]]:
        if interaction.channel is None:
            return []
        try:
            names = self.suggestions.personas(self._channel_ref(interaction.channel))
        except Exception:
            log.warning("persona autocomplete failed", exc_info=True)
            names = []
        return choices(names, current)

    async def _complete_bundled(self, interaction: discord.Interaction,
                                current: str) -> list[app_commands.Choice[str]]:
        names: list[str] = []
        with contextlib.suppress(Exception):
            names = self.suggestions.bundled_personas()
        return choices(names, current)

    async def open_thread(self, channel: ChannelRef, title: str, text: str) -> OpenedThread:
        """A public thread in the channel, which stays open a day without messages."""
        try:
            parent = await self.fetch_channel(channel.id)
            if not isinstance(parent, discord.TextChannel):
                raise AdapterError("threads open from a text channel", retryable=False)
            thread = await parent.create_thread(name=title[:100], type=discord.ChannelType.public_thread,
                                                auto_archive_duration=1440)
            await thread.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as error:
            raise AdapterError(error.text or str(error), retryable=False) from error
        except NETWORK_ERRORS as error:
            raise post_error(error, "a thread") from error
        return OpenedThread(id=str(thread.id), link=thread.mention)
