"""The secrets check at the edges of its rules: how long and how mixed a value after a secret word
must be, keys written twice or at the very start, placeholders already in the text, what the check
reports, and the detect-secrets plugins loaded afresh in a new process."""

from __future__ import annotations

import pytest

from bots.verification.base import VerdictAction
from bots.verification.checks import secrets
from bots.verification.checks.secrets import PLACEHOLDER, SecretsCheck, SecretsSettings
from config.verification import VerificationPolicy

ALNUM = "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xY"
SENDGRID = "SG." + ALNUM[:22] + "." + (ALNUM * 2)[:43]  # found by detect-secrets alone
GITHUB = "ghp_" + (ALNUM * 2)[:36]


@pytest.fixture(scope="module")
def check() -> SecretsCheck:
    return SecretsCheck()


def cleaned(check: SecretsCheck, text: str) -> str:
    result = check.evaluate(text)
    return text if result.action is VerdictAction.PASS else result.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a keyword then the value straight after: eight characters of three kinds at least
        ("login with password Abcdefg1", f"login with password {PLACEHOLDER}"),
        ("login with password Abcdef1", "login with password Abcdef1"),
        ("login with password Abcdefgh", "login with password Abcdefgh"),
        # a keyword, a colon or "is", then the value: six characters with letters and digits will do
        ("password: abc123", f"password: {PLACEHOLDER}"),
        ("the password is abc123 today", f"the password is {PLACEHOLDER} today"),
        ("password: abc12", "password: abc12"),
        ("password: 123456789", "password: 123456789"),
        ("password: abcdefgh", "password: abcdefgh"),
        # an address after a secret word is where the secret is kept, not the secret
        ("password reset page: https://id.example.com/reset2", "password reset page: https://id.example.com/reset2"),
        ("api_key docs: http://docs.example.com/keys2", "api_key docs: http://docs.example.com/keys2"),
        ("token file = /etc/app/token2.txt", "token file = /etc/app/token2.txt"),
    ],
)
def test_a_value_after_a_secret_word_counts_when_it_looks_like_one(check, text, expected):
    assert cleaned(check, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # hyphenated words are a name ("sk-learn-…"), whatever their case or the digits in them
        ("read sk-learn-compatibility-notes-for-the-2024-release first",) * 2,
        ("read sk-Learn-Compatibility-Notes-For-The-Team-Release first",) * 2,
        # short mixed groups are a key written with hyphens
        ("key sk-proj-Ab3d-Ef5g-Hj7k-Lm9n-Pq2r-St4v-Wx6y-Za1b here", f"key {PLACEHOLDER} here"),
    ],
)
def test_a_hyphenated_name_after_sk_is_no_key_but_a_hyphenated_key_is(check, text, expected):
    assert cleaned(check, text) == expected


def test_a_key_written_twice_and_at_the_very_start_goes_everywhere(check):
    text = f"{SENDGRID} is the mail key; once more: {SENDGRID}"
    assert cleaned(check, text) == f"{PLACEHOLDER} is the mail key; once more: {PLACEHOLDER}"


def test_a_placeholder_already_in_the_text_leaves_later_secrets_in_place(check):
    text = f"old one: {PLACEHOLDER}, new one: {GITHUB} ok"
    assert cleaned(check, text) == f"old one: {PLACEHOLDER}, new one: {PLACEHOLDER} ok"


@pytest.mark.parametrize("text", [f"My note said {PLACEHOLDER}: release42 ships Friday",
                                  f"Ana wrote {PLACEHOLDER} is build2024 now"])
def test_the_word_secret_in_a_placeholder_makes_no_secret_of_what_follows(check, text):
    """A message quoting an earlier redaction: the placeholder is no "secret: value"."""
    assert check.evaluate(text).action is VerdictAction.PASS


def test_a_rewrite_names_each_kind_once_and_is_certain(check):
    result = check.evaluate(f"{GITHUB} and {GITHUB[:-1]}Z and AKIA{'IOSFODNN7QZXWYT2'}")
    assert result.action is VerdictAction.REWRITE and result.score == 1.0
    assert result.reason == "secrets: AWS Access Key, GitHub token removed"


def test_a_private_key_is_named_in_the_reason(check):
    text = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
    assert check.evaluate(text).reason == "secrets: Private Key removed"


def test_a_block_names_the_kinds_and_is_certain():
    result = SecretsCheck(settings=SecretsSettings(action="block")).evaluate(f"here {GITHUB}")
    assert (result.action, result.score, result.text) == (VerdictAction.BLOCK, 1.0, None)
    assert result.reason == "secrets: GitHub token"


def test_the_channel_policy_chooses_the_action():
    blocking = SecretsCheck(VerificationPolicy.model_validate({"secrets": {"action": "block"}}))
    assert blocking.evaluate(f"token {GITHUB}").action is VerdictAction.BLOCK
    rewriting = SecretsCheck(settings=SecretsSettings(action="redact"))
    assert rewriting.evaluate(f"token {GITHUB} ok").text == f"token {PLACEHOLDER} ok"


def test_an_unknown_action_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"'rewrite' or 'block'"):
        SecretsSettings(action="shout")


def test_a_new_process_loads_every_detect_secrets_plugin(monkeypatch):
    """The plugins are made once per process; here they are made again, as at a start."""
    monkeypatch.setattr(secrets, "_shared", None)
    plugins = secrets.shared_plugins()
    assert len(plugins) == len(secrets.DETECT_SECRETS_PLUGINS)
    assert all(isinstance(kind, str) and hasattr(plugin, "analyze_string") for kind, plugin in plugins)
    assert secrets.shared_plugins() is plugins
    assert cleaned(SecretsCheck(), f"mail key {SENDGRID}") == f"mail key {PLACEHOLDER}"


@pytest.mark.parametrize(
    ("text", "posted", "kind"),
    [
        ("password: Tr0ub4dor&3", f"password: {PLACEHOLDER}", "Credential"),
        ("ssh in with password Winter#2025x", f"ssh in with password {PLACEHOLDER}", "Credential"),
        ("Authorization: Bearer abcdefghijklmnop1234567890", f"Authorization: Bearer {PLACEHOLDER}", "Bearer token"),
        ("https://api.example.com/v1?sig=abcdef1234567890&x=1", f"https://api.example.com/v1?sig={PLACEHOLDER}&x=1",
         "Secret URL parameter"),
        ("postgres://admin:Sup3rS3cret!@db.internal/prod", f"postgres://admin:{PLACEHOLDER}@db.internal/prod",
         "Password in URL"),
    ],
)
def test_each_rule_names_what_it_removed(check, text, posted, kind):
    result = check.evaluate(text)
    assert (result.text, result.reason) == (posted, f"secrets: {kind} removed")


def test_a_value_ending_in_capital_xs_is_removed_to_its_last_character(check):
    assert cleaned(check, "password: Tr0ub4dorXX.") == f"password: {PLACEHOLDER}."


def test_a_name_after_sk_does_not_hide_a_key_later_in_the_message(check):
    key = "sk-proj-" + (ALNUM * 2)[:48]
    text = f"read sk-learn-compatibility-notes-for-the-2024-release, then use {key}"
    assert cleaned(check, text) == f"read sk-learn-compatibility-notes-for-the-2024-release, then use {PLACEHOLDER}"


def test_a_detect_secrets_plugin_that_cannot_be_loaded_leaves_the_others_working(monkeypatch, caplog):
    """An installed detect-secrets without one of its plugins: that one is named in the log and skipped."""
    import_module = secrets.importlib.import_module

    def without_aws(name: str):
        if name == "detect_secrets.plugins.aws":
            raise ImportError("no module named detect_secrets.plugins.aws")
        return import_module(name)

    monkeypatch.setattr(secrets, "_shared", None)
    monkeypatch.setattr(secrets.importlib, "import_module", without_aws)
    check = SecretsCheck()
    loaded = secrets.shared_plugins()
    monkeypatch.undo()
    assert len(loaded) == len(secrets.DETECT_SECRETS_PLUGINS) - 1
    assert "detect-secrets plugin aws.AWSKeyDetector unavailable" in caplog.text
    assert cleaned(check, f"mail key {SENDGRID}") == f"mail key {PLACEHOLDER}"
