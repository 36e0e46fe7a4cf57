"""The shortcuts that keep verification cheap must not change a verdict."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from bots.verification.base import (
    Check,
    CheckResult,
    VerdictAction,
    VerificationContext,
)
from bots.verification.checks import injection
from bots.verification.checks import toxic_terms as terms
from bots.verification.checks.normalize import views
from bots.verification.gate import LiteralGate, required_literals
from bots.verification.pipeline import VerificationPipeline, _record
from tests.support.paths import DATA

CORPUS = DATA / "verification" / "corpus.jsonl"


def _texts() -> list[str]:
    texts = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [view.text for text in texts for view in views(text)]


@pytest.mark.parametrize(
    "patterns",
    [[p for _, p in terms.PATTERNS], [p for _, _, p, _ in injection._COMPILED]],
    ids=["toxicity", "injection"],
)
def test_the_gate_never_skips_a_pattern_that_matches(patterns: list[re.Pattern[str]]) -> None:
    gate = LiteralGate(patterns)
    for text in _texts():
        possible = set(gate.possible(text))
        assert {i for i, p in enumerate(patterns) if p.search(text)} <= possible, text


def test_required_literals_are_read_off_the_pattern() -> None:
    threat = required_literals(re.compile(r"(?<!\w)(?:i will|i'?ll) (?:kill|hurt) (?:you|u)\b"))
    assert threat is not None and "i'll kill you" in threat and "ill hurt u" in threat and len(threat) == 12
    assert required_literals(re.compile(r"\w+@\w+")) == {"@"}
    assert required_literals(re.compile(r"(?i)password")) is None  # case-insensitive: always run
    assert required_literals(re.compile(r"[a-z]+")) is None
    gate = LiteralGate([re.compile("you are an? (?:idiot|fool)"), re.compile("[0-9]+")])
    assert gate.possible("you are a fool") == [0, 1]
    assert gate.possible("nothing to see") == [1]


class WaitsThenAnswers(Check):
    name = "waits"
    uses_model = True

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        await asyncio.sleep(self.seconds)
        return CheckResult(check=self.name, action=VerdictAction.REWRITE, reason="shorter", text=text[:3])


async def test_a_check_that_waits_still_gets_its_result_and_its_timeout() -> None:
    quick = await VerificationPipeline([WaitsThenAnswers(0.001)]).verify("hello there", VerificationContext())
    assert quick.decision == "rewrite" and quick.text == "hel"
    pipeline = VerificationPipeline([WaitsThenAnswers(1.0)], model_timeout_s=0.05)
    slow = await pipeline.verify("hello", VerificationContext())
    assert slow.decision == "hold"
    assert slow.reasons == ["check waits failed: timed out after 0.05 s"]


def test_the_audit_record_is_the_result_dumped_as_json() -> None:
    for result in (
        CheckResult(check="pii"),
        CheckResult(check="toxicity", action=VerdictAction.REWRITE, reason="masked", score=0.4, text="f*** it"),
        CheckResult(check="x", action=VerdictAction.HOLD, score=float("nan")),
    ):
        assert json.dumps(_record(result)) == json.dumps(result.model_dump(mode="json"))
