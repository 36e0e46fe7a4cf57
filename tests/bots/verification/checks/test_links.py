"""Links: allowed domains (and their subdomains) pass; everything else is stripped or held."""

from __future__ import annotations

import pytest

from bots.verification.base import VerificationContext
from bots.verification.checks.links import LinksCheck
from bots.verification.urls import find_links, host_allowed, host_of
from config.verification import TEAM_DEFAULT

CTX = VerificationContext()
ALLOWING = LinksCheck(TEAM_DEFAULT.merged({"allowed_link_domains": ["github.com", "example.org"]}))
DEFAULT = LinksCheck(TEAM_DEFAULT)


async def run(text: str, check: LinksCheck = ALLOWING) -> tuple[str, str | None]:
    result = await check.run(text, CTX)
    return result.action.value, result.text


@pytest.mark.parametrize(
    "text",
    [
        "see https://github.com/org/repo/pull/12.",
        "docs at docs.github.com/en/actions",
        "Check example.org.",
        "sub.example.org/x?y=1#z",
        "[the PR](https://github.com/org/repo/pull/12)",
        "<https://github.com/org|our repo>",
        "HTTPS://GITHUB.COM/org",
        "https://github.com:443/org",
    ],
)
async def test_allowed_domains_and_subdomains_pass(text: str) -> None:
    assert await run(text) == ("pass", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("go to evil.example/x now", "go to [link removed] now"),
        ("try http://evil.com, ok?", "try [link removed], ok?"),
        ("www.phish.net/login", "[link removed]"),
        ("EVIL.COM/path", "[link removed]"),
        ("see bit.ly/3xYz for the deck", "see [link removed] for the deck"),
        ("http://github.com@evil.com/x", "[link removed]"),
        ("https://github.com.evil.com/x", "[link removed]"),
        ("https://notgithub.com/x", "[link removed]"),
        ("http://evil.com\\@github.com", "[link removed]"),
        ("http://127.0.0.1:8000/admin", "[link removed]"),
        ("ftp://files.evil.example/dump.zip", "[link removed]"),
        ("[the docs](https://evil.com/a)", "the docs [link removed]"),
        ("<https://evil.com|click here>", "click here [link removed]"),
        ("<https://evil.com>", "[link removed]"),
        ("(see https://en.wikipedia.org/wiki/Foo_(bar))", "(see [link removed])"),
        ("both github.com/a and evil.example/b", "both github.com/a and [link removed]"),
    ],
)
async def test_other_links_are_stripped(text: str, expected: str) -> None:
    assert await run(text) == ("rewrite", expected)


@pytest.mark.parametrize(
    "text",
    [
        "gіthub.com/login",  # Cyrillic і
        "https://gіthub.com/login",
        "https://xn--gthub-n4a.com",
        "https://еxample.org/page",  # Cyrillic е
        "https://ｇｉｔｈｕｂ.com/x",  # fullwidth
        "https://github.com%2eevil.example/x",
    ],
)
async def test_look_alike_and_encoded_hosts_are_never_allowed(text: str) -> None:
    action, out = await run(text)
    assert action == "rewrite"
    assert out is not None and "[link removed]" in out


async def test_the_reason_names_the_hosts() -> None:
    result = await ALLOWING.run("a https://evil.com/x b gіthub.com/y c https://evil.com/z", CTX)
    assert result.reason == (
        "links to domains not allowed here: evil.com, gіthub.com (look-alike or encoded letters) (removed)"
    )


async def test_by_default_every_link_is_stripped() -> None:
    assert await run("https://github.com/org and docs.python.org/3/", DEFAULT) == ("rewrite", "[link removed] and [link removed]")


async def test_hold_policy_holds_without_changing_the_text() -> None:
    check = LinksCheck(TEAM_DEFAULT.merged({"link_action": "hold"}))
    result = await check.run("see https://evil.com", CTX)
    assert result.action.value == "hold"
    assert result.text is None
    assert "evil.com" in result.reason


@pytest.mark.parametrize(
    "text",
    [
        "Use Node.js and ASP.NET, edit main.py and README.md, e.g. config.yaml; i.e. fine",
        "We raised 3.5M. Next step is hiring.",
        "Email bob@evil.com about it",
        "report.zip and notes.md are attached",
        "version 1.2.3 of the lib, deployed at 10:30",
        "edit settings.dev.yaml and app.config.json",
        "Mr.Smith said so.Then he left",
        "the [link removed] placeholder and [email removed] stay",
        "Q3 numbers are in the deck.",
        "",
    ],
)
async def test_text_without_links_passes(text: str) -> None:
    assert await run(text, DEFAULT) == ("pass", None)


def test_host_parsing() -> None:
    assert host_of("https://user:pw@Docs.GitHub.com:8443/x?y#z") == "docs.github.com"
    assert host_of("evil.example/x") == "evil.example"
    assert host_of("evil.example:8080/x") == "evil.example"
    assert host_of("http://github.com\\@evil.com") == "github.com"
    assert host_allowed("docs.github.com", ["github.com"])
    assert not host_allowed("github.com.evil.com", ["github.com"])
    assert not host_allowed("xn--gthub-n4a.com", ["xn--gthub-n4a.com"])
    assert [link.url for link in find_links("a https://x.example/p). b www.y.example, c z.example")] == [
        "https://x.example/p",
        "www.y.example",
        "z.example",
    ]


def test_allowed_domains_are_normalised() -> None:
    policy = TEAM_DEFAULT.merged({"allowed_link_domains": ["https://GitHub.com/", "*.example.org", "docs.python.org."]})
    assert policy.allowed_link_domains == ["github.com", "example.org", "docs.python.org"]
    with pytest.raises(ValueError):
        TEAM_DEFAULT.merged({"allowed_link_domains": ["not a domain"]})


async def test_defanged_links_are_links_to_where_they_point() -> None:
    for text, expected in [
        ("hxxps://malware-drop[.]ru/payload", "[link removed]"),
        ("hxxp://evil.com/x now", "[link removed] now"),
        ("https[:]//evil[.]com", "[link removed]"),
        ("Grab the files at mega-leaks[.]xyz/acme", "Grab the files at [link removed]"),
        ("see example(dot)com for details", "see [link removed] for details"),
        ("evil[dot]com and evil{.}com", "[link removed] and [link removed]"),
        ("visit evil [.] com/login", "visit [link removed]"),
        ("Use this mirror: www dot crackedsoftware dot ru", "Use this mirror: [link removed]"),
        ("files at cdn dot leaks dot example/dump", "files at [link removed]"),
    ]:
        assert await run(text) == ("rewrite", expected), text
    result = await DEFAULT.run("hxxps://malware-drop[.]ru/payload", CTX)
    assert "malware-drop.ru" in result.reason
    # an allowed domain stays allowed however it is written
    assert await run("the repo is at github[.]com/org/repo") == ("pass", None)
    for text in ("the dot com era was wild", "polka dot com", "I'll dot the i's.", "a [.] b", "Mr.Smith said so.Then he left"):
        assert await run(text, DEFAULT) == ("pass", None), text
