"""Finding links in chat text and telling where they really go.

Used by the platform check (link text that shows one address and goes to another) and the link
check (only allowed domains). A link is anything with a scheme (``https://``, also glued to the
word before it), anything starting ``www.``, or a bare domain: a name ending in a top-level domain
of the public suffix list (``publicsuffixlist``, shipped with its list, nothing fetched).

A bare name is judged by how it reads, since many top-level domains are also file extensions,
words or attribute names. Well-known domains (``.com``, ``.io``, ``.de``…) and any name followed
by a path count; otherwise a name is no link when it reads as a file (``main.py``, ``README.md``,
``file.zip`` or ``demo.mov`` next to a word about files), as code (``self.name``,
``button.click()``, ``userData.email``, ``from bots.storage import``, a name in a code span) or as
a missing space between sentences (``end.So``, ``done.It``, ``ok.now``). A defanged link
(``hxxps://``, ``evil[.]com``, ``evil(dot)com``) is a link to where it points. Emphasis
underscores (``_evil.lol/login_``) hide nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote

from publicsuffixlist import PublicSuffixList

from bots.verification.text import unwrap_markup

__all__ = [
    "DEFANGED_RE",
    "Link",
    "MARKDOWN_LINK_RE",
    "SLACK_LINK_RE",
    "find_links",
    "host_allowed",
    "host_of",
    "hosts_related",
    "is_top_level_domain",
    "refang",
]

# Generic and country domains people link to: a name on one of these is a link as soon as it is
# written. File extensions that are also country domains (.py .md .sh .rs .pl .cc .so .ps .zip
# .mov) are left out, as are the reserved names, which the public suffix list does not hold.
_TLDS = (
    "com net org edu gov mil int info biz name pro io ai app dev co me us uk de fr es it nl be ch at se no dk fi "
    "pt ie pl ru ua cn jp kr in au nz ca br mx ar cl za ng ke eg tr gr cz sk hu ro bg hr rs si lt lv ee is lu "
    "eu asia xyz top site online store shop tech cloud blog news link click live life world space today "
    "website page wiki club biz tv gg ly to fm sh ws cc vc ws la tk ml ga cf gq cm su ir kp vn th my sg hk tw "
    "id ph pk bd lk np il sa ae qa kw example test invalid local localhost onion"
)
_RESERVED = frozenset({"example", "test", "invalid", "local", "localhost", "onion"})
_BARE_TLDS = sorted(
    {t for t in _TLDS.split() if t not in {"sh", "cc", "so", "ws", "rs", "pl", "ps", "py", "md"}}, key=len, reverse=True
)
_WELL_KNOWN = frozenset(_BARE_TLDS) | {"рф", "рус", "укр"}
_TLD_ALT = "|".join(_BARE_TLDS)
#: Top-level domains that are also the extensions of source, script and document files: a name on
#: one of them is a link only with a path after it ("evil.sh/x", not "deploy.sh").
_FILE_EXTENSIONS = frozenset("py md sh rs pl ps so cc tf pm mk ml mm mo am ac as sv do gd java pub ws".split())
#: Top-level domains made from file extensions, and used for phishing because people read them as
#: files: a link unless the words around say it is a file ("unzip file.zip", "demo.mov attached").
_FILE_LIKE = frozenset({"zip", "mov"})
_FILE_WORDS = re.compile(
    r"(?i)\b(?:attach(?:ed|ment|ments|ing)?|unzip(?:ped)?|extract(?:ed)?|upload(?:ed|ing)?|saved?|renamed?|"
    r"files?|folders?|archives?|drive|dropbox|sharepoint|zipped|compressed|recordings?|[kmg]b)\b"
)
#: Words that start a sentence: "end.so what", "done.It works" lack a space, not a domain.
_SENTENCE_WORDS = frozenset(
    "so now new one how you here like by do am as it is in to me my no us be at we go lol wow fyi ooo".split()
)
#: Names code gives the object before a dot ("self.name", "plt.show", "user.email", "window.open").
_CODE_OBJECTS = frozenset(
    "self this cls obj req res ctx evt err args kwargs opts params props df np pd plt os sys json window "
    "document process module exports msg user item row node event config settings request response message "
    "app client bot model result error".split()
)

_TRAILING = ".,;:!?'\"*_~"

#: A scheme counts wherever it starts: "9https://…" and "_https://…" are links too.
SCHEME_RE = re.compile(r"(?i)(?:https?|ftp)://[^\s<>\"'`|]+")
WWW_RE = re.compile(r"(?i)(?<![^\W\d]|[@./:-])www\.[^\s<>\"'`|]+")
#: A name with a dot and a last label of letters; ``_bare_is_link`` decides whether it is a domain.
BARE_RE = re.compile(
    r"(?<![\w@./:+-])(?P<host>(?:xn--[\w-]+\.|[^\W_](?:[\w-]{0,62}[^\W_])?\.)+(?P<tld>xn--[a-z0-9-]+|[^\W\d_]{2,63}))"
    r"(?P<rest>(?::\d{1,5})?(?:/[^\s<>\"'`|]*)?)(?![\w-]|\.[^\W_])",
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
    # Matched without emphasis underscores; the same length, so spans and URLs come from ``text``.
    plain = unwrap_markup(text)
    for pattern in (DEFANGED_RE, SCHEME_RE, WWW_RE, BARE_RE):
        for match in pattern.finditer(plain):
            start = match.start()
            url = _trim(text[start : match.end()])
            end = start + len(url)
            if not url or any(start < e and s < end for s, e in taken):
                continue
            if pattern is BARE_RE and not _bare_is_link(plain, match, url):
                continue
            if pattern is DEFANGED_RE and not _defanged(url):
                continue
            host = host_of(refang(url) if pattern is DEFANGED_RE else url)
            if not host:
                continue
            taken.append((start, end))
            found.append(Link(start, end, url, host))
    yield from sorted(found, key=lambda link: link.start)


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList(accept_unknown=False, only_icann=True)


def is_top_level_domain(label: str) -> bool:
    """Whether ``label`` is a top-level domain (``lol``, ``bank``, ``рф``) or a reserved name (``example``)."""
    label = label.lower()
    return label in _WELL_KNOWN or label in _RESERVED or _suffixes().is_public(label)


def _bare_is_link(text: str, match: re.Match[str], url: str) -> bool:
    """Whether a bare ``name.tld`` is a domain rather than a file name, code or two sentences."""
    host, tld = match.group("host"), match.group("tld")
    labels = host.split(".")
    lower_tld = tld.lower()
    if not is_top_level_domain(lower_tld):
        return False
    if len(url) > len(host):
        return True  # a path or port: "evil.lol/login", "evil.sh/x"
    if not any(c.islower() for c in host):
        return False  # "ASP.NET", "VB.NET": product names written in capitals
    if _reads_as_code(text, match.start(), match.start() + len(host), labels):
        return False
    if lower_tld in _SENTENCE_WORDS and len(labels) == 2 and (tld.istitle() or lower_tld not in _WELL_KNOWN):
        return False  # "done.It works", "end.so what"
    if lower_tld in _WELL_KNOWN:
        return True
    if lower_tld in _FILE_EXTENSIONS or not tld.islower() or "_" in host:
        return False  # "deploy.sh", "end.So", "my_notes.zip"
    if any(re.search(r"[a-z][A-Z]", label) for label in labels) or _in_code(text, match.start()):
        return False  # "userData.email", "`collections.abc`"
    if lower_tld in _FILE_LIKE:
        around = text[max(0, match.start() - 40) : match.start() + len(host) + 40]
        return not _FILE_WORDS.search(around.replace(host, " ".join(labels[:-1])))
    return True


def _reads_as_code(text: str, start: int, end: int, labels: list[str]) -> bool:
    """``self.name``, ``plt.show``, ``button.click()``, ``obj.text = …``, ``from bots.storage import``:
    attribute access or a module, not a domain."""
    if len(labels) == 2 and labels[0].lower() in _CODE_OBJECTS:
        return True
    after = text[end : end + 3]
    if after.startswith(("(", "[")) or after.lstrip(" ").startswith("="):
        return True
    before = text[max(0, start - 7) : start]
    return before.endswith("import ") or (before.endswith("from ") and text.startswith(" import ", end))


_CODE_SPAN = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.DOTALL)


def _in_code(text: str, position: int) -> bool:
    """Whether ``position`` is inside inline code or a code block, where names are code, not links."""
    if "`" not in text:
        return False
    return any(span.start() < position < span.end() for span in _CODE_SPAN.finditer(text))


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
