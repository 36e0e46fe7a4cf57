"""What the pipeline records for each check (the audit a moderator reads) and how it times checks:
a check that blocks part of its time and then waits, a check answering with a future, and a check
that holds but offers other words."""

from __future__ import annotations

import asyncio
import time

from bots.verification.base import Check, CheckResult, VerdictAction, VerificationContext
from bots.verification.checks.secrets import SecretsCheck
from bots.verification.pipeline import VerificationPipeline

CTX = VerificationContext(persona="Priya Nair")


class Waits(Check):
    """Works ``busy`` seconds without yielding, then waits ``idle`` seconds for something."""

    name = "judge"

    def __init__(self, busy: float, idle: float) -> None:
        self.busy, self.idle = busy, idle

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        time.sleep(self.busy)
        await asyncio.sleep(self.idle)
        return CheckResult(check=self.name)


class Answers(Check):
    """Answers with a future (as a check run in a thread would), resolved after ``delay`` or never."""

    name = "threaded"

    def __init__(self, delay: float | None) -> None:
        self.delay = delay

    def run(self, text: str, context: VerificationContext):  # type: ignore[override]
        future = asyncio.get_running_loop().create_future()
        if self.delay is not None:
            asyncio.get_running_loop().call_later(self.delay, future.set_result, CheckResult(check=self.name))
        return future


class HoldsWithWords(Check):
    name = "tone"

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        return CheckResult(check=self.name, action=VerdictAction.HOLD, reason="unsure", score=0.6, text="softer words")


async def test_each_check_is_audited_with_its_answer_certainty_and_time():
    pipeline = VerificationPipeline([SecretsCheck(), Waits(0, 0.05)], model_timeout_s=2)
    verdict = await pipeline.verify("password: Tr0ub4dor&3 ok", CTX)
    secrets, judge = verdict.checks
    assert {k: v for k, v in secrets.items() if k != "ms"} == {
        "check": "secrets", "action": "rewrite", "reason": "secrets: Credential removed", "score": 1.0,
        "text": "password: [secret removed] ok",
    }
    assert {k: v for k, v in judge.items() if k != "ms"} == {
        "check": "judge", "action": "pass", "reason": "", "score": 0.0, "text": None,
    }
    for record in verdict.checks:
        assert type(record["ms"]) is float and record["ms"] == round(record["ms"], 3)
    assert 0 <= secrets["ms"] < 500 and 50 <= judge["ms"] < 1000


async def test_a_failed_check_holds_the_message_with_certainty_and_its_time():
    pipeline = VerificationPipeline([Waits(0.02, 10)], timeout_s=0.1, model_timeout_s=0.1)
    verdict = await pipeline.verify("Hello", CTX)
    assert verdict.action is VerdictAction.HOLD
    (record,) = verdict.checks
    assert record["action"] == "hold" and record["score"] == 1.0
    assert record["reason"] == "check judge failed: timed out after 0.1 s"
    assert 100 <= record["ms"] < 2000


async def test_time_spent_working_counts_against_the_time_left_to_wait():
    pipeline = VerificationPipeline([Waits(busy=0.15, idle=0.15)], timeout_s=0.2, model_timeout_s=0.2)
    verdict = await pipeline.verify("Hello", CTX)
    assert verdict.reasons == ["check judge failed: timed out after 0.2 s"]


async def test_a_check_answering_with_a_future_is_waited_for_within_its_time():
    answered = await VerificationPipeline([Answers(0.01)]).verify("Hello", CTX)
    assert answered.action is VerdictAction.PASS and answered.checks[0]["check"] == "threaded"
    never = await VerificationPipeline([Answers(None)], timeout_s=0.05).verify("Hello", CTX)
    assert never.reasons == ["check threaded failed: timed out after 0.05 s"]
    assert never.checks[0]["ms"] < 1000


async def test_a_hold_keeps_the_words_under_review_as_they_were():
    verdict = await VerificationPipeline([HoldsWithWords()]).verify("Strong words", CTX)
    assert (verdict.action, verdict.text) == (VerdictAction.HOLD, "Strong words")
    assert verdict.checks[0]["score"] == 0.6


def test_a_check_waits_the_model_time_only_when_it_says_it_uses_a_model():
    pipeline = VerificationPipeline([], timeout_s=0.5, model_timeout_s=2.0, timeouts={"links": 0.1})
    assert pipeline.timeout_for(SecretsCheck()) == 0.5
    assert pipeline.timeout_for(Waits(0, 0)) == 0.5
    Waits.uses_model = True
    try:
        assert pipeline.timeout_for(Waits(0, 0)) == 2.0
    finally:
        del Waits.uses_model


async def test_a_check_that_raises_is_audited_with_the_time_it_took():
    class Raises(Check):
        name = "boom"

        async def run(self, text: str, context: VerificationContext) -> CheckResult:
            await asyncio.sleep(0.02)
            raise RuntimeError("model unreachable")

    verdict = await VerificationPipeline([Raises()]).verify("Hello", CTX)
    (record,) = verdict.checks
    assert record["reason"] == "check boom failed: RuntimeError: model unreachable"
    assert 20 <= record["ms"] < 1000


class Labelled(CheckResult):
    """A check's own kind of answer, with details of its own."""

    labels: tuple[str, ...] = ()


class Labels(Check):
    name = "labels"

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        return Labelled(check=self.name, action=VerdictAction.HOLD, reason="unsure", score=0.7, labels=("finance", "tone"))


async def test_a_check_answering_with_its_own_kind_of_result_keeps_its_details_in_the_audit():
    verdict = await VerificationPipeline([Labels()]).verify("Numbers", CTX)
    assert verdict.action is VerdictAction.HOLD
    (record,) = verdict.checks
    assert {k: v for k, v in record.items() if k != "ms"} == {
        "check": "labels", "action": "hold", "reason": "unsure", "score": 0.7, "text": None,
        "labels": ["finance", "tone"],
    }
