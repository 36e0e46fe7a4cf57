"""Assemble the verification pipeline a policy asks for.

Order matters: platform repairs first (so every later check sees the text without invisible
characters), then personal data and secrets (redacted before anything quotes them), links,
leakage, toxicity, and the model-based judge last so it is skipped when an earlier check blocks.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from bots.verification.base import Check
from bots.verification.pipeline import VerificationPipeline
from config.verification import VerificationPolicy

__all__ = ["CHECK_CLASSES", "build_verifier"]

log = logging.getLogger(__name__)

#: Check name -> (module, class). The judge also gets the model.
CHECK_CLASSES: dict[str, tuple[str, str]] = {
    "platform": ("bots.verification.checks.platform", "PlatformCheck"),
    "pii": ("bots.verification.checks.pii", "PiiCheck"),
    "secrets": ("bots.verification.checks.secrets", "SecretsCheck"),
    "links": ("bots.verification.checks.links", "LinksCheck"),
    "leakage": ("bots.verification.checks.leakage", "LeakageCheck"),
    "toxicity": ("bots.verification.checks.toxicity", "ToxicityCheck"),
    "judge": ("bots.verification.checks.judge", "JudgeCheck"),
}


def _load(name: str) -> Callable[..., Check] | None:
    module_name, class_name = CHECK_CLASSES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise  # the check exists but something it needs is missing: that is a real error
        log.warning("verification check %r is enabled but %s is not available; it is skipped", name, module_name)
        return None
    cls: Callable[..., Check] = getattr(module, class_name)
    return cls


def _moderation_check(policy: VerificationPolicy, model: Any) -> Check | None:
    """The moderation endpoint check, when asked for and the model is served by an OpenAI client."""
    if not policy.judge.moderation:
        return None
    from simulation.llm.openai_model import OpenAIModel

    server = model.find(OpenAIModel) if hasattr(model, "find") else model
    if not isinstance(server, OpenAIModel):
        log.warning("moderation is enabled but the model is not served by an OpenAI client; it is skipped")
        return None
    from bots.verification.checks.judge import ModerationCheck

    return ModerationCheck(server.client, policy.judge.moderation_model)


def build_verifier(policy: VerificationPolicy, *, model: Any = None, offline_only: bool = False) -> VerificationPipeline:
    """The pipeline of the checks ``policy`` enables, in order, with the policy's timeouts.
    ``offline_only``: without the checks that call a model (the verification process runs these)."""
    checks: list[Check] = []
    for name in policy.enabled_checks():
        if offline_only and name == "judge":
            continue
        cls = _load(name)
        if cls is None:
            continue
        checks.append(cls(policy, model) if name == "judge" else cls(policy))
    moderation = None if offline_only else _moderation_check(policy, model)
    if moderation is not None:
        checks.append(moderation)
    timeouts = {check.name: policy.timeout_for(check.name, uses_model=getattr(check, "uses_model", False)) for check in checks}
    return VerificationPipeline(
        checks,
        timeout_s=policy.check_timeout_s,
        model_timeout_s=policy.model_check_timeout_s,
        timeouts=timeouts,
    )
