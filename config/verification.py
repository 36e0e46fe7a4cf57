"""What a channel allows: which checks run, their thresholds and what they do on a finding.

One policy is configured for the whole bot (``Settings.verification``, ``TROUPE_VERIFICATION_*``);
a channel may override parts of it with :meth:`VerificationPolicy.merged`. Unknown fields are an
error, so a misspelt override fails loudly instead of silently keeping the default. The checks take
these models as they are; a check made without a policy uses the defaults below.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CHECK_ORDER",
    "CheckName",
    "JudgeSettings",
    "RED_TEAM_DEFAULT",
    "SecretsSettings",
    "TEAM_DEFAULT",
    "ToxicitySettings",
    "VerificationPolicy",
    "country_codes",
]

CheckName = Literal["platform", "pii", "secrets", "links", "leakage", "toxicity", "judge"]

#: The order checks run in: cheap rewrites first, so later checks see the text that would be posted,
#: and the model-based judge last, so it is skipped when an earlier check already blocks.
CHECK_ORDER: tuple[str, ...] = ("platform", "pii", "secrets", "links", "leakage", "toxicity", "judge")

_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$")


def country_codes(value: Any) -> Any:
    """Two-letter country codes, upper case and each once, from a list or "es, pt"; a clear error
    for anything else (pydantic reports what is not a list)."""
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    if not isinstance(value, (list, tuple)):
        return value
    regions = []
    for item in value:
        if not isinstance(item, str) or len(item.strip()) != 2 or not item.strip().isalpha():
            raise ValueError(f"phone region {item!r} must be a two-letter country code such as 'BR'")
        regions.append(item.strip().upper())
    return list(dict.fromkeys(regions))


class ToxicitySettings(BaseModel):
    """Toxicity scores (0–1) and word lists; the toxicity check reads these fields by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: At or above this score a message is held for a moderator; at or above ``block_at`` it is blocked.
    hold_at: float = Field(default=0.5, ge=0, le=1)
    block_at: float = Field(default=0.85, ge=0, le=1)
    #: Profanity aimed at no one is masked and posted (True) or held (False).
    mask_profanity: bool = True
    # Off by default: on our corpus it added no recall over the rules and held "can you kill the pods".
    #: Use the statistical classifier when it is installed.
    use_classifier: bool = False
    #: More words to treat as profanity, words that always block, and words never to flag.
    extra_words: list[str] = Field(default_factory=list)
    block_words: list[str] = Field(default_factory=list)
    allow_words: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _in_order(self) -> ToxicitySettings:
        if self.hold_at > self.block_at:
            raise ValueError(f"toxicity.hold_at ({self.hold_at}) must not be above toxicity.block_at ({self.block_at})")
        return self


class SecretsSettings(BaseModel):
    """Credentials and keys; the secrets check reads these fields by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``rewrite`` (``redact`` is the same): replace each secret and post; ``block``: never post.
    action: Literal["rewrite", "block"] = "rewrite"
    #: Least Shannon entropy (bits a character) of a value after a word like "password:" to count.
    entropy: float = Field(default=3.5, ge=0)

    @field_validator("action", mode="before")
    @classmethod
    def _redact_is_rewrite(cls, value: Any) -> Any:
        return "rewrite" if value == "redact" else value


class JudgeSettings(BaseModel):
    """The optional model-based judge: slow and costly, so off unless a channel asks for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    #: Also ask the OpenAI moderation endpoint (needs an OpenAI or Azure OpenAI model).
    moderation: bool = False
    moderation_model: str = "omni-moderation-latest"
    #: The model to ask; ``None`` uses the bot's own model.
    model: str | None = None
    #: Seconds to wait for the verdict; a language-model call needs longer than an offline check.
    timeout_s: float = Field(default=10.0, gt=0)
    #: When the judge cannot answer: hold or block the message, or raise (the pipeline then holds it).
    on_error: Literal["hold", "block", "raise"] = "hold"
    #: Lines of recent conversation shown to the judge, and the longest message sent to it.
    context_lines: int = Field(default=6, ge=0)
    max_chars: int = Field(default=4000, ge=100)


#: The checks a channel runs unless it says otherwise: every offline one.
OFFLINE_CHECKS: tuple[CheckName, ...] = ("platform", "pii", "secrets", "links", "leakage", "toxicity")


class VerificationPolicy(BaseModel):
    """Everything the checks are told about one channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``team``: ordinary team chat. ``red-team``: personas may be adversarial; posts are labelled.
    mode: Literal["team", "red-team"] = "team"
    #: The offline checks that run (``judge`` runs only when ``judge.enabled``); order does not matter.
    checks: list[CheckName] = Field(default_factory=lambda: list(OFFLINE_CHECKS))

    #: Toxicity thresholds (``hold_at``, ``block_at``) and word lists.
    toxicity: ToxicitySettings = Field(default_factory=ToxicitySettings)

    #: Personal data (emails, phone numbers, cards, IBANs, ids, addresses): redact it or block the post.
    pii_action: Literal["redact", "block"] = "redact"
    #: Countries (ISO 3166 codes, the channel's own first) whose phone numbers count as personal data
    #: without a country code, written as that country writes them; empty: a broad default list.
    #: A Brazilian channel sets ``["BR"]`` so "(11) 91234-5678" is caught and other countries'
    #: local formats are not mistaken for numbers in its talk.
    phone_regions: list[str] = Field(default_factory=list)
    #: Credentials and keys: redact (``rewrite``) or block.
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)

    #: Domains links may point to (subdomains included); every other link is handled per ``link_action``.
    allowed_link_domains: list[str] = Field(default_factory=list)
    #: ``strip``: replace a link that is not allowed with ``[link removed]``; ``hold``: a moderator decides.
    link_action: Literal["strip", "hold"] = "strip"

    #: Whether personas may mention individual users (``<@123>``, ``<@U123>``); mass mentions never ping.
    allow_user_mentions: bool = False
    #: Posts longer than this many times the platform limit are shortened; shorter ones are split.
    max_length_factor: float = Field(default=3.0, ge=1.0)

    #: Personas must not say they are an AI, a model, a bot or simulated.
    in_character: bool = True

    #: Seconds an offline check may take, and a model-based one, before the message is held.
    check_timeout_s: float = Field(default=0.5, gt=0)
    model_check_timeout_s: float = Field(default=2.0, gt=0)
    #: Per-check timeouts in seconds, by check name, overriding the two above.
    check_timeouts: dict[str, float] = Field(default_factory=dict)

    judge: JudgeSettings = Field(default_factory=JudgeSettings)

    @field_validator("pii_action", mode="before")
    @classmethod
    def _rewrite_is_redact(cls, value: Any) -> Any:
        return "redact" if value == "rewrite" else value

    @field_validator("phone_regions", mode="before")
    @classmethod
    def _phone_regions(cls, value: Any) -> Any:
        return country_codes(value)

    @field_validator("checks")
    @classmethod
    def _unique_checks(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("allowed_link_domains", mode="before")
    @classmethod
    def _domains(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in re.split(r"[,\s]+", value) if part]
        if not isinstance(value, list):
            return value
        domains = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"domain {item!r} must be text such as 'example.com'")
            domain = item.strip().lower().removeprefix("*.").rstrip(".")
            domain = re.sub(r"^[a-z][a-z0-9+.-]*://", "", domain).split("/", 1)[0]
            if not _DOMAIN.match(domain):
                raise ValueError(f"{item!r} is not a domain name such as 'example.com' (ASCII letters, digits, dots)")
            domains.append(domain)
        return list(dict.fromkeys(domains))

    # -- reading ----------------------------------------------------------------------------

    @property
    def red_team(self) -> bool:
        return self.mode == "red-team"

    def enabled(self, check: str) -> bool:
        """Whether ``check`` runs under this policy."""
        if check == "judge":
            return self.judge.enabled
        return check in self.checks

    def enabled_checks(self) -> list[str]:
        """The checks that run, in the order they run."""
        return [name for name in CHECK_ORDER if self.enabled(name)]

    def timeout_for(self, check: str, *, uses_model: bool = False) -> float:
        if check in self.check_timeouts:
            return self.check_timeouts[check]
        if check == "judge":
            return self.judge.timeout_s
        return self.model_check_timeout_s if uses_model else self.check_timeout_s

    # -- changing ---------------------------------------------------------------------------

    def merged(self, overrides: dict[str, Any] | None) -> VerificationPolicy:
        """A new policy with a channel's ``overrides`` applied; nested sections merge, lists replace."""
        if not overrides:
            return self
        data = _deep_merge(self.model_dump(), dict(overrides))
        return type(self).model_validate(data)


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


#: The policy for ordinary team channels.
TEAM_DEFAULT = VerificationPolicy()
#: The same checks for a red-team channel, where adversarial personas are allowed and labelled.
RED_TEAM_DEFAULT = TEAM_DEFAULT.merged({"mode": "red-team"})
