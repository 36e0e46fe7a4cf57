"""The stable entry point for evaluations: verify one text as a persona's post in a channel.

``verify_text`` builds the same pipeline the bot uses, from the team default policy or a
channel's overrides, and caches it per policy so repeated calls cost only the checks themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bots.verification.base import Verdict, VerificationContext
from bots.verification.factory import build_verifier
from bots.verification.pipeline import VerificationPipeline
from config.verification import RED_TEAM_DEFAULT, TEAM_DEFAULT, VerificationPolicy

__all__ = ["pipeline_for", "resolve_policy", "verify_text"]

_PIPELINES: dict[str, VerificationPipeline] = {}
_CACHE_LIMIT = 64


def resolve_policy(channel_policy: VerificationPolicy | Mapping[str, Any] | str | None) -> VerificationPolicy:
    """A policy object, overrides on the team default, or ``"team"`` / ``"red-team"``."""
    if channel_policy is None or channel_policy == "team":
        return TEAM_DEFAULT
    if channel_policy == "red-team":
        return RED_TEAM_DEFAULT
    if isinstance(channel_policy, VerificationPolicy):
        return channel_policy
    if isinstance(channel_policy, Mapping):
        return TEAM_DEFAULT.merged(dict(channel_policy))
    raise ValueError(
        f"channel_policy must be a VerificationPolicy, a dict of overrides, 'team' or 'red-team', not {channel_policy!r}"
    )


def pipeline_for(policy: VerificationPolicy) -> VerificationPipeline:
    """The (cached) pipeline for ``policy``."""
    key = policy.model_dump_json()
    pipeline = _PIPELINES.get(key)
    if pipeline is None:
        if len(_PIPELINES) >= _CACHE_LIMIT:
            _PIPELINES.pop(next(iter(_PIPELINES)))
        pipeline = _PIPELINES[key] = build_verifier(policy)
    return pipeline


def _persona(persona: Any) -> tuple[str, dict[str, Any]]:
    if persona is None:
        return "", {}
    if hasattr(persona, "to_tinytroupe_dict"):
        spec = persona.to_tinytroupe_dict()
    elif isinstance(persona, Mapping):
        inner = persona.get("persona")
        spec = dict(inner) if isinstance(inner, Mapping) and "name" not in persona else dict(persona)
    else:
        raise TypeError(f"persona must be a dict or a PersonaSpec, not {type(persona).__name__}")
    return str(spec.get("name") or ""), spec


async def verify_text(
    text: str,
    persona: Mapping[str, Any] | Any | None = None,
    channel_policy: VerificationPolicy | Mapping[str, Any] | str | None = None,
    *,
    platform: str = "unknown",
    max_length: int = 2000,
    system_prompt: str | None = None,
    model: Any = None,
    phone_regions: Sequence[str] = (),
) -> Verdict:
    """Verify ``text`` as a post by ``persona`` (a spec dict, TinyTroupe agent or PersonaSpec).

    The verdict's ``decision`` is ``pass``, ``rewrite``, ``hold`` or ``block``; ``text`` is what
    would be posted and ``reasons`` say why. ``model`` is needed only when the policy enables the
    judge; such a pipeline is built for the call and not cached. ``phone_regions`` are the
    countries whose numbers count without a country code (default: a list of common ones).
    """
    policy = resolve_policy(channel_policy)
    name, spec = _persona(persona)
    context = VerificationContext(
        platform=platform,
        persona=name,
        persona_spec=spec,
        max_length=max_length,
        system_prompt=system_prompt,
        phone_regions=list(phone_regions),
    )
    pipeline = build_verifier(policy, model=model) if model is not None else pipeline_for(policy)
    return await pipeline.verify(text, context)
