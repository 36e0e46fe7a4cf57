"""The Slack adapter's pure pieces: text conversion, Block Kit cards, repeat detection, set-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapters.base import AdapterError, Card, CardField, Identity
from adapters.slack import (
    BLOCKS_MAX,
    FIELDS_PER_SECTION,
    HEADER_MAX,
    SlackAdapter,
    _plain_text,
    _Seen,
    card_blocks,
    escape,
    fallback_prefix,
    to_mrkdwn,
)
from config.settings import Settings
from tests.support.paths import ROOT


def test_mass_mentions_typed_by_a_persona_ping_nobody() -> None:
    text = to_mrkdwn("Hey <!channel> and <!here> and <@U123>, see <https://evil.example|this>")
    assert "<!" not in text and "<@" not in text and "<https" not in text
    assert "&lt;!channel&gt;" in text


def test_markdown_becomes_slack_mrkdwn() -> None:
    assert to_mrkdwn("**Started** the world") == "*Started* the world"
    assert to_mrkdwn("see [the docs](https://example.com/a?b=1&c=2)") == "see <https://example.com/a?b=1&c=2|the docs>"
    assert to_mrkdwn("`persona add NAME` & more") == "`persona add NAME` &amp; more"


def test_slack_markup_reads_as_a_person_wrote_it() -> None:
    assert _plain_text("<@U1|ana> look at <https://x.io|the plan> &amp; <#C1|general>") == \
        "@ana look at the plan (https://x.io) & #general"
    assert _plain_text("hi <!here>") == "hi @here"


def test_fallback_prefix_names_the_persona_and_tag() -> None:
    assert fallback_prefix(Identity(name="Priya <Nair>", tag="demo model")) == "*Priya &lt;Nair&gt; (demo model):* "


def test_display_name_keeps_the_tag_within_slacks_limit() -> None:
    name = Identity(name="A" * 200, tag="demo model").display_name(80)
    assert len(name) == 80 and name.endswith("(demo model)")


def test_card_as_block_kit() -> None:
    card = Card(title="Poll: ship on Friday?", text="3 of 3 answered **in favour**",
                fields=(CardField(name="Yes", value="2 (Priya, Henrik)"), CardField(name="No", value="1 <Tomasz>")),
                footer="Simulated answers from demo; they may not reflect what real people think.")
    blocks = card_blocks(card)
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Poll: ship on Friday?", "emoji": True}}
    assert blocks[1]["text"]["text"] == "3 of 3 answered *in favour*"
    assert [f["text"] for f in blocks[2]["fields"]] == ["*Yes*\n2 (Priya, Henrik)", "*No*\n1 &lt;Tomasz&gt;"]
    assert blocks[-1]["type"] == "context" and "Simulated answers" in blocks[-1]["elements"][0]["text"]


def test_huge_card_stays_within_block_kit_limits() -> None:
    card = Card(title="T" * 400, text="word " * 5000,
                fields=tuple(CardField(name=f"P{i}", value="x" * 3000) for i in range(300)), footer="simulated")
    blocks = card_blocks(card)
    assert len(blocks) <= BLOCKS_MAX
    assert len(blocks[0]["text"]["text"]) <= HEADER_MAX
    for block in blocks:
        if block["type"] == "section" and "fields" in block:
            assert len(block["fields"]) <= FIELDS_PER_SECTION
            assert all(len(f["text"]) <= 2000 for f in block["fields"])
        elif block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert blocks[-1]["type"] == "context"  # the simulated-answers line survives shortening


def test_repeated_deliveries_are_spotted_by_either_key() -> None:
    seen = _Seen(size=3)
    assert seen.first_time("Ev1", "C1/1.0")
    assert not seen.first_time("Ev1", "C1/1.0")  # Slack's retry: same event id
    assert not seen.first_time("Ev9", "C1/1.0")  # same message, another delivery id
    assert seen.first_time("Ev2", "C1/2.0")
    for i in range(5):
        seen.first_time(f"x{i}")
    assert seen.first_time("Ev1")  # forgotten once enough newer deliveries came


def test_as_many_deliveries_as_it_holds_are_remembered() -> None:
    seen = _Seen(size=2)
    assert seen.first_time("Ev1") and seen.first_time("Ev2")
    assert not seen.first_time("Ev1")  # both still known: the oldest is the one forgotten next
    assert seen.first_time("Ev3")
    assert seen.first_time("Ev2")


#: Each set-up error names the setting to fix and where in Slack's app settings its value is found.
NO_BOT_TOKEN = ("no Slack bot token: set TROUPE_SLACK_BOT_TOKEN (api.slack.com/apps → your app → "
                "OAuth & Permissions → Bot User OAuth Token, xoxb-…)")
NOT_A_BOT_TOKEN = "TROUPE_SLACK_BOT_TOKEN must be the bot token (xoxb-…), not a user or app token"
NO_APP_TOKEN = ("Socket Mode needs an app-level token: set TROUPE_SLACK_APP_TOKEN (xapp-…; api.slack.com/"
                "apps → your app → Basic Information → App-Level Tokens, scope connections:write), "
                "or run `troupe slack --http PORT`")
NO_SIGNING_SECRET = ("HTTP mode needs the signing secret: set TROUPE_SLACK_SIGNING_SECRET (api.slack.com/"
                     "apps → your app → Basic Information → Signing Secret)")


@pytest.mark.parametrize(
    ("slack", "http_port", "message"),
    [
        ({}, None, NO_BOT_TOKEN),
        ({"bot_token": "xapp-1"}, None, NOT_A_BOT_TOKEN),
        ({"bot_token": "xoxb-1"}, None, NO_APP_TOKEN),
        ({"bot_token": "xoxb-1", "app_token": "xoxb-2"}, None, NO_APP_TOKEN),
        ({"bot_token": "xoxb-1"}, 0, NO_SIGNING_SECRET),
    ],
)
async def test_missing_credentials_are_clear_errors(tmp_path: Path, slack: dict, http_port: int | None, message: str) -> None:
    adapter = SlackAdapter(Settings(data_dir=tmp_path, slack=slack), http_port=http_port)
    with pytest.raises(AdapterError) as caught:
        await adapter.connect()
    assert str(caught.value) == message
    assert not caught.value.retryable


def test_manifest_grants_what_the_adapter_uses() -> None:
    manifest = yaml.safe_load((ROOT / "config" / "slack-manifest.yaml").read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "chat:write.customize", "commands", "channels:history", "users:read",
            "usergroups:read", "files:write"} <= scopes
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [Settings().slack.command]
    assert {"message.channels", "message.groups"} <= set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_a_workspace_installing_the_app_is_asked_for_the_manifests_scopes() -> None:
    manifest = yaml.safe_load((ROOT / "config" / "slack-manifest.yaml").read_text())
    assert Settings().slack.scopes == manifest["oauth_config"]["scopes"]["bot"]


def test_escape_is_idempotent_on_plain_text() -> None:
    assert escape("plain words") == "plain words"
