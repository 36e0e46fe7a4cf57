"""Output verification: every persona message is checked before it is posted."""

from bots.verification.api import verify_text
from bots.verification.base import (
    Check,
    CheckResult,
    PassThroughVerifier,
    Verdict,
    VerdictAction,
    VerificationContext,
    Verifier,
)
from bots.verification.factory import build_verifier
from bots.verification.pipeline import VerificationPipeline
from config.verification import RED_TEAM_DEFAULT, TEAM_DEFAULT, VerificationPolicy

__all__ = [
    "Check",
    "CheckResult",
    "PassThroughVerifier",
    "RED_TEAM_DEFAULT",
    "TEAM_DEFAULT",
    "Verdict",
    "VerdictAction",
    "VerificationContext",
    "VerificationPipeline",
    "VerificationPolicy",
    "Verifier",
    "build_verifier",
    "verify_text",
]
