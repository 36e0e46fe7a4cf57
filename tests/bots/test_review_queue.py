"""Held persona messages wait for a moderator: review, approve, edit, reject — all audited."""

from __future__ import annotations

import pytest

from bots.storage import OutboxStatus
from bots.verification import Verdict, VerdictAction, VerificationContext, Verifier
from tests.support.testbot import demo_settings, start_bot


class HoldHenrik(Verifier):
    """Holds every message of one persona; passes the rest."""

    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        if context.persona == "Henrik Lindqvist":
            return Verdict(action=VerdictAction.HOLD, text=text, reasons=["finance talk needs a second look"])
        return Verdict(action=VerdictAction.PASS, text=text)


class Broken(Verifier):
    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        raise RuntimeError("classifier crashed")


async def budget_bot(tmp_path, verifier: Verifier):
    """A bot whose channel has Priya and Henrik, each answering once a message, under ``verifier``."""
    testbot = await start_bot(demo_settings(tmp_path), verifier=verifier)
    await testbot.command("start Budget")
    await testbot.command("persona add Priya Nair")
    await testbot.command("persona add Henrik Lindqvist")
    await testbot.command("policy everyone --exchanges 0")
    return testbot


@pytest.fixture
async def bot(tmp_path):
    testbot = await budget_bot(tmp_path, HoldHenrik())
    yield testbot
    await testbot.app.stop()


async def held(bot):
    return await bot.app.storage.held_outbox("memory:general")


async def test_held_messages_are_not_posted_and_the_moderator_is_told(bot):
    sent = await bot.say("Can we afford a second designer?")
    assert [s.identity for s in sent if s.kind == "post"] == ["Priya Nair"]
    notices = [s for s in sent if s.kind == "private" and s.text.startswith("Held a message from Henrik")]
    assert len(notices) == 1 and notices[0].user == "mod"
    (entry,) = await held(bot)
    assert f"#{entry.id}" in notices[0].text and "finance talk" in notices[0].text
    review = await bot.reply("review")
    assert f"#{entry.id} Henrik Lindqvist — finance talk needs a second look" in review and entry.text in review


async def test_approve_posts_it_once_and_is_audited(bot):
    await bot.say("Can we afford a second designer?")
    (entry,) = await held(bot)
    sent = await bot.command(f"approve {entry.id}")
    posts = [s for s in sent if s.kind == "post"]
    assert [(p.identity, p.text) for p in posts] == [("Henrik Lindqvist", entry.text)]
    assert "not waiting for review: it is posted" in (await bot.command(f"approve {entry.id}"))[0].text
    assert len(bot.adapter.posts()) == 2
    audit = await bot.app.storage.audit_log("memory:general")
    assert [a.action for a in audit] == ["held", "approve"]
    assert audit[1].actor == "memory:mod (mod)" and audit[1].outbox_id == entry.id


async def test_a_reset_drops_what_waited_for_review_and_says_so(bot):
    """Approved after a reset, a held message would be posted into a conversation that never led to it."""
    await bot.say("Can we afford a second designer?")
    (entry,) = await held(bot)
    reply = (await bot.command("reset confirm"))[0].text
    assert "The 1 message(s) held for review were dropped with it." in reply
    assert await held(bot) == []
    assert "No messages" in (await bot.reply("review")) or f"#{entry.id}" not in (await bot.reply("review"))
    answer = (await bot.command(f"approve {entry.id}"))[0].text
    assert "not waiting for review: it was dropped when the world was reset" in answer, answer
    assert [p.identity for p in bot.adapter.posts()] == ["Priya Nair"], "nothing of Henrik's was posted"
    assert (await bot.app.storage.get_outbox(entry.id)).status is OutboxStatus.BLOCKED


async def test_edit_posts_the_moderators_version(bot):
    await bot.say("Can we afford a second designer?")
    (entry,) = await held(bot)
    sent = await bot.command(f"edit {entry.id} Let's look at the numbers together on Monday.")
    assert [p.text for p in sent if p.kind == "post"] == ["Let's look at the numbers together on Monday."]
    # The moderator's words are labelled as theirs, never as the (demo) model's.
    assert [(p.identity, p.tag) for p in sent if p.kind == "post"] == [("Henrik Lindqvist", "edited by a moderator")]
    stored = await bot.app.storage.get_outbox(entry.id)
    assert stored.status is OutboxStatus.POSTED and stored.text.startswith("Let's look")
    (audit,) = [a for a in await bot.app.storage.audit_log("memory:general") if a.action == "edit"]
    assert audit.detail["before"] == entry.text and audit.detail["after"].startswith("Let's look")


async def test_reject_never_posts(bot):
    await bot.say("Can we afford a second designer?")
    (entry,) = await held(bot)
    assert "never be posted" in (await bot.command(f"reject {entry.id}"))[0].text
    assert await held(bot) == []
    assert (await bot.app.storage.get_outbox(entry.id)).status is OutboxStatus.BLOCKED
    assert all(p.identity != "Henrik Lindqvist" for p in bot.adapter.posts())
    assert "Nothing is waiting" in await bot.reply("review")
    assert f"message #{entry.id} is not waiting for review: a moderator rejected it" in await bot.reply(f"reject {entry.id}")


async def test_only_moderators_decide_and_only_in_their_channel(bot):
    await bot.say("Can we afford a second designer?")
    (entry,) = await held(bot)
    refused = await bot.command(f"approve {entry.id}", user="guest", user_is_moderator=False)
    assert "Only moderators" in refused[0].text
    await bot.command("start Elsewhere", channel="other")
    other = await bot.command(f"approve {entry.id}", channel="other")
    assert f"no held message #{entry.id} in this channel" in other[0].text
    assert "not waiting" not in other[0].text
    assert (await held(bot))[0].id == entry.id


async def test_a_failing_verifier_holds_instead_of_posting(tmp_path):
    testbot = await start_bot(demo_settings(tmp_path), verifier=Broken())
    await testbot.command("start Risky")
    await testbot.command("persona add Priya Nair")
    sent = await testbot.say("Hello?")
    assert not [s for s in sent if s.kind == "post"], "fails closed: nothing unchecked is posted"
    (entry,) = await testbot.app.storage.held_outbox("memory:general")
    assert "verification error: classifier crashed" in entry.verdict["reasons"]
    await testbot.app.stop()


class RedactPriyaHoldHenrik(HoldHenrik):
    """Also rewrites Priya's words, as the personal-data check does."""

    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        if context.persona == "Priya Nair":
            return Verdict(action=VerdictAction.REWRITE, text="Priya's words, [email removed].", reasons=["pii"])
        return await super().verify(text, context)


async def test_exports_hold_what_was_posted_not_what_verification_kept_back(tmp_path):
    import csv
    import io
    import json

    testbot = await budget_bot(tmp_path, RedactPriyaHoldHenrik())
    try:
        await testbot.say("Can we afford a second designer?")
        await testbot.say("And a third one?")
        first, second = await held(testbot)
        await testbot.command(f"edit {first.id} Let's look at the numbers together on Monday.")
        await testbot.command(f"reject {second.id}")
        world = testbot.app.sessions.get("memory:general").world
        raw = [e.content for e in world.events if e.type == "TALK"]

        bodies = {}
        testbot.adapter.uploads = True
        for fmt, who in (("md", {}), ("csv", {}), ("json", {}), ("csv", {"user": "guest", "user_is_moderator": False}),
                         ("json", {"user": "guest", "user_is_moderator": False})):
            (shared,) = [s for s in await testbot.command(f"export {fmt}", **who) if s.kind == "file"]
            bodies[(fmt, bool(who))] = shared.file[1].decode()
        for (fmt, guest), body in bodies.items():
            assert body.count("Priya's words, [email removed].") >= 2
            assert "Let's look at the numbers together on Monday." in body
            if guest or fmt != "json":  # (a moderator's JSON has the memories: each persona's own words)
                assert not any(text in body for text in raw), "no word the channel did not see"
        moderator_csv = list(csv.reader(io.StringIO(bodies[("csv", False)])))[2:]
        guest_csv = list(csv.reader(io.StringIO(bodies[("csv", True)])))[2:]
        assert any(row[4] == "THINK" for row in moderator_csv)
        assert not any(row[4] == "THINK" for row in guest_csv), "thoughts are for moderators"
        guest_json = json.loads(bodies[("json", True)])
        assert guest_json["agents"] == [{"name": "Priya Nair"}, {"name": "Henrik Lindqvist"}]
        assert "episodic" in json.loads(bodies[("json", False)])["agents"][0]
    finally:
        await testbot.app.stop()


async def test_deciding_on_a_message_that_does_not_exist_says_so(bot):
    for command in ("approve 999", "reject 999", "edit 999 hello"):
        text = (await bot.command(command))[0].text
        assert "there is no held message #999 in this channel; `review` lists them" in text


async def test_the_other_personas_hear_what_the_channel_sees_when_it_sees_it(tmp_path):
    """Words held for review are not heard until a moderator lets them through, and then as posted;
    rewritten (redacted) words are heard as rewritten; refused ones are never heard."""
    testbot = await budget_bot(tmp_path, RedactPriyaHoldHenrik())
    try:
        await testbot.say("Can we afford a second designer?")
        world = testbot.app.sessions.get("memory:general").world
        priya, henrik = world.get("Priya Nair"), world.get("Henrik Lindqvist")

        def heard(agent, speaker):
            return [e.content for e in agent.episodic.episodes if e.kind == "stimulus" and e.source == speaker]

        said = {e.source: e.content for e in world.events if e.type == "TALK"}
        assert heard(henrik, "Priya Nair") == ["Priya's words, [email removed]."], "heard as posted, not as said"
        assert heard(priya, "Henrik Lindqvist") == [], "not while it waits for review"
        (entry,) = await held(testbot)
        assert entry.text == said["Henrik Lindqvist"]
        await testbot.command(f"edit {entry.id} Let's look at the numbers together on Monday.")
        assert heard(priya, "Henrik Lindqvist") == ["Let's look at the numbers together on Monday."]

        await testbot.say("And a third one?")
        (second,) = await held(testbot)
        await testbot.command(f"reject {second.id}")
        assert heard(priya, "Henrik Lindqvist") == ["Let's look at the numbers together on Monday."]
        # What she heard is stored: a restart brings it back.
        await testbot.app.stop()
        again = await start_bot(demo_settings(tmp_path), verifier=RedactPriyaHoldHenrik())
        testbot = again
        priya = again.app.sessions.get("memory:general").world.get("Priya Nair")
        assert heard(priya, "Henrik Lindqvist") == ["Let's look at the numbers together on Monday."]
    finally:
        await testbot.app.stop()


async def test_a_persona_that_leaves_takes_its_held_messages_with_it(bot):
    await bot.say("Can we afford a second designer?")
    (entry,) = await held(bot)
    left = (await bot.command("persona remove Henrik"))[0].text
    assert "Henrik Lindqvist left the world. 1 of their message(s) held for review were dropped with them." == left
    answer = (await bot.command(f"approve {entry.id}"))[0].text
    assert f"message #{entry.id} is not waiting for review: it was dropped when Henrik Lindqvist left the world" in answer
    assert [p.identity for p in bot.adapter.posts()] == ["Priya Nair"], "nobody posts as someone who left"
    assert await held(bot) == []


async def test_every_hint_names_commands_as_this_platform_types_them(bot):
    bot.adapter.command_prefix = "/troupe "  # as on Discord and Slack
    sent = await bot.say("Can we afford a second designer?")
    (notice,) = [s.text for s in sent if s.kind == "private" and s.text.startswith("Held a message")]
    (entry,) = await held(bot)
    assert f"`/troupe review` shows it; `/troupe approve {entry.id}`, `/troupe edit {entry.id} NEW TEXT`" in notice
    review = await bot.reply("review")
    assert "`/troupe approve ID` posts one" in review and " `approve ID`" not in review


async def test_an_observer_learns_when_a_watched_personas_words_are_not_posted(bot):
    await bot.command("observe Henrik on")
    sent = await bot.say("Can we afford a second designer?")
    (entry,) = await held(bot)
    told = [s.text for s in sent if s.kind == "private" and s.text.startswith("Henrik Lindqvist's message was")]
    assert told == [f"Henrik Lindqvist's message was held for review: it is not posted (#{entry.id})."]
    assert any(s.text.startswith("Henrik Lindqvist thinks:") for s in sent if s.kind == "private")
