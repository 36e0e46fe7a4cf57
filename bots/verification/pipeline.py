"""Run the checks in order and combine their answers into one verdict.

A rewrite from one check is the input of the next, so redactions add up and later checks judge the
text that would actually be posted. The verdict is the strictest answer. The pipeline fails closed:
a check that raises, answers nonsense or runs past its timeout holds the message for a moderator,
so nothing is ever posted unchecked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bots.verification.base import Check, CheckResult, Verdict, VerdictAction, VerificationContext, Verifier
from bots.verification.text import strip_invisible

__all__ = ["DEFAULT_MODEL_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "VerificationPipeline"]

log = logging.getLogger(__name__)

#: Offline checks are pattern matches; half a second means something is badly wrong.
DEFAULT_TIMEOUT_S = 0.5
#: Model-based checks wait on a network call.
DEFAULT_MODEL_TIMEOUT_S = 2.0


class VerificationPipeline(Verifier):
    """Runs ``checks`` one after another on each message; see the module docstring for the rules."""

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        model_timeout_s: float = DEFAULT_MODEL_TIMEOUT_S,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self.checks = list(checks)
        self.timeout_s = timeout_s
        self.model_timeout_s = model_timeout_s
        self.timeouts = dict(timeouts or {})

    @property
    def names(self) -> list[str]:
        return [check.name for check in self.checks]

    def timeout_for(self, check: Check) -> float:
        if check.name in self.timeouts:
            return self.timeouts[check.name]
        return self.model_timeout_s if getattr(check, "uses_model", False) else self.timeout_s

    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        current = text
        action = VerdictAction.PASS
        reasons: list[str] = []
        audit: list[dict[str, Any]] = []
        for check in self.checks:
            result, elapsed = await self._run_one(check, current, context)
            record = result.model_dump(mode="json")
            record["ms"] = round(elapsed * 1000, 3)
            audit.append(record)
            if result.action is VerdictAction.PASS:
                continue
            if result.action is VerdictAction.REWRITE and result.text is not None:
                current = result.text
            if result.action.severity > action.severity:
                action = result.action
            reasons.append(_reason(result))
            if action is VerdictAction.BLOCK:
                # Nothing can be stricter; skip the rest (the judge's model call above all).
                break
        if action is not VerdictAction.BLOCK and not strip_invisible(current).strip():
            action = VerdictAction.BLOCK
            reasons.append("nothing left to post: the message is empty")
        return Verdict(action=action, text=current, reasons=reasons, checks=audit)

    async def _run_one(self, check: Check, text: str, context: VerificationContext) -> tuple[CheckResult, float]:
        name = getattr(check, "name", type(check).__name__)
        limit = self.timeout_for(check)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                result = await check.run(text, context)
        except TimeoutError:
            elapsed = time.perf_counter() - started
            return _failed(name, f"timed out after {limit:g} s"), elapsed
        except Exception as error:
            elapsed = time.perf_counter() - started
            log.warning("verification check %s raised", name, exc_info=True)
            return _failed(name, f"{type(error).__name__}: {error}"), elapsed
        elapsed = time.perf_counter() - started
        if not isinstance(result, CheckResult):
            return _failed(name, f"returned {type(result).__name__}, not a CheckResult"), elapsed
        if elapsed > limit:
            # A check that blocks the event loop cannot be interrupted; it still failed its budget.
            return _failed(name, f"took {elapsed:.2f} s, over its {limit:g} s timeout"), elapsed
        if result.action is VerdictAction.REWRITE and result.text is None:
            return _failed(name, "asked for a rewrite without giving the new text"), elapsed
        return result, elapsed


def _failed(name: str, detail: str) -> CheckResult:
    return CheckResult(check=name, action=VerdictAction.HOLD, reason=f"check {name} failed: {detail}", score=1.0)


def _reason(result: CheckResult) -> str:
    if result.reason.startswith(f"check {result.check} failed:"):
        return result.reason
    return f"{result.check}: {result.reason or result.action.value}"
