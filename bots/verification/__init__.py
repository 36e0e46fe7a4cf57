"""Output verification: every persona message is checked before it is posted."""

from bots.verification.base import (
    PassThroughVerifier,
    Verdict,
    VerdictAction,
    VerificationContext,
    Verifier,
)

__all__ = ["PassThroughVerifier", "Verdict", "VerdictAction", "VerificationContext", "Verifier"]
