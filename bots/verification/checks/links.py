"""Links: a persona may only point people at domains the channel allows.

Personas make up plausible links; a made-up link is at best broken and at worst someone's phishing
page. Links to allowed domains (and their subdomains) pass. Every other link is replaced by
``[link removed]`` (``link_action: strip``) or the post is held (``link_action: hold``). Hosts with
look-alike letters from other scripts, or in punycode, are never allowed, whatever they resemble.
"""

from __future__ import annotations

import re

from bots.verification.base import Check, CheckResult, VerdictAction, VerificationContext
from bots.verification.urls import (
    MARKDOWN_LINK_RE,
    SLACK_LINK_RE,
    find_links,
    host_allowed,
    host_of,
    is_top_level_domain,
)
from config.verification import VerificationPolicy

__all__ = ["REMOVED", "LinksCheck"]

REMOVED = "[link removed]"
_MAYBE_LINK = re.compile(r"\.[^\W\d_]|://|\[:\]|[\[({]\s?(?:\.|dot)\s?[\])}]|\sdot\s", re.IGNORECASE)


def _display(host: str) -> str:
    if host.isascii() and "xn--" not in host:
        return host
    return f"{host} (look-alike or encoded letters)"


class LinksCheck(Check):
    """Strips (``rewrite``) or holds links to domains outside ``policy.allowed_link_domains``."""

    name = "links"

    def __init__(self, policy: VerificationPolicy) -> None:
        self.policy = policy
        self.allowed = tuple(policy.allowed_link_domains)
        # The public suffix list is read on first use: tens of ms that would otherwise land on the
        # first post with a bare domain in it.
        is_top_level_domain("lol")

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        if not _MAYBE_LINK.search(text):
            return CheckResult(check=self.name)
        blocked: list[str] = []

        def refuse(host: str) -> None:
            shown = _display(host)
            if shown not in blocked:
                blocked.append(shown)

        def markup(match: re.Match[str]) -> str:
            host = host_of(match.group("url"))
            if host_allowed(host, self.allowed):
                return match.group(0)
            refuse(host)
            label = (match.group("text") or "").strip()
            if not label or any(True for _ in find_links(label)):
                return REMOVED
            return f"{label} {REMOVED}"

        out = text
        if "](" in out:
            out = MARKDOWN_LINK_RE.sub(markup, out)
        if "<" in out:
            out = SLACK_LINK_RE.sub(markup, out)

        parts: list[str] = []
        last = 0
        for link in find_links(out):
            if host_allowed(link.host, self.allowed):
                continue
            refuse(link.host)
            parts.append(out[last : link.start])
            parts.append(REMOVED)
            last = link.end
        parts.append(out[last:])
        out = "".join(parts)

        if not blocked:
            return CheckResult(check=self.name)
        reason = "links to domains not allowed here: " + ", ".join(blocked)
        if self.policy.link_action == "hold":
            return CheckResult(check=self.name, action=VerdictAction.HOLD, reason=reason, score=1.0)
        return CheckResult(check=self.name, action=VerdictAction.REWRITE, reason=reason + " (removed)", score=1.0, text=out)
