"""Run the checks in order and combine their answers into one verdict.

A rewrite from one check is the input of the next, so redactions add up and later checks judge the
text that would actually be posted. The verdict is the strictest answer. The pipeline fails closed:
a check that raises, answers nonsense or runs past its timeout holds the message for a moderator,
so nothing is ever posted unchecked.

Most checks are pattern matches that never wait for anything; they are run straight through, and
only a check that does wait (for a model, say) is handed to the event loop under its timeout.
Either way a check that ran past its timeout fails.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import types
from collections.abc import Coroutine, Generator, Mapping, Sequence
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

    @property
    def offline_lead(self) -> int:
        """How many checks from the first call no model: they can run anywhere, in another process too."""
        return next((i for i, check in enumerate(self.checks) if getattr(check, "uses_model", False)), len(self.checks))

    def after(self, count: int) -> VerificationPipeline:
        """The pipeline of the checks after the first ``count`` (with the same timeouts), to ``resume`` a verdict of those."""
        return VerificationPipeline(self.checks[count:], timeout_s=self.timeout_s, model_timeout_s=self.model_timeout_s,
                                    timeouts=self.timeouts)

    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        return await self.resume(Verdict(action=VerdictAction.PASS, text=text), context)

    async def resume(self, verdict: Verdict, context: VerificationContext) -> Verdict:
        """``verdict`` of earlier checks (run in the verification process, say) carried on through these."""
        current = verdict.text
        action = verdict.action
        reasons = list(verdict.reasons)
        audit = list(verdict.checks)
        for check in self.checks if action is not VerdictAction.BLOCK else ():
            result, elapsed = await self._run_one(check, current, context)
            record = _record(result)
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
        name = check.name
        limit = self.timeout_for(check)
        started = time.perf_counter()
        try:
            pending = check.run(text, context)
            if type(pending) is types.CoroutineType:
                result = await _finish(pending, limit, started)
            else:
                async with asyncio.timeout(limit):
                    result = await pending
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


async def _finish(coroutine: Coroutine[Any, Any, Any], limit: float, started: float) -> Any:
    """Run ``coroutine`` to its end; once it waits for something, the rest runs under the time left."""
    try:
        waiting_for = coroutine.send(None)
    except StopIteration as done:
        return done.value
    try:
        async with asyncio.timeout(max(limit - (time.perf_counter() - started), 0.0)):
            return await _resume(coroutine, waiting_for)
    finally:
        coroutine.close()


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, Any], waiting_for: Any) -> Generator[Any, Any, Any]:
    """``await`` a coroutine that has already started and is waiting for ``waiting_for``."""
    while True:
        try:
            sent = yield waiting_for
        except GeneratorExit:
            raise
        except BaseException as error:  # a cancellation or timeout goes to the check, as ``await`` would
            try:
                waiting_for = coroutine.throw(error)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_for = coroutine.send(sent)
            except StopIteration as done:
                return done.value


def _record(result: CheckResult) -> dict[str, Any]:
    """``result`` as its audit record (``model_dump(mode="json")``)."""
    if (
        type(result) is CheckResult
        and type(result.action) is VerdictAction
        and type(result.check) is str
        and type(result.reason) is str
        and type(result.score) is float
        and math.isfinite(result.score)
        and (result.text is None or type(result.text) is str)
    ):
        return {
            "check": result.check,
            "action": result.action.value,
            "reason": result.reason,
            "score": result.score,
            "text": result.text,
        }
    return result.model_dump(mode="json")


def _failed(name: str, detail: str) -> CheckResult:
    return CheckResult(check=name, action=VerdictAction.HOLD, reason=f"check {name} failed: {detail}", score=1.0)


def _reason(result: CheckResult) -> str:
    """The reason as ``check: why``, prefixed once: many checks already name themselves."""
    if result.reason.startswith((f"check {result.check} failed:", f"{result.check}:")):
        return result.reason
    return f"{result.check}: {result.reason or result.action.value}"
