"""Whether the platforms take Troupe's credentials: who each token belongs to, and what it may do.

Read-only questions to Discord and Slack, for ``troupe doctor``; here because only adapters speak
to the platforms. No secret is ever part of a finding's text.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from config import CONFIG_DIR
from config.settings import Settings

__all__ = ["NETWORK_TIMEOUT_S", "SLACK_MANIFEST", "Check", "check_discord", "check_slack", "manifest_bot_scopes"]

#: Seconds each network check may take; a doctor that hangs is no help.
NETWORK_TIMEOUT_S = 15.0
SLACK_MANIFEST = CONFIG_DIR / "slack-manifest.yaml"


@dataclass
class Check:
    """One finding: ``ok`` is True (passed), False (failed) or None (skipped: not configured)."""

    name: str
    ok: bool | None
    detail: str
    #: What to do about a failure (empty when there is nothing to do).
    fix: str = ""


# -- Discord --------------------------------------------------------------------------------


async def check_discord(settings: Settings, *, timeout_s: float = NETWORK_TIMEOUT_S) -> Check:

    token = _secret(settings.discord.token)
    if token is None:
        return Check("discord", None, "not configured (set TROUPE_DISCORD_TOKEN to run on Discord)")
    url = f"{settings.discord.api_base.rstrip('/')}/users/@me"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
            async with http.get(url, headers={"Authorization": f"Bot {token}"}) as response:
                status = response.status
                body = await response.json(content_type=None) if status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError) as error:
        where = f"{settings.discord.api_base} ({type(error).__name__})"
        return Check("discord", False, f"could not reach Discord at {where}",
                     "check the network (and TROUPE_DISCORD_API_BASE if set)")
    if status == 401:
        return Check("discord", False, "Discord rejected the bot token (HTTP 401)",
                     "check TROUPE_DISCORD_TOKEN: Developer Portal → Bot → Reset Token, then set the new token")
    if status != 200 or not isinstance(body, dict):
        return Check("discord", False, f"Discord answered HTTP {status} to GET /users/@me",
                     "try again later; if it persists, check TROUPE_DISCORD_API_BASE")
    name = body.get("username", "?")
    return Check("discord", True, f"token accepted: bot {name} (id {body.get('id', '?')})")


# -- Slack ----------------------------------------------------------------------------------


def manifest_bot_scopes(path: Path = SLACK_MANIFEST) -> list[str]:
    """The bot scopes the app manifest asks for."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(data["oauth_config"]["scopes"]["bot"])


async def check_slack(settings: Settings, *, timeout_s: float = NETWORK_TIMEOUT_S) -> list[Check]:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    slack = settings.slack
    bot_token = _secret(slack.bot_token)
    if bot_token is None and slack.client_id:
        missing = [name for name, value in (("TROUPE_SLACK_CLIENT_SECRET", slack.client_secret),
                                            ("TROUPE_SLACK_SIGNING_SECRET", slack.signing_secret)) if _secret(value) is None]
        if missing:
            return [Check("slack app for many workspaces", False, f"client id {slack.client_id} but no {' or '.join(missing)}",
                          "copy them from api.slack.com/apps → your app → Basic Information")]
        return [Check("slack app for many workspaces", True,
                      f"client id {slack.client_id}; each workspace's token is checked when it is used "
                      "(run `troupe slack --http PORT`; workspaces install it at PUBLIC_URL/slack/install)")]
    if bot_token is None:
        return [Check("slack", None, "not configured (set TROUPE_SLACK_BOT_TOKEN to run on Slack)")]
    checks: list[Check] = []
    if not bot_token.startswith("xoxb-"):
        checks.append(Check("slack bot token", False,
                            "TROUPE_SLACK_BOT_TOKEN is not a bot token (it does not start with xoxb-)",
                            "use the Bot User OAuth Token from OAuth & Permissions (xoxb-…)"))
    else:
        client = AsyncWebClient(token=bot_token, base_url=slack.api_base, timeout=int(max(1, timeout_s)))
        try:
            response = await asyncio.wait_for(client.auth_test(), timeout_s + 1)
        except SlackApiError as error:
            code = error.response.get("error", "error") if error.response is not None else "error"
            if code in ("invalid_auth", "not_authed", "token_revoked", "account_inactive", "token_expired"):
                checks.append(Check("slack bot token", False, f"Slack rejected the bot token ({code})",
                                    "check TROUPE_SLACK_BOT_TOKEN: OAuth & Permissions → Bot User OAuth Token "
                                    "(reinstall the app if it was revoked)"))
            else:
                checks.append(Check("slack bot token", False, f"auth.test failed: {code}",
                                    "try again later; if it persists, check TROUPE_SLACK_API_BASE"))
        except Exception as error:  # aiohttp errors, timeouts: slack_sdk passes them through
            where = f"{slack.api_base} ({type(error).__name__})"
            checks.append(Check("slack bot token", False, f"could not reach Slack at {where}",
                                "check the network (and TROUPE_SLACK_API_BASE if set)"))
        else:
            checks.append(_scopes_check(response.data, response.headers))
    checks.append(_app_token_check(settings))
    return checks


def _scopes_check(data: Any, headers: Any) -> Check:
    header = next((v for k, v in dict(headers or {}).items() if k.lower() == "x-oauth-scopes"), None)
    who = f"bot {data.get('user', '?')} in workspace {data.get('team', '?')}" if isinstance(data, dict) else "bot"
    if header is None:
        return Check("slack bot token", True, f"token accepted: {who} (Slack did not report its scopes)")
    granted = {s.strip() for s in str(header).split(",") if s.strip()}
    missing = [s for s in manifest_bot_scopes() if s not in granted]
    if missing:
        return Check(
            "slack bot token", False, f"token accepted ({who}) but missing scopes: {', '.join(missing)}",
            "add them under OAuth & Permissions → Bot Token Scopes (or update the app from "
            "config/slack-manifest.yaml), then reinstall the app to the workspace",
        )
    return Check("slack bot token", True, f"token accepted: {who}; every scope of the manifest granted")


def _app_token_check(settings: Settings) -> Check:
    app_token = _secret(settings.slack.app_token)
    if app_token is not None:
        if not app_token.startswith("xapp-"):
            return Check("slack app token", False,
                         "TROUPE_SLACK_APP_TOKEN is not an app-level token (it does not start with xapp-)",
                         "Basic Information → App-Level Tokens → generate one with connections:write (xapp-…)")
        return Check("slack app token", True, "app-level token set (Socket Mode)")
    if _secret(settings.slack.signing_secret) is not None:
        return Check("slack app token", None,
                     "no app-level token; signing secret set (HTTP mode: troupe slack --http PORT)")
    return Check("slack app token", False,
                 "neither TROUPE_SLACK_APP_TOKEN (Socket Mode) nor TROUPE_SLACK_SIGNING_SECRET (HTTP mode) is set",
                 "set TROUPE_SLACK_APP_TOKEN (xapp-…) for Socket Mode, "
                 "or TROUPE_SLACK_SIGNING_SECRET for `troupe slack --http PORT`")


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    text = value.get_secret_value().strip()
    return text or None
