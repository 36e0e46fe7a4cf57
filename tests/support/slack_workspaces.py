"""Two workspaces on the fake Slack, each with a channel, a moderator and a guest, and a browser that
installs the app in one through the OAuth flow."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.fakes.slack_server import FakeSlack

ALPHA, BETA = "T0ALPHA", "T0BETA"
#: Each workspace's channel, moderator and guest.
PEOPLE = {ALPHA: ("C0ALPHA", "U0MODA", "U0GUESTA"), BETA: ("C0BETA", "U0MODB", "U0GUESTB")}


def scoped(team: str) -> str:
    """The workspace's channel as Troupe names it: ``TEAM:CHANNEL``."""
    return f"{team}:{PEOPLE[team][0]}"


def moderators() -> list[str]:
    """Each workspace's moderator, named with their workspace."""
    return [f"slack:{team}:{PEOPLE[team][1]}" for team in (ALPHA, BETA)]


def two_workspaces(**options: Any) -> FakeSlack:
    """A fake Slack with workspaces Alpha Co and Beta Co, the app installed in neither yet."""
    fake = FakeSlack(**options)
    for team, name in ((ALPHA, "Alpha Co"), (BETA, "Beta Co")):
        fake.add_team(team, name)
        channel, moderator, guest = PEOPLE[team]
        with fake.acting_in(team):
            fake.add_channel(channel, "general")
            fake.add_user(moderator, f"mod-{team}")
            fake.add_user(guest, f"guest-{team}")
    return fake


class Browser:
    """Follows the installation's redirects and keeps its cookie (marked Secure, which aiohttp's
    jar would not send to these plain-HTTP test servers; a browser on HTTPS does)."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession()
        self.cookie = ""

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def back_from_slack(self, install_url: str, authorize_url: str) -> str:
        """The redirect URL Slack sends the browser back to, after the installation is approved."""
        async with self.session.get(install_url, allow_redirects=False) as start:
            assert start.status == 302, await start.text()
            authorize = start.headers["Location"]
            self.cookie = start.headers["Set-Cookie"].split(";", 1)[0]
        assert authorize.startswith(authorize_url)
        async with self.session.get(authorize, allow_redirects=False) as approved:
            assert approved.status == 302, await approved.text()
            return approved.headers["Location"]

    async def get(self, url: str) -> tuple[int, str]:
        async with self.session.get(url, headers={"Cookie": self.cookie}, allow_redirects=False) as page:
            return page.status, await page.text()


async def install(fake: FakeSlack, team: str, install_url: str) -> tuple[int, str]:
    """Someone opens the install link in a browser and approves it on Slack for ``team``."""
    fake.install_into(team, f"U0INSTALLER{team}")
    async with Browser() as browser:
        return await browser.get(await browser.back_from_slack(install_url, fake.authorize_url))
