"""Finding links in chat text and telling where they really go.

Used by the platform check (link text that shows one address and goes to another) and the link
check (only allowed domains). A bare domain counts as a link only with a well-known top-level
domain, so file names (``main.py``, ``README.md``, ``report.zip``) and ``Node.js`` are not links.
A defanged link (``hxxps://``, ``evil[.]com``, ``evil(dot)com``) is a link to where it points.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = [
    "DEFANGED_RE",
    "Link",
    "MARKDOWN_LINK_RE",
    "SLACK_LINK_RE",
    "find_links",
    "host_allowed",
    "host_of",
    "hosts_related",
    "refang",
]

# Generic and country domains people link to; file extensions that are also country domains
# (.py .md .sh .rs .pl .cc .so .ps .zip .mov) are left out and only count with a scheme or www.
_TLDS = (
    "com net org edu gov mil int info biz name pro io ai app dev co me us uk de fr es it nl be ch at se no dk fi "
    "pt ie pl ru ua cn jp kr in au nz ca br mx ar cl za ng ke eg tr gr cz sk hu ro bg hr rs si lt lv ee is lu "
    "eu asia xyz top site online store shop tech cloud blog news link click live life world space today "
    "website page wiki club biz tv gg ly to fm sh ws cc vc ws la tk ml ga cf gq cm su ir kp vn th my sg hk tw "
    "id ph pk bd lk np il sa ae qa kw example test invalid local localhost onion"
)
_BARE_TLDS = sorted(
    {t for t in _TLDS.split() if t not in {"sh", "cc", "so", "ws", "rs", "pl", "ps", "py", "md"}}, key=len, reverse=True
)
_TLD_ALT = "|".join(_BARE_TLDS)

_TRAILING = ".,;:!?'\"*_~"

SCHEME_RE = re.compile(r"(?i)\b(?:https?|ftp)://[^\s<>\"'`|]+")
WWW_RE = re.compile(r"(?i)(?<![\w@./:-])www\.[^\s<>\"'`|]+")
BARE_RE = re.compile(
    rf"(?<![\w@./:+-])(?:xn--[\w-]+\.|[^\W_](?:[\w-]{{0,62}}[^\W_])?\.)+(?:{_TLD_ALT}|xn--[a-z0-9-]+|рф|рус|укр)"
    rf"(?::\d{{1,5}})?(?:/[^\s<>\"'`|]*)?(?![\w-]|\.[^\W_])",
    re.IGNORECASE,
)
#: A dot written so that the link does not work: ``[.]``, ``(.)``, ``{.}``, ``[dot]``, ``(dot)``.
_DEFANGED_DOT = r"\s?[\[({]\s?(?:\.|dot)\s?[\])}]\s?"
#: Links written so that they do not work ("defanged") still send a reader somewhere once retyped:
#: ``hxxps://evil[.]example/x``, ``evil(dot)com``, ``www dot evil dot ru``.
DEFANGED_RE = re.compile(
    rf"(?<![\w@./:+-])(?:h(?:xx|XX|\*\*|tt)ps?(?:\[:\]|\[://\]|:)//|h(?:xx|XX)ps?\[?:?\]?//)?"
    rf"(?:[^\W_](?:[\w-]{{0,62}}[^\W_])?(?:\.|{_DEFANGED_DOT}|\s+dot\s+))+(?:{_TLD_ALT})"
    rf"(?::\d{{1,5}})?(?:/[^\s<>\"'`|]*)?(?![\w-])",
    re.IGNORECASE,
)
_DEFANG_MARK = re.compile(rf"^h(?:xx|\*\*)ps?|\[:\]|\[://\]|{_DEFANGED_DOT}|\s+dot\s+", re.IGNORECASE)
_SPELLED_DOT = re.compile(r"\s+dot\s+", re.IGNORECASE)


def refang(url: str) -> str:
    """A defanged link as it would be typed into a browser (``hxxps://a[.]b`` -> ``https://a.b``)."""
    url = re.sub(r"^h(?:xx|XX|\*\*)(ps?)", r"ht\g<1>", url)
    url = re.sub(r"^(https?)\[?:?\]?//|^(https?)\[://\]", lambda m: (m.group(1) or m.group(2)) + "://", url)
    url = re.sub(_DEFANGED_DOT, ".", url, flags=re.IGNORECASE)
    return _SPELLED_DOT.sub(".", url)


def _defanged(url: str) -> bool:
    """Whether a match is really written defanged; "dot" spelled out counts only as "www dot …"
    or with two of them, so "the dot com era" stays prose."""
    if not _DEFANG_MARK.search(url):
        return False
    marks = _DEFANG_MARK.findall(url)
    spelled = [m for m in marks if _SPELLED_DOT.fullmatch(m)]
    if spelled and len(spelled) == len(marks):
        return len(spelled) >= 2 or url.lower().startswith("www")
    return True


#: ``[text](url)``, ``[text](<url>)`` and ``[text](url "title")``.
MARKDOWN_LINK_RE = re.compile(r"\[(?P<text>[^\]\n]{1,500})\]\(\s*<?(?P<url>[^()\s<>]+(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+\"[^\"]*\")?\s*\)")
#: Slack's ``<url|text>`` and bare ``<url>``.
SLACK_LINK_RE = re.compile(r"<(?P<url>(?:https?|ftp|mailto):[^|>\s]+)(?:\|(?P<text>[^>]*))?>", re.IGNORECASE)


@dataclass(frozen=True)
class Link:
    start: int
    end: int
    url: str
    host: str


def _trim(url: str) -> str:
    while url and url[-1] in _TRAILING:
        url = url[:-1]
    while url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1]
    return url


def host_of(url: str) -> str:
    """The host a browser would open: no scheme, user info, port or path; lower case."""
    rest = re.sub(r"^(?:[a-z][a-z0-9+.-]*://|mailto:)", "", url.strip(), flags=re.IGNORECASE)
    authority = re.split(r"[/?#\\]", rest, maxsplit=1)[0]
    authority = unquote(authority).rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    host = authority.split(":", 1)[0]
    return host.lower().rstrip(".")


def find_links(text: str) -> Iterator[Link]:
    """Every link in ``text``: with a scheme, starting ``www.``, or a bare domain, in order."""
    taken: list[tuple[int, int]] = []
    found: list[Link] = []
    for pattern in (DEFANGED_RE, SCHEME_RE, WWW_RE, BARE_RE):
        for match in pattern.finditer(text):
            start = match.start()
            url = _trim(match.group(0))
            end = start + len(url)
            if not url or any(start < e and s < end for s, e in taken):
                continue
            if pattern is BARE_RE and _looks_like_a_word(url):
                continue
            if pattern is DEFANGED_RE and not _defanged(url):
                continue
            host = host_of(refang(url) if pattern is DEFANGED_RE else url)
            if not host:
                continue
            taken.append((start, end))
            found.append(Link(start, end, url, host))
    yield from sorted(found, key=lambda link: link.start)


def _looks_like_a_word(token: str) -> bool:
    """``ASP.NET`` or ``VB.NET`` written in capitals without a path is a product name, not a link."""
    return "/" not in token and not any(c.islower() for c in token)


def _ascii_host(host: str) -> bool:
    return host.isascii() and not any(label.startswith("xn--") for label in host.split("."))


def host_allowed(host: str, allowed: list[str] | tuple[str, ...]) -> bool:
    """Whether ``host`` is an allowed domain or below one; look-alike (non-ASCII, punycode) hosts never are."""
    host = host.lower().rstrip(".")
    if not host or not _ascii_host(host):
        return False
    return any(host == domain or host.endswith("." + domain) for domain in allowed)


def hosts_related(shown: str, real: str) -> bool:
    """Whether two hosts are the same site (one equal to, or below, the other)."""
    shown, real = shown.lower().removeprefix("www."), real.lower().removeprefix("www.")
    return shown == real or shown.endswith("." + real) or real.endswith("." + shown)
