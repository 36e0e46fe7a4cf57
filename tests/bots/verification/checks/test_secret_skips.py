"""The secrets check skips the rules a message cannot match: detect-secrets' assignment patterns
without a long enough value, the secret-word rules without a secret word, our own formats without
their prefix. A skip must never hide a secret: every string each skipped rule matches (generated
from the rule itself) passes its skip test, in whatever case Python's matching allows, and each
secret those rules alone find is still removed."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.verification.base import VerdictAction
from bots.verification.checks import secrets
from bots.verification.checks.secrets import PLACEHOLDER, SecretsCheck

EXAMPLES = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def check() -> SecretsCheck:
    return SecretsCheck()  # (one a test: its plugins and their pieces are made once, in any case)


def long_value_patterns() -> list[re.Pattern[str]]:
    return [pattern for kind, plugin in secrets.shared_plugins() if kind in secrets.LONG_VALUE_PLUGINS
            for pattern in plugin.denylist]


def test_the_plugins_skipped_for_short_values_are_all_loaded():
    loaded = {kind for kind, _ in secrets.shared_plugins()}
    assert loaded >= secrets.LONG_VALUE_PLUGINS
    assert len(long_value_patterns()) == 8


@pytest.mark.parametrize("pattern", long_value_patterns(), ids=lambda p: p.pattern[40:80])
def test_every_match_of_a_long_value_plugin_has_a_long_value(pattern):
    @EXAMPLES
    @given(st.from_regex(pattern, fullmatch=True))
    def matches(text: str) -> None:
        assert secrets._LONG_VALUE.search(text), text

    matches()


def test_the_long_value_test_takes_every_letter_the_plugins_take_in_any_case():
    # The plugins' value classes under their flags (case-insensitive), every code point.
    classes = [re.compile(c, re.IGNORECASE) for c in (r"[a-zA-Z0-9_\-]", r"[a-z0-9]", r"[0-9a-f]", r"[a-z]")]
    value_char = re.compile(r"[0-9a-z_-]", re.IGNORECASE)
    missed = [hex(code) for code in range(0x110000)
              if any(c.fullmatch(chr(code)) for c in classes[:1]) and not value_char.fullmatch(chr(code))]
    assert missed == []
    assert secrets._LONG_VALUE.pattern == r"[0-9a-z_-]{24}"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("cloudant_password = qwertyuiopasdfghjklzxcvb", "Cloudant Credentials"),  # exactly 24 letters
        ("ibm_cloud_iam_key: QWERTYUIOPASDFGHJKLZXCVBNM1234567890QWERTYUI", "IBM Cloud IAM Key"),  # in capitals
        ("cos_hmac_secret_access_key = " + "0123456789abcdef" * 3, "IBM COS HMAC Credentials"),
        ("softlayer_api_key: " + "a1b2c3d4" * 8, "SoftLayer Credentials"),
    ],
)
def test_a_credential_only_an_assignment_plugin_knows_is_removed(check, text, kind):
    result = check.evaluate(text)
    assert result.action is VerdictAction.REWRITE
    assert kind in result.reason
    assert result.text.endswith(PLACEHOLDER)


def test_a_short_key_is_found_when_no_long_value_is_in_the_message(check):
    # An unsigned JSON Web Token: 19 characters before its first dot, found by detect-secrets alone.
    result = check.evaluate("see eyJhbGciOiJub25lIn0.e30. for the header")
    assert result.action is VerdictAction.REWRITE
    assert result.reason == "secrets: JSON Web Token removed"
    assert result.text == f"see {PLACEHOLDER} for the header"


@pytest.mark.parametrize("pattern", [secrets.KEYWORD_VALUE, secrets.KEYWORD_DIRECT], ids=["value", "direct"])
def test_every_match_of_a_secret_word_rule_has_a_secret_word(pattern):
    @EXAMPLES
    @given(st.from_regex(pattern, fullmatch=True))
    def matches(text: str) -> None:
        assert secrets.has_secret_word(text), text

    matches()


@pytest.mark.parametrize(
    "text",
    [
        "PASSWORD: Zx9pQ7mW2",
        "pa\u017f\u017fword: Zx9pQ7mW2",  # long S
        "credent\u0131als: Zx9pQ7mW2",  # dotless I
        "AP\u0130_KEY=Zx9pQ7mW2",  # dotted capital I
        "api_\u212aey=Zx9pQ7mW2",  # Kelvin sign
        "Contrase\u00d1a: Zx9pQ7mW2",
        "HAS\u0141O: Zx9pQ7mW2",
    ],
)
def test_a_value_after_a_secret_word_in_unusual_letters_is_removed(check, text):
    result = check.evaluate(text)
    assert result.action is VerdictAction.REWRITE
    assert result.text.endswith(PLACEHOLDER)
    assert "Zx9pQ7mW2" not in result.text


def test_a_message_without_a_secret_word_has_none():
    assert not secrets.has_secret_word("We ship the onboarding change on Thursday, after QA.")
    assert secrets.has_secret_word("the wachtwoord")
    assert secrets.has_secret_word("Mot de PASSE")


@pytest.mark.parametrize(("kind", "pattern", "pieces"), secrets._EXTRA_FORMATS, ids=[f[0] for f in secrets._EXTRA_FORMATS])
def test_every_key_of_our_own_formats_contains_a_piece_it_is_looked_for_by(kind, pattern, pieces):
    assert pieces and "" not in pieces, f"{kind}: each of our formats has a piece of its own"

    @EXAMPLES
    @given(st.from_regex(pattern))
    def matches(text: str) -> None:
        assert any(piece in text for piece in pieces), text

    matches()


def plugins_with_pieces() -> list[tuple[str, re.Pattern[str], frozenset[str]]]:
    return [(kind, pattern, needs) for kind, plugin, needs in SecretsCheck()._plugins if "" not in needs
            for pattern in plugin.denylist]


@pytest.mark.parametrize(("kind", "pattern", "pieces"), plugins_with_pieces(),
                         ids=[f"{kind}-{i}" for i, (kind, _, _) in enumerate(plugins_with_pieces())])
def test_every_find_of_a_detect_secrets_plugin_contains_a_piece_it_is_looked_for_by(kind, pattern, pieces):
    @EXAMPLES
    @given(st.from_regex(pattern))
    def matches(text: str) -> None:
        assert any(piece in text for piece in pieces), text

    matches()


def test_most_detect_secrets_plugins_are_skipped_for_a_message_without_their_pieces(check):
    skipped = [kind for kind, _, needs in check._plugins if "" not in needs]
    assert len(skipped) >= 15
    assert "SendGrid API Key" in skipped and "JSON Web Token" in skipped


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("sk-ant-api03-" + "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xY", "OpenAI or Anthropic key"),
        ("github_pat_" + "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xY_aB3dE5fG7", "GitHub token"),
        ("ghr_" + "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xY1234", "GitHub token"),
        ("xapp-1-A0123456789-0123456789-abc", "Slack token"),
        ("AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "Google API key"),
        ("rk_test_" + "aB3dE5fG7hJ9kL2mN4pQ6r", "Stripe key"),
        ("hf_" + "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xY", "Hugging Face token"),
        ("glpat-" + "aB3dE5fG7hJ9kL2mN4pQ", "GitLab token"),
        ("npm_" + "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xY1234", "npm token"),
        ("ABIA" + "1234 5678 ABCD EFGH", "AWS Access Key"),
    ],
)
def test_each_of_our_own_formats_is_still_found_by_its_piece(check, text, kind):
    result = check.evaluate(f"use {text} for the build")
    assert result.action is VerdictAction.REWRITE
    assert kind in result.reason
    assert result.text == f"use {PLACEHOLDER} for the build"
