"""Installing the Slack app in a workspace: Bolt's OAuth flow set up from Troupe's settings, with pages
that tell the person installing what happened and what to do next.

``install_path`` sends them to Slack's page to approve the installation; Slack sends them back to
``redirect_uri_path`` with a one-time code, traded for the workspace's bot token, which is kept in the
bot's database (``adapters.slack_installations``).
"""

from __future__ import annotations

import html
import logging

from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse

from adapters.slack_installations import StoredInstallations, StoredOAuthStates
from config.settings import SlackSettings

log = logging.getLogger(__name__)

#: What went wrong, by Bolt's reason, as the person installing reads it.
_REASONS = {
    "invalid_state": "This installation link has expired or was already used.",
    "invalid_browser": "This installation link has expired, or was started in another browser (or the browser "
                       "refused its cookie).",
    "access_denied": "The installation was cancelled on Slack.",
    "missing_code": "Slack sent no installation code back.",
    "invalid_code": "Slack did not accept the installation code (it may have been used already, or the app's "
                    "client id, secret or redirect URL are not the ones Slack has).",
    "storage_error": "The installation could not be saved in Troupe's database.",
}


def oauth_settings(settings: SlackSettings, installations: StoredInstallations,
                   states: StoredOAuthStates) -> AsyncOAuthSettings:
    """Bolt's installation flow for ``settings`` (``client_id`` set), keeping everything in the bot's database."""
    secret = settings.client_secret.get_secret_value().strip() if settings.client_secret else ""
    redirect = f"{settings.public_url.rstrip('/')}{settings.redirect_uri_path}" if settings.public_url else None
    return AsyncOAuthSettings(
        client_id=settings.client_id, client_secret=secret, scopes=list(settings.scopes), user_scopes=[],
        redirect_uri=redirect, install_path=settings.install_path, redirect_uri_path=settings.redirect_uri_path,
        # Straight on to Slack's page: there is nothing to choose here first.
        install_page_rendering_enabled=False, authorization_url=settings.authorize_url,
        installation_store=installations, state_store=states,
        state_expiration_seconds=settings.install_link_ttl_s,
        token_rotation_expiration_minutes=settings.token_refresh_minutes,
        callback_options=AsyncCallbackOptions(success=_installed, failure=_refused),
        logger=log,
    )


def _page(title: str, text: str, status: int, cookie: str) -> BoltResponse:
    body = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{text}</p></body></html>")
    return BoltResponse(status=status, body=body,
                        headers={"Content-Type": "text/html; charset=utf-8", "Set-Cookie": [cookie]})


async def _installed(args: AsyncSuccessArgs) -> BoltResponse:
    installation = args.installation
    team = installation.team_name or installation.team_id or installation.enterprise_name or "the workspace"
    log.info("installed in Slack workspace %s (%s) by %s", installation.team_id, installation.team_name,
             installation.user_id)
    text = (f"Troupe is installed in {html.escape(team)}. Invite it to a channel (<code>/invite @Troupe</code>), "
            "then type <code>/troupe help</code> there.")
    return _page("Troupe is installed", text, 200, args.settings.state_utils.build_set_cookie_for_deletion())


async def _refused(args: AsyncFailureArgs) -> BoltResponse:
    reason = _REASONS.get(args.reason, f"Slack's answer was “{args.reason}”.")
    log.warning("an installation in Slack was refused (%s): %s%s", args.reason, reason,
                f" {args.error}" if args.error else "")
    again = html.escape(args.settings.install_path)
    text = f"{html.escape(reason)} Nothing was installed. <a href=\"{again}\">Start the installation again</a>."
    return _page("Troupe was not installed", text, args.suggested_status_code,
                 args.settings.state_utils.build_set_cookie_for_deletion())
