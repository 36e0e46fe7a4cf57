"""The pipeline: strictest verdict, rewrites feeding the next check, failing closed, empty posts."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bots.verification import factory
from bots.verification.base import (
    Check,
    CheckResult,
    VerdictAction,
    VerificationContext,
)
from bots.verification.factory import build_verifier
from bots.verification.pipeline import VerificationPipeline
from config.verification import TEAM_DEFAULT

CTX = VerificationContext(persona="Priya Nair")


class Fixed(Check):
    """Answers the same for every text."""

    def __init__(self, name: str, action: VerdictAction = VerdictAction.PASS, reason: str = "") -> None:
        self.name = name
        self.action = action
        self.reason = reason
        self.seen: list[str] = []

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        self.seen.append(text)
        rewritten = text if self.action is VerdictAction.REWRITE else None
        return CheckResult(check=self.name, action=self.action, reason=self.reason, text=rewritten)


class Replace(Check):
    """Rewrites one word, as a redaction would."""

    def __init__(self, name: str, old: str, new: str) -> None:
        self.name, self.old, self.new = name, old, new
        self.seen: list[str] = []

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        self.seen.append(text)
        if self.old not in text:
            return CheckResult(check=self.name)
        return CheckResult(check=self.name, action=VerdictAction.REWRITE, reason=f"{self.old} removed", text=text.replace(self.old, self.new))


class Raises(Check):
    name = "boom"

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        raise RuntimeError("model unreachable")


class Sleeps(Check):
    name = "slow"
    uses_model = True

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        await asyncio.sleep(self.seconds)
        return CheckResult(check=self.name)


class Blocks(Check):
    """Holds the event loop, as a runaway regular expression would."""

    name = "stuck"

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        time.sleep(0.08)
        return CheckResult(check=self.name)


class Nonsense(Check):
    name = "nonsense"

    async def run(self, text: str, context: VerificationContext):  # type: ignore[override]
        return {"action": "pass"}


class RewriteWithoutText(Check):
    name = "careless"

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        return CheckResult(check=self.name, action=VerdictAction.REWRITE, reason="oops")


async def test_all_pass_keeps_the_text_and_records_every_check() -> None:
    checks = [Fixed("a"), Fixed("b")]
    verdict = await VerificationPipeline(checks).verify("Morning all, standup in 5?", CTX)
    assert verdict.decision == "pass"
    assert verdict.text == "Morning all, standup in 5?"
    assert verdict.reasons == []
    assert [c["check"] for c in verdict.checks] == ["a", "b"]
    assert all(c["action"] == "pass" and "ms" in c for c in verdict.checks)


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        (["pass", "rewrite"], "rewrite"),
        (["rewrite", "hold", "pass"], "hold"),
        (["hold", "rewrite"], "hold"),
        (["pass", "block"], "block"),
        (["hold", "block"], "block"),
    ],
)
async def test_the_strictest_action_wins(actions: list[str], expected: str) -> None:
    checks = [Fixed(f"c{i}", VerdictAction(a), reason=f"because {i}") for i, a in enumerate(actions)]
    verdict = await VerificationPipeline(checks).verify("text", CTX)
    assert verdict.decision == expected
    assert verdict.reasons == [f"c{i}: because {i}" for i, a in enumerate(actions) if a != "pass"]


async def test_rewrites_feed_the_next_check_and_accumulate() -> None:
    first, second, third = Replace("one", "alpha", "[a]"), Replace("two", "beta", "[b]"), Fixed("three")
    verdict = await VerificationPipeline([first, second, third]).verify("alpha and beta", CTX)
    assert second.seen == ["[a] and beta"]
    assert third.seen == ["[a] and [b]"]
    assert verdict.decision == "rewrite"
    assert verdict.text == "[a] and [b]"
    assert verdict.reasons == ["one: alpha removed", "two: beta removed"]
    assert verdict.checks[0]["text"] == "[a] and beta"


async def test_a_held_message_keeps_the_redactions() -> None:
    pipeline = VerificationPipeline([Replace("pii", "secret", "[removed]"), Fixed("tox", VerdictAction.HOLD, "rude")])
    verdict = await pipeline.verify("the secret is out", CTX)
    assert verdict.decision == "hold"
    assert verdict.text == "the [removed] is out"


async def test_a_block_skips_the_remaining_checks() -> None:
    later = Fixed("judge")
    verdict = await VerificationPipeline([Fixed("pii", VerdictAction.BLOCK, "card"), later]).verify("x", CTX)
    assert verdict.decision == "block"
    assert later.seen == []
    assert [c["check"] for c in verdict.checks] == ["pii"]


async def test_a_check_that_raises_holds_the_message() -> None:
    after = Fixed("after")
    verdict = await VerificationPipeline([Raises(), after]).verify("hello", CTX)
    assert verdict.decision == "hold"
    assert verdict.text == "hello"
    assert verdict.reasons == ["check boom failed: RuntimeError: model unreachable"]
    assert verdict.checks[0]["action"] == "hold"
    assert after.seen == ["hello"]  # the rest still run, for the audit trail


async def test_a_check_over_its_timeout_holds_the_message() -> None:
    pipeline = VerificationPipeline([Sleeps(5)], timeouts={"slow": 0.05})
    started = time.perf_counter()
    verdict = await pipeline.verify("hello", CTX)
    assert time.perf_counter() - started < 2
    assert verdict.decision == "hold"
    assert verdict.reasons == ["check slow failed: timed out after 0.05 s"]


async def test_model_checks_get_the_model_timeout() -> None:
    pipeline = VerificationPipeline([Sleeps(0.2)], timeout_s=0.05, model_timeout_s=1.0)
    assert pipeline.timeout_for(pipeline.checks[0]) == 1.0
    assert (await pipeline.verify("hello", CTX)).decision == "pass"
    assert (await VerificationPipeline([Sleeps(0.2)], model_timeout_s=0.05).verify("hello", CTX)).decision == "hold"


async def test_a_check_that_blocks_the_loop_past_its_budget_holds() -> None:
    verdict = await VerificationPipeline([Blocks()], timeout_s=0.02).verify("hello", CTX)
    assert verdict.decision == "hold"
    assert "check stuck failed: took" in verdict.reasons[0]


async def test_nonsense_answers_hold() -> None:
    verdict = await VerificationPipeline([Nonsense(), RewriteWithoutText()]).verify("hello", CTX)
    assert verdict.decision == "hold"
    assert verdict.reasons == [
        "check nonsense failed: returned dict, not a CheckResult",
        "check careless failed: asked for a rewrite without giving the new text",
    ]
    assert verdict.text == "hello"


async def test_cancellation_is_not_swallowed() -> None:
    task = asyncio.create_task(VerificationPipeline([Sleeps(5)], timeouts={"slow": 10}).verify("x", CTX))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\u200b\u200b", " \ufeff "])
async def test_an_empty_message_is_blocked(text: str) -> None:
    verdict = await VerificationPipeline([Fixed("a")]).verify(text, CTX)
    assert verdict.decision == "block"
    assert verdict.reasons == ["nothing left to post: the message is empty"]


async def test_a_message_emptied_by_rewrites_is_blocked() -> None:
    verdict = await VerificationPipeline([Replace("links", "https://x.example", "  ")]).verify("https://x.example", CTX)
    assert verdict.decision == "block"
    assert verdict.reasons[-1] == "nothing left to post: the message is empty"


async def test_the_team_pipeline_runs_the_checks_in_order() -> None:
    names = build_verifier(TEAM_DEFAULT).names
    expected = [n for n in ("platform", "pii", "secrets", "links", "leakage", "toxicity") if n in names]
    assert names == expected
    assert names[:2] == ["platform", "pii"]
    assert "links" in names and "leakage" in names
    assert "judge" not in names


async def test_policy_timeouts_reach_the_pipeline() -> None:
    policy = TEAM_DEFAULT.merged({"checks": ["platform", "pii"], "check_timeout_s": 0.25, "check_timeouts": {"pii": 0.1}})
    pipeline = build_verifier(policy)
    assert pipeline.timeouts == {"platform": 0.25, "pii": 0.1}


async def test_a_missing_check_module_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(factory.CHECK_CLASSES, "toxicity", ("bots.verification.checks.not_written_yet", "Nope"))
    with caplog.at_level(logging.WARNING, logger="bots.verification.factory"):
        pipeline = build_verifier(TEAM_DEFAULT)
    assert "toxicity" not in pipeline.names
    assert "platform" in pipeline.names
    assert any("toxicity" in record.message for record in caplog.records)


async def test_the_judge_joins_last_only_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeJudge(Check):
        name = "judge"
        uses_model = True

        def __init__(self, policy, model) -> None:  # type: ignore[no-untyped-def]
            self.model = model

        async def run(self, text: str, context: VerificationContext) -> CheckResult:
            return CheckResult(check=self.name)

    import types

    module = types.ModuleType("fake_judge_module")
    module.FakeJudge = FakeJudge  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "fake_judge_module", module)
    monkeypatch.setitem(factory.CHECK_CLASSES, "judge", ("fake_judge_module", "FakeJudge"))
    policy = TEAM_DEFAULT.merged({"judge": {"enabled": True, "timeout_s": 3.5}})
    model = object()
    pipeline = build_verifier(policy, model=model)
    assert pipeline.names[-1] == "judge"
    assert pipeline.checks[-1].model is model  # type: ignore[attr-defined]
    assert pipeline.timeouts["judge"] == 3.5


async def test_a_verdict_of_the_checks_before_a_model_check_is_resumed_through_the_rest():
    """The verification process runs the checks up to the first one that calls a model; the bot
    resumes their verdict through the rest, under the same timeouts, on the text as they left it."""
    first, then = Replace("pii", "secret", "[redacted]"), Fixed("links")
    slow, stuck, last = Sleeps(1.0), Blocks(), Fixed("toxicity", VerdictAction.HOLD, "rude")
    pipeline = VerificationPipeline([first, then, slow, stuck, last], timeout_s=0.05, model_timeout_s=0.04,
                                    timeouts={"toxicity": 0.3})
    assert pipeline.offline_lead == 2 and VerificationPipeline([first, then]).offline_lead == 2

    rest = pipeline.after(pipeline.offline_lead)
    assert rest.checks == [slow, stuck, last]
    earlier = await VerificationPipeline([first, then]).verify("the secret plan", CTX)
    verdict = await rest.resume(earlier, CTX)

    assert verdict.action is VerdictAction.HOLD and verdict.text == "the [redacted] plan" and last.seen == ["the [redacted] plan"]
    assert [c["check"] for c in verdict.checks] == ["pii", "links", "slow", "stuck", "toxicity"]
    assert verdict.reasons[:2] == ["pii: secret removed", "check slow failed: timed out after 0.04 s"]
    assert verdict.reasons[2].startswith("check stuck failed: took 0.0") and verdict.reasons[2].endswith("over its 0.05 s timeout")
    assert verdict.reasons[3] == "toxicity: rude" and rest.timeout_for(last) == 0.3

    blocked = await VerificationPipeline([Fixed("leakage", VerdictAction.BLOCK, "recites")]).verify("x", CTX)
    assert (await rest.resume(blocked, CTX)).checks == blocked.checks and last.seen == ["the [redacted] plan"]
