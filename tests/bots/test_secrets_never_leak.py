"""Tokens and keys never show: not in logs (even at DEBUG, where libraries print request headers),
exports, error messages, persona prompts or anything posted."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

from adapters.slack import SlackAdapter
from bots.app import TroupeApp
from bots.exports import as_posted, render_export
from bots.logs import configure_logging
from config.settings import Settings
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.slack_server import FakeSlack
from tests.support.turns import TurnRule

MODEL_KEY = "sk-proj-TESTKEY0123456789abcdefghij"
SIGNING_SECRET = "signing-secret-0123456789"


async def test_a_whole_run_never_shows_a_secret(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    async with FakeOpenAIServer(api_key=MODEL_KEY) as model_server, FakeSlack(signing_secret=SIGNING_SECRET) as slack:
        model_server.responder = TurnRule()
        slack.add_channel("C0GENERAL", "general")
        slack.add_user("U0MOD", "mona")
        settings = Settings(
            data_dir=tmp_path, log_level="DEBUG",
            llm={"model": "gpt-4o-mini", "base_url": model_server.base_url, "api_key": MODEL_KEY, "cache": False,
                 "max_retries": 1, "retry_base_delay_s": 0.01},
            bot={"moderator_user_ids": ["U0MOD"], "default_exchanges": 0},
            slack={"bot_token": slack.bot_token, "app_token": slack.app_token, "signing_secret": SIGNING_SECRET,
                   "api_base": slack.api_base, "post_interval_s": 0, "ping_interval_s": 0.5},
        )
        secrets = [MODEL_KEY, slack.bot_token, slack.app_token, SIGNING_SECRET]
        configure_logging(settings, stream, json_lines=True)
        app = TroupeApp(settings)
        adapter = SlackAdapter(settings)
        try:
            await app.start([adapter])
            await slack.wait_connected(1)
            for text in ("start Secrets room", "persona add Priya Nair", "persona add Nobody Known", "frobnicate"):
                await slack.wait_ack(await slack.send_slash_command(text, user_id="U0MOD", channel_id="C0GENERAL"))
                await asyncio.sleep(0.05)
                await app.wait_idle()
            await slack.send_message("C0GENERAL", "U0MOD", f"my key is {MODEL_KEY}, keep it safe")
            await slack.wait_for(lambda: any(p.get("username") for p in slack.posts), timeout=10)
            await app.wait_idle()
            model_server.fail("server_error", times=20)  # errors get logged too
            await slack.send_message("C0GENERAL", "U0MOD", "and what about now?")
            await asyncio.sleep(0.5)
            await app.wait_idle()
            session = app.sessions.get("slack:C0GENERAL")
            # A moderator's export: thoughts and memories included.
            log = as_posted(await session.whole_log(), await app.storage.outbox_entries(session.record.id), thoughts=True)
            exports = [render_export(session.world, fmt, "gpt-4o-mini", log, moderator=True)[1].decode()
                       for fmt in ("json", "csv", "md")]
        finally:
            await app.stop()
            root.handlers[:], root.level = saved
    logs = stream.getvalue()
    assert "slack_sdk" in logs or "slack_bolt" in logs, "library debug logs were captured"
    prompts = "\n".join(str(r.body) for r in model_server.requests)
    posted = "\n".join(str(p) for p in slack.posts + slack.ephemerals)
    for secret in secrets:
        assert secret not in logs, f"{secret[:8]}… in the logs"
        assert secret not in prompts and secret not in posted
        assert not any(secret in e for e in exports)
