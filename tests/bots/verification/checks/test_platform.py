"""Platform safety: no pings to crowds, no hidden characters, no disguised links, no floods."""

from __future__ import annotations

import time

import pytest

from bots.verification.base import VerdictAction, VerificationContext
from bots.verification.checks.platform import PlatformCheck, shorten
from config.verification import TEAM_DEFAULT

CTX = VerificationContext(platform="discord", max_length=2000)
CHECK = PlatformCheck(TEAM_DEFAULT)

ORDINARY = [
    "Morning all! Standup moved to 10:30, same link as usual.",
    "@Priya can you take a look at the invoice spec before Friday?",
    "Email me at ops@here.com if the export fails again.",
    "Shipping v2.3.1 tonight 🚀 — thanks everyone for the push 🙏",
    "Nice work 👩‍💻👍 the family emoji 👨‍👩‍👧 still renders",
    "Here's the plan:\n1. fix the rounding bug\n2. ship\n3. celebrate",
    "Use `git rebase -i HEAD~3` and squash the fixups.",
    "[the spec](https://docs.example.org/spec) is up to date",
    "Hallo zusammen, das Meeting ist um 14 Uhr. Привет! مرحبا 你好",
    "Who's here for the retro? Everyone is welcome.",
    "Scotland flag 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f is a valid emoji",
]


async def run(text: str, check: PlatformCheck = CHECK, context: VerificationContext = CTX) -> tuple[str, str | None, str]:
    result = await check.run(text, context)
    return result.action.value, result.text, result.reason


@pytest.mark.parametrize("text", ORDINARY)
async def test_ordinary_chat_passes_unchanged(text: str) -> None:
    assert await run(text) == ("pass", None, "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@everyone the build is green", "@ everyone the build is green"),
        ("heads up @here: deploy in 5", "heads up @ here: deploy in 5"),
        ("@Everyone and @HERE", "@ Everyone and @ HERE"),
        ("ping @channel please", "ping @ channel please"),
        ("<!channel> release is out", "@ channel release is out"),
        ("<!here|here> quick one", "@ here quick one"),
        ("<!everyone> all hands", "@ everyone all hands"),
        ("<!subteam^S0123ABC|@backend> review pls", "@ backend review pls"),
        ("<!subteam^S0123ABC> review pls", "@ group review pls"),
        ("<@&123456789012345678> meeting now", "@ role meeting now"),
        ("＠everyone fullwidth", "@ everyone fullwidth"),
    ],
)
async def test_crowd_and_role_mentions_are_neutralised(text: str, expected: str) -> None:
    action, out, reason = await run(text)
    assert action == "rewrite"
    assert out == expected
    assert "crowd or role mention neutralised" in reason


@pytest.mark.parametrize(
    "text",
    ["@every\u200bone look", "@\u200beveryone look", "@ever\u2060yone look", "@every\ufeffone look", "@here\u200d look", "@e\u00adveryone look"],
)
async def test_mentions_hidden_by_invisible_characters_are_caught(text: str) -> None:
    action, out, reason = await run(text)
    assert action == "rewrite"
    assert out is not None and out.startswith("@ ")
    assert "@everyone" not in out and "@here" not in out
    assert "invisible" in reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thanks <@123456789012345678>!", "thanks @ someone!"),
        ("thanks <@!123456789012345678>!", "thanks @ someone!"),
        ("cc <@U0123ABCD>", "cc @ someone"),
        ("cc <@U0123ABCD|priya>", "cc @ priya"),
    ],
)
async def test_raw_user_mentions_are_neutralised_unless_allowed(text: str, expected: str) -> None:
    assert (await run(text))[:2] == ("rewrite", expected)
    allowing = PlatformCheck(TEAM_DEFAULT.merged({"allow_user_mentions": True}))
    assert (await run(text, allowing))[:2] == ("pass", None)


async def test_allowing_user_mentions_still_stops_crowd_pings() -> None:
    allowing = PlatformCheck(TEAM_DEFAULT.merged({"allow_user_mentions": True}))
    assert (await run("<@123> and @everyone", allowing))[1] == "<@123> and @ everyone"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pay\u200bment link", "payment link"),
        ("admin\u202epassword", "adminpassword"),
        ("a\u2066b\u2069c\u200ed\u200f", "abcd"),
        ("soft\u00adhyphen", "softhyphen"),
        ("\ufeffBOM at start", "BOM at start"),
        ("tag\U000e0041\U000e0042 smuggling", "tag smuggling"),
    ],
)
async def test_invisible_and_bidi_characters_are_removed(text: str, expected: str) -> None:
    action, out, reason = await run(text)
    assert (action, out) == ("rewrite", expected)
    assert reason == "invisible or direction-changing characters removed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[https://github.com/org](https://evil.example/steal)", "https://evil.example/steal"),
        ("login at [paypal.com](http://paypa1-secure.example/login) now", "login at http://paypa1-secure.example/login now"),
        ("[www.bank.com](<https://phish.example>)", "https://phish.example"),
        ("<https://evil.example/x|https://github.com/org>", "https://evil.example/x"),
        ("<https://evil.example/x|github.com>", "https://evil.example/x"),
    ],
)
async def test_link_text_that_disguises_another_address_is_replaced_by_the_real_one(text: str, expected: str) -> None:
    action, out, reason = await run(text)
    assert (action, out) == ("rewrite", expected)
    assert "disguised" in reason


@pytest.mark.parametrize(
    "text",
    [
        "[the docs](https://evil.example/x)",  # plain words: the link check decides about the address
        "[github.com](https://docs.github.com/en)",
        "[docs.github.com](https://github.com)",
        "[www.example.org](https://example.org/page)",
        "<https://example.org|the page>",
        "<https://example.org>",
    ],
)
async def test_honest_link_text_is_left_alone(text: str) -> None:
    assert await run(text) == ("pass", None, "")


async def test_a_post_a_little_over_the_limit_is_left_for_the_adapter_to_split() -> None:
    text = "Sentence number one is here. " * 200  # 5800 characters, under 3 x 2000
    assert await run(text) == ("pass", None, "")


async def test_a_flood_is_shortened_at_a_sentence_end() -> None:
    text = "This is a sentence about invoices. " * 300  # 10500 characters
    action, out, reason = await run(text)
    assert action == "rewrite"
    assert out is not None and len(out) <= 6000
    assert out.endswith(".…")
    assert "shortened to 6000 characters" in reason


async def test_the_limit_follows_the_platform_and_the_policy() -> None:
    context = VerificationContext(max_length=100)
    check = PlatformCheck(TEAM_DEFAULT.merged({"max_length_factor": 1.0}))
    action, out, _ = await run("Word " * 40 + "end.", check, context)
    assert action == "rewrite" and out is not None and len(out) <= 100 and out.endswith("…")


def test_shorten_prefers_sentences_then_words() -> None:
    assert shorten("One. Two three four five six seven.", 20) == "One. Two three four…"
    assert shorten("First sentence here. Second one is long.", 30) == "First sentence here.…"
    assert shorten("short", 10) == "short"
    assert len(shorten("x" * 50, 10)) == 10


async def test_the_check_is_idempotent() -> None:
    text = "@everyone <!here> <@123> pay\u200bment [github.com](https://evil.example)"
    first = await CHECK.run(text, CTX)
    assert first.action is VerdictAction.REWRITE and first.text is not None
    second = await CHECK.run(first.text, CTX)
    assert second.action is VerdictAction.PASS


async def test_typical_messages_are_fast() -> None:
    texts = ORDINARY + ["@everyone look <@123> and [a.com](https://b.example)"]
    started = time.perf_counter()
    rounds = 200
    for _ in range(rounds):
        for text in texts:
            await CHECK.run(text, CTX)
    per_message = (time.perf_counter() - started) / (rounds * len(texts))
    assert per_message < 0.002
