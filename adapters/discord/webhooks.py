"""Personas post through one webhook per channel, so each appears under its own name and avatar
(with its tag, e.g. ``Priya Nair (demo model)``); without the Manage Webhooks permission they post
through the bot as ``**Name:** text``.

A channel's webhook is cached in memory and in the application's storage (``Adapter.state``), so a
restart posts through the same webhook without asking Discord; without stored state the bot's
existing webhook is found again through the channel's webhook list, else a new one is created.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from typing import Any, Protocol

import aiohttp
import discord

from adapters.base import SPEAKER_LABEL, AdapterError, AdapterState, Identity, literal
from adapters.discord.errors import NETWORK_ERRORS, post_error

log = logging.getLogger(__name__)

#: Discord's limits on a webhook execution's username.
USERNAME_MAX = 80
#: Words Discord refuses anywhere in a webhook username (case-insensitive).
REFUSED_NAME_PARTS = ("discord", "clyde")
_REFUSED_IN_NAMES = re.compile("|".join(REFUSED_NAME_PARTS), re.IGNORECASE)
#: Discord's JSON error code for an unknown (deleted) webhook.
UNKNOWN_WEBHOOK = 10015
WEBHOOK_NAME = "Troupe"


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


class NoWebhooks(Exception):
    """Webhooks may not be created in this channel."""


class WebhookHost(Protocol):
    """What the webhooks need of the adapter: its client and storage, and channels to talk in."""

    state: AdapterState | None

    @property
    def client(self) -> discord.Client: ...

    async def fetch_channel(self, channel_id: str) -> Any: ...

    async def send_as_bot(self, target_id: str, text: str) -> str: ...


class Webhooks:
    """The webhook of every channel personas post in."""

    def __init__(self, host: WebhookHost) -> None:
        self.host = host
        self._webhooks: dict[str, discord.Webhook] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._own_ids: set[int] = set()
        #: Channels where webhooks may not be created: personas post through the bot.
        self._refused: set[str] = set()

    def is_own(self, webhook_id: int | None) -> bool:
        """Whether a message came through one of the bot's webhooks (its own persona posts)."""
        return webhook_id is not None and webhook_id in self._own_ids

    async def post(self, channel_id: str, identity: Identity, pieces: list[str], thread: str | None) -> str:
        """Post ``pieces`` as ``identity``; the first message's id. Raises ``NoWebhooks`` where the
        bot may not have any."""
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
                        await self._drop(channel_id, webhook)
                        continue
                    raise post_error(error, "a persona message") from error
                except NETWORK_ERRORS as error:
                    raise post_error(error, "a persona message") from error
                first = first or str(message.id)
                break
        assert first is not None
        return first

    async def _drop(self, channel_id: str, webhook: discord.Webhook) -> None:
        """Forget a webhook Discord no longer knows, here and in storage, before making another."""
        if self._webhooks.get(channel_id) is webhook:
            del self._webhooks[channel_id]
        state = self.host.state
        if state is not None:
            try:
                await state.set(_webhook_key(channel_id), None)
            except Exception:
                log.warning("could not forget the stored webhook of channel %s", channel_id, exc_info=True)

    async def _stored(self, channel_id: str) -> discord.Webhook | None:
        state = self.host.state
        if state is None:
            return None
        try:
            stored = await state.get(_webhook_key(channel_id))
        except Exception:  # storage trouble: fall back to asking Discord
            log.warning("could not read the stored webhook of channel %s", channel_id, exc_info=True)
            return None
        if not stored or not stored.get("token"):
            return None
        return discord.Webhook.partial(int(stored["id"]), stored["token"], client=self.host.client)

    async def _store(self, channel_id: str, webhook: discord.Webhook) -> None:
        state = self.host.state
        if state is None or not webhook.token:
            return
        try:
            await state.set(_webhook_key(channel_id), {"id": str(webhook.id), "token": webhook.token})
        except Exception:
            log.warning("could not store the webhook of channel %s", channel_id, exc_info=True)

    async def _webhook(self, channel_id: str) -> discord.Webhook:
        """The channel's webhook: cached, else the bot's existing one, else a new one."""
        if channel_id in self._refused:
            raise NoWebhooks()
        async with self._locks[channel_id]:
            webhook = self._webhooks.get(channel_id)
            if webhook is not None:
                return webhook
            webhook = await self._stored(channel_id)
            if webhook is not None:
                self._webhooks[channel_id] = webhook
                self._own_ids.add(webhook.id)
                return webhook
            try:
                channel = await self.host.fetch_channel(channel_id)
            except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
                raise post_error(error, "access to the channel") from error
            try:
                webhook = await self._existing(channel) or await channel.create_webhook(name=WEBHOOK_NAME)
            except discord.Forbidden:
                self._refused.add(channel_id)
                await self._explain_refusal(channel_id)
                raise NoWebhooks() from None
            except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
                raise post_error(error, "creating the channel's webhook") from error
            self._webhooks[channel_id] = webhook
            self._own_ids.add(webhook.id)
            await self._store(channel_id, webhook)
            return webhook

    async def _existing(self, channel: Any) -> discord.Webhook | None:
        me = self.host.client.user
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

    async def _explain_refusal(self, channel_id: str) -> None:
        """Say once, in the channel, why personas post through the bot here."""
        text = ("I lack the Manage Webhooks permission in this channel, so personas post through me with their "
                "name in bold. Give me Manage Webhooks to let each persona post under its own name and avatar.")
        try:
            await self.host.send_as_bot(channel_id, text)
        except AdapterError as error:
            log.warning("could not explain the missing webhook permission: %s", error)


def _webhook_key(channel_id: str) -> str:
    return f"webhook:{channel_id}"
