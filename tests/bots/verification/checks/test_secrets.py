"""The secrets check: credentials are replaced, ordinary hashes and ids in chat are not."""

from __future__ import annotations

import base64
import json

import pytest

from bots.verification.base import VerdictAction, VerificationContext
from bots.verification.checks.secrets import (
    PLACEHOLDER,
    SecretsCheck,
    entropy,
    shared_plugins,
)
from config.verification import SecretsSettings, VerificationPolicy

# Fake credentials, assembled here so no complete token sits in the source.
ALNUM = "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xY"


def rand(n: int, alphabet: str = ALNUM) -> str:
    return (alphabet * (n // len(alphabet) + 1))[:n]


def jwt() -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return part({"alg": "HS256", "typ": "JWT"}) + "." + part({"sub": "svc-billing", "iat": 1716239022}) + "." + rand(43)


SECRETS = {
    "aws key id": ("Here's the key: {}", "AKIA" + "IOSFODNN7" + "QZXWYT2"),
    "aws key id split": ("use key {} for now", "AKIA" + "HTPQUI MMWVGIBXZ7"),
    "github classic": ("My token is {}, it has repo scope", "ghp_" + rand(36)),
    "github fine-grained": ("PAT: {}", "github_pat_" + rand(22) + "_" + rand(59)),
    "slack bot": ("Bot token is {}", "xoxb-" + "203999371615-7444821378291-" + "mjib6kfyl17q27iinqx9ntel"),
    "slack app": ("App-level token: {}", "xapp-1-" + "A0123BCDEF-1234567890123-" + rand(40).lower()),
    "slack webhook": ("Post alerts to {}", "https://hooks.slack.com/services/" + "T01ABCDEF/B02GHIJKL/" + rand(24)),
    "openai legacy": ("OpenAI key: {}", "sk-" + rand(20) + "T3Blbk" + "FJ" + rand(20)),
    "openai project": ("export OPENAI_API_KEY={}", "sk-" + "proj-" + rand(48) + "_x9"),
    "anthropic": ("key for the eval harness: {}", "sk-" + "ant-api03-" + rand(93) + "AA"),
    "stripe live": ("Stripe secret: {}", "sk_" + "live_" + rand(24)),
    "stripe test": ("test key {} for staging", "sk_" + "test_" + rand(24)),
    "google": ("Maps key is {}", "AIza" + rand(35)),
    "sendgrid": ("SENDGRID_API_KEY={}", "SG." + rand(22) + "." + rand(43)),
    "jwt": ("Authorization: Bearer {}", jwt()),
    "telegram": ("telegram bot {}", "123456789:" + rand(35)),
    "discord": ("discord bot token: {}", "M" + rand(23) + "." + rand(6) + "." + rand(27)),
    "npm": ("//registry.npmjs.org/:_authToken={}", "npm_" + rand(36)),
    "huggingface": ("HF token {}", "hf_" + rand(34)),
    "password is": ("The admin password is {} for now.", "Summer2024!"),
    "password colon": ("password: {}", "Tr0ub4dor&3"),
    "wifi pass": ("wifi pass is {}", "c0ff33-Br3ak#42"),
    "no separator": ("ssh in with password {}", "Winter#2025x"),
    "env assignment": ("DB_PASSWORD='{}'", "p@ssw0rd!"),
    "client secret": ("client_secret={}", "8f4Kq2LmZ9xW1vB7nR3tY6uP0sD5aE"),
    "hex api key": ("api key: {}", "4f9a1c2e7b3d8e6f0a5c9b1d2e3f4a5b"),
    "senha": ("A senha do servidor é {}", "Br@sil2024#"),
    "contraseña": ("La contraseña del admin es {}", "Madrid_2024$"),
    "passwort": ("Das Passwort lautet {}", "Herbst2024"),
    "mot de passe": ("mot de passe : {}", "Paris#2024x"),
    "hasło": ("hasło: {}", "Krakow!2024"),
    "query parameter": ("https://api.acme.io/v1/data?api_key={}", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
}


@pytest.fixture(scope="module")
def check() -> SecretsCheck:
    return SecretsCheck()


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_each_kind_of_secret_is_replaced(check, name):
    template, secret = SECRETS[name]
    result = check.evaluate(template.format(secret))
    assert result.action is VerdictAction.REWRITE, name
    assert result.text == template.format(PLACEHOLDER)
    assert result.reason.startswith("secrets: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Connect with postgres://admin:Sup3rS3cret!@db.internal:5432/prod", "admin:[secret removed]@db.internal"),
        ("mongodb+srv://app_user:Xk9#mP2vLq@cluster0.example.net/orders", "app_user:[secret removed]@cluster0"),
        ("https://jenkins:Tr0ub4dor3@ci.acme.io/job/release", "https://jenkins:[secret removed]@ci.acme.io"),
    ],
)
def test_only_the_password_of_a_url_is_removed(check, text, expected):
    result = check.evaluate(text)
    assert result.action is VerdictAction.REWRITE and expected in result.text


def test_a_private_key_block_is_removed_whole_even_when_cut_off(check):
    body = "\n".join(rand(64, ALNUM + "+/") for _ in range(3))
    whole = f"Deploy key:\n-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\nthanks"
    assert check.evaluate(whole).text == f"Deploy key:\n{PLACEHOLDER}\nthanks"
    cut = f"it starts with -----BEGIN RSA PRIVATE KEY----- {body[:64]}"
    assert check.evaluate(cut).text == f"it starts with {PLACEHOLDER}"


def test_a_private_key_in_an_unfamiliar_frame_is_removed_from_its_header_on(check):
    text = f"key:\n---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\n{rand(64)}\n---- END SSH2 ENCRYPTED PRIVATE KEY ----"
    assert check.evaluate(text).text == f"key:\n---- {PLACEHOLDER}"


def test_several_secrets_in_one_message_are_all_removed_and_a_rewrite_is_stable(check):
    text = f"aws {'AKIA' + 'IOSFODNN7QZXWYT2'} and github {'ghp_' + rand(36)} and password: Summer2024!"
    first = check.evaluate(text)
    assert first.text == f"aws {PLACEHOLDER} and github {PLACEHOLDER} and password: {PLACEHOLDER}"
    assert check.evaluate(first.text).action is VerdictAction.PASS


BENIGN = [
    "Fixed in commit 9fceb02d0ae598e95dc970b74767f19372d61af8, please pull.",
    "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "Request id 3f2b8c1e-7d4a-4b9e-9c61-0a5e2f7d8b13 if you want to grep the logs.",
    "Trace id 4bf92f3577b34da6a3ce929d0e0e4736 shows the slow span.",
    "Base64 of 'hello' is aGVsbG8=, that's why the header looked weird.",
    "The password is in 1Password under Staging DB.",
    "The password policy requires 12 characters and one symbol.",
    "Password resets go through the identity provider now.",
    "Token expiry is 15 minutes for access tokens.",
    "Token refresh-interval-configuration is in the wiki.",
    "Store the API key in the vault, never in the repo.",
    "Set TOKEN_TTL_SECONDS=900 and MAX_CONNECTIONS=200 in staging.",
    "Our secret to success is teamwork.",
    "Boarding pass: BA2490, seat 14C.",
    "sk-learn-compatibility-notes-for-the-ml-team are in the doc",
    "password: ********",
    "password = ${DB_PASSWORD}",
    "api_key: <your-api-key>",
    "The access token is valid for 3600 seconds.",
    "Das Passwort ist abgelaufen. A senha é a mesma de sempre.",
    "Version 3.14.2, build 20240511.3, invoice INV-20931 for 4,250.00 USD.",
    "See https://docs.example.com/search?q=token+rotation&page=2",
]


@pytest.mark.parametrize("text", BENIGN)
def test_hashes_ids_and_talk_about_secrets_pass(check, text):
    result = check.evaluate(text)
    assert result.action is VerdictAction.PASS, result.reason


def test_block_setting_blocks_instead_of_rewriting():
    check = SecretsCheck(settings=SecretsSettings(action="block"))
    result = check.evaluate("password: Tr0ub4dor&3")
    assert result.action is VerdictAction.BLOCK and result.text is None


def test_settings_come_from_the_verification_policy():
    policy = VerificationPolicy.model_validate({"secrets": {"action": "block", "entropy": 4.0}})
    assert SecretsCheck(policy).settings == SecretsSettings(action="block", entropy=4.0)
    assert SecretsCheck(policy).evaluate("password: Tr0ub4dor&3").action is VerdictAction.BLOCK
    assert SecretsCheck().settings == VerificationPolicy().secrets
    with pytest.raises(ValueError, match="rewrite"):
        SecretsCheck(settings=SecretsSettings(action="shout"))


def test_detect_secrets_plugins_are_used():
    types = {secret_type for secret_type, _ in shared_plugins()}
    expected = {"AWS Access Key", "Slack Token", "GitHub Token", "Private Key", "JSON Web Token"}
    expected.add("Basic Auth Credentials")
    assert expected <= types


def test_entropy_is_shannon_bits_per_character():
    assert entropy("aaaa") == 0
    assert entropy("abcd") == 2


async def test_run_is_the_async_entry_point(check):
    result = await check.run("password: Tr0ub4dor&3", VerificationContext())
    assert result.check == "secrets" and result.text == f"password: {PLACEHOLDER}"


# Known formats whose body is not random: a test key, a truncated one, a template being filled in.
LOW_ENTROPY_KEYS = {
    "openai legacy": "sk-" + "A" * 48,
    "openai project": "sk-" + "proj-" + "A" * 44,
    "openai project lower case": "sk-" + "proj-" + "a" * 48,
    "openai digits": "sk-" + "1234567890" * 4 + "abcd",
    "openai service account": "sk-" + "svcacct-" + "x" * 40,
    "anthropic without version": "sk-" + "ant-" + "A" * 44,
    "anthropic admin": "sk-" + "ant-admin01-" + "0" * 40,
    "discord current shape": "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ" + ".GAAAAA." + "A" * 38,
}
#: The same, for formats the old patterns already knew by shape: they must stay redacted.
LOW_ENTROPY_KNOWN = {
    "slack bot": "xoxb-" + "A" * 28,
    "slack user": "xoxp-" + "1111111111-1111111111-" + "a" * 12,
    "slack app": "xoxa-" + "0" * 24,
    "github classic": "ghp_" + "A" * 36,
    "github oauth": "gho_" + "A" * 36,
    "github server": "ghs_" + "0" * 36,
    "github fine-grained": "github_pat_" + "A" * 60,
    "aws": "AKIA" + "A" * 16,
    "aws session": "ASIA" + "0" * 16,
    "google": "AIza" + "A" * 35,
    "stripe secret": "sk_" + "live_" + "A" * 24,
    "stripe restricted": "rk_" + "live_" + "0" * 24,
    "stripe publishable": "pk_" + "live_" + "a" * 24,
    "discord legacy shape": "M" + "A" * 23 + "." + "A" * 6 + "." + "A" * 27,
}


#: Words that only start like a key: they stay.
KEY_LOOK_ALIKES = [
    "sk-learn-compatibility-notes-for-the-ml-team are in the doc",
    "see the sk-ant-onboarding-checklist-for-new-hires page",
    "xoxo, see you at the offsite",
    "ghp_ prefixes mark classic GitHub tokens; sk- marks OpenAI keys.",
    "The AKIA prefix means a long-term AWS key, ASIA a temporary one.",
]


def test_known_key_formats_are_removed_by_shape_whatever_their_entropy(check):
    for name, key in {**LOW_ENTROPY_KEYS, **LOW_ENTROPY_KNOWN}.items():
        for template in ("I'm all for the key {}.", "{}", "export KEY={} and run it"):
            result = check.evaluate(template.format(key))
            assert result.action is VerdictAction.REWRITE, (name, template)
            assert result.text == template.format(PLACEHOLDER), (name, result.text)
    for text in KEY_LOOK_ALIKES:
        assert check.evaluate(text).action is VerdictAction.PASS, text


async def test_the_reason_names_the_check_once():
    from bots.verification import verify_text

    verdict = await verify_text("I'm all for the key " + LOW_ENTROPY_KEYS["openai project"] + ".")
    assert verdict.decision == "rewrite"
    assert verdict.text == f"I'm all for the key {PLACEHOLDER}."
    assert verdict.reasons == ["secrets: OpenAI or Anthropic key removed"]
    toxic = await verify_text("password: Tr0ub4dor&3, you stupid idiot")
    assert all(not reason.startswith(("secrets: secrets:", "toxicity: toxicity:")) for reason in toxic.reasons)
    assert [reason.split(":")[0] for reason in toxic.reasons] == ["secrets", "toxicity"]
