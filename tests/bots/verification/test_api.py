"""The evaluation API: ``verify_text`` with personas and channel policies in every accepted form."""

from __future__ import annotations

import json
import time

import pytest

from bots.verification import TEAM_DEFAULT, Verdict, VerificationPolicy, verify_text
from bots.verification.api import pipeline_for, resolve_policy
from config import PERSONAS_DIR
from config.settings import Settings
from simulation.persona import load_persona

PRIYA_FILE = PERSONAS_DIR / "priya_nair.agent.json"
PRIYA = json.loads(PRIYA_FILE.read_text())

TEAM_CHAT = [
    "Morning! Standup moved to 10:30, same room.",
    "What problem are we solving here? I'd like a customer quote before we commit.",
    "1. Ship invoice reminders 2. Revisit dunning next sprint 3. Owner: Tomasz 👍",
    "The export job failed again at 02:00; I'll look after lunch.",
    "Revenue was up 12% in Q3, churn flat at 2.1%.",
    "Can we push the pricing review to Thursday? Henrik is out.",
    "I think the estimate is optimistic, but let's try.",
    "v2.3.1 is on staging, please test the PDF export.",
    "Thanks all, decision: we go with option B. 🙏",
    "I work on AI search, so happy to help with the ranking bit.",
]


@pytest.mark.parametrize("text", TEAM_CHAT)
async def test_ordinary_team_chat_passes_unchanged(text: str) -> None:
    verdict = await verify_text(text, PRIYA)
    assert verdict.decision == "pass", verdict.reasons
    assert verdict.text == text
    assert verdict.reasons == []


async def test_a_verdict_has_decision_text_reasons_and_the_audit() -> None:
    verdict = await verify_text("@everyone mail me at jane.doe@example.com or see evil.example/x")
    assert isinstance(verdict, Verdict)
    assert verdict.decision == "rewrite"
    assert verdict.text == "@ everyone mail me at [email removed] or see [link removed]"
    assert any(r.startswith("platform:") for r in verdict.reasons)
    assert any(r.startswith("pii:") for r in verdict.reasons)
    assert any(r.startswith("links:") for r in verdict.reasons)
    assert [c["check"] for c in verdict.checks][:2] == ["platform", "pii"]


async def test_obfuscation_is_undone_before_the_later_checks() -> None:
    verdict = await verify_text("@every\u200bone ping jane.d\u200boe@example.com")
    assert verdict.text == "@ everyone ping [email removed]"


async def test_persona_forms() -> None:
    leak = "You are organised and like every discussion to end in a decision. You are diplomatic and good at hearing everyone out before choosing. You get impatient with vague requests that have no customer behind them."
    for persona in (PRIYA, PRIYA["persona"], load_persona(PRIYA_FILE)):
        assert (await verify_text(leak, persona)).decision == "block"
    assert (await verify_text(leak)).decision != "block"  # without the persona it is just a message
    with pytest.raises(TypeError):
        await verify_text("hi", persona=42)  # type: ignore[arg-type]


async def test_out_of_character_is_held_unless_the_channel_allows_it() -> None:
    assert (await verify_text("As an AI, I can't attend.", PRIYA)).decision == "hold"
    assert (await verify_text("As an AI, I can't attend.", PRIYA, {"in_character": False})).decision == "pass"


async def test_channel_policy_forms() -> None:
    text = "Docs: https://github.com/org/repo and mail jane@example.com"
    assert (await verify_text(text)).text == "Docs: [link removed] and mail [email removed]"
    overrides = {"allowed_link_domains": ["github.com"], "pii_action": "block"}
    assert (await verify_text(text, channel_policy=overrides)).decision == "block"
    policy = TEAM_DEFAULT.merged({"allowed_link_domains": ["github.com"]})
    assert (await verify_text(text, channel_policy=policy)).text == "Docs: https://github.com/org/repo and mail [email removed]"
    assert (await verify_text(text, channel_policy="team")).decision == "rewrite"
    assert (await verify_text(text, channel_policy="red-team")).decision == "rewrite"
    with pytest.raises(ValueError):
        await verify_text(text, channel_policy="chaos")
    with pytest.raises(ValueError):
        await verify_text(text, channel_policy={"no_such_field": True})


async def test_empty_text_is_blocked() -> None:
    assert (await verify_text("  \u200b ")).decision == "block"


def test_policies_resolve_and_pipelines_are_cached() -> None:
    assert resolve_policy(None) is TEAM_DEFAULT
    assert resolve_policy("team") is TEAM_DEFAULT
    assert resolve_policy("red-team").mode == "red-team"
    assert resolve_policy({"mode": "red-team"}).red_team
    assert pipeline_for(TEAM_DEFAULT) is pipeline_for(VerificationPolicy())
    assert pipeline_for(TEAM_DEFAULT) is not pipeline_for(TEAM_DEFAULT.merged({"checks": ["platform"]}))


def test_policy_merging() -> None:
    merged = TEAM_DEFAULT.merged({"judge": {"enabled": True}, "toxicity": {"hold_at": 0.3}, "checks": ["platform", "pii"]})
    assert merged.judge.enabled and merged.judge.timeout_s == TEAM_DEFAULT.judge.timeout_s
    assert merged.toxicity.hold_at == 0.3 and merged.toxicity.block_at == TEAM_DEFAULT.toxicity.block_at
    assert merged.enabled_checks() == ["platform", "pii", "judge"]
    assert TEAM_DEFAULT.judge.enabled is False  # the default is never changed
    assert TEAM_DEFAULT.merged({}) is TEAM_DEFAULT
    assert TEAM_DEFAULT.merged({"pii_action": "rewrite"}).pii_action == "redact"
    assert TEAM_DEFAULT.merged({"secrets": {"action": "redact"}}).secrets.action == "rewrite"
    with pytest.raises(ValueError):
        TEAM_DEFAULT.merged({"toxicity": {"hold_at": 0.9, "block_at": 0.5}})
    with pytest.raises(ValueError):
        TEAM_DEFAULT.merged({"checks": ["platform", "telepathy"]})


def test_the_team_default() -> None:
    policy = TEAM_DEFAULT
    assert policy.mode == "team"
    assert policy.pii_action == "redact"
    assert policy.allowed_link_domains == []
    assert policy.allow_user_mentions is False
    assert policy.in_character is True
    assert policy.judge.enabled is False
    assert policy.enabled_checks() == ["platform", "pii", "secrets", "links", "leakage", "toxicity"]


def test_settings_carry_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_VERIFICATION_PII_ACTION", "block")
    monkeypatch.setenv("TROUPE_VERIFICATION_ALLOWED_LINK_DOMAINS", '["github.com"]')
    monkeypatch.setenv("TROUPE_VERIFICATION_TOXICITY", '{"hold_at": 0.4}')
    settings = Settings()
    assert settings.verification.pii_action == "block"
    assert settings.verification.allowed_link_domains == ["github.com"]
    assert settings.verification.toxicity.hold_at == 0.4
    assert Settings(verification={"mode": "red-team"}).verification.red_team


async def test_typical_messages_verify_quickly() -> None:
    await verify_text("warm up", PRIYA)
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for text in TEAM_CHAT:
            await verify_text(text, PRIYA)
    assert (time.perf_counter() - started) / (rounds * len(TEAM_CHAT)) < 0.02


@pytest.mark.parametrize(
    "text",
    [
        "@everyone mail jane@example.com, call (415) 555-2671, see [github.com](https://evil.example/x) <@123>",
        "pay\u200bment to DE89 3704 0044 0532 0130 00 at 221B Baker Street",
    ],
)
async def test_a_rewritten_post_passes_when_verified_again(text: str) -> None:
    first = await verify_text(text)
    assert first.decision == "rewrite"
    again = await verify_text(first.text)
    assert again.decision == "pass", again.reasons
