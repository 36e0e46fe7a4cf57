"""Personas of one step think at once, so their replies often come back together: their words are
checked side by side, each posted in the step's order as soon as it and those before it are checked."""

from __future__ import annotations

import asyncio
import json
import re

from config.settings import Settings
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.testbot import fake_model_settings, start_bot
from tests.support.turns import TurnRule, kind_of, persona_of, system_text, user_text

TEAM = ("Priya Nair", "Henrik Lindqvist", "Tomasz Kowalski")
PASS = json.dumps({"decision": "pass", "category": "none", "reason": "ordinary work talk"})


def judged_settings(tmp_path, server: FakeOpenAIServer) -> Settings:
    """A bot on the fake model whose posts the model-based judge also reviews."""
    return fake_model_settings(tmp_path, server, verification={"judge": {"enabled": True, "timeout_s": 30}},
                               default_exchanges=0)


def is_judge(body) -> bool:
    return system_text(body).startswith("You review one chat message")


def judged_persona(body) -> str:
    match = re.search(r"Written by the persona (.+?)\.\n", user_text(body))
    assert match, user_text(body)
    return match.group(1)


async def start_team(tmp_path, server):
    bot = await start_bot(judged_settings(tmp_path, server))
    await bot.command("start Launch review", channel="general")
    for name in TEAM:
        await bot.command(f"persona add {name}", channel="general")
    await bot.say("Good morning!")  # the model's abilities are learnt: from now on turns run side by side
    return bot


def actor_order(server: FakeOpenAIServer, since: int) -> list[str]:
    """The personas whose turns were asked for since request ``since``, in the order asked (the step's)."""
    return [persona_of(r.body) for r in server.requests[since:] if kind_of(r.body) == "agent_turn"]


async def test_replies_that_come_back_together_are_checked_side_by_side(tmp_path):
    rule = TurnRule()
    in_flight = most = 0

    async def respond(body):
        nonlocal in_flight, most
        if not is_judge(body):
            return rule(body)
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.3)
        in_flight -= 1
        return PASS

    async with FakeOpenAIServer() as server:
        server.responder = respond
        bot = await start_team(tmp_path, server)
        try:
            most, since = 0, len(server.requests)
            sent = await bot.say("Should we move the launch to March?")
            order = actor_order(server, since)
            assert sorted(order) == sorted(TEAM)
            assert [s.identity for s in sent if s.kind == "post"] == order, "posted in the step's order"
            assert most >= 2, "the replies that came back while one was checked were checked together"
        finally:
            await bot.app.stop()


async def test_a_slow_check_holds_back_the_turns_after_it_but_none_before(tmp_path):
    rule = TurnRule()
    order: list[str] = []  # the personas asked for a turn about the question, in the step's order
    posted_when_slow_check_ended: list[int] = []
    bot = seen = None

    async def respond(body):
        if not is_judge(body):
            if seen is not None and kind_of(body) == "agent_turn":
                order.append(persona_of(body))
                if len(order) == 1:
                    await asyncio.sleep(0.3)  # the others' replies are back first: all three are checked together
            return rule(body)
        if seen is not None and judged_persona(body) == order[1]:
            await asyncio.sleep(1.0)
            posted_when_slow_check_ended.append(len(bot.adapter.posts("general")) - seen)
        return PASS

    async with FakeOpenAIServer() as server:
        server.responder = respond
        bot = await start_team(tmp_path, server)
        try:
            seen = len(bot.adapter.posts("general"))
            await bot.say("Should we move the launch to March?")
            assert sorted(order) == sorted(TEAM)
            assert [p.identity for p in bot.adapter.posts("general")[seen:]] == order
            assert posted_when_slow_check_ended == [1], "the first was posted while the second was still checked; the third waited"
        finally:
            await bot.app.stop()


async def test_each_message_is_judged_with_the_conversation_as_it_stood_when_said(tmp_path):
    rule = TurnRule()

    async def respond(body):
        return PASS if is_judge(body) else rule(body)

    async with FakeOpenAIServer() as server:
        server.responder = respond
        bot = await start_team(tmp_path, server)
        try:
            since = len(server.requests)
            await bot.say("Should we move the launch to March?")
            order = actor_order(server, since)
            judged = {judged_persona(r.body): user_text(r.body) for r in server.requests[since:] if is_judge(r.body)}
            assert set(judged) == set(TEAM)
            for place, name in enumerate(order):
                context = judged[name].split("Message to review")[0]
                _, question, answers = context.partition("mod: Should we move the launch to March?\n")
                assert question, context
                for before in order[:place]:
                    assert f"{before}: {before} replies to" in answers, (name, before)
                for after in order[place + 1 :]:
                    assert f"{after} replies" not in answers, f"{name}'s words were judged beside {after}'s later ones"
        finally:
            await bot.app.stop()


async def test_a_stop_while_a_turn_is_checked_loses_neither_it_nor_the_turns_after_it(tmp_path):
    """Three replies come back together; the first is checked, stored and posted, the second is still
    being checked and the third is checked but waits for it. The bot stops: after the restart the
    second and third personas still owe their answers and give them; the first does not answer again."""
    rule = TurnRule()
    order: list[str] = []
    watching = False

    async def respond(body):
        if not is_judge(body):
            if watching and kind_of(body) == "agent_turn":
                order.append(persona_of(body))
                if len(order) == 1:
                    await asyncio.sleep(0.3)  # the others' replies are back first
            return rule(body)
        if watching and judged_persona(body) == order[1]:
            await asyncio.sleep(3600)  # still being checked when the bot stops
        return PASS

    async with FakeOpenAIServer() as server:
        server.responder = respond
        settings = judged_settings(tmp_path, server)
        bot = await start_team(tmp_path, server)
        seen = len(bot.adapter.posts("general"))
        watching = True
        bot.adapter.push_message("Should we move the launch to March?", channel="general")
        while len(bot.adapter.posts("general")) == seen:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        await bot.app.stop(timeout=0)
        assert [p.identity for p in bot.adapter.posts("general")[seen:]] == order[:1]

        watching = False
        restarted = await start_bot(settings)
        try:
            await restarted.app.wait_idle()
            assert [p.identity for p in restarted.adapter.posts("general")] == order[1:]
        finally:
            await restarted.app.stop()
