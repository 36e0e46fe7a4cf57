"""The fake Slack is faithful enough that the real slack_sdk / slack_bolt clients work against it."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_server import DEFAULT_SCOPES, FakeSlack, NotConnected
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(30)

GENERAL = "C0GENERAL"
ALICE = "U0ALICE"


def _populate(fake: FakeSlack) -> FakeSlack:
    fake.add_channel(GENERAL, "general")
    fake.add_channel("G0SECRET", "secret", is_private=True)
    fake.add_user(ALICE, "alice", display_name="Alice A.")
    fake.add_user("U0ADMIN", "boss", is_admin=True, is_owner=True)
    fake.add_usergroup("S0MODS", "mods", ["U0ADMIN", ALICE])
    return fake


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield _populate(server)


def web_client(fake: FakeSlack, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token or fake.bot_token, base_url=fake.api_base)


@contextlib.asynccontextmanager
async def socket_client(
    fake: FakeSlack,
    *,
    ack: bool = True,
    ping_interval: float = 0.3,
) -> AsyncIterator[tuple[SocketModeClient, list[dict[str, Any]]]]:
    """A connected slack_sdk SocketModeClient that records every message and (optionally) acks requests."""
    client = SocketModeClient(
        app_token=fake.app_token, web_client=web_client(fake, fake.app_token), ping_interval=ping_interval
    )
    seen: list[dict[str, Any]] = []

    async def on_message(_client: Any, message: dict[str, Any], _raw: str | None) -> None:
        seen.append(message)

    async def on_request(sm_client: SocketModeClient, req: SocketModeRequest) -> None:
        if ack:
            await sm_client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    client.message_listeners.append(on_message)
    client.socket_mode_request_listeners.append(on_request)
    try:
        await client.connect()
        await fake.wait_connected()
        yield client, seen
    finally:
        await client.close()



# ---------------------------------------------------------------------- Web API


async def test_auth_test_answers_with_identity_and_scopes_header(fake: FakeSlack) -> None:
    response = await web_client(fake).auth_test()
    assert response["ok"] is True
    assert (response["user_id"], response["bot_id"], response["team_id"]) == ("UBOT", "BBOT", "T0TEAM")
    assert response["url"].startswith("https://")
    assert response.headers["x-oauth-scopes"].split(",") == list(DEFAULT_SCOPES)
    assert fake.calls == [("auth.test", {})]


async def test_token_counts_only_in_the_authorization_header(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as bad:
        await web_client(fake, "xoxb-wrong").auth_test()
    assert bad.value.response["error"] == "invalid_auth"
    assert bad.value.response.status_code == 200

    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=fake.api_base).auth_test()
    assert missing.value.response["error"] == "not_authed"

    async with aiohttp.ClientSession() as session:
        async with session.post(fake.api_base + "auth.test", json={"token": fake.bot_token}) as resp:
            assert (await resp.json())["error"] == "not_authed"

    with pytest.raises(SlackApiError) as wrong_kind:
        await web_client(fake, fake.app_token).chat_postMessage(channel=GENERAL, text="hi")
    assert wrong_kind.value.response["error"] == "not_allowed_token_type"
    assert all("token" not in params for _, params in fake.calls)


async def test_post_message_with_username_and_blocks_is_recorded_and_echoed(fake: FakeSlack) -> None:
    async with socket_client(fake) as (_, seen):
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
        response = await web_client(fake).chat_postMessage(
            channel=GENERAL,
            text="hi",
            blocks=blocks,
            username="Ada",
            icon_url="https://example.com/ada.png",
            unfurl_links=False,
        )
        assert response["channel"] == GENERAL
        ts = response["ts"]
        await until(lambda: any(m.get("type") == "events_api" for m in seen))

    post = fake.posts[0]
    assert (post["channel"], post["text"], post["blocks"], post["ts"]) == (GENERAL, "hi", blocks, ts)
    assert (post["username"], post["icon_url"], post["unfurl_links"]) == ("Ada", "https://example.com/ada.png", False)
    event = next(m for m in seen if m.get("type") == "events_api")["payload"]["event"]
    assert event["type"] == "message" and event["subtype"] == "bot_message"
    assert event["bot_id"] == "BBOT" and event["username"] == "Ada" and "user" not in event
    assert event["channel"] == GENERAL and event["ts"] == ts
    assert [m["text"] for m in fake.messages_in(GENERAL)] == ["hi"]


async def test_ts_values_are_unique_and_increasing(fake: FakeSlack) -> None:
    client = web_client(fake)
    stamps = [(await client.chat_postMessage(channel=GENERAL, text=str(i)))["ts"] for i in range(5)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


async def test_username_is_ignored_without_customize_scope_and_scopes_are_enforced() -> None:
    scopes = [s for s in DEFAULT_SCOPES if s not in ("chat:write.customize", "users:read")]
    async with FakeSlack(scopes=scopes) as fake:
        _populate(fake)
        async with socket_client(fake) as (_, seen):
            await web_client(fake).chat_postMessage(channel=GENERAL, text="hi", username="Ada")
            await until(lambda: any(m.get("type") == "events_api" for m in seen))
        post = fake.posts[0]
        assert post["username"] is None and post["requested_username"] == "Ada"
        event = next(m for m in seen if m.get("type") == "events_api")["payload"]["event"]
        assert event["user"] == "UBOT" and event["bot_id"] == "BBOT" and "subtype" not in event

        with pytest.raises(SlackApiError) as denied:
            await web_client(fake).users_info(user=ALICE)
        assert denied.value.response["error"] == "missing_scope"
        assert denied.value.response["needed"] == "users:read"
        assert denied.value.response["provided"] == ",".join(scopes)


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
async def test_message_validation_errors(fake: FakeSlack) -> None:
    client = web_client(fake)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": "C0NOPE", "text": "hi"}, "channel_not_found"),
        ({"channel": GENERAL, "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": GENERAL, "text": "hi", "blocks": [{"text": "no type"}]}, "invalid_blocks"),
        ({"channel": GENERAL, "text": "hi", "blocks": [{"type": "nonsense"}]}, "invalid_blocks"),
        ({"channel": GENERAL, "text": "hi", "blocks": "not json"}, "invalid_blocks_format"),
        ({"channel": GENERAL}, "no_text"),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as failure:
            await client.chat_postMessage(**kwargs)
        assert failure.value.response["error"] == error, kwargs
    assert fake.posts == []
    assert (await client.chat_postMessage(channel=GENERAL, text="x" * 40_000))["ok"]


async def test_rate_limit_is_retried_by_the_sdk_handler(fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", retry_after=0)
    plain = web_client(fake)
    with pytest.raises(SlackApiError) as limited:
        await plain.chat_postMessage(channel=GENERAL, text="once")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "0"
    assert limited.value.response["error"] == "ratelimited"

    fake.fail_next("chat.postMessage", retry_after=0)
    retrying = web_client(fake)
    retrying.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    response = await retrying.chat_postMessage(channel=GENERAL, text="twice")
    assert response["ok"]
    assert [p["text"] for p in fake.calls_to("chat.postMessage")] == ["once", "twice", "twice"]
    assert [p["text"] for p in fake.posts] == ["twice"]


async def test_fail_next_with_an_error_or_a_server_error(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.fail_next("users.info", error="fatal_error", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as failure:
            await client.users_info(user=ALICE)
        assert failure.value.response.status_code == 200 and failure.value.response["error"] == "fatal_error"
    fake.fail_next("users.info", status=503)
    with pytest.raises(SlackApiError) as unavailable:
        await client.users_info(user=ALICE)
    assert unavailable.value.response.status_code == 503
    assert (await client.users_info(user=ALICE))["user"]["id"] == ALICE


async def test_files_upload_v2_lands_in_files_and_the_channel(fake: FakeSlack) -> None:
    client = web_client(fake)
    parent = await client.chat_postMessage(channel=GENERAL, text="thread")
    result = await client.files_upload_v2(
        channel=GENERAL,
        content=b"hello file",
        filename="notes.txt",
        title="Notes",
        initial_comment="see attached",
        thread_ts=parent["ts"],
    )
    assert result["file"]["title"] == "Notes"
    record = fake.files[0]
    assert (record["channel"], record["filename"], record["title"], record["data"]) == (
        GENERAL,
        "notes.txt",
        "Notes",
        b"hello file",
    )
    assert (record["initial_comment"], record["thread_ts"]) == ("see attached", parent["ts"])
    assert [name for name, _ in fake.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    thread = fake.messages_in(GENERAL, thread_ts=parent["ts"])
    assert [m.get("subtype") for m in thread] == [None, "file_share"]
    assert thread[1]["files"][0]["name"] == "notes.txt"


async def test_reads_users_groups_channels_and_history(fake: FakeSlack) -> None:
    client = web_client(fake)
    user = (await client.users_info(user="U0ADMIN"))["user"]
    assert (user["is_admin"], user["is_owner"], user["is_bot"]) == (True, True, False)
    assert (await client.users_info(user=ALICE))["user"]["profile"]["display_name"] == "Alice A."
    assert (await client.users_info(user="UBOT"))["user"]["is_bot"] is True
    assert (await client.usergroups_users_list(usergroup="S0MODS"))["users"] == ["U0ADMIN", ALICE]
    groups = (await client.usergroups_list(include_users=True))["usergroups"]
    assert groups[0]["handle"] == "mods" and groups[0]["users"] == ["U0ADMIN", ALICE]
    info = (await client.conversations_info(channel=GENERAL))["channel"]
    assert (info["name"], info["is_private"], info["is_member"]) == ("general", False, True)
    with pytest.raises(SlackApiError) as private:
        await client.conversations_info(channel="G0SECRET")
    assert private.value.response["needed"] == "groups:read"

    async with socket_client(fake):
        await fake.send_message(GENERAL, ALICE, "first")
        root = fake.messages_in(GENERAL)[0]["ts"]
        await fake.send_message(GENERAL, ALICE, "in thread", thread_ts=root)
    await client.chat_postMessage(channel=GENERAL, text="reply", thread_ts=root)
    await client.chat_postMessage(channel=GENERAL, text="later")
    history = (await client.conversations_history(channel=GENERAL))["messages"]
    assert [m["text"] for m in history] == ["later", "first"]
    assert history[1]["reply_count"] == 2
    replies = (await client.conversations_replies(channel=GENERAL, ts=root))["messages"]
    assert [m["text"] for m in replies] == ["first", "in thread", "reply"]
    page = await client.conversations_history(channel=GENERAL, limit=1)
    assert page["has_more"] and page["response_metadata"]["next_cursor"]
    dm = (await client.conversations_open(users=ALICE))["channel"]["id"]
    assert dm.startswith("D")
    await client.chat_postMessage(channel=dm, text="psst")
    assert fake.messages_in(dm)[0]["text"] == "psst"


async def test_update_delete_and_ephemeral(fake: FakeSlack) -> None:
    client = web_client(fake)
    posted = await client.chat_postMessage(channel=GENERAL, text="draft")
    await client.chat_update(channel=GENERAL, ts=posted["ts"], text="final")
    assert fake.updates[0]["text"] == "final"
    assert fake.messages_in(GENERAL)[0]["text"] == "final"
    ephemeral = await client.chat_postEphemeral(channel=GENERAL, user=ALICE, text="just you")
    assert ephemeral["message_ts"]
    assert fake.ephemerals[0]["user"] == ALICE and fake.ephemerals[0]["text"] == "just you"
    await client.chat_delete(channel=GENERAL, ts=posted["ts"])
    assert fake.messages_in(GENERAL) == []
    with pytest.raises(SlackApiError) as gone:
        await client.chat_update(channel=GENERAL, ts=posted["ts"], text="again")
    assert gone.value.response["error"] == "message_not_found"


# ---------------------------------------------------------------------- Socket Mode (slack_sdk)


async def test_socket_mode_hello_event_and_ack(fake: FakeSlack) -> None:
    async with socket_client(fake) as (client, seen):
        await until(lambda: any(m.get("type") == "hello" for m in seen))
        hello = next(m for m in seen if m.get("type") == "hello")
        assert hello["connection_info"]["app_id"] == "A0APP" and hello["num_connections"] == 1
        assert fake.calls_to("apps.connections.open") == [{}]

        event_id = await fake.send_message(GENERAL, ALICE, "hello <@UBOT>")
        (envelope_id,) = fake.envelopes_for(event_id)
        ack = await fake.wait_ack(envelope_id)
        assert ack == {"envelope_id": envelope_id}
        envelope = next(m for m in seen if m.get("envelope_id") == envelope_id)
        assert (envelope["type"], envelope["retry_attempt"], envelope["retry_reason"]) == ("events_api", 0, "")
        payload = envelope["payload"]
        assert payload["type"] == "event_callback" and payload["event_id"] == event_id
        assert payload["api_app_id"] == "A0APP" and payload["authorizations"][0]["user_id"] == "UBOT"
        event = payload["event"]
        assert (event["user"], event["text"], event["channel_type"]) == (ALICE, "hello <@UBOT>", "channel")
        assert event["blocks"][0]["type"] == "rich_text"
        # No app_mentions:read scope by default, so Slack sends no app_mention event.
        assert any(u["event"]["type"] == "app_mention" for u in fake.undelivered)
        assert fake.unacked == []


async def test_with_several_connections_each_payload_goes_to_one_of_them(fake: FakeSlack) -> None:
    """Several instances of an app each open a connection: Slack sends each payload to one of them,
    at random, never to all."""
    async with socket_client(fake) as (_, first), socket_client(fake) as (_, second):
        await fake.wait_connected(2)
        sent = [await fake.send_message(GENERAL, ALICE, f"message {n}") for n in range(20)]

        def carried(seen: list[dict]) -> list[str]:
            return [m["payload"]["event_id"] for m in seen if m.get("type") == "events_api"]

        await until(lambda: len(carried(first)) + len(carried(second)) == 20)
        assert sorted(carried(first) + carried(second)) == sorted(sent), "each payload once"
        assert carried(first) and carried(second), "spread over both connections"


async def test_socket_mode_slash_command_is_acked(fake: FakeSlack) -> None:
    async with socket_client(fake) as (_, seen):
        envelope_id = await fake.send_slash_command("ping", user_id=ALICE, channel_id=GENERAL)
        assert await fake.wait_ack(envelope_id) is not None
    envelope = next(m for m in seen if m.get("envelope_id") == envelope_id)
    assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
    payload = envelope["payload"]
    assert (payload["command"], payload["text"], payload["user_id"], payload["channel_name"]) == (
        "/troupe",
        "ping",
        ALICE,
        "general",
    )
    assert payload["response_url"].startswith(fake.base_url) and payload["trigger_id"]
    assert payload["is_enterprise_install"] == "false"


async def test_unacked_envelopes_are_recorded_and_retried_when_asked() -> None:
    async with FakeSlack(ack_deadline=0.2, auto_retry=True) as fake:
        _populate(fake)
        async with socket_client(fake, ack=False) as (_, seen):
            event_id = await fake.send_message(GENERAL, ALICE, "anyone?")
            await until(lambda: len(fake.envelopes_for(event_id)) >= 2)
            first, second = fake.envelopes_for(event_id)[:2]
            assert await fake.wait_ack(first, timeout=0.1) is None
            assert fake.unacked[0]["envelope_id"] == first
        retry = next(m for m in seen if m.get("envelope_id") == second)
        assert (retry["retry_attempt"], retry["retry_reason"]) == (1, "timeout")
        assert retry["payload"]["event_id"] == event_id


async def test_an_event_written_to_a_dying_socket_is_retried_on_a_live_one() -> None:
    """An app instance killed with its socket still open: the write to it fails, and Slack sends the
    event again, as a retry, to the instance still connected (events are not lost with one alive)."""
    async with FakeSlack(ack_deadline=0.2, auto_retry=True, connection_seed=0) as fake:
        _populate(fake)
        async with socket_client(fake) as (_, first), socket_client(fake) as (_, second):
            await fake.wait_connected(2)
            dying = fake.connections[0]
            dying.request.transport.close()  # the process is gone; the fake has not noticed yet
            assert dying.live
            event_ids = [await fake.send_message(GENERAL, ALICE, f"still there? {n}") for n in range(6)]
            assert fake.failed_sends and not dying.live, "some write hit the dying socket"

            def carried() -> set[str]:
                return {m["payload"]["event_id"] for m in first + second if m.get("type") == "events_api"}

            await until(lambda: carried() == set(event_ids))
            retried = [m for m in first + second if m.get("type") == "events_api" and m["retry_attempt"] == 1]
            assert {m["payload"]["event_id"] for m in retried} == {
                f["envelope"]["payload"]["event_id"] for f in fake.failed_sends}
            assert fake.undelivered == []


async def test_socket_mode_reconnects_after_a_drop_and_on_refresh(fake: FakeSlack) -> None:
    async with socket_client(fake, ping_interval=0.2) as _:
        await fake.drop_socket()
        assert fake.connections[0].ws.closed
        await fake.wait_connected(2, timeout=5)
        envelope_id = await fake.send_event({"type": "reaction_added", "user": ALICE, "reaction": "wave"})
        assert await fake.wait_ack(envelope_id) is not None

        await fake.request_refresh()
        await fake.wait_connected(3, timeout=5)
        await until(lambda: sum(not c.ws.closed for c in fake.connections) == 1)
        assert len(fake.calls_to("apps.connections.open")) == 3


async def test_send_event_needs_a_connection(fake: FakeSlack) -> None:
    with pytest.raises(NotConnected):
        await fake.send_event({"type": "reaction_added"})
    with pytest.raises(NotConnected):
        await fake.send_message(GENERAL, ALICE, "into the void")
    assert fake.messages_in(GENERAL) == []
    await web_client(fake).chat_postMessage(channel=GENERAL, text="nobody listening")
    await until(lambda: bool(fake.undelivered))
    assert fake.undelivered[0]["reason"] == "no socket connected"


# ---------------------------------------------------------------------- Bolt


async def test_bolt_app_over_socket_mode(fake: FakeSlack) -> None:
    app = AsyncApp(client=web_client(fake), signing_secret=fake.signing_secret)
    heard: list[dict[str, Any]] = []

    @app.event("message")
    async def on_message(event: dict[str, Any], say: Callable[..., Awaitable[Any]]) -> None:
        heard.append(event)
        await say(text=f"echo: {event['text']}", thread_ts=event["ts"])

    @app.command("/troupe")
    async def on_command(ack: Callable[..., Awaitable[None]], respond: Callable[..., Awaitable[Any]]) -> None:
        await ack("working on it")
        await respond(text="done", response_type="in_channel")

    handler = AsyncSocketModeHandler(app, fake.app_token, ping_interval=0.5)
    await handler.connect_async()
    try:
        await fake.wait_connected()
        event_id = await fake.send_message(GENERAL, ALICE, "hi bot")
        assert await fake.wait_ack(fake.envelopes_for(event_id)[0]) is not None
        await fake.wait_for(lambda: len(fake.posts) == 1)
        # The echo of the bot's own post is acked by Bolt but never reaches the listener.
        await fake.wait_for(lambda: len(fake.envelopes) == 2)
        assert await fake.wait_ack(fake.envelopes[1]["envelope_id"]) is not None
        assert [e["text"] for e in heard] == ["hi bot"]

        command = await fake.send_slash_command("go", user_id=ALICE, channel_id=GENERAL)
        ack = await fake.wait_ack(command)
        assert ack == {"envelope_id": command, "payload": {"text": "working on it"}}
        await fake.wait_for(lambda: len(fake.responses) == 1)
    finally:
        await handler.close_async()

    assert fake.posts[0]["text"] == "echo: hi bot" and fake.posts[0]["thread_ts"] == heard[0]["ts"]
    assert fake.command_replies[0]["text"] == "working on it"
    assert fake.responses[0] == {"text": "done", "response_type": "in_channel"}
    assert [m["text"] for m in fake.messages_in(GENERAL)] == ["hi bot", "done"]
    assert [m["text"] for m in fake.messages_in(GENERAL, thread_ts=heard[0]["ts"])] == ["hi bot", "echo: hi bot"]
    # Bolt's per-request client adds the event's team_id to every call, auth.test included (called once).
    assert fake.calls_to("auth.test") == [{"team_id": "T0TEAM"}]
    assert fake.calls_to("chat.postMessage")[0]["team_id"] == "T0TEAM"


async def test_response_url_allows_five_uses(fake: FakeSlack) -> None:
    async with socket_client(fake) as (_, seen):
        envelope_id = await fake.send_slash_command("x", user_id=ALICE, channel_id=GENERAL)
        await fake.wait_ack(envelope_id)
    url = next(m for m in seen if m.get("envelope_id") == envelope_id)["payload"]["response_url"]
    async with aiohttp.ClientSession() as session:
        statuses = []
        for i in range(6):
            async with session.post(url, json={"text": f"r{i}"}) as resp:
                statuses.append(resp.status)
        async with session.post(url, json={"response_type": "ephemeral"}) as resp:
            statuses.append(resp.status)
    assert statuses == [200] * 5 + [404, 404]
    assert [r["text"] for r in fake.responses] == [f"r{i}" for i in range(5)]


# ---------------------------------------------------------------------- HTTP mode


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_http_events_are_signed_as_slack_signs_them(fake: FakeSlack) -> None:
    verifier = SignatureVerifier(fake.signing_secret)
    received: list[tuple[dict[str, str], bytes]] = []

    async def endpoint(request: web.Request) -> web.Response:
        body = await request.read()
        received.append((dict(request.headers), body))
        if not verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401, text="invalid signature")
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/slack/events", endpoint)
    async with serve(app) as root:
        url = root + "/slack/events"
        event = {"type": "message", "user": ALICE, "text": "hi", "channel": GENERAL, "ts": "1700000000.000100"}
        assert await fake.http_event(url, event, event_id="Ev0TEST") == (200, "")
        assert (await fake.http_event(url, event, signature="v0=" + "0" * 64))[0] == 401
        assert (await fake.http_event(url, event, timestamp=int(time.time()) - 301))[0] == 401
        assert (await fake.http_event(url, event, sign=False))[0] == 401
        status, _ = await fake.http_event(url, {}, event_id="Ev0TEST", retry_num=1, retry_reason="http_timeout")
        assert status == 200
        assert (await fake.http_slash_command(url, "hello", user_id=ALICE, channel_id=GENERAL))[0] == 200

    headers, body = received[0]
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert (payload["type"], payload["event_id"], payload["event"]["text"]) == ("event_callback", "Ev0TEST", "hi")
    retry_headers, retry_body = received[4]
    assert (retry_headers["X-Slack-Retry-Num"], retry_headers["X-Slack-Retry-Reason"]) == ("1", "http_timeout")
    assert retry_body == body
    command_headers, command_body = received[5]
    assert command_headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert b"command=%2Ftroupe" in command_body and b"text=hello" in command_body
    assert fake.sign(b"abc", 1) == verifier.generate_signature(timestamp="1", body=b"abc")


async def test_bolt_http_mode_verifies_the_fakes_signatures(fake: FakeSlack) -> None:
    app = AsyncApp(client=web_client(fake), signing_secret=fake.signing_secret)
    heard: list[str] = []

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        heard.append(event["text"])

    @app.command("/troupe")
    async def on_command(ack: Callable[..., Awaitable[None]], command: dict[str, Any]) -> None:
        await ack(f"you said {command['text']}")

    async with serve(app.web_app(path="/slack/events")) as root:
        url = root + "/slack/events"
        event = {"type": "message", "user": ALICE, "text": "over http", "channel": GENERAL, "ts": "1700000000.000200"}
        assert (await fake.http_event(url, event))[0] == 200
        assert (await fake.http_event(url, event, signature="v0=bad"))[0] == 401
        status, text = await fake.http_slash_command(url, "hey", user_id=ALICE, channel_id=GENERAL)
        assert (status, text) == (200, "you said hey")
        assert (await fake.http_url_verification(url))[0] == 200
    await until(lambda: heard == ["over http"])
    assert fake.command_replies[0]["text"] == "you said hey" and fake.command_replies[0]["user"] == ALICE


# ---------------------------------------------------------------------- many workspaces


async def install(fake: FakeSlack, team_id: str, redirect: str = "https://app.example/slack/oauth_redirect",
                  state: str = "s1") -> dict[str, Any]:
    """Run the OAuth flow by hand: the authorize page, then oauth.v2.access with the code it gave."""
    fake.install_into(team_id, "U0INSTALLER")
    query = {"client_id": fake.client_id, "scope": "chat:write,users:read", "state": state, "redirect_uri": redirect}
    async with aiohttp.ClientSession() as session, \
            session.get(fake.authorize_url, params=query, allow_redirects=False) as page:
        assert page.status == 302, await page.text()
        location = page.headers["Location"]
    assert location.startswith(redirect + "?")
    back = dict(pair.split("=", 1) for pair in location.split("?", 1)[1].split("&"))
    assert back["state"] == state
    client = AsyncWebClient(base_url=fake.api_base)
    answer = await client.oauth_v2_access(client_id=fake.client_id, client_secret=fake.client_secret,
                                          code=back["code"], redirect_uri=redirect)
    with pytest.raises(SlackApiError, match="invalid_code"):
        await client.oauth_v2_access(client_id=fake.client_id, client_secret=fake.client_secret,
                                     code=back["code"], redirect_uri=redirect)
    return dict(answer.data)  # type: ignore[arg-type]


async def test_a_workspace_installs_the_app_and_gets_its_own_token(fake: FakeSlack) -> None:
    fake.add_team("T0OTHER", "Other Co")
    answer = await install(fake, "T0OTHER")
    assert answer["team"] == {"id": "T0OTHER", "name": "Other Co"}
    assert answer["access_token"].startswith("xoxb-") and answer["access_token"] != fake.bot_token
    assert (answer["bot_user_id"], answer["scope"], answer["authed_user"]) == \
        ("UBOT0OTHER", "chat:write,users:read", {"id": "U0INSTALLER"})
    assert "refresh_token" not in answer
    auth = await web_client(fake, answer["access_token"]).auth_test()
    assert (auth["team_id"], auth["user_id"], auth["team"]) == ("T0OTHER", "UBOT0OTHER", "Other Co")
    assert auth.headers["X-OAuth-Scopes"] == "chat:write,users:read"


async def test_a_token_acts_in_its_own_workspace_only(fake: FakeSlack) -> None:
    fake.add_team("T0OTHER", "Other Co")
    with fake.acting_in("T0OTHER"):
        fake.add_channel("C0THEIRS", "theirs")
        fake.add_user("U0BOB", "bob")
    theirs = web_client(fake, (await install(fake, "T0OTHER"))["access_token"])
    ours = web_client(fake)
    posted = await theirs.chat_postMessage(channel="C0THEIRS", text="hello")
    assert fake.messages_in("C0THEIRS")[0]["ts"] == posted["ts"]
    with pytest.raises(SlackApiError, match="channel_not_found"):
        await theirs.chat_postMessage(channel=GENERAL, text="into another workspace")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        await ours.conversations_history(channel="C0THEIRS")
    with pytest.raises(SlackApiError, match="user_not_found"):
        await ours.users_info(user="U0BOB")
    assert (await theirs.users_info(user="U0BOB"))["user"]["team_id"] == "T0OTHER"
    assert fake.messages_in(GENERAL) == []


async def test_wrong_credentials_cancelled_installs_and_unknown_redirects_are_refused() -> None:
    async with FakeSlack(redirect_urls=["https://app.example/back"]) as fake:
        client = AsyncWebClient(base_url=fake.api_base)
        with pytest.raises(SlackApiError, match="bad_client_secret"):
            await client.oauth_v2_access(client_id=fake.client_id, client_secret="wrong", code="x")
        with pytest.raises(SlackApiError, match="invalid_code"):
            await client.oauth_v2_access(client_id=fake.client_id, client_secret=fake.client_secret, code="made-up")
        async with aiohttp.ClientSession() as session:
            base = {"client_id": fake.client_id, "scope": "chat:write", "state": "s"}
            async with session.get(fake.authorize_url, params={**base, "redirect_uri": "https://evil.example/"},
                                   allow_redirects=False) as page:
                assert (page.status, await page.text()) == (400, "bad_redirect_uri")
            async with session.get(fake.authorize_url, params={**base, "client_id": "9.9"}, allow_redirects=False) as page:
                assert (page.status, await page.text()) == (400, "invalid_client_id")
            fake.install_into(None)
            async with session.get(fake.authorize_url, params=base, allow_redirects=False) as page:
                assert page.status == 302
                assert page.headers["Location"] == "https://app.example/back?state=s&error=access_denied"


async def test_rotating_tokens_expire_and_are_refreshed() -> None:
    async with FakeSlack(token_lifetime_s=3600) as fake:
        fake.add_team("T0OTHER", "Other Co")
        answer = await install(fake, "T0OTHER")
        assert answer["access_token"].startswith("xoxe.xoxb-") and answer["expires_in"] == 3600
        fake.expire_tokens("T0OTHER")
        with pytest.raises(SlackApiError, match="token_expired"):
            await web_client(fake, answer["access_token"]).auth_test()
        client = AsyncWebClient(base_url=fake.api_base)
        refreshed = await client.oauth_v2_access(client_id=fake.client_id, client_secret=fake.client_secret,
                                                 grant_type="refresh_token", refresh_token=answer["refresh_token"])
        assert refreshed["access_token"] != answer["access_token"]
        assert refreshed["access_token"] == fake.token_of("T0OTHER")
        assert (await web_client(fake, refreshed["access_token"]).auth_test())["team_id"] == "T0OTHER"
        with pytest.raises(SlackApiError, match="invalid_refresh_token"):
            await client.oauth_v2_access(client_id=fake.client_id, client_secret=fake.client_secret,
                                         grant_type="refresh_token", refresh_token="xoxe-1-made-up")


async def test_uninstalling_and_revoking_tell_the_app_and_end_the_tokens(fake: FakeSlack) -> None:
    fake.add_team("T0OTHER", "Other Co")
    fake.add_team("T0THIRD", "Third Co")
    other = (await install(fake, "T0OTHER"))["access_token"]
    third = (await install(fake, "T0THIRD"))["access_token"]
    received: list[dict[str, Any]] = []

    async def endpoint(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/slack/events", endpoint)
    async with serve(app) as root:
        assert await fake.uninstall("T0OTHER", url=root + "/slack/events") == (200, "")
        assert await fake.revoke_bot_token("T0THIRD", url=root + "/slack/events") == (200, "")
    assert [(r["team_id"], r["event"]["type"]) for r in received] == \
        [("T0OTHER", "app_uninstalled"), ("T0THIRD", "tokens_revoked")]
    assert received[1]["event"]["tokens"] == {"oauth": [], "bot": ["UBOT0THIRD"]}
    for token in (other, third):
        with pytest.raises(SlackApiError, match="token_revoked"):
            await web_client(fake, token).auth_test()
    assert (await web_client(fake).auth_test())["team_id"] == "T0TEAM"
