"""What the links check reports and posts: each refused host once (flagged when it is encoded or
made of look-alike letters), a link's own words kept unless they are a link too, and certainty."""

from __future__ import annotations

import pytest

from bots.verification.base import VerdictAction, VerificationContext
from bots.verification.checks.links import LinksCheck
from config.verification import TEAM_DEFAULT

CTX = VerificationContext()
STRIP = LinksCheck(TEAM_DEFAULT.merged({"allowed_link_domains": ["github.com"]}))
HOLD = LinksCheck(TEAM_DEFAULT.merged({"allowed_link_domains": ["github.com"], "link_action": "hold"}))


@pytest.mark.parametrize(
    ("text", "posted", "hosts"),
    [
        ("see https://xn--pple-43d.com/login now", "see [link removed] now",
         "xn--pple-43d.com (look-alike or encoded letters)"),
        ("see https://g\u0456thub.com/x", "see [link removed]", "g\u0456thub.com (look-alike or encoded letters)"),
        ("[our repo](https://github.com/org/repo) and [https://evil.example](https://evil.example/x)",
         "[our repo](https://github.com/org/repo) and [link removed]", "evil.example"),
        ("[docs](https://evil.example/x) or <https://evil.example/y|https://evil.example/y>",
         "docs [link removed] or [link removed]", "evil.example"),
        ("<https://github.com/org|our repo> and https://a.example, https://b.example",
         "<https://github.com/org|our repo> and [link removed], [link removed]", "a.example, b.example"),
    ],
)
async def test_refused_links_are_removed_and_named_once(text, posted, hosts):
    stripped = await STRIP.run(text, CTX)
    assert (stripped.action, stripped.text, stripped.score) == (VerdictAction.REWRITE, posted, 1.0)
    assert stripped.reason == f"links to domains not allowed here: {hosts} (removed)"
    held = await HOLD.run(text, CTX)
    assert (held.action, held.text, held.score) == (VerdictAction.HOLD, None, 1.0)
    assert held.reason == f"links to domains not allowed here: {hosts}"
