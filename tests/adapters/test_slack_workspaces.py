"""A Slack app installed in many workspaces through OAuth: real slack-bolt over real HTTP against the
fake Slack, the installations kept in the bot's database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterError, ChannelRef, UserRef
from adapters.slack import SlackAdapter
from adapters.slack_installations import StoredInstallations
from bots.app import StoredAdapterState, TroupeApp
from config.settings import Settings
from tests.adapters.platforms import wait_for
from tests.fakes.slack_server import FakeSlack
from tests.support.slack_workspaces import ALPHA, BETA, PEOPLE, Browser, install, moderators, scoped, two_workspaces
from tests.support.testbot import TEAM as PERSONAS

pytestmark = pytest.mark.timeout(90)


def settings_for(tmp_path: Path, fake: FakeSlack, **slack: Any) -> Settings:
    extra = {k: slack.pop(k) for k in ("database_url",) if k in slack}
    return Settings(
        data_dir=tmp_path, llm={"provider": "demo"},
        bot={"moderator_user_ids": moderators()},
        slack={"client_id": fake.client_id, "client_secret": fake.client_secret,
               "signing_secret": fake.signing_secret, "api_base": fake.api_base, "authorize_url": fake.authorize_url,
               "http_host": "127.0.0.1", "post_interval_s": 0.02, **slack},
        **extra,
    )


@dataclass
class Deployment:
    fake: FakeSlack
    app: TroupeApp
    adapter: SlackAdapter

    @property
    def url(self) -> str:
        assert self.adapter.http_url is not None
        return self.adapter.http_url

    def installations(self) -> StoredInstallations:
        return StoredInstallations(StoredAdapterState(self.app.storage, "slack"))

    async def install(self, team: str) -> tuple[int, str]:
        assert self.adapter.install_url is not None
        return await install(self.fake, team, self.adapter.install_url)

    async def command(self, team: str, text: str, *, in_channel_of: str | None = None) -> None:
        """``team``'s moderator runs ``/troupe text`` in their channel, or in ``in_channel_of``'s (a
        channel of that workspace shared with theirs: Slack sends it for the moderator's workspace)."""
        _, moderator, _ = PEOPLE[team]
        channel = PEOPLE[in_channel_of or team][0]
        status, body = await self.fake.http_slash_command(self.url, text, user_id=moderator, channel_id=channel,
                                                          team_id=team)
        assert status == 200, body
        await asyncio.sleep(0.05)
        await self.app.wait_idle()

    def persona_posts(self, team: str) -> list[dict[str, Any]]:
        return [p for p in self.fake.posts if p["channel"] == PEOPLE[team][0] and p.get("username")]

    async def say(self, team: str, text: str, expect: int) -> list[dict[str, Any]]:
        channel, _, guest = PEOPLE[team]
        before = len(self.persona_posts(team))
        assert (await self.fake.http_message(self.url, channel, guest, text))[0] == 200
        await wait_for(lambda: len(self.persona_posts(team)) >= before + expect, timeout=20)
        await self.app.wait_idle()
        return self.persona_posts(team)[before:]


async def deploy(settings: Settings, fake: FakeSlack) -> Deployment:
    app = TroupeApp(settings)
    adapter = SlackAdapter(settings, http_port=0)
    await app.start([adapter])
    assert adapter.install_url and adapter.http_url
    # The app's Redirect URL, as registered with Slack (OAuth & Permissions).
    fake.redirect_urls = [adapter.install_url.replace(settings.slack.install_path, settings.slack.redirect_uri_path)]
    return Deployment(fake, app, adapter)


@pytest.fixture
async def deployed(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with two_workspaces() as fake:
        deployment = await deploy(settings_for(tmp_path, fake), fake)
        try:
            yield deployment
        finally:
            await deployment.app.stop()


async def with_world(deployment: Deployment, team: str, personas: tuple[str, ...], name: str = "Team room") -> None:
    await deployment.command(team, f"start {name}")
    for name in personas:
        await deployment.command(team, f"persona add {name}")
    session = deployment.app.sessions.get(f"slack:{scoped(team)}")
    assert session is not None and [a.name for a in session.world.agents] == list(personas)


async def test_two_workspaces_install_the_app_and_each_is_answered_under_its_own_token(deployed: Deployment) -> None:
    for team, name in ((ALPHA, "Alpha Co"), (BETA, "Beta Co")):
        status, page = await deployed.install(team)
        assert status == 200 and f"Troupe is installed in {name}" in page
    assert len(deployed.fake.calls_to("oauth.v2.access")) == 2
    tokens = set()
    for team in (ALPHA, BETA):
        found = await deployed.installations().async_find_installation(enterprise_id=None, team_id=team)
        assert found is not None and found.bot_token == deployed.fake.token_of(team)
        tokens.add(found.bot_token)
    assert len(tokens) == 2

    await with_world(deployed, ALPHA, PERSONAS[:2])
    await with_world(deployed, BETA, PERSONAS[2:3])
    alpha = await deployed.say(ALPHA, "Hello both, ready?", expect=2)
    beta = await deployed.say(BETA, "Hello, are you there?", expect=1)
    assert {p["username"].split(" ")[0] for p in alpha} == {n.split(" ")[0] for n in PERSONAS[:2]}
    assert {p["username"].split(" ")[0] for p in beta} == {PERSONAS[2].split(" ")[0]}
    # Every post went out with the token of the channel's own workspace (another's is channel_not_found).
    assert all(p["team"] == ALPHA for p in deployed.fake.posts if p["channel"] == PEOPLE[ALPHA][0])
    assert all(p["team"] == BETA for p in deployed.fake.posts if p["channel"] == PEOPLE[BETA][0])
    assert {p["channel"] for p in deployed.fake.posts} == {PEOPLE[ALPHA][0], PEOPLE[BETA][0]}


def shown(fake: FakeSlack) -> list[str]:
    """Everything the app has shown anyone, in order: posts, private replies, command answers, files."""
    return ([str(p.get("text")) for p in fake.posts] + [str(e.get("text")) for e in fake.ephemerals]
            + [str(r.get("text")) for r in fake.responses] + [str(c.get("text")) for c in fake.command_replies]
            + [str(f) for f in fake.files])


async def test_a_moderator_in_one_workspace_never_sees_or_steers_another_workspaces_channel(
        deployed: Deployment) -> None:
    for team in (ALPHA, BETA):
        await deployed.install(team)
    await with_world(deployed, ALPHA, PERSONAS[:1])
    await with_world(deployed, BETA, PERSONAS[1:3], name="Beta launch")
    await deployed.say(BETA, "Our launch date is the 14th.", expect=1)
    beta = deployed.app.sessions.get(f"slack:{scoped(BETA)}")
    assert beta is not None
    events, before = beta.world.event_count, len(shown(deployed.fake))
    beta_posts = len(deployed.fake.messages_in(PEOPLE[BETA][0]))

    # Alpha's moderator names Beta's channel in every way a command can (as Slack sends a command typed
    # in a channel Beta shares with Alpha): nothing of Beta's world is shown, nothing in it changes.
    secrets = ("Beta launch", "14th", *(n.split(" ")[0] for n in PERSONAS[1:3]))
    for text in ("status", "persona list", "export json", "summary", "usage", 'focus "Any news?" --rounds 1',
                 "interview Tomasz", "ask Tomasz What is new?", "observe Tomasz on", "pause", "run 2",
                 "persona remove Tomasz", "reset confirm", "stop confirm"):
        await deployed.command(ALPHA, text, in_channel_of=BETA)
    answers = shown(deployed.fake)[before:]
    assert answers, "Alpha's moderator was told nothing"
    assert not [a for a in answers if any(secret in a for secret in secrets)], answers
    assert all("No world in this channel" in a or "start" in a for a in answers), answers
    assert not [f for f in deployed.fake.files if f.get("channel") == PEOPLE[BETA][0]]
    assert len(deployed.fake.messages_in(PEOPLE[BETA][0])) == beta_posts
    assert deployed.app.sessions.get(f"slack:{scoped(BETA)}") is beta and not beta.paused
    assert [a.name for a in beta.world.agents] == list(PERSONAS[1:3]) and beta.world.event_count == events
    assert {s.channel.key for s in deployed.app.sessions.all()} == {f"slack:{scoped(ALPHA)}", f"slack:{scoped(BETA)}"}

    # A moderator is one in their own workspace only; Beta's moderator still runs Beta's world.
    moderator = UserRef(id=f"{ALPHA}:{PEOPLE[ALPHA][1]}", name="mod-alpha")
    assert await deployed.app.is_moderator(moderator, ChannelRef(platform="slack", id=scoped(ALPHA)))
    assert not await deployed.app.is_moderator(moderator, ChannelRef(platform="slack", id=scoped(BETA)))
    await deployed.command(BETA, "status")
    assert "Beta launch" in deployed.fake.posts[-1]["text"] and deployed.fake.posts[-1]["team"] == BETA


async def test_in_a_channel_shared_with_another_workspace_its_moderators_and_admins_steer_nothing(
        deployed: Deployment) -> None:
    for team in (ALPHA, BETA):
        await deployed.install(team)
    await with_world(deployed, BETA, PERSONAS[1:3], name="Beta launch")
    beta = deployed.app.sessions.get(f"slack:{scoped(BETA)}")
    assert beta is not None
    fake = deployed.fake
    with fake.acting_in(ALPHA):
        fake.add_user("U0ADMINA", "admin-alpha", is_admin=True)
    # Beta's channel is shared with Alpha's moderator and admin (Slack Connect): Slack sends their
    # commands there for Beta, as Beta's app installation hears that channel.
    for outsider in ("U0ADMINA", PEOPLE[ALPHA][1]):
        fake.connect_user(outsider, BETA)
        before = len(shown(fake))
        for text in ("pause", "persona remove Tomasz", "observe Tomasz on", "review", "stop confirm"):
            status, body = await fake.http_slash_command(deployed.url, text, user_id=outsider,
                                                         channel_id=PEOPLE[BETA][0], team_id=BETA)
            assert status == 200, body
            await asyncio.sleep(0.05)
            await deployed.app.wait_idle()
        refusals = shown(fake)[before:]
        assert len(refusals) == 5 and all("Only moderators can use" in r for r in refusals), refusals
        # The id to list names the person in the workspace they act in here.
        assert all(f"(`slack:{BETA}:{outsider}`)" in r for r in refusals), refusals
    assert deployed.app.sessions.get(f"slack:{scoped(BETA)}") is beta and not beta.paused
    assert [a.name for a in beta.world.agents] == list(PERSONAS[1:3]) and not beta.config.observers
    # In their own workspace, Alpha's admin manages channels as before.
    assert await deployed.app.is_moderator(UserRef(id=f"{ALPHA}:U0ADMINA", name="admin-alpha"),
                                           ChannelRef(platform="slack", id=scoped(ALPHA)))


async def test_a_used_or_expired_installation_link_is_refused_with_a_page_that_says_so(tmp_path: Path) -> None:
    async with two_workspaces() as fake:
        deployment = await deploy(settings_for(tmp_path, fake, install_link_ttl_s=1), fake)
        try:
            fake.install_into(ALPHA)
            async with Browser() as browser:
                callback = await browser.back_from_slack(deployment.adapter.install_url or "", fake.authorize_url)
                status, page = await browser.get(callback)
                assert status == 200 and "Troupe is installed" in page
                status, page = await browser.get(callback)
                assert status == 401 and "expired or was already used" in page and "Nothing was installed" in page
                assert 'href="/slack/install"' in page

                fake.install_into(BETA)
                late = await browser.back_from_slack(deployment.adapter.install_url or "", fake.authorize_url)
                await asyncio.sleep(1.2)
                status, page = await browser.get(late)
                assert status == 401 and "expired" in page and "Nothing was installed" in page
            assert len(fake.calls_to("oauth.v2.access")) == 1
            assert await deployment.installations().async_find_bot(enterprise_id=None, team_id=BETA) is None
        finally:
            await deployment.app.stop()


async def test_an_uninstalled_workspace_is_cleaned_up_and_the_other_carries_on(
        deployed: Deployment, caplog: pytest.LogCaptureFixture) -> None:
    for team in (ALPHA, BETA):
        await deployed.install(team)
        await with_world(deployed, team, PERSONAS[:1])
    caplog.set_level(logging.WARNING)
    assert await deployed.fake.uninstall(ALPHA, url=deployed.url) == (200, "")
    assert await deployed.installations().async_find_installation(enterprise_id=None, team_id=ALPHA) is None
    assert await deployed.installations().async_find_bot(enterprise_id=None, team_id=ALPHA) is None
    assert "Slack workspace T0ALPHA uninstalled Troupe" in caplog.text

    posted = len(deployed.fake.posts)
    with pytest.raises(AdapterError, match="not installed in Slack workspace T0ALPHA") as refused:
        await deployed.adapter.announce(ChannelRef(platform="slack", id=scoped(ALPHA)), "anyone there?")
    assert not refused.value.retryable
    assert "install it there again at http://127.0.0.1:" in str(refused.value)
    assert len(deployed.fake.posts) == posted
    await deployed.say(BETA, "Still with us?", expect=1)

    assert await deployed.fake.revoke_bot_token(BETA, url=deployed.url) == (200, "")
    assert await deployed.installations().async_find_bot(enterprise_id=None, team_id=BETA) is None
    assert "Slack workspace T0BETA revoked Troupe's bot token" in caplog.text
    with pytest.raises(AdapterError, match="not installed in Slack workspace T0BETA"):
        await deployed.adapter.announce(ChannelRef(platform="slack", id=scoped(BETA)), "hello?")


async def test_installations_and_channels_survive_a_restart_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    async with two_workspaces() as fake:
        settings = settings_for(tmp_path, fake, database_url=postgres_url)
        first = await deploy(settings, fake)
        try:
            await first.install(ALPHA)
            await with_world(first, ALPHA, PERSONAS[:1])
        finally:
            await first.app.stop()
        second = await deploy(settings, fake)
        try:
            # No event from the channel yet: its workspace and token come from the database.
            await second.adapter.announce(ChannelRef(platform="slack", id=scoped(ALPHA)), "Back again.")
            assert fake.posts[-1]["team"] == ALPHA and fake.posts[-1]["text"] == "Back again."
            await second.say(ALPHA, "Welcome back?", expect=1)
        finally:
            await second.app.stop()


async def test_a_rotating_token_is_refreshed_before_it_expires_and_kept(tmp_path: Path) -> None:
    async with two_workspaces(token_lifetime_s=30) as fake:
        deployment = await deploy(settings_for(tmp_path, fake, token_refresh_minutes=1), fake)
        try:
            await deployment.install(ALPHA)
            first = fake.token_of(ALPHA)
            assert first.startswith("xoxe.xoxb-")
            await with_world(deployment, ALPHA, PERSONAS[:1])
            await deployment.say(ALPHA, "Still fresh?", expect=1)
            refreshes = [c for c in fake.calls_to("oauth.v2.access") if c.get("grant_type") == "refresh_token"]
            assert refreshes, "the token expiring within the minute was never refreshed"
            bot = await deployment.installations().async_find_bot(enterprise_id=None, team_id=ALPHA)
            assert bot is not None and bot.bot_token == fake.token_of(ALPHA) != first
            fake.expire_tokens(ALPHA)  # every token issued so far is dead: only a refreshed one posts
            await deployment.adapter.announce(ChannelRef(platform="slack", id=scoped(ALPHA)), "Refreshed.")
            assert fake.posts[-1]["text"] == "Refreshed."
        finally:
            await deployment.app.stop()


async def test_without_its_secrets_or_http_mode_a_many_workspace_app_says_what_is_missing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, slack={"client_id": "1111.2222"})
    adapter = SlackAdapter(settings)
    adapter.attach(None, (), adapter.suggestions)
    with pytest.raises(AdapterError) as missing:
        await adapter.connect()
    text = str(missing.value)
    assert not missing.value.retryable
    for needed in ("TROUPE_SLACK_CLIENT_SECRET", "TROUPE_SLACK_SIGNING_SECRET", "--http PORT", "database"):
        assert needed in text


def test_moderators_named_without_their_workspace_are_pointed_out(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    SlackAdapter(Settings(slack={"client_id": "1111.2222"},
                          bot={"moderator_user_ids": ["U0MODA", "slack:W0GRID", "slack:T0BETA:U0MODB", "1234"]}))
    assert "without their workspace (U0MODA, slack:W0GRID)" in caplog.text
    assert "slack:TEAM:USER" in caplog.text
    caplog.clear()
    SlackAdapter(Settings(slack={"bot_token": "xoxb-1"}, bot={"moderator_user_ids": ["U0MODA"]}))
    assert "without their workspace" not in caplog.text  # one workspace: Slack's ids are enough
