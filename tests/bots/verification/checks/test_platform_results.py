"""What the platform check reports for each repair, and where ``shorten`` cuts a flood: at a
sentence end or a word break in its second half, never past the limit."""

from __future__ import annotations

import pytest

from bots.verification.base import VerdictAction, VerificationContext
from bots.verification.checks.platform import PlatformCheck, shorten
from config.verification import TEAM_DEFAULT

CHECK = PlatformCheck(TEAM_DEFAULT)
CTX = VerificationContext()


async def rewrite(text: str, context: VerificationContext = CTX) -> tuple[str, str]:
    result = await CHECK.run(text, context)
    if result.action is VerdictAction.PASS:
        return text, ""
    assert result.action is VerdictAction.REWRITE and result.score == 1.0
    return result.text, result.reason


CROWD = "crowd or role mention neutralised"


@pytest.mark.parametrize(
    ("text", "posted"),
    [
        ("@everyone look", "@ everyone look"),
        ("<!channel> look", "@ channel look"),
        ("<!subteam^S0123|@design> look", "@ design look"),
        ("<@&123456> look", "@ role look"),
        ("@here and <!channel>", "@ here and @ channel"),
        ("@here and <!subteam^S0123|@design>", "@ here and @ design"),
        ("@here and <@&123456>", "@ here and @ role"),
        ("<!everyone> and <@&123456>", "@ everyone and @ role"),
        ("<!subteam^S0123|@design> and <@&123456>", "@ design and @ role"),
    ],
)
async def test_every_crowd_or_role_mention_is_neutralised_and_reported(text, posted):
    assert await rewrite(text) == (posted, CROWD)


@pytest.mark.parametrize(
    ("text", "posted"),
    [
        ("thanks <@U0123ABC|jane.doe!>", "thanks @ jane.doe"),
        ("thanks <@U0123ABC|" + "j" * 45 + ">", "thanks @ " + "j" * 40),
        ("thanks <@U0123ABC|jane (she/her)>", "thanks @ jane sheher"),
        ("thanks <@123456789>", "thanks @ someone"),
    ],
)
async def test_a_user_mention_keeps_a_safe_short_name(text, posted):
    assert await rewrite(text) == (posted, "user mention neutralised")


async def test_every_repair_is_listed_in_order():
    text = "\u200b@everyone ping <@U0123ABC|jane> at [github.com](https://evil.example/x)"
    posted, reason = await rewrite(text)
    assert posted == "@ everyone ping @ jane at https://evil.example/x"
    assert reason == ("invisible or direction-changing characters removed; " + CROWD + "; user mention neutralised; "
                      "link text disguised a different address; the real address is shown")


@pytest.mark.parametrize(
    "text",
    ["see [github.com](https://github.com/org/repo)", "see <https://github.com/org|github.com>", "[docs](https://x.example)"],
)
async def test_a_link_whose_text_names_its_own_address_is_left_alone(text):
    assert await rewrite(text) == (text, "")


async def test_a_post_at_the_limit_stays_and_one_over_it_is_shortened():
    context = VerificationContext(max_length=10)  # the policy allows three times the platform's limit
    assert await rewrite("x" * 30, context) == ("x" * 30, "")
    assert await rewrite("x" * 31, context) == ("x" * 29 + "…", "shortened to 30 characters")


async def test_without_a_platform_limit_nothing_is_shortened():
    assert await rewrite("x" * 5000, VerificationContext(max_length=0)) == ("x" * 5000, "")


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abcde", 5, "abcde"),
        # room 20: a sentence end at 10 is in the second half, one at 8 is not
        ('123456789."' + "x" * 30, 21, '123456789.…'),
        ("1234567.\"" + "x" * 30, 21, '1234567."' + "x" * 11 + "…"),
        # room 21: half is 10, a sentence end at 10 counts
        ('123456789."' + "x" * 30, 22, '123456789.…'),
        # no sentence end: the last space in the second half, else a hard cut
        ("aa bbbbbbbbbbbbbbb cc" + "d" * 20, 21, "aa bbbbbbbbbbbbbbb…"),
        ("aaaaaaaaa bbbbbbbbbbbbbbbbbbbb", 21, "aaaaaaaaa bbbbbbbbbb…"),
        ("aaaaaaaa bbbbbbbbbbbbbbbbbbbbbb", 21, "aaaaaaaa bbbbbbbbbbb…"),
        ("aa " + "b" * 40, 21, "aa " + "b" * 17 + "…"),
        # a space exactly at half the room counts, with an even room and an odd one
        ("aaaaaaaaaa bbbbbbbbbbbbbbbbbbbb", 21, "aaaaaaaaaa…"),
        ("aaaaaaaaaa bbbbbbbbbbbbbbbbbbbbb", 22, "aaaaaaaaaa…"),
        # the cut falls on a space: trailing spaces go
        ("word word word wo   rest", 20, "word word word wo…"),
    ],
)
def test_shorten_cuts_at_a_sentence_end_or_word_break_in_the_second_half(text, limit, expected):
    assert shorten(text, limit) == expected
    assert len(expected) <= limit
