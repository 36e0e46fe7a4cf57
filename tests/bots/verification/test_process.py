"""The offline checks in a process of their own: the same verdicts as in the bot's process, and a
process that dies, hangs or never starts costs no message its check."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

import pytest

from bots.verification.base import VerdictAction, VerificationContext
from bots.verification.factory import build_verifier
from bots.verification.process import ProcessVerifier, Unavailable, VerificationProcess, wanted
from config.verification import TEAM_DEFAULT, VerificationPolicy
from simulation.llm.openai_model import OpenAIModel
from simulation.persona import find_bundled_persona
from tests.bench import verification as bench
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.testbot import fake_model_settings, start_bot
from tests.support.turns import TurnRule

PRIYA = find_bundled_persona("Priya Nair").to_tinytroupe_dict()
CONTEXT = VerificationContext(platform="slack", persona="Priya Nair", persona_spec=PRIYA, world_id="w1")
EMAIL = "Send it to priya.nair@example.com please."


@pytest.fixture
async def process():
    started = VerificationProcess(grace_s=1.0)
    await started.start()
    yield started
    await started.aclose()


def verifier(process: VerificationProcess, policy: VerificationPolicy = TEAM_DEFAULT, model=None) -> ProcessVerifier:
    return ProcessVerifier(build_verifier(policy, model=model), process, policy.model_dump_json())


def same(a, b) -> bool:
    return (a.action, a.text, a.reasons, [c["check"] for c in a.checks]) == (b.action, b.text, b.reasons, [c["check"] for c in b.checks])


async def until(condition, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_the_process_gives_the_verdicts_of_the_bots_own_checks(process):
    """The labelled corpus, all at once, and a persona reciting its own spec (which the process
    only knows from the spec sent with the first request)."""
    local = build_verifier(TEAM_DEFAULT)
    remote = verifier(process)
    recital = " ".join([PRIYA["occupation"]["description"], *PRIYA["personality"]["traits"]])
    texts = [row.text for row in bench.load(bench.CORPUS)] + [recital, EMAIL]

    theirs = await asyncio.gather(*(remote.verify(text, CONTEXT) for text in texts))
    ours = [await local.verify(text, CONTEXT) for text in texts]

    differ = [(text, a, b) for text, a, b in zip(texts, theirs, ours, strict=True) if not same(a, b)]
    assert not differ, differ[:3]
    assert {v.action for v in theirs} == {VerdictAction.PASS, VerdictAction.REWRITE, VerdictAction.HOLD, VerdictAction.BLOCK}
    assert theirs[-2].action is VerdictAction.BLOCK and "persona spec" in " ".join(theirs[-2].reasons)
    assert "priya.nair@example.com" not in theirs[-1].text
    assert process.pid is not None and process.pid != os.getpid() and process.starts == 1
    assert process.checked == len(texts)


async def test_channels_with_different_policies_share_the_process_each_under_its_own(process):
    redacting, blocking = verifier(process), verifier(process, TEAM_DEFAULT.merged({"pii_action": "block"}))
    verdicts = await asyncio.gather(*(v.verify(EMAIL, CONTEXT) for v in [redacting, blocking] * 3))
    assert [v.action for v in verdicts] == [VerdictAction.REWRITE, VerdictAction.BLOCK] * 3
    assert process.checked == 6


async def test_checks_the_process_cannot_build_as_asked_are_left_to_the_bot(process):
    """The process builds the checks from the policy; if they are not the ones the bot expects (a
    process of other code), it says so and the bot checks the message itself."""
    with pytest.raises(Unavailable, match="could not check it: ValueError: its checks are"):
        await process.verify(TEAM_DEFAULT.model_dump_json(), ["pii"], EMAIL, CONTEXT, 1.0)
    assert (await verifier(process).verify(EMAIL, CONTEXT)).action is VerdictAction.REWRITE and process.checked == 1


async def test_checks_that_call_a_model_run_in_the_bot_after_the_process(process, fake_openai):
    """With the judge on, the process runs the offline checks and the bot the judge, on the text as
    the offline checks left it; a post they already blocked never reaches the judge."""
    model = OpenAIModel.openai(model="gpt-4o-mini", api_key="sk-test", base_url=fake_openai.base_url, timeout_s=5)
    try:
        policy = TEAM_DEFAULT.merged({"judge": {"enabled": True}})
        remote = verifier(process, policy, model)
        fake_openai.script([json.dumps({"decision": "hold", "category": "other", "reason": "sounds off"})])

        held = await remote.verify(EMAIL, CONTEXT)
        assert held.action is VerdictAction.HOLD and any("sounds off" in r for r in held.reasons)
        assert [c["check"] for c in held.checks] == [*TEAM_DEFAULT.enabled_checks(), "judge"]
        asked = json.dumps(fake_openai.requests[0].body)
        assert "priya.nair@example.com" not in asked  # the judge read the redacted text

        blocked = await remote.verify("I will kill you tomorrow, I know where you live.", CONTEXT)
        assert blocked.action is VerdictAction.BLOCK and len(fake_openai.requests) == 1
    finally:
        await model.aclose()


async def test_a_killed_process_is_replaced_and_what_it_was_checking_is_checked_by_the_next(process):
    remote = verifier(process)
    first = process.pid
    os.kill(first, signal.SIGSTOP)  # it reads nothing more: the requests below are in flight when it dies
    checking = [asyncio.ensure_future(remote.verify(EMAIL, CONTEXT)) for _ in range(3)]
    await asyncio.sleep(0.2)
    assert not any(task.done() for task in checking)
    os.kill(first, signal.SIGKILL)

    verdicts = await asyncio.gather(*checking)
    assert all(v.action is VerdictAction.REWRITE and "priya.nair@example.com" not in v.text for v in verdicts)
    assert process.starts == 2 and process.pid not in (None, first)


DIES_ON_ITS_FIRST_REQUEST = (
    "import os, sys\n"
    "from bots.verification.process import _write_frame\n"
    "_write_frame(sys.stdout.buffer, 'ready')\n"
    "sys.stdin.buffer.read(4)\n"
    "os._exit(3)\n"
)


async def test_a_message_two_processes_died_on_is_held_not_checked_in_the_bot(caplog):
    """A message that kills the process twice might kill the bot: it is held for a moderator."""
    process = VerificationProcess(command=[sys.executable, "-c", DIES_ON_ITS_FIRST_REQUEST])
    try:
        await process.start()
        verdict = await verifier(process).verify(EMAIL, CONTEXT)
    finally:
        await process.aclose()

    assert verdict.action is VerdictAction.HOLD and verdict.text == EMAIL
    assert verdict.reasons[0].startswith("verification: the verification process stopped twice while checking it")
    assert process.starts == 2
    assert "a message is held" in caplog.text


async def test_a_process_that_does_not_answer_in_time_has_its_message_held_and_is_replaced():
    process = VerificationProcess(grace_s=0.3)
    try:
        remote = verifier(process)
        await process.start()
        hung = process.pid
        os.kill(hung, signal.SIGSTOP)

        verdict = await remote.verify(EMAIL, CONTEXT)
        assert verdict.action is VerdictAction.HOLD
        assert verdict.reasons[0].startswith("verification: the verification process did not answer within ")

        await until(lambda: process.running and process.pid != hung)
        after = await remote.verify(EMAIL, CONTEXT)
        assert after.action is VerdictAction.REWRITE and process.checked == 1 and process.starts == 2
    finally:
        await process.aclose()


async def test_a_process_that_cannot_start_leaves_the_checks_to_the_bot(caplog):
    caplog.set_level(logging.WARNING)
    process = VerificationProcess(command=[sys.executable, "-c", "raise SystemExit(2)"], start_at_rate=1)
    try:
        await process.start()
        remote = verifier(process)
        verdicts = [await remote.verify(EMAIL, CONTEXT) for _ in range(5)]
    finally:
        await process.aclose()

    assert all(v.action is VerdictAction.REWRITE and "priya.nair@example.com" not in v.text for v in verdicts)
    assert process.starts == 3 and process.checked == 0  # then given up, not tried for every message
    assert "the verification process did not start" in caplog.text


async def test_auto_starts_the_process_only_once_messages_come_fast_and_checks_here_meanwhile():
    process = VerificationProcess(start_at_rate=20)
    try:
        remote = verifier(process)
        for _ in range(5):  # a quiet channel: one message now and then
            assert (await remote.verify(EMAIL, CONTEXT)).action is VerdictAction.REWRITE
            await asyncio.sleep(0.25)
        assert process.starts == 0 and process.pid is None

        burst = await asyncio.gather(*(remote.verify(EMAIL, CONTEXT) for _ in range(30)))
        assert all(v.action is VerdictAction.REWRITE for v in burst) and process.checked == 0  # checked here meanwhile
        await until(lambda: process.running)
        after = await remote.verify(EMAIL, CONTEXT)
        assert after.action is VerdictAction.REWRITE and process.checked == 1 and process.starts == 1
    finally:
        await process.aclose()


def test_auto_verifies_in_a_process_of_its_own_only_with_a_second_core():
    assert not wanted("auto", cores=1) and wanted("auto", cores=2)
    assert wanted("on", cores=1) and not wanted("off", cores=8)
    assert wanted("auto") is (len(os.sched_getaffinity(0)) >= 2)  # the cores this bot may use


async def test_stopping_holds_what_the_process_was_checking_and_starts_no_other(process):
    remote = verifier(process)
    os.kill(process.pid, signal.SIGSTOP)
    checking = asyncio.ensure_future(remote.verify(EMAIL, CONTEXT))
    await asyncio.sleep(0.2)
    await process.aclose()

    verdict = await checking
    assert verdict.action is VerdictAction.HOLD and verdict.reasons == ["verification: the verification process was stopped"]
    after = await remote.verify(EMAIL, CONTEXT)  # a reply still being checked as the bot stops
    assert after.action is VerdictAction.REWRITE and process.pid is None and process.starts == 1 and process.checked == 0
    with pytest.raises(Unavailable):
        await process.verify(TEAM_DEFAULT.model_dump_json(), ["pii"], EMAIL, CONTEXT, 1.0)
    assert process.starts == 1


async def test_the_bot_checks_posts_in_its_verification_process_and_stops_it_with_itself(tmp_path):
    async with FakeOpenAIServer() as server:
        server.responder = TurnRule()
        bot = await start_bot(fake_model_settings(tmp_path, server, default_exchanges=0, verification_process="on"))
        try:
            await bot.command("start Launch review")
            await bot.command("persona add Priya Nair")
            bot.adapter.push_message(f"Mail me the notes: {EMAIL}")
            post = await bot.adapter.pop("post", timeout=20)
            assert post.identity == "Priya Nair" and "[email" in post.text and "priya.nair@example.com" not in post.text
            child = bot.app.verification_process.pid
            assert child is not None and child != os.getpid()
        finally:
            await bot.app.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
