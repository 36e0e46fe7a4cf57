"""What is private to moderators reaches only people who are moderators when it is delivered.

Someone who subscribed to a persona's thoughts, or started a world (and so hears its notices), and
then lost the right (taken out of the settings, or a role taken away on the platform) stops receiving
them, and can still switch the subscription off.
"""

from __future__ import annotations

from bots.verification import Verdict, VerdictAction, VerificationContext, Verifier
from tests.support.testbot import demo_settings, start_bot

ANA = {"user": "ana", "user_is_moderator": False}


class HoldHenrik(Verifier):
    """Holds every message of Henrik's (a held-message notice for the moderator); passes the rest."""

    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        if context.persona == "Henrik Lindqvist":
            return Verdict(action=VerdictAction.HOLD, text=text, reasons=["finance talk needs a second look"])
        return Verdict(action=VerdictAction.PASS, text=text)


def said_to(sent, user: str) -> list[str]:
    return [s.text for s in sent if s.kind == "private" and s.user == user]


async def world_observed_by_ana(bot, **ana) -> None:
    await bot.command("start Budget", **ana)
    await bot.command("persona add Priya Nair", **ana)
    await bot.command("persona add Henrik Lindqvist", **ana)
    await bot.command("policy everyone --exchanges 0", **ana)
    assert "You now privately see" in await bot.reply("observe Henrik on", **ana)
    private = said_to(await bot.say("Can we afford a second designer?"), "ana")
    assert any(t.startswith("Henrik Lindqvist thinks:") for t in private)
    assert any(t.startswith("Held a message from Henrik") for t in private)
    assert any(t.startswith("Henrik Lindqvist's message was held") for t in private)


async def test_someone_taken_out_of_the_moderators_hears_nothing_private_after_a_restart(tmp_path):
    moderators = {"managers_are_moderators": False}
    first = await start_bot(demo_settings(tmp_path, moderator_user_ids=["memory:ana"], **moderators),
                            verifier=HoldHenrik())
    try:
        await world_observed_by_ana(first, **ANA)
    finally:
        await first.app.stop()

    # The operator takes Ana out of bot.moderator_user_ids and restarts the bot.
    second = await start_bot(demo_settings(tmp_path, moderator_user_ids=["memory:boss"], **moderators),
                             verifier=HoldHenrik())
    try:
        sent = await second.say("And a third one?")
        assert [s.identity for s in sent if s.kind == "post"] == ["Priya Nair"], "the world goes on"
        assert said_to(sent, "ana") == [], "no thought, no held-message notice for Ana"
        assert "Only moderators" in await second.reply("observe Henrik on", **ANA)
        assert "You no longer see Henrik Lindqvist's thoughts" in await second.reply("observe Henrik off", **ANA)
        session = second.app.sessions.get("memory:general")
        assert session.config.observers == {}, "her subscription is gone, not only silenced"
    finally:
        await second.app.stop()


async def test_someone_whose_moderator_role_is_taken_away_hears_nothing_private(tmp_path):
    bot = await start_bot(demo_settings(tmp_path, moderator_roles=["mods"], managers_are_moderators=False),
                          verifier=HoldHenrik())
    try:
        await world_observed_by_ana(bot, **ANA, roles=("mods",))
        bot.adapter.members["ana"] = bot.adapter.user("ana", user_is_moderator=False)  # the role is taken away
        sent = await bot.say("And a third one?")
        assert [s.identity for s in sent if s.kind == "post"] == ["Priya Nair"]
        assert said_to(sent, "ana") == []
        assert "You no longer see" in await bot.reply("observe Henrik off", **ANA)

        bot.adapter.members["ana"] = bot.adapter.user("ana", user_is_moderator=False, roles=("mods",))  # given back
        private = said_to(await bot.say("A fourth?"), "ana")
        assert any(t.startswith("Held a message from Henrik") for t in private), "the world's notices come back"
        assert not any("thinks:" in t for t in private), "the subscription she switched off stays off"
    finally:
        await bot.app.stop()


async def test_a_guest_switching_off_what_they_never_had_changes_nothing(tmp_path):
    bot = await start_bot(demo_settings(tmp_path), verifier=HoldHenrik())
    try:
        await world_observed_by_ana(bot, user="ana")
        guest = {"user": "guest", "user_is_moderator": False}
        assert "You no longer see" in await bot.reply("observe Henrik off", **guest)
        assert [u.id for u in bot.app.sessions.get("memory:general").config.observers["Henrik Lindqvist"]] == ["ana"]
        assert "Only moderators" in await bot.reply("observe Henrik on", **guest)
    finally:
        await bot.app.stop()
