"""Toxicity, profanity, harassment, threats and hate in a persona's message.

Word lists alone flag "Scunthorpe" and "kill the process"; classifiers alone miss "k1ll y0urs3lf",
every language but English, and score "damn, the build failed again" as offensive. So the message
is first normalised against obfuscation (``normalize.py``), then matched two ways:

* terms by token (``toxic_terms.py``: a maintained English list sorted into categories, plus our own
  terms in es/pt/de/fr/pl), so "assess" and "Scunthorpe" never match "ass" and "cunt";
* phrase patterns that need a target or a verb: threats, self-harm encouragement, insults aimed
  at someone, dehumanising statements about a group.

A statistical classifier (``profanity_model.py``, the optional ``alt-profanity-check`` package) can
be added with ``use_classifier``; it counts only for messages that address someone, and alone it
may hold a message but never block it.

Decision on the combined score: at least ``block_at`` blocks (threats, self-harm, hate, harassment),
at least ``hold_at`` holds for a moderator (sexual content, banter-like insults). Profanity aimed at
no one ("this fucking deploy") is masked and posted ("this f****** deploy"): the persona's point
survives and nothing offensive is shown; with ``mask_profanity=False`` it is held instead. Mild
words (damn, hell, crap, bloody, sucks, wtf) pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from bots.verification.base import Check, CheckResult, VerdictAction, VerificationContext
from bots.verification.checks import toxic_terms as terms
from bots.verification.checks.normalize import View, views
from bots.verification.gate import LiteralGate
from config.verification import ToxicitySettings, VerificationPolicy

_TOKEN = re.compile(r"[a-z]+")
#: Words whose shape and squashed phrases are remembered: people and personas repeat their words.
WORDS_REMEMBERED = 65_536
_MASKED = re.compile(r"(?<![a-z*#])[a-z]*[*#]+[a-z*#]*(?![a-z*#])")
_PLAIN = re.compile(r"[a-z' -]+")
#: Which phrase patterns can match a view at all, from one scan for the words they need.
_PATTERN_GATE = LiteralGate([pattern for _, pattern in terms.PATTERNS])
_ADDRESSED = re.compile(r"(?<![a-z])(?:you|your|yours|yourself|u|ur|ya|youre|you're|thou)(?![a-z])|<@|(?<!\w)@\w")


@dataclass(frozen=True)
class Finding:
    """One term or pattern found, with the span of the original text it covers."""

    category: str
    term: str
    #: Span in the original text.
    start: int
    end: int

    @property
    def score(self) -> float:
        return terms.CATEGORY_SCORES.get(self.category, 0.0)


@dataclass
class _Lexicon:
    """Every term by its normalised spelling, and how many tokens the longest one has."""

    entries: dict[str, str] = field(default_factory=dict)
    longest: int = 1
    #: The first tokens ("son", "son of", "son of a") of every term of several tokens.
    prefixes: set[str] = field(default_factory=set)

    def add(self, words: Iterable[str], category: str) -> None:
        for word in words:
            # Entries that do not read as plain words ("f*ck", "2 girls 1 cup", "s&m") would turn
            # into other keys ("f ck", "girls cup"); masked spellings are matched by shape instead.
            if not _PLAIN.fullmatch(views(word)[0].text):
                continue
            key = _key(word)
            if not key:
                continue
            self.entries[key] = category
            tokens = key.split(" ")
            self.longest = max(self.longest, len(tokens))
            self.prefixes.update(" ".join(tokens[:n]) for n in range(1, len(tokens)))

    def discard(self, words: Iterable[str]) -> None:
        for word in words:
            self.entries.pop(_key(word), None)


def _key(word: str) -> str:
    """A term as the tokens of its normalised view joined by spaces ("A$$" -> "ass")."""
    return " ".join(_TOKEN.findall(views(word)[0].text))


_base_lexicon: _Lexicon | None = None


def base_lexicon() -> _Lexicon:
    """Built once per process: the maintained list, sorted into categories, plus our own terms."""
    global _base_lexicon
    if _base_lexicon is None:
        lexicon = _Lexicon()
        lexicon.add(maintained_english_words(), "sexual")  # most of that list is sexual vocabulary
        lexicon.discard(terms.ALLOW)
        lexicon.add(terms.PROFANITY, "profanity")
        lexicon.add(terms.SEXUAL, "sexual")
        lexicon.add(terms.VIOLENCE, "violence")
        lexicon.add(terms.HATE_SYMBOLS, "hate-symbol")
        lexicon.add(terms.SLURS, "hate")
        lexicon.add(terms.AMBIGUOUS_SLURS, "harassment-mild")
        lexicon.add(terms.SEXUAL_MINORS, "sexual-minors")
        _base_lexicon = lexicon
    return _base_lexicon


def maintained_english_words() -> list[str]:
    """``glin-profanity``'s English list, shipped inside that package (nothing is downloaded)."""
    try:
        from glin_profanity.data.dictionary import dictionary
    except ImportError:  # the curated terms still apply
        return []
    return [w for w in dictionary.get_words("english") if isinstance(w, str)]


class ToxicityCheck(Check):
    """Flags toxic language; masks untargeted profanity, holds or blocks the rest by score."""

    name = "toxicity"

    def __init__(
        self,
        policy: VerificationPolicy | None = None,
        settings: ToxicitySettings | None = None,
        *,
        classifier: Callable[[str], float] | None = None,
    ) -> None:
        self.settings = settings or (policy.toxicity if policy is not None else ToxicitySettings())
        self._lexicon = self._build_lexicon()
        self._allow = frozenset(_key(w) for w in self.settings.allow_words)
        if classifier is None and self.settings.use_classifier:
            from bots.verification.checks.profanity_model import shared_model

            model = shared_model()
            classifier = model.probability if model is not None else None
        self._classifier = classifier

    def _build_lexicon(self) -> _Lexicon:
        base = base_lexicon()
        if not (self.settings.extra_words or self.settings.block_words or self.settings.allow_words):
            return base
        lexicon = _Lexicon(dict(base.entries), base.longest, set(base.prefixes))
        lexicon.add(self.settings.extra_words, "profanity")
        lexicon.add(self.settings.block_words, "hate")
        lexicon.discard(self.settings.allow_words)
        return lexicon

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        return self.evaluate(text)

    def evaluate(self, text: str) -> CheckResult:
        """The synchronous core of ``run``: fast enough to call inline (well under a millisecond)."""
        s = self.settings
        findings = self.findings(text)
        rule_score = max((f.score for f in findings), default=0.0)
        # The classifier alone may hold a message, never block it: it cannot tell "kill the pods"
        # from a threat.
        model_score = self._model_score(text)
        score = max(rule_score, min(model_score, s.block_at - 0.001))
        profane = [f for f in findings if f.category == "profanity"]
        if score >= s.block_at:
            action = VerdictAction.BLOCK
        elif score >= s.hold_at:
            action = VerdictAction.HOLD
        elif profane:
            action = VerdictAction.REWRITE if s.mask_profanity else VerdictAction.HOLD
        else:
            return CheckResult(check=self.name, action=VerdictAction.PASS, score=round(score, 3))
        return CheckResult(
            check=self.name,
            action=action,
            reason=_describe(findings, model_score, rule_score),
            score=round(score, 3),
            text=mask(text, profane) if action is VerdictAction.REWRITE else None,
        )

    def findings(self, text: str) -> list[Finding]:
        """Every term and pattern found in any normalised view of ``text``, once each."""
        found: dict[tuple[str, int, int], Finding] = {}
        for view in views(text):
            for finding in self._scan(view):
                if finding.term in self._allow:
                    continue
                found.setdefault((finding.category, finding.start, finding.end), finding)
        for symbol in terms.PROFANE_SYMBOLS:
            start = text.find(symbol)
            if start >= 0:
                end = start + len(symbol)
                found.setdefault(("profanity", start, end), Finding("profanity", symbol, start, end))
        return list(found.values())

    def _scan(self, view: View) -> Iterable[Finding]:
        text = view.text
        if view.glued:
            yield from _squashed(view)
            return
        entries = self._lexicon.entries
        prefixes = self._lexicon.prefixes
        tokens = list(_TOKEN.finditer(text))
        for i, token in enumerate(tokens):
            word = token.group()
            category = entries.get(word) or (word[-1] == "s" and entries.get(word[:-1])) or _by_shape(word)
            if category:
                yield Finding(category, word, *view.span(token.start(), token.end()))
            if len(word) >= 7:
                yield from _squashed(view, token)
            if word not in prefixes:
                continue
            phrase = word
            for j in range(i + 1, min(i + self._lexicon.longest, len(tokens))):
                gap = text[tokens[j - 1].end() : tokens[j].start()]
                if len(gap) > 2 or not gap.strip(" -'") == "":
                    break
                phrase = f"{phrase} {tokens[j].group()}"
                category = entries.get(phrase)
                if category:
                    yield Finding(category, phrase, *view.span(token.start(), tokens[j].end()))
                if phrase not in prefixes:
                    break
        for match in _MASKED.finditer(text):
            word = _unmask(match.group())
            if word:
                yield Finding(entries.get(word, "profanity"), word, *view.span(match.start(), match.end()))
        for index in _PATTERN_GATE.possible(text):
            category, pattern = terms.PATTERNS[index]
            for match in pattern.finditer(text):
                yield Finding(category, match.group(), *view.span(match.start(), match.end()))

    def _model_score(self, text: str) -> float:
        """The classifier's probability, counted only for messages aimed at someone."""
        if self._classifier is None or not _ADDRESSED.search(text.lower()):
            return 0.0
        return float(self._classifier(text))


def _squashed(view: View, token: re.Match[str] | None = None) -> Iterable[Finding]:
    """Letters-only phrases in one long token, or in every long token of a glued view."""
    for match in [token] if token is not None else _TOKEN.finditer(view.text):
        word = match.group()
        if len(word) < 7:
            continue
        for category in _squashed_categories(word):
            yield Finding(category, word, *view.span(match.start(), match.end()))


@lru_cache(maxsize=WORDS_REMEMBERED)
def _squashed_categories(word: str) -> tuple[str, ...]:
    """The categories of the letters-only phrases inside one long word (most words recur)."""
    return tuple(category for category, pattern in terms.SQUASHED if pattern.search(word))


@lru_cache(maxsize=WORDS_REMEMBERED)
def _by_shape(word: str) -> str | None:
    """Inflections and compounds of the strongest words: "fuckery", "shitstorm", "kurwami"."""
    if word in terms.PREFIX_EXCEPTIONS or word in terms.SLUR_EXCEPTIONS:
        return None
    if word.startswith(terms.SLUR_PREFIXES):
        return "hate"
    if any(infix in word for infix in terms.PROFANE_INFIX) or word.startswith(terms.PROFANE_PREFIXES):
        return "profanity"
    if word.endswith("shit") and len(word) > 4:
        return "profanity"
    return None


def _unmask(token: str) -> str | None:
    """The strong word a self-masked spelling stands for ("f*ck", "a**hole"), if any."""
    letters = sum(c.isalpha() for c in token)
    if letters < 1 or letters == len(token):
        return None
    pattern = re.compile("".join("." if c in "*#" else re.escape(c) for c in token))
    for word in terms.MASKABLE:
        if len(word) == len(token) and pattern.fullmatch(word):
            return word
    return None


def mask(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding's span shown as its first letter and asterisks."""
    spans = sorted((f.start, f.end) for f in findings if f.end > f.start)
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
        piece = text[start:end]
        out.append(piece[0] + "".join(c if c.isspace() else "*" for c in piece[1:]))
        last = end
    out.append(text[last:])
    return "".join(out)


def _describe(findings: list[Finding], model_score: float, rule_score: float) -> str:
    if not findings:
        return f"toxicity: the classifier rates this message {model_score:.2f} and it addresses someone"
    ordered = sorted(findings, key=lambda f: -f.score)
    categories = list(dict.fromkeys(f.category for f in ordered))
    shown = ", ".join(f"'{_shorten(f.term)}'" for f in ordered[:3])
    reason = f"toxicity: {', '.join(categories)} ({shown})"
    if model_score > rule_score:
        reason += f"; classifier {model_score:.2f}"
    return reason


def _shorten(term: str) -> str:
    return term if len(term) <= 40 else term[:37] + "..."
