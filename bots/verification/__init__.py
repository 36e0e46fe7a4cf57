"""Output verification: every persona message is checked before it is posted."""

from bots.verification.base import (
    Check,
    CheckResult,
    PassThroughVerifier,
    Verdict,
    VerdictAction,
    VerificationContext,
    Verifier,
)

__all__ = ["Check", "CheckResult", "PassThroughVerifier", "Verdict", "VerdictAction", "VerificationContext", "Verifier"]
