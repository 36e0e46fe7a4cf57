"""Platform safety: a persona's post must not ping crowds, hide text, disguise links or flood.

Everything here is repaired rather than refused, so the post still goes out:

* mass and role mentions (``@everyone``, ``@here``, ``<@&id>``, ``<!channel>``, ``<!subteam^…>``)
  become ``@ everyone`` and the like, which read the same and ping nobody on Discord or Slack;
* raw user mentions (``<@123>``, ``<@U123>``) become ``@ someone`` unless the policy allows them;
* invisible and direction-changing characters are removed (they hide words from people and checks);
* link text that shows one address but opens another is replaced by the real address;
* a post far over the platform limit is cut at a sentence end (a post a little over is split by
  the adapter instead).
"""

from __future__ import annotations

import re

from bots.verification.base import Check, CheckResult, VerdictAction, VerificationContext
from bots.verification.text import strip_invisible
from bots.verification.urls import MARKDOWN_LINK_RE, SLACK_LINK_RE, find_links, host_of, hosts_related
from config.verification import VerificationPolicy

__all__ = ["PlatformCheck", "shorten"]

# Plain-text crowd mentions; a preceding word character, dot or @ means an e-mail address or handle.
_MASS_PLAIN = re.compile(r"(?<![\w.@])[@＠](everyone|here|channel)\b", re.IGNORECASE)
_SLACK_SPECIAL = re.compile(r"<!(everyone|channel|here)(?:\|[^>]*)?>", re.IGNORECASE)
_SLACK_GROUP = re.compile(r"<!subteam\^[A-Za-z0-9]+(?:\|@?([^>]*))?>")
_DISCORD_ROLE = re.compile(r"<@&\d+>")
_USER_MENTION = re.compile(r"<@!?\d+>|<@[UWB][A-Z0-9]{2,}(?:\|@?([^>]*))?>")
_SENTENCE_END = re.compile(r"[.!?…。！？](?=[\s\"')\]]|$)")
_SAFE_LABEL = re.compile(r"[^\w .'-]")


def _label(raw: str | None, fallback: str) -> str:
    text = _SAFE_LABEL.sub("", raw or "").strip()[:40]
    return f"@ {text}" if text else f"@ {fallback}"


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a sentence end (or word break), with an ellipsis."""
    if len(text) <= limit:
        return text
    room = max(limit - 1, 1)
    head = text[:room]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= room // 2:
        cut = head[: ends[-1]]
    elif text[room].isspace():
        cut = head
    else:
        space = head.rfind(" ")
        cut = head[:space] if space >= room // 2 else head
    return cut.rstrip() + "…"


class PlatformCheck(Check):
    """Neutralises pings, hidden characters and disguised links; shortens floods. Only ever rewrites."""

    name = "platform"

    def __init__(self, policy: VerificationPolicy) -> None:
        self.policy = policy

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        notes: list[str] = []
        out = strip_invisible(text)
        if out != text:
            notes.append("invisible or direction-changing characters removed")

        if "@" in out or "<" in out or "＠" in out:
            out, mass = self._mentions(out)
            if mass:
                notes.append("crowd or role mention neutralised")
            if not self.policy.allow_user_mentions:
                out, users = _USER_MENTION.subn(lambda m: _label(m.group(1), "someone"), out)
                if users:
                    notes.append("user mention neutralised")

        if "](" in out or "<" in out:
            out, disguised = _reveal_links(out)
            if disguised:
                notes.append("link text disguised a different address; the real address is shown")

        limit = int(context.max_length * self.policy.max_length_factor)
        if context.max_length > 0 and len(out) > limit:
            out = shorten(out, limit)
            notes.append(f"shortened to {limit} characters")

        if not notes:
            return CheckResult(check=self.name)
        return CheckResult(check=self.name, action=VerdictAction.REWRITE, reason="; ".join(notes), score=1.0, text=out)

    @staticmethod
    def _mentions(text: str) -> tuple[str, int]:
        count = 0
        text, n = _MASS_PLAIN.subn(lambda m: "@ " + m.group(1), text)
        count += n
        text, n = _SLACK_SPECIAL.subn(lambda m: "@ " + m.group(1).lower(), text)
        count += n
        text, n = _SLACK_GROUP.subn(lambda m: _label(m.group(1), "group"), text)
        count += n
        text, n = _DISCORD_ROLE.subn("@ role", text)
        count += n
        return text, count


def _shown_host(label: str) -> str | None:
    """The address a link's visible text claims to be, if it looks like one."""
    for link in find_links(label):
        return link.host
    return None


def _reveal_links(text: str) -> tuple[str, int]:
    count = 0

    def markdown(match: re.Match[str]) -> str:
        nonlocal count
        shown, url = _shown_host(match.group("text")), match.group("url")
        if shown and not hosts_related(shown, host_of(url)):
            count += 1
            return url
        return match.group(0)

    def slack(match: re.Match[str]) -> str:
        nonlocal count
        label = match.group("text")
        shown = _shown_host(label) if label else None
        if shown and not hosts_related(shown, host_of(match.group("url"))):
            count += 1
            return match.group("url")
        return match.group(0)

    if "](" in text:
        text = MARKDOWN_LINK_RE.sub(markdown, text)
    if "<" in text:
        text = SLACK_LINK_RE.sub(slack, text)
    return text, count
