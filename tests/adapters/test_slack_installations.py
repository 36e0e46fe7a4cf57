"""Slack installations and installation links kept in the bot's database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from slack_sdk.oauth.installation_store.models.installation import Installation

from adapters.slack_installations import StoredInstallations, StoredOAuthStates
from bots.app import StoredAdapterState
from bots.storage.base import Storage
from bots.storage.postgres import PostgresStorage
from bots.storage.sqlite import SQLiteStorage
from tests.support.postgres import create_database

Opener = Callable[[], Storage]


@pytest.fixture(params=["sqlite", "postgresql"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens a storage on one database: called again, it is the same database (a restart, another worker)."""
    if request.param == "sqlite":
        return lambda: SQLiteStorage(tmp_path / "troupe.db")
    url = await create_database(request.getfixturevalue("postgres_server"))
    return lambda: PostgresStorage(url)


@pytest.fixture
async def storage(opener: Opener) -> AsyncIterator[Storage]:
    store = opener()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def installation(team: str, user: str = "U0INSTALLER", token: str | None = None, **extra: object) -> Installation:
    return Installation(app_id="A0APP", team_id=team, team_name=f"{team} Co", user_id=user,
                        bot_token=token or f"xoxb-{team}", bot_id=f"B{team}", bot_user_id=f"UBOT{team}",
                        bot_scopes="chat:write,users:read", installed_at=time.time(), **extra)  # type: ignore[arg-type]


async def test_each_workspace_finds_its_own_installation_after_a_restart(opener: Opener) -> None:
    first = opener()
    await first.open()
    store = StoredInstallations(StoredAdapterState(first, "slack"))
    await store.async_save(installation("T1"))
    await store.async_save(installation("T2", user="U0OTHER"))
    await first.close()

    second = opener()
    await second.open()
    try:
        store = StoredInstallations(StoredAdapterState(second, "slack"))
        found = await store.async_find_installation(enterprise_id=None, team_id="T1")
        assert found is not None
        assert (found.team_name, found.bot_token, found.bot_user_id, found.user_id) == \
            ("T1 Co", "xoxb-T1", "UBOTT1", "U0INSTALLER")
        assert found.bot_scopes == ["chat:write", "users:read"]
        bot = await store.async_find_bot(enterprise_id=None, team_id="T2")
        assert bot is not None and bot.bot_token == "xoxb-T2"
        assert await store.async_find_installation(enterprise_id=None, team_id="T3") is None
        assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U0OTHER") is None
        mine = await store.async_find_installation(enterprise_id=None, team_id="T2", user_id="U0OTHER")
        assert mine is not None and mine.bot_token == "xoxb-T2"
    finally:
        await second.close()


async def test_a_refreshed_token_replaces_the_old_one_everywhere(storage: Storage) -> None:
    store = StoredInstallations(StoredAdapterState(storage, "slack"))
    expires = int(time.time()) + 60
    await store.async_save(installation("T1", token="xoxe.xoxb-old", bot_refresh_token="xoxe-1-r",
                                        bot_token_expires_at=expires))
    found = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert found is not None
    bot = found.to_bot()
    bot.bot_token, bot.bot_token_expires_at = "xoxe.xoxb-new", expires + 3600
    await store.async_save_bot(bot)
    for user_id in (None, "U0INSTALLER"):
        again = await store.async_find_installation(enterprise_id=None, team_id="T1", user_id=user_id)
        assert again is not None
        assert (again.bot_token, again.bot_refresh_token, again.bot_token_expires_at) == \
            ("xoxe.xoxb-new", "xoxe-1-r", expires + 3600)


async def test_revoking_the_bot_and_uninstalling_leave_no_token_behind(storage: Storage) -> None:
    store = StoredInstallations(StoredAdapterState(storage, "slack"))
    await store.async_save(installation("T1"))
    await store.async_save(installation("T1", user="U0SECOND", user_token="xoxp-second"))
    await store.async_save(installation("T2"))

    await store.async_delete_bot(enterprise_id=None, team_id="T1")
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None
    left = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert left is not None and left.bot_token is None and left.user_token == "xoxp-second"

    await store.async_delete_installation(enterprise_id=None, team_id="T1", user_id="U0SECOND")
    assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U0SECOND") is None
    latest = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert latest is not None and latest.user_token is None

    await store.async_delete_all(enterprise_id=None, team_id="T1")
    for user_id in (None, "U0INSTALLER", "U0SECOND"):
        assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id=user_id) is None
    other = await store.async_find_installation(enterprise_id=None, team_id="T2")
    assert other is not None and other.bot_token == "xoxb-T2"


async def test_an_installation_link_is_good_once_and_not_after_it_expires(opener: Opener) -> None:
    one, two = opener(), opener()
    await one.open()
    await two.open()
    try:
        here = StoredOAuthStates(StoredAdapterState(one, "slack"), expiration_seconds=600)
        there = StoredOAuthStates(StoredAdapterState(two, "slack"), expiration_seconds=600)
        state = await here.async_issue()
        assert state != await here.async_issue()
        # Sent back twice at once (a double click, a replay), to two workers: one installation.
        assert sorted(await asyncio.gather(here.async_consume(state), there.async_consume(state))) == [False, True]
        assert not await there.async_consume(state)
        assert not await here.async_consume("never-issued")
        assert not await here.async_consume("")

        brief = StoredOAuthStates(StoredAdapterState(one, "slack"), expiration_seconds=0)
        stale = await brief.async_issue()
        await asyncio.sleep(0.01)
        assert not await there.async_consume(stale)
    finally:
        await one.close()
        await two.close()


async def test_links_never_used_are_forgotten_when_new_ones_are_issued(storage: Storage) -> None:
    states = StoredOAuthStates(StoredAdapterState(storage, "slack"), expiration_seconds=0)
    abandoned = await states.async_issue()
    await asyncio.sleep(0.01)
    await states.async_issue()
    assert await storage.adapter_state("slack", f"oauth_state:{abandoned}") is None
