"""The Slack adapter end to end: real slack-bolt / slack-sdk against a local stand-in for Slack."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.slack import SlackAdapter
from bots.app import TroupeApp
from simulation.events import EventKind
from tests.adapters.platforms import (
    ADMIN,
    CHANNEL,
    GROUP_MEMBER,
    GUEST,
    MODERATOR,
    NO_CUSTOMIZE,
    slack_settings,
    slack_workspace,
    wait_for,
)
from tests.fakes.slack_server import FakeSlack
from tests.support.testbot import TEAM as PERSONAS
from tests.support.testbot import store_unchecked_persona


@dataclass
class Bot:
    fake: FakeSlack
    app: TroupeApp
    adapter: SlackAdapter
    http: bool = False

    def persona_posts(self, thread_ts: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.fake.posts if p["channel"] == CHANNEL and p.get("username")
                and (thread_ts is None or p.get("thread_ts") == thread_ts)]

    def bot_posts(self) -> list[dict[str, Any]]:
        return [p for p in self.fake.posts if p["channel"] == CHANNEL and not p.get("username")]

    def ephemerals_for(self, user: str) -> list[dict[str, Any]]:
        return [e for e in self.fake.ephemerals if e["user"] == user]

    async def command(self, text: str, *, user: str = MODERATOR) -> None:
        """Run ``/troupe text`` and wait until the bot has handled it."""
        if self.http:
            assert self.adapter.http_url is not None
            status, body = await self.fake.http_slash_command(self.adapter.http_url, text, user_id=user, channel_id=CHANNEL)
            assert status == 200, body
        else:
            envelope = await self.fake.send_slash_command(text, user_id=user, channel_id=CHANNEL)
            assert await self.fake.wait_ack(envelope) is not None, "the slash command was not acknowledged"
        await asyncio.sleep(0.05)
        await self.app.wait_idle()

    async def say(self, text: str, *, expect: int, user: str = GUEST, thread_ts: str | None = None) -> list[dict[str, Any]]:
        before = len(self.persona_posts())
        await self.fake.send_message(CHANNEL, user, text, thread_ts=thread_ts)
        await wait_for(lambda: len(self.persona_posts()) >= before + expect, timeout=15)
        await self.app.wait_idle()
        return self.persona_posts()[before:]


async def start_bot(tmp_path: Path, fake: FakeSlack, *, http: bool = False, **extra: Any) -> Bot:
    settings = slack_settings(tmp_path, fake, **extra)
    app = TroupeApp(settings)
    adapter = SlackAdapter(settings, http_port=0 if http else None)
    await app.start([adapter])
    if not http:
        await fake.wait_connected(1)
    return Bot(fake, app, adapter, http)


async def with_team(bot: Bot, personas: tuple[str, ...] = PERSONAS) -> None:
    await bot.command("start Team room")
    assert any("Started the world “Team room”" in p["text"] for p in bot.bot_posts())
    for name in personas:
        await bot.command(f"persona add {name}")
    await bot.app.wait_idle()
    session = bot.app.sessions.get(f"slack:{CHANNEL}")
    assert session is not None and [a.name for a in session.world.agents] == list(personas)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with slack_workspace() as fake:
        started = await start_bot(tmp_path, fake)
        try:
            yield started
        finally:
            await started.app.stop()


@pytest.fixture
async def http_bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with slack_workspace() as fake:
        started = await start_bot(tmp_path, fake, http=True)
        try:
            yield started
        finally:
            await started.app.stop()


# -- socket mode ----------------------------------------------------------------------------------


async def test_a_slack_outage_at_start_up_is_waited_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """auth.test fails with 503s beyond the client library's own retries: the bot tries again a
    moment later instead of exiting, and then works as usual."""
    async with slack_workspace() as fake:
        fake.fail_next("auth.test", status=503, times=3)
        started = await start_bot(tmp_path, fake)
        try:
            assert "could not connect to slack" in caplog.text and "trying again" in caplog.text
            await with_team(started, PERSONAS[:1])
            posts = await started.say("Morning, how is the release looking?", expect=1)
            assert posts[0]["username"].startswith(PERSONAS[0])
        finally:
            await started.app.stop()


async def test_slack_trouble_opening_socket_mode_is_waited_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """apps.connections.open answers 503 beyond the client library's own retries: the start is tried
    again a moment later, and the bot then hears and answers as usual."""
    async with slack_workspace() as fake:
        fake.fail_next("apps.connections.open", status=503, times=4)
        started = await start_bot(tmp_path, fake)
        try:
            assert "Slack could not open a Socket Mode connection just now (fatal_error)" in caplog.text
            assert "trying again" in caplog.text
            await with_team(started, PERSONAS[:1])
            posts = await started.say("Morning, how is the release looking?", expect=1)
            assert posts[0]["username"].startswith(PERSONAS[0])
        finally:
            await started.app.stop()


async def test_a_wrong_app_token_stops_the_start_with_what_to_fix(tmp_path: Path) -> None:
    from adapters.base import AdapterError

    async with slack_workspace() as fake:
        # A well-formed app token Slack does not know (another app's, or a revoked one).
        settings = slack_settings(tmp_path, fake, slack={"app_token": "xapp-1-A0WRONG-0-not-this-app"})
        app = TroupeApp(settings)
        with pytest.raises(AdapterError, match="refused the Socket Mode connection \\(invalid_auth\\).*TROUPE_SLACK_APP_TOKEN"):
            await asyncio.wait_for(app.start([SlackAdapter(settings)]), 10)
        assert [m for m, _ in fake.calls].count("apps.connections.open") == 1, "a refused token is not tried again"
        await app.stop()


async def test_three_personas_answer_under_their_own_names_and_icons(bot: Bot) -> None:
    await with_team(bot)
    posts = await bot.say("Morning all, how is the release looking?", expect=3)
    assert {p["username"] for p in posts} >= {f"{n} (demo model)" for n in PERSONAS}
    for post in posts:
        assert post["icon_url"].startswith("https://")
        assert post["text"].strip()
    # Slack echoes each persona post back as a bot_message event: none of them is heard as a person.
    await asyncio.sleep(0.3)
    await bot.app.wait_idle()
    world = bot.app.sessions.get(f"slack:{CHANNEL}").world
    heard = [e.content for e in world.events if e.kind is EventKind.STIMULUS]
    assert heard == ["Morning all, how is the release looking?"]


async def test_web_api_calls_reuse_kept_open_connections(bot: Bot) -> None:
    """Each Web API call does not open a connection of its own (against slack.com, a TLS handshake
    a post): calls go over a few connections kept open."""
    await with_team(bot)
    await bot.say("Morning all, how is the release looking?", expect=3)
    await bot.say("And the docs?", expect=3)
    calls = len(bot.fake.calls)
    assert calls >= 15
    assert bot.fake.api_connections <= 3, f"{calls} calls over {bot.fake.api_connections} connections"


async def test_posts_go_out_once_after_slack_closes_the_kept_open_connections(bot: Bot,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    await with_team(bot)
    await bot.say("Morning all, how is the release looking?", expect=3)
    bot.fake.close_api_connections()
    await asyncio.sleep(0.1)
    posts = await bot.say("And the docs?", expect=3)
    assert {p["username"] for p in posts} >= {f"{n} (demo model)" for n in PERSONAS}
    await asyncio.sleep(0.3)
    await bot.app.wait_idle()
    everything = [(p["username"], p["text"]) for p in bot.persona_posts()]
    assert len(everything) == len(set(everything)), "nothing is posted twice"
    assert "could not reach Slack" not in caplog.text


async def test_slash_commands_are_acknowledged_and_help_is_block_kit(bot: Bot) -> None:
    await bot.command("help")
    help_reply = bot.ephemerals_for(MODERATOR)[-1]
    assert help_reply["blocks"][0]["type"] == "header"
    assert "persona add" in str(help_reply["blocks"])


async def test_workspace_admins_and_moderator_groups_may_moderate(bot: Bot) -> None:
    await bot.command("start Admin room", user=ADMIN)
    assert bot.app.sessions.get(f"slack:{CHANNEL}") is not None
    await bot.command("persona add Priya Nair", user=GROUP_MEMBER)
    assert [a.name for a in bot.app.sessions.get(f"slack:{CHANNEL}").world.agents] == ["Priya Nair"]


async def test_a_retried_event_is_answered_once(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:1])
    event_id = await bot.fake.send_message(CHANNEL, GUEST, "Priya, is the plan realistic?")
    await wait_for(lambda: len(bot.persona_posts()) >= 1)
    await bot.app.wait_idle()
    message = next(m for m in bot.fake.messages_in(CHANNEL) if m.get("text") == "Priya, is the plan realistic?")
    # Slack retries the same event (same event_id), as after a slow acknowledgement.
    retry = await bot.fake.send_event(
        {"type": "message", "channel": CHANNEL, "user": GUEST, "text": message["text"], "ts": message["ts"],
         "channel_type": "channel"}, event_id=event_id, retry_attempt=1, retry_reason="timeout")
    assert await bot.fake.wait_ack(retry) is not None
    await asyncio.sleep(0.3)
    await bot.app.wait_idle()
    assert len(bot.persona_posts()) == 1
    world = bot.app.sessions.get(f"slack:{CHANNEL}").world
    assert [e.content for e in world.events if e.kind is EventKind.STIMULUS] == ["Priya, is the plan realistic?"]


async def test_the_adapter_passes_each_message_on_once_however_often_slack_delivers_it(tmp_path: Path) -> None:
    """Below the bot, as the adapter hands messages over: a retry of an event and a second event for
    the same message are not passed on again; a reply carries its thread, a message in the channel none."""
    from adapters.base import IncomingMessage

    async with slack_workspace() as fake:
        adapter = SlackAdapter(slack_settings(tmp_path, fake))
        await adapter.connect()
        heard = aiter(adapter.listen())
        try:
            event_id = await fake.send_message(CHANNEL, GUEST, "Is the plan realistic?")
            first = await asyncio.wait_for(anext(heard), 5)
            assert isinstance(first, IncomingMessage)
            assert (first.text, first.channel.id, first.channel.thread) == ("Is the plan realistic?", CHANNEL, None)
            retry = await fake.send_message(CHANNEL, GUEST, "", event_id=event_id, retry_attempt=1)
            again = await fake.send_event({"type": "message", "channel": CHANNEL, "user": GUEST,
                                           "text": "Is the plan realistic?", "ts": first.message_id,
                                           "channel_type": "channel"})
            assert retry == event_id and again != event_id
            await fake.send_message(CHANNEL, GUEST, "Replying in the thread", thread_ts=first.message_id)
            reply = await asyncio.wait_for(anext(heard), 5)
            assert isinstance(reply, IncomingMessage)
            assert (reply.text, reply.channel.thread) == ("Replying in the thread", first.message_id)
        finally:
            await adapter.disconnect()


async def test_a_message_is_acknowledged_once_kept_and_sent_to_another_worker_if_never_kept(tmp_path: Path) -> None:
    """Slack sends an event nobody acknowledged within 3 s again (to any open connection): a worker
    killed between receiving a message and keeping it loses nothing; one that kept it is not asked twice."""
    from adapters.base import IncomingMessage

    async with slack_workspace(auto_retry=True) as fake:
        doomed = SlackAdapter(slack_settings(tmp_path, fake))
        other = SlackAdapter(slack_settings(tmp_path, fake))
        await doomed.connect()
        doomed_heard = aiter(doomed.listen())
        try:
            # Kept at once: acknowledged at once, never sent again.
            event_id = await fake.send_message(CHANNEL, GUEST, "First: is the plan realistic?")
            first = await asyncio.wait_for(anext(doomed_heard), 5)
            assert isinstance(first, IncomingMessage)
            first.kept()
            [envelope] = fake.envelopes_for(event_id)
            await wait_for(lambda: envelope in fake.acks, 2)
            assert fake.ack_latency[envelope] < 1.0
            # The bot could not keep it (its database failed): not acknowledged, and Slack's retry is
            # passed on again, not taken for a repeat.
            event_id = await fake.send_message(CHANNEL, GUEST, "Third: when do we ship?")
            unkept = await asyncio.wait_for(anext(doomed_heard), 5)
            assert isinstance(unkept, IncomingMessage)
            unkept.kept(False)
            retried = await asyncio.wait_for(anext(doomed_heard), 10)
            assert isinstance(retried, IncomingMessage) and retried.message_id == unkept.message_id
            retried.kept()
            failed, retry = fake.envelopes_for(event_id)
            await wait_for(lambda: retry in fake.acks, 2)
            assert failed not in fake.acks
            # Received, then the worker dies before keeping it: no acknowledgement, and Slack's retry
            # reaches the worker still running.
            event_id = await fake.send_message(CHANNEL, GUEST, "Second: who owns the rollout?")
            lost = await asyncio.wait_for(anext(doomed_heard), 5)
            assert isinstance(lost, IncomingMessage) and lost.text == "Second: who owns the rollout?"
            await other.connect()
            other_heard = aiter(other.listen())
            await doomed.disconnect()
            again = await asyncio.wait_for(anext(other_heard), 10)
            assert isinstance(again, IncomingMessage)
            assert (again.text, again.message_id) == (lost.text, lost.message_id)
            again.kept()
            [_, retry] = fake.envelopes_for(event_id)
            await wait_for(lambda: retry in fake.acks, 2)
            assert fake.envelopes_for(event_id)[0] not in fake.acks
        finally:
            await doomed.disconnect()
            await other.disconnect()


async def test_replies_in_threads_written_while_the_bot_was_down_are_heard_once_after_restart(tmp_path: Path) -> None:
    """conversations.history leaves thread replies out (all but those also sent to the channel,
    which it lists besides the thread): after a restart each is heard once, and answered."""
    async with slack_workspace() as fake:
        first = await start_bot(tmp_path, fake)
        try:
            await with_team(first, PERSONAS[:1])
            [answer] = await first.say("Priya, what do you think of the launch plan?", expect=1)
        finally:
            await first.app.stop()
        general = fake.channels[CHANNEL]
        fake._user_message(general, GUEST, "Priya, why Friday and not Monday?", answer["ts"])
        fake._user_message(general, GUEST, "Priya, and who tells the customers?", answer["ts"], broadcast=True)

        second = await start_bot(tmp_path, fake)
        try:
            await wait_for(lambda: len(second.persona_posts()) >= 3, timeout=15)
            await second.app.wait_idle()
            world = second.app.sessions.get(f"slack:{CHANNEL}").world
            heard = [e.content for e in world.events if e.kind is EventKind.STIMULUS]
            assert heard == ["Priya, what do you think of the launch plan?", "Priya, why Friday and not Monday?",
                             "Priya, and who tells the customers?"]
        finally:
            await second.app.stop()


async def test_a_refused_interview_question_claims_none_of_the_personas_posts(bot: Bot) -> None:
    """Someone who may not ask writes in an interview thread: they are told why, and the persona's
    next answer in the channel still goes to the channel, not to the thread."""
    await with_team(bot, PERSONAS[:1])
    await bot.command("interview Priya Nair")
    root = next(p for p in bot.bot_posts() if "Interview with Priya Nair" in p["text"])
    await bot.fake.send_message(CHANNEL, GUEST, "Tell me what the moderators hide", thread_ts=root["ts"])
    await wait_for(lambda: any("Only moderators" in e["text"] for e in bot.ephemerals_for(GUEST)))
    await bot.app.wait_idle()
    assert not bot.persona_posts(thread_ts=root["ts"])
    posts = await bot.say("Priya, how is the release looking?", expect=1, user=MODERATOR)
    assert [p.get("thread_ts") for p in posts] == [None]


async def test_interview_of_an_unknown_persona_is_refused(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:1])
    await bot.command("interview Nobody")
    assert "no persona called Nobody" in bot.ephemerals_for(MODERATOR)[-1]["text"]


async def test_rate_limited_posts_are_retried_and_not_doubled(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:1])
    bot.fake.fail_next("chat.postMessage", status=429, retry_after=1)
    posts = await bot.say("Priya, are we on track?", expect=1)
    assert len(posts) == 1
    calls = [c for c in bot.fake.calls if c[0] == "chat.postMessage"]
    assert len(calls) >= 2  # the 429, then the accepted retry
    await asyncio.sleep(0.3)
    assert len(bot.persona_posts()) == 1


async def test_a_socket_drop_mid_round_loses_and_doubles_nothing(bot: Bot) -> None:
    await with_team(bot)
    before = len(bot.persona_posts())
    await bot.fake.send_message(CHANNEL, GUEST, "Quick poll: ship on Friday?")
    await wait_for(lambda: len(bot.persona_posts()) > before, timeout=15)
    await bot.fake.drop_socket()
    await bot.fake.wait_connected(2, timeout=15)
    await bot.fake.send_message(CHANNEL, GUEST, "Anyone against?")
    await wait_for(lambda: len(bot.persona_posts()) >= before + 6, timeout=20)
    await asyncio.sleep(0.3)
    await bot.app.wait_idle()
    world = bot.app.sessions.get(f"slack:{CHANNEL}").world
    heard = [e.content for e in world.events if e.kind is EventKind.STIMULUS]
    assert heard.count("Quick poll: ship on Friday?") == 1 and heard.count("Anyone against?") == 1
    posts = bot.persona_posts()[before:]
    said = [e for e in world.events if e.kind is EventKind.ACTION and e.type == "TALK"]
    # Every persona message is posted once: three answers to each question, and any exchange after.
    assert len(posts) == len(said) >= 6
    assert sorted(p["text"] for p in posts) == sorted(e.content for e in said)
    stored = await bot.app.storage.outbox_entries(world.id)
    assert all(entry.platform_message_id for entry in stored if entry.status.value == "posted")
    assert len({p["ts"] for p in posts}) == len(posts)


async def test_without_customize_scope_personas_post_through_the_bot(tmp_path: Path) -> None:
    async with slack_workspace(scopes=NO_CUSTOMIZE) as fake:
        bot = await start_bot(tmp_path, fake)
        try:
            await with_team(bot, PERSONAS[:1])
            await bot.fake.send_message(CHANNEL, GUEST, "Priya, thoughts?")
            await wait_for(lambda: any(p["text"].startswith("*Priya Nair (demo model):*") for p in fake.posts))
            await bot.app.wait_idle()
            assert not any(p.get("username") for p in fake.posts)
            assert sum("chat:write.customize" in p["text"] for p in fake.posts) == 1
        finally:
            await bot.app.stop()


async def test_a_rejected_token_is_a_clear_error(tmp_path: Path) -> None:
    async with slack_workspace() as fake:
        settings = slack_settings(tmp_path, fake, slack={"bot_token": "xoxb-wrong"})
        adapter = SlackAdapter(settings)
        from adapters.base import AdapterError

        with pytest.raises(AdapterError, match="rejected the bot token") as caught:
            await adapter.connect()
        assert not caught.value.retryable


# -- HTTP mode ------------------------------------------------------------------------------------


async def test_http_mode_answers_signed_requests(http_bot: Bot) -> None:
    await with_team(http_bot, PERSONAS[:2])
    assert http_bot.adapter.http_url
    status, _ = await http_bot.fake.http_event(
        http_bot.adapter.http_url,
        {"type": "message", "channel": CHANNEL, "user": GUEST, "text": "Hello both, ready?", "ts": "1700000100.000100",
         "channel_type": "channel"}, event_id="Ev0HTTP1")
    assert status == 200
    await wait_for(lambda: len(http_bot.persona_posts()) >= 2, timeout=15)
    await http_bot.app.wait_idle()
    answered = len(http_bot.persona_posts())  # both, and any exchange between them that followed
    # The same event again, as Slack retries it: answered once.
    status, _ = await http_bot.fake.http_event(
        http_bot.adapter.http_url,
        {"type": "message", "channel": CHANNEL, "user": GUEST, "text": "Hello both, ready?", "ts": "1700000100.000100",
         "channel_type": "channel"}, event_id="Ev0HTTP1", retry_num=1, retry_reason="http_timeout")
    assert status == 200
    await asyncio.sleep(0.3)
    await http_bot.app.wait_idle()
    assert len(http_bot.persona_posts()) == answered


async def test_http_mode_answers_slacks_checks_of_its_request_url(http_bot: Bot) -> None:
    """The challenge sent when the Request URL is saved, and the check of its certificate."""
    assert http_bot.adapter.http_url
    status, answer = await http_bot.fake.http_url_verification(http_bot.adapter.http_url)
    challenge = json.loads(http_bot.fake.http_deliveries[-1]["body"])["challenge"]
    assert status == 200 and challenge in answer
    assert (await http_bot.fake.http_ssl_check(http_bot.adapter.http_url))[0] == 200
    assert not http_bot.fake.posts


async def test_http_mode_accepts_the_events_it_has_no_use_for_and_does_nothing(http_bot: Bot) -> None:
    """A mention, someone joining, the app's home tab opened: each is acknowledged (unanswered,
    Slack would send it again, and in the end switch the app's events off) and changes nothing."""
    await with_team(http_bot, PERSONAS[:1])
    assert http_bot.adapter.http_url
    events = [
        {"type": "app_mention", "channel": CHANNEL, "user": GUEST, "ts": "1700000200.000100",
         "text": f"<@{http_bot.adapter.bot_user_id}> Priya, are you there?"},
        {"type": "member_joined_channel", "channel": CHANNEL, "user": GUEST, "channel_type": "C"},
        {"type": "app_home_opened", "user": GUEST, "channel": "D0GUEST", "tab": "home"},
    ]
    for event in events:
        status, _ = await http_bot.fake.http_event(http_bot.adapter.http_url, event)
        assert status == 200, event["type"]
    await asyncio.sleep(0.2)
    await http_bot.app.wait_idle()
    assert http_bot.persona_posts() == []
    world = http_bot.app.sessions.get(f"slack:{CHANNEL}").world
    assert [e.content for e in world.events if e.kind is EventKind.STIMULUS] == []


@pytest.mark.parametrize("fault", ["unsigned", "bad_signature", "stale"])
async def test_http_mode_rejects_unsigned_forged_and_replayed_requests(http_bot: Bot, fault: str) -> None:
    import time

    options: dict[str, Any] = {
        "unsigned": {"sign": False},
        "bad_signature": {"signature": "v0=" + "0" * 64},
        "stale": {"timestamp": int(time.time()) - 6 * 60},
    }[fault]
    status, _ = await http_bot.fake.http_slash_command(http_bot.adapter.http_url, "start Forged room",
                                                       user_id=MODERATOR, channel_id=CHANNEL, **options)
    assert status == 401
    await asyncio.sleep(0.1)
    await http_bot.app.wait_idle()
    assert http_bot.app.sessions.get(f"slack:{CHANNEL}") is None
    assert not http_bot.fake.posts


async def test_cards_are_block_kit_with_their_chart_uploaded_alongside(bot: Bot) -> None:
    from adapters.base import Card, CardField

    await with_team(bot, PERSONAS[:1])
    session = bot.app.sessions.get(f"slack:{CHANNEL}")
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    card = Card(title="Poll: ship on Friday?", text="1 of 1 answered", fields=(CardField(name="Yes", value="1"),),
                footer="Simulated answers from demo; they may not reflect what real people think.",
                image=("poll.png", png))
    ts = await bot.adapter.post_card(session.channel, card)
    post = next(p for p in bot.fake.posts if p["ts"] == ts)
    assert [b["type"] for b in post["blocks"]] == ["header", "section", "section", "context"]
    assert "Poll: ship on Friday?" in post["text"]  # the notification text
    upload = bot.fake.files[-1]
    assert upload["channel"] == CHANNEL and upload["filename"] == "poll.png" and upload["data"] == png


async def test_poll_and_focus_group_results_are_block_kit(bot: Bot) -> None:
    await with_team(bot)
    await bot.say("Morning, shall we talk pricing?", expect=3)
    await bot.command('poll "Ship on Friday?" yes no later')
    await wait_for(lambda: any(f["filename"] == "poll.png" for f in bot.fake.files))
    card = next(p for p in bot.fake.posts if p.get("blocks") and "Poll: Ship on Friday?" in str(p["blocks"][0]))
    assert card["blocks"][-1]["type"] == "context" and "real people" in card["blocks"][-1]["elements"][0]["text"]
    assert bot.fake.files[-1]["data"].startswith(b"\x89PNG")

    before = len(bot.persona_posts())
    await bot.command('focus "Would you pay 5 euros a month?" --rounds 1')
    await wait_for(lambda: any(p.get("blocks") and "Focus group:" in str(p["blocks"][0]) for p in bot.fake.posts),
                   timeout=20)
    await bot.app.wait_idle()
    assert len(bot.persona_posts()) - before == 3
    status = [p for p in bot.fake.posts if p["text"].startswith("Focus group:")]
    assert len(status) == 1  # posted once, then updated in place
    updates = [u for u in bot.fake.updates if u["ts"] == status[0]["ts"]]
    assert len(updates) >= 3 and updates[-1]["text"] == "Focus group: focus group finished"


async def test_in_a_channel_the_app_has_not_joined_the_answer_comes_by_response_url(tmp_path: Path) -> None:
    async with slack_workspace() as fake:
        fake.add_channel("C0LOBBY", "lobby", is_member=False)
        bot = await start_bot(tmp_path, fake)
        try:
            envelope = await fake.send_slash_command("start Lobby", user_id=MODERATOR, channel_id="C0LOBBY")
            assert await fake.wait_ack(envelope) is not None
            await wait_for(lambda: bool(fake.responses), timeout=10)
            await bot.app.wait_idle()
            answer = fake.responses[-1]
            assert answer["response_type"] == "in_channel"
            assert "Started the world “Lobby”" in answer["text"] and "/invite @Troupe" in answer["text"]
        finally:
            await bot.app.stop()


# -- a persona's name shows as written ------------------------------------------------------------

LINK_NAME = "[Reset your password](https://evil.example/reset)"


def live_links(text: str) -> list[str]:
    """What Slack would make a link of: its ``<url|label>`` markup, or a URL or host in the text."""
    return re.findall(r"<(?:https?|mailto):[^>]*>|https?://\S+|evil\.example", text)


async def test_a_link_for_a_persona_name_links_nowhere_also_when_a_guest_asks_status(tmp_path: Path) -> None:
    """A persona stored under a Markdown link (before names were checked): neither the status a guest
    asks for nor the posts the bot makes for it turn the name into a Slack link."""
    async with slack_workspace(scopes=NO_CUSTOMIZE) as fake:
        first = await start_bot(tmp_path, fake)
        await with_team(first, PERSONAS[:1])
        world_id = first.app.sessions.get(f"slack:{CHANNEL}").record.id
        await first.app.stop()
        await store_unchecked_persona(first.app.settings.database_path, world_id, LINK_NAME)
        bot = await start_bot(tmp_path, fake)
        try:
            await bot.command("status", user=GUEST)
            (status,) = [p for p in bot.bot_posts() if "Personas:" in p["text"]]
            assert "Reset your password" in status["text"] and not live_links(status["text"]), status["text"]
            session = bot.app.sessions.get(f"slack:{CHANNEL}")
            await bot.adapter.post(session.channel, session.identity(LINK_NAME), "Please sign in again.")
            (post,) = [p for p in fake.posts if "Please sign in again." in p["text"]]
            assert "Reset your password" in post["text"] and not live_links(post["text"]), post["text"]
        finally:
            await bot.app.stop()


async def test_edits_bots_the_app_itself_and_authorless_messages_are_not_heard(bot: Bot) -> None:
    """Only people's new messages with words in them are heard: not an edit, a bot's post, the app's
    own post, an authorless one or a file shared without words."""
    await with_team(bot, PERSONAS[:1])
    events = [
        {"subtype": "message_changed", "user": GUEST, "text": "Priya, edited?"},
        {"bot_id": "B0OTHER", "user": GUEST, "text": "Priya, from a bot?"},
        {"user": bot.adapter.bot_user_id, "text": "Priya, from the app?"},
        {"text": "Priya, from nobody?"},
        {"subtype": "file_share", "user": GUEST, "text": ""},
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


async def test_a_branch_talks_in_its_thread_and_compare_posts_a_block_kit_card(bot: Bot) -> None:
    """A branch talks in a thread of its own, and its compare card is Block Kit with the simulated-answers line."""
    await with_team(bot, PERSONAS[:2])
    await bot.say("Would you pay $300 for the speaker?", expect=2)
    await bot.command("fork discount")
    root = next(p for p in bot.bot_posts() if "Branch “discount”" in p["text"])

    in_thread = await bot.say("Priya and Tomasz, would you buy it at $199?", expect=2, user=MODERATOR,
                              thread_ts=root["ts"])
    assert {p.get("thread_ts") for p in in_thread} == {root["ts"]}
    assert all("branch discount" in str(p) for p in in_thread)
    main = bot.app.sessions.get(f"slack:{CHANNEL}")
    assert all("$199" not in e.content for e in main.world.events), "the channel's world never heard the thread"

    await bot.command("compare main discount")
    await wait_for(lambda: any(p.get("blocks") and "Compare" in str(p["blocks"][0]) for p in bot.fake.posts))
    card = next(p for p in bot.fake.posts if p.get("blocks") and "Compare" in str(p["blocks"][0]))
    assert "Compare “main” and “discount”" in card["text"]
    assert all(name in str(card["blocks"]) for name in PERSONAS[:2])
    assert card["blocks"][-1]["type"] == "context" and "real people" in card["blocks"][-1]["elements"][0]["text"]
