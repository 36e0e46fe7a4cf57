"""API keys, tokens, private keys and passwords in a persona's message.

Known token formats come from ``detect-secrets``' own plugins, run directly on the message (no
baseline, no files, no network verification). Formats it lacks (current OpenAI and Anthropic keys,
fine-grained GitHub tokens, Slack app tokens, Google API keys, Stripe test keys, current Discord bot
tokens, passwords in URLs with reserved characters, whole private key blocks) are our own patterns.
A known format is recognised by its shape alone, whatever its entropy: ``sk-proj-AAAA…`` in a post
is a key (a test key, a truncated one, a template about to be filled in) as much as a random one. Random-looking strings
count only where the words around them say they are secret ("password: …", "api_key=…",
"Authorization: Bearer …"): in chat, commit hashes, UUIDs and checksums are ordinary.

Wrapping a key in emphasis (``_ghp_…_``) hides nothing, and a found key is removed whole: to the end
of the token it starts (a JWT's signature, a long Stripe key's tail) and over the pieces it was
split into by spaces or line breaks, so no key material is left behind.

A found secret is replaced with ``[secret removed]`` and the message posted (``rewrite``), or the
message is blocked when the settings say so.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from bots.verification.base import Check, CheckResult, VerdictAction, VerificationContext
from bots.verification.gate import required_pieces
from bots.verification.text import caseless, unwrap_markup
from config.verification import SecretsSettings, VerificationPolicy

log = logging.getLogger(__name__)

#: (module in ``detect_secrets.plugins``, class): every format plugin that is precise on chat text.
#: Left out: public IP addresses (not a secret), high-entropy strings and keywords (meant for
#: source files; context rules below replace them) and Artifactory (its password shape matches
#: ordinary capitalised words).
DETECT_SECRETS_PLUGINS = (
    ("aws", "AWSKeyDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"),
    ("basic_auth", "BasicAuthDetector"),
    ("cloudant", "CloudantDetector"),
    ("discord", "DiscordBotTokenDetector"),
    ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"),
    ("ibm_cloud_iam", "IbmCloudIamDetector"),
    ("ibm_cos_hmac", "IbmCosHmacDetector"),
    ("jwt", "JwtTokenDetector"),
    ("mailchimp", "MailchimpDetector"),
    ("npm", "NpmDetector"),
    ("openai", "OpenAIDetector"),
    ("private_key", "PrivateKeyDetector"),
    ("pypi_token", "PypiTokenDetector"),
    ("sendgrid", "SendGridDetector"),
    ("slack", "SlackDetector"),
    ("softlayer", "SoftlayerDetector"),
    ("square_oauth", "SquareOAuthDetector"),
    ("stripe", "StripeDetector"),
    ("telegram_token", "TelegramBotTokenDetector"),
    ("twilio", "TwilioKeyDetector"),
)

#: Formats detect-secrets does not know (or knows only in an older shape).
EXTRA_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "OpenAI or Anthropic key",
        re.compile(r"(?<![\w-])sk-(?:proj-|svcacct-|admin-|ant-(?:[a-z]+\d\d-)?)?[A-Za-z0-9_-]{32,}"),
    ),
    ("GitHub token", re.compile(r"(?<!\w)(?:github_pat_[A-Za-z0-9_]{40,}|gh[pousr]_[A-Za-z0-9]{36,})")),
    (
        "Slack token",
        re.compile(r"(?<![\w-])(?:xox[abposre]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{20,}|xoxe\.xox[bp]-[A-Za-z0-9-]{20,})"),
    ),
    ("Google API key", re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}")),
    ("Stripe key", re.compile(r"(?<!\w)(?:sk|rk|pk)_(?:live|test)_[0-9a-zA-Z]{20,}")),
    # detect-secrets knows only the older, shorter shape (27 characters after the second dot).
    ("Discord bot token", re.compile(r"(?<![\w.-])[MNO][A-Za-z\d_-]{23,27}\.[A-Za-z\d_-]{6,7}\.[A-Za-z\d_-]{27,40}(?![\w-])")),
    ("Hugging Face token", re.compile(r"(?<!\w)hf_[A-Za-z0-9]{30,}")),
    ("GitLab token", re.compile(r"(?<![\w-])glpat-[A-Za-z0-9_-]{20,}")),
    ("npm token", re.compile(r"(?<!\w)npm_[A-Za-z0-9]{36}")),
    ("AWS Access Key", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)(?:[\s.-]{0,2}[0-9A-Z]){16}(?![A-Z0-9])")),
)

#: A private key from its header to its footer (or to the end of the message when cut off).
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
    r"|PuTTY-User-Key-File-\d.*?(?:Private-MAC: \S+|\Z)",
    re.DOTALL,
)

#: A password in a URL: ``scheme://user:password@host``, reserved characters allowed.
URL_PASSWORD = re.compile(r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]+:([^\s/@]+)@[^\s@]")

#: Words after which a value is a secret when it looks like one.
_KEYWORDS = (
    r"passwords?|passwd|pwd|(?:wi-?fi|db|admin|root|ssh|vpn|login|user) pass|passcode|passphrase|secret|"
    r"client[_ -]?secret|api[_ -]?keys?|apikey|"
    r"access[_ -]?keys?|secret[_ -]?keys?|private[_ -]?keys?|auth[_ -]?tokens?|access[_ -]?tokens?|"
    r"refresh[_ -]?tokens?|bearer[_ -]?tokens?|tokens?|credentials?|senha|contrase(?:ñ|n)a|clave|passwort|kennwort|"
    r"mot de passe|mdp|has(?:ł|l)o|wachtwoord"
)
KEYWORD_VALUE = re.compile(
    r"(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_-])*(?:" + _KEYWORDS + r")(?:[_-][A-Za-z0-9]+)*"
    r"(?:\s+[^\s:=]+){0,3}?\s*(?:[:=]+|=>|\s(?:is|was|es|é|e|ist|lautet|est|to|jest|is now|ist jetzt)\s)\s*"
    r"[\"'`]?([^\s\"'`<>]{6,})",
    re.IGNORECASE,
)
#: A keyword followed straight by its value ("login with password Winter#2025"): stricter test.
KEYWORD_DIRECT = re.compile(r"(?<![A-Za-z])(?:" + _KEYWORDS + r")\s+[\"'`]?([^\s\"'`<>]{8,})", re.IGNORECASE)
BEARER = re.compile(r"\b(?:Bearer|Token|Basic)\s+([A-Za-z0-9._~+/-]{20,}=*)")
URL_SECRET_PARAM = re.compile(
    r"[?&](?:access_token|token|api_key|apikey|key|secret|password|pwd|client_secret|auth|sig|signature)=([^&\s#]{8,})",
    re.IGNORECASE,
)

#: Our own formats, each with the strings one of which its keys contain.
_EXTRA_FORMATS = tuple((kind, pattern, required_pieces((pattern,))) for kind, pattern in EXTRA_FORMATS)

#: detect-secrets plugins whose every pattern captures a value of 24 or more characters of
#: ``_LONG_VALUE``'s class ("cloudant_password: " and 64 hex digits, say). They are its slowest
#: patterns (no literal start to look for), so a message without such a run skips them.
LONG_VALUE_PLUGINS = frozenset({"Cloudant Credentials", "IBM Cloud IAM Key", "IBM COS HMAC Credentials",
                                "SoftLayer Credentials"})
#: Case-insensitive as those patterns are, so it matches every character theirs match.
_LONG_VALUE = re.compile(r"[0-9a-z_-]{24}", re.IGNORECASE)

#: A piece of every secret word in ``_KEYWORDS``: a message with none of them gives the word rules
#: (``KEYWORD_VALUE``, ``KEYWORD_DIRECT``) nothing to find, and skips them.
KEYWORD_STEMS = ("pass", "pwd", "secret", "key", "token", "credential", "senha", "contrase", "clave", "kennwort",
                 "mdp", "hasło", "haslo", "wachtwoord")


def has_secret_word(text: str) -> bool:
    """Whether ``text`` has a piece of a secret word, in any case."""
    lowered = caseless(text)
    return any(stem in lowered for stem in KEYWORD_STEMS)


#: The start of a key of a known format, where a key broken by spaces is looked for.
KEY_PREFIX = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-|gh[pousr]_|github_pat_|xox[abposre]-|xapp-|AIza|[rsp]k_(?:live|test)_|hf_|glpat-|npm_|"
    r"eyJ|SG\.|sq0csp-|pypi-)"
)
#: Characters keys are written in (base64, base64url, hex, JWT dots).
_KEY_CHARS = re.compile(r"[A-Za-z0-9+/=_.-]*")
#: What a key does not end with: a sentence's full stop, emphasis, a dash.
_NOT_KEY_END = "._-"
#: More pieces than this are no key someone split, but text.
_MOST_PIECES = 8
#: The next piece of a key split by a space or line break.
_PIECE = re.compile(r"\s{1,3}([A-Za-z0-9+/=_.-]{4,})(?=\s|$|[,;:!?)\]}\"'*~|])")

PLACEHOLDER = "[secret removed]"
#: Placeholders, variables and templates written where a secret would go.
_NOT_SECRETS = re.compile(r"^(?:\*+|x+|\.+|<.*>|\{\{.*\}\}|\$\{?\w+\}?|%\w+%|\[.*\]|(?:your|my|the|our)[_-]\w+|"
                          r"none|null|"
                          r"redacted|hidden|changeme|example|placeholder|n/a)$", re.IGNORECASE)


#: Values found by the words around them ("password: …"): a value, not a key of a known shape.
_CONTEXT_KINDS = frozenset({"Credential", "Bearer token", "Secret URL parameter", "Password in URL"})


@dataclass(frozen=True)
class Secret:
    kind: str
    start: int
    end: int


class SecretsCheck(Check):
    """Replaces (or blocks) credentials before a message leaves the building."""

    name = "secrets"

    def __init__(self, policy: VerificationPolicy | None = None, settings: SecretsSettings | None = None) -> None:
        self.settings = settings or (policy.secrets if policy is not None else SecretsSettings())
        #: (secret type, plugin, the strings one of which any of its finds contains).
        self._plugins = [(kind, plugin, required_pieces(tuple(plugin.denylist))) for kind, plugin in shared_plugins()]
        self._short_value_plugins = [plugin for plugin in self._plugins if plugin[0] not in LONG_VALUE_PLUGINS]

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        return self.evaluate(text)

    def evaluate(self, text: str) -> CheckResult:
        found = self.find(text)
        if not found:
            return CheckResult(check=self.name)
        kinds = ", ".join({s.kind.lower(): s.kind for s in found}.values())
        if self.settings.action == "block":
            return CheckResult(check=self.name, action=VerdictAction.BLOCK, score=1.0, reason=f"secrets: {kinds}")
        return CheckResult(
            check=self.name,
            action=VerdictAction.REWRITE,
            score=1.0,
            reason=f"secrets: {kinds} removed",
            text=redact(text, found),
        )

    def find(self, text: str) -> list[Secret]:
        """Every secret in ``text``, as spans of the original text (overlaps merged later), each
        running to the end of its key and over the pieces a space or line break split it into."""
        if PLACEHOLDER in text:
            text = text.replace(PLACEHOLDER, " " * len(PLACEHOLDER))
        found = self._find_in(text) + self._split_keys(text)
        plain = unwrap_markup(text)
        if plain != text:
            # Emphasis hides nothing; but a key wrapped after its own underscore ("hf_⏎…") is no emphasis.
            found += self._find_in(plain) + self._split_keys(plain)
        return [_whole(text, secret) for secret in found]

    def _find_in(self, text: str) -> list[Secret]:
        found: list[Secret] = []
        for match in PRIVATE_KEY_BLOCK.finditer(text):
            found.append(Secret("Private Key", match.start(), match.end()))
        blocks = list(found)
        plugins = self._plugins if _LONG_VALUE.search(text) else self._short_value_plugins
        for secret_type, plugin, needs in plugins:
            if not any(piece in text for piece in needs):
                continue
            for value in set(plugin.analyze_string(text)):
                if not value:
                    continue
                for start, end in _occurrences(text, value):
                    if secret_type == "Private Key":
                        # Its values are headers only: a header outside the blocks above starts a key
                        # in a shape we do not know, so everything from it on goes.
                        if not any(b.start <= start < b.end for b in blocks):
                            found.append(Secret(secret_type, start, len(text)))
                        continue
                    found.append(Secret(secret_type, start, end))
        for kind, pattern, needs in _EXTRA_FORMATS:
            if not any(piece in text for piece in needs):
                continue
            for match in pattern.finditer(text):
                if kind == "OpenAI or Anthropic key" and _slug(match.group()[3:]):
                    continue
                found.append(Secret(kind, match.start(), match.end()))
        for match in URL_PASSWORD.finditer(text):
            found.append(Secret("Password in URL", match.start(1), match.end(1)))
        contexts = (
            *((("Credential", KEYWORD_VALUE, False), ("Credential", KEYWORD_DIRECT, True)) if has_secret_word(text) else ()),
            ("Bearer token", BEARER, False),
            ("Secret URL parameter", URL_SECRET_PARAM, False),
        )
        for kind, pattern, strict in contexts:
            for match in pattern.finditer(text):
                start, end = match.span(1)
                value = text[start:end].rstrip(".,;:)]}")
                if self._secret_like(value, strict=strict):
                    found.append(Secret(kind, start, start + len(value)))
        return found

    def _split_keys(self, text: str) -> list[Secret]:
        """Keys of a known format written in pieces ("ghp_A1b2C3 d4E5…"): the pieces joined are a key."""
        found: list[Secret] = []
        end = 0
        for anchor in KEY_PREFIX.finditer(text):
            if anchor.start() < end:
                continue  # inside the pieces of the key before
            end = _key_end(text, anchor.end())
            token_end = _KEY_CHARS.match(text, anchor.end()).end()
            if _next_piece(text, token_end) is not None:
                end = token_end  # wrapped after one of its own dashes or dots: "sk-proj-⏎AbC…"
            pieces = [text[anchor.start() : end]]
            while len(pieces) < _MOST_PIECES and (piece := _next_piece(text, end)) is not None:
                pieces.append(text[piece.start(1) : piece.end(1)])
                end = piece.end(1)
            if len(pieces) > 1 and self._find_in("".join(pieces)):
                found.append(Secret("Key split into pieces", anchor.start(), end))
        return found

    def _secret_like(self, value: str, *, strict: bool) -> bool:
        """Whether a value in a secret context looks like a credential rather than a word."""
        if _NOT_SECRETS.match(value) or value.startswith(("http://", "https://", "/")):
            return False
        classes = sum(
            (
                any(c.islower() for c in value),
                any(c.isupper() for c in value),
                any(c.isdigit() for c in value),
                any(not c.isalnum() for c in value),
            )
        )
        letters = any(c.isalpha() for c in value)
        digits = any(c.isdigit() for c in value)
        if len(value) >= 8 and classes >= 3:
            return True
        if strict:
            return False
        if len(value) >= 6 and letters and digits and classes >= 2 and not value.isdigit():
            return True
        return len(value) >= 16 and letters and digits and entropy(value) >= self.settings.entropy


#: A run this long without a hyphen or underscore is no word of a slug, whatever letters it has.
_KEY_RUN = re.compile(r"[A-Za-z0-9]{20}")


def _slug(body: str) -> bool:
    """Words joined by hyphens ("sk-learn-compatibility-notes"), not a key.

    A key is recognised by its shape, not its randomness: "sk-proj-AAAA…" is as much a key in a
    post as a real one (a test key, a truncated one, a placeholder someone will fill in), so only a
    body of short hyphenated words is let through.
    """
    mixed = any(c.isupper() for c in body) and any(c.islower() for c in body) and any(c.isdigit() for c in body)
    return not mixed and _KEY_RUN.search(body) is None


def _key_end(text: str, end: int) -> int:
    """Where the key ending at or after ``end`` really ends: the rest of its token, not a trailing full stop."""
    stop = _KEY_CHARS.match(text, end).end()
    while stop > end and text[stop - 1] in _NOT_KEY_END:
        stop -= 1
    return stop


def _random_piece(piece: str) -> bool:
    """Whether a piece reads as part of a key rather than a word: letters with digits, or mixed case."""
    letters = [c for c in piece if c.isalpha()]
    if not letters:
        return False
    digits = any(c.isdigit() for c in piece)
    mixed = any(c.isupper() for c in piece[1:]) and any(c.islower() for c in piece)
    return digits or mixed


def _next_piece(text: str, end: int) -> re.Match[str] | None:
    """The key's next piece after ``end``, if a space or line break and a random-looking piece follow."""
    piece = _PIECE.match(text, end)
    if piece is None or not _random_piece(piece.group(1)):
        return None
    return piece


def _whole(text: str, secret: Secret) -> Secret:
    """``secret`` widened to the end of its key, and over the pieces it continues in."""
    if secret.kind in _CONTEXT_KINDS:
        return secret
    end = _key_end(text, secret.end)
    while (piece := _next_piece(text, end)) is not None:
        end = _key_end(text, piece.end(1))
    return Secret(secret.kind, secret.start, max(end, secret.end))


def _occurrences(text: str, value: str) -> list[tuple[int, int]]:
    spans = []
    start = text.find(value)
    while start >= 0 and value:
        spans.append((start, start + len(value)))
        start = text.find(value, start + 1)
    return spans


def entropy(value: str) -> float:
    """Shannon entropy in bits a character."""
    counts: dict[str, int] = {}
    for char in value:
        counts[char] = counts.get(char, 0) + 1
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def redact(text: str, secrets: list[Secret], placeholder: str = PLACEHOLDER) -> str:
    """``text`` with every secret span (overlaps merged) replaced by ``placeholder``."""
    spans = sorted((s.start, s.end) for s in secrets if s.end > s.start)
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[str] = []
    last = 0
    for start, end in merged:
        out.append(text[last:start])
        out.append(placeholder)
        last = end
    out.append(text[last:])
    return "".join(out)


_shared: list[tuple[str, Any]] | None = None
_lock = threading.Lock()


def shared_plugins() -> list[tuple[str, Any]]:
    """detect-secrets' plugin instances, made once per process: (secret type, plugin)."""
    global _shared
    if _shared is None:
        with _lock:
            if _shared is None:
                plugins = []
                for module_name, class_name in DETECT_SECRETS_PLUGINS:
                    try:
                        module = importlib.import_module(f"detect_secrets.plugins.{module_name}")
                        plugin = getattr(module, class_name)()
                    except (ImportError, AttributeError) as error:
                        log.warning("detect-secrets plugin %s.%s unavailable: %s", module_name, class_name, error)
                        continue
                    plugins.append((plugin.secret_type, plugin))
                _shared = plugins
    return _shared
