"""Where a Slack app installed in many workspaces keeps what each installation gave it, and the
one-time ``state`` of each installation under way: in the bot's database (the adapter's state), so
every worker sees the same and a restart loses nothing.

These are slack-sdk's ``AsyncInstallationStore`` and ``AsyncOAuthStateStore``, as Bolt uses them.
A workspace's bot token lives in one record only (``bot:``): when it is refreshed, revoked or the app
uninstalled, no copy of it is left behind in the installation records.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from adapters.base import AdapterState

log = logging.getLogger(__name__)

#: Keys in the adapter's state: a workspace's bot, its latest installation, each installer's own
#: installation, the list of its installers; an installation link's state.
BOT = "bot:"
INSTALLATION = "installation:"
INSTALLERS = "installers:"
STATE = "oauth_state:"
#: An installation's fields that belong to the bot (kept in the ``bot:`` record only).
_BOT_FIELDS = ("bot_token", "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token", "bot_token_expires_at")


def workspace_key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False) -> str:
    """``ENTERPRISE:TEAM`` (``-`` where there is none); an organisation-wide install has no team."""
    team = None if is_enterprise_install else team_id
    return f"{enterprise_id or '-'}:{team or '-'}"


class StoredInstallations(AsyncInstallationStore):
    """Installations and their bot tokens, in the adapter's state."""

    def __init__(self, state: AdapterState) -> None:
        self.state = state

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        where = workspace_key(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        if installation.bot_token:
            await self.async_save_bot(installation.to_bot())
        record = {k: v for k, v in vars(installation).items() if k not in _BOT_FIELDS}
        user = installation.user_id or "-"
        await self.state.set(f"{INSTALLATION}{where}", record)
        await self.state.set(f"{INSTALLATION}{where}:{user}", record)
        installers = await self.state.get(f"{INSTALLERS}{where}") or {"users": []}
        if user not in installers["users"]:
            await self.state.set(f"{INSTALLERS}{where}", {"users": [*installers["users"], user]})

    async def async_save_bot(self, bot: Bot) -> None:
        if not bot.bot_token:
            return
        where = workspace_key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        await self.state.set(f"{BOT}{where}", dict(vars(bot)))

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        record = await self.state.get(f"{BOT}{workspace_key(enterprise_id, team_id, is_enterprise_install)}")
        return Bot(**record) if record else None

    async def async_find_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                      user_id: str | None = None,
                                      is_enterprise_install: bool | None = False) -> Installation | None:
        """The workspace's latest installation (or ``user_id``'s own), with the workspace's bot as it is now."""
        where = workspace_key(enterprise_id, team_id, is_enterprise_install)
        key = f"{INSTALLATION}{where}" + (f":{user_id}" if user_id is not None else "")
        record = await self.state.get(key)
        if record is None:
            return None
        installation = Installation(**record)
        bot = await self.async_find_bot(enterprise_id=enterprise_id, team_id=team_id,
                                        is_enterprise_install=is_enterprise_install)
        if bot is not None:
            installation.bot_token, installation.bot_id, installation.bot_user_id = bot.bot_token, bot.bot_id, bot.bot_user_id
            installation.bot_scopes = bot.bot_scopes
            installation.bot_refresh_token, installation.bot_token_expires_at = bot.bot_refresh_token, bot.bot_token_expires_at
        return installation

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.state.set(f"{BOT}{workspace_key(enterprise_id, team_id)}", None)

    async def async_delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                        user_id: str | None = None) -> None:
        """One installer's installation (their user token with it), or with no ``user_id`` every one."""
        where = workspace_key(enterprise_id, team_id)
        installers = (await self.state.get(f"{INSTALLERS}{where}") or {"users": []})["users"]
        if user_id is None:
            for user in installers:
                await self.state.set(f"{INSTALLATION}{where}:{user}", None)
            await self.state.set(f"{INSTALLATION}{where}", None)
            await self.state.set(f"{INSTALLERS}{where}", None)
            return
        await self.state.set(f"{INSTALLATION}{where}:{user_id}", None)
        await self.state.set(f"{INSTALLERS}{where}", {"users": [u for u in installers if u != user_id]})
        latest = await self.state.get(f"{INSTALLATION}{where}")
        if latest is not None and latest.get("user_id") == user_id:
            cleared = {"user_token": None, "user_refresh_token": None, "user_token_expires_at": None, "user_scopes": None}
            await self.state.set(f"{INSTALLATION}{where}", {**latest, **cleared})

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)


class StoredOAuthStates(AsyncOAuthStateStore):
    """The ``state`` of each installation link: good once, for ``expiration_seconds``."""

    def __init__(self, state: AdapterState, expiration_seconds: int) -> None:
        self.state = state
        self.expiration_seconds = expiration_seconds

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        """A new state; those left unused past their time are forgotten on the way."""
        await self.state.forget_stale(STATE, datetime.now(UTC) - timedelta(seconds=self.expiration_seconds))
        state = secrets.token_urlsafe(24)
        await self.state.set(f"{STATE}{state}", {"expires_at": time.time() + self.expiration_seconds})
        return state

    async def async_consume(self, state: str) -> bool:
        """True once for a state issued here and not yet expired; false for any other."""
        if not state:
            return False
        issued = await self.state.take(f"{STATE}{state}")
        if issued is None:
            log.warning("refused an installation: its link was already used, or never issued here")
            return False
        if float(issued.get("expires_at", 0)) < time.time():
            log.warning("refused an installation: its link expired (links last %d s)", self.expiration_seconds)
            return False
        return True
