"""``troupe slack`` worker processes on a shared PostgreSQL database, pointed at the fake Slack and
a fake model: the environment each runs with."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.fakes.slack_server import FakeSlack
from tests.support.paths import ROOT


def slack_worker_env(folder: Path, name: str, *, database_url: str, slack: FakeSlack, model_url: str,
                     lease_s: float, moderator: str, **settings: str) -> dict[str, str]:
    """The environment of worker ``name``: its own data folder under ``folder``, the shared database,
    the fake Slack over Socket Mode (no pacing), the fake model (no cache), one answer a message;
    ``settings`` add or replace ``TROUPE_`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "TROUPE_DATA_DIR": str(folder / name),
        "TROUPE_DATABASE_URL": database_url,
        "TROUPE_LEASE_S": str(lease_s),
        "TROUPE_LLM_MODEL": "gpt-4o-mini",
        "TROUPE_LLM_BASE_URL": model_url,
        "TROUPE_LLM_API_KEY": "sk-test",
        "TROUPE_LLM_CACHE": "false",
        "TROUPE_BOT_DEFAULT_EXCHANGES": "0",
        "TROUPE_BOT_MODERATOR_USER_IDS": json.dumps([moderator]),
        "TROUPE_SLACK_BOT_TOKEN": slack.bot_token,
        "TROUPE_SLACK_APP_TOKEN": slack.app_token,
        "TROUPE_SLACK_API_BASE": slack.api_base,
        "TROUPE_SLACK_POST_INTERVAL_S": "0",
        "TROUPE_SLACK_PING_INTERVAL_S": "1",
        **settings,
    })
    return env


async def until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Until ``condition()`` (a coroutine function: it reads the database, say) holds; how long that took."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started
