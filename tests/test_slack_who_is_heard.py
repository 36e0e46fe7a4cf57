"""Only people's new messages are heard on Slack: an edit, a bot's post, the app's own post or a
message with no author is not, however it arrives."""

from __future__ import annotations

import asyncio

from simulation.events import EventKind
from tests.test_adapter_slack import CHANNEL, GUEST, PERSONAS, Bot, bot, with_team  # noqa: F401  (fixture)


async def test_edits_bots_the_app_itself_and_authorless_messages_are_not_heard(bot: Bot) -> None:  # noqa: F811
    await with_team(bot, PERSONAS[:1])
    events = [
        {"subtype": "message_changed", "user": GUEST, "text": "Priya, edited?"},
        {"bot_id": "B0OTHER", "user": GUEST, "text": "Priya, from a bot?"},
        {"user": bot.adapter.bot_user_id, "text": "Priya, from the app?"},
        {"text": "Priya, from nobody?"},
    ]
    for i, fields in enumerate(events):
        event = {"type": "message", "channel": CHANNEL, "ts": f"1700000000.00010{i}", "channel_type": "channel",
                 **fields}
        assert await bot.fake.wait_ack(await bot.fake.send_event(event)) is not None
    await asyncio.sleep(0.3)
    await bot.app.wait_idle()
    assert bot.persona_posts() == []
    world = bot.app.sessions.get(f"slack:{CHANNEL}").world
    assert [e.content for e in world.events if e.kind is EventKind.STIMULUS] == []
