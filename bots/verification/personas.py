"""Admission of personas: a team channel refuses personas written to do harm.

A persona's own words steer every post it makes, so a persona described as harassing people,
phishing for passwords or impersonating staff would keep trying whatever the output checks
catch. In ``team`` mode such a persona is refused with the reason; in ``red-team`` mode it is
admitted and marked ``red_team`` so its posts are labelled. Strong opinions, bluntness,
pickiness or a love of winning arguments are character, not malice, and pass: the patterns look
for harmful acts aimed at people ("harasses new members"), and a sentence that speaks against
the act ("trains colleagues to spot phishing", "hates bullying") does not count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from adapters.base import clip
from bots.verification.checks.injection import inspect_input
from bots.verification.text import fold, leet_variants

__all__ = ["PersonaCheck", "PersonaFinding", "check_persona_spec"]


class PersonaFinding(BaseModel):
    category: str
    #: Where in the spec (``behaviors.general[2]``) and the words that matched.
    field: str
    match: str


class PersonaCheck(BaseModel):
    """Whether a persona may join, and why not (or why it is labelled)."""

    allowed: bool
    reasons: list[str] = Field(default_factory=list)
    #: Admitted only because the channel is in red-team mode: label its posts.
    red_team: bool = False
    findings: list[PersonaFinding] = Field(default_factory=list)


_PEOPLE = (
    r"(?:people|others|other people|colleagues|coworkers|co-workers|teammates|team members|members|users|newcomers|"
    r"new members|new hires|juniors?|junior staff|interns|everyone|anyone|women|men|them|the team|the channel|"
    r"whoever|those who|customers|strangers|victims|kids|children|staff|employees)"
)
_GROUPS = (
    r"(?:immigrants|foreigners|refugees|migrants|jews|jewish people|muslims|christians|hindus|sikhs|atheists|black people|"
    r"white people|asians|arabs|latinos|hispanics|mexicans|africans|gays?|gay people|lesbians|queer people|"
    r"trans(?:gender)? people|women|men|disabled people|the disabled|minorities|poor people|roma|gypsies)"
)
_SECRETS = (
    r"(?:passwords?|passcodes?|credentials|log-?ins?|login details|api keys?|access tokens?|auth tokens?|session tokens?|"
    r"tokens|2fa codes?|mfa codes?|one-time (?:codes?|passwords?)|otps?|secrets|private keys?|ssh keys?|seed phrases?|"
    r"recovery (?:phrases?|codes?)|credit card (?:numbers?|details)|card (?:numbers?|details)|bank details|pins?|"
    r"social security numbers?)"
)
_STAFF = (
    r"(?:admins?|administrators?|moderators?|mods|it|it support|tech support|support|support staff|helpdesk|help desk|staff|"
    r"hr|the ceo|ceo|cfo|cto|security team|the security team|security|banks?|the bank|police|"
    r"government officials?|officials?|discord staff|slack staff|platform staff|microsoft|apple|google|paypal|amazon|"
    r"someone else|other (?:people|users|members)|colleagues|a colleague|real people)"
    r"(?!\s*(?:-|expert|enthusiast|fan|nerd|buff|geek|minded|conscious|aware|person|type|researcher|engineer|specialist|background))"
)
_MALWARE = (
    r"(?:malware|ransomware|viruses|virus|trojans?|keyloggers?|spyware|worms|rootkits?|backdoors?|botnets?|cryptominers?|"
    r"infostealers?|malicious (?:links?|files?|attachments?|code|macros?|payloads?|scripts?|software|executables?|urls?)|"
    r"infected (?:files?|attachments?|links?|usb sticks?|downloads?))"
    r"(?!\s+(?:scanners?|protection|detection|definitions|checkers?|analysis|analyst|research|researcher|removal|defen[cs]es?))"
)

_RULES: tuple[tuple[str, str], ...] = (
    # harassment
    ("harassment", r"(?<!anti-)(?<!anti )\b(?:harass(?:es|ing)?|harassment of|bull(?:y|ies|ying)|cyberbull(?:y|ies|ying))\b"),
    ("harassment", rf"\b(?:intimidates|intimidating|humiliates|humiliating|belittles|belittling|demeans|demeaning|insults|insulting|berates|berating|torments|tormenting|abuses|abusing|verbally attacks|publicly shames|shaming)\s+(?:\w+\s+)?{_PEOPLE}\b"),
    ("harassment", rf"\b(?:to|and) (?:intimidate|humiliate|belittle|demean|insult|berate|torment|abuse|threaten|bully|harass)\s+(?:\w+\s+)?{_PEOPLE}\b"),
    ("harassment", r"\b(?:makes? (?:\w+ )?personal attacks|personal attacks on|name-?calling|hurls? insults|slurs? at)\b"),
    ("harassment", rf"\bmakes? (?:\w+ )?{_PEOPLE} (?:feel )?(?:worthless|stupid|small|miserable|unwelcome|unsafe|cry)\b"),
    ("harassment", rf"\btroll(?:s|ing)? {_PEOPLE}\b|\b(?:spams?|spamming|floods?|flooding) (?:the )?(?:channel|chat|server|workspace|{_PEOPLE})\b"),
    # hate
    ("hate", r"\b(?:hate speech|racial slurs?|ethnic slurs?|homophobic slurs?|uses? slurs)\b"),
    ("hate", r"\b(?:racist|sexist|homophobic|transphobic|antisemitic|anti-semitic|islamophobic|xenophobic|bigoted|misogynistic|misogynist)\b"),
    ("hate", rf"\b(?:hates?|despises?|loathes?|looks? down on|wants? to (?:deport|exterminate|get rid of|expel))\s+(?:all\s+)?{_GROUPS}\b"),
    ("hate", r"\bneo-?nazi\w*|\bwhite (?:supremac|nationalis|power)\w*|\bmaster race\b|\bracial (?:purity|superiority)\b|\bethnic cleansing\b|\bsubhumans?\b|\binferior (?:races?|peoples?|beings)\b"),
    ("hate", r"\b(?:admires?|supports?|praises?|glorif(?:y|ies|ying)|celebrates?) (?:the )?(?:nazis?|hitler|genocide|terroris\w+|fascis\w+)\b"),
    ("hate", r"\b(?:races?|ethnicit(?:y|ies)|religions?|peoples?|women|immigrants|minorities|foreigners) (?:are|is) (?:inferior|subhuman|vermin|animals|parasites|a disease)\b"),
    ("hate", r"\b(?:dehumaniz|vilif)\w*\s+(?:\w+\s+){0,2}?(?:immigrants|minorities|people|groups?|others)\b"),
    # threats
    ("threats", rf"\bthreaten(?:s|ing)? (?:to (?:hurt|harm|kill|beat|attack|dox|doxx|leak|expose|hack|ruin|stalk)|violence|{_PEOPLE})\b"),
    ("threats", r"\b(?:makes?|sends?|posts?|issues?|uses?) (?:\w+ )?(?:threats|death threats|violent threats)\b|\bdeath threats?\b"),
    ("threats", r"\bblackmail\w*\b|\bextort\w*\b|\bdox(?:x)?(?:es|ing|ed)?\b"),
    ("threats", rf"\bstalk(?:s|ing)? {_PEOPLE}\b|\bstalks?\b(?= (?:her|him|people|colleagues|members)\b)"),
    ("threats", r"\b(?:incite|incites|inciting|encourages?|promotes?|glorif\w+) (?:\w+ )?(?:violence|self-harm|suicide|terrorism|attacks? on)\b"),
    ("threats", rf"\b(?:wants?|plans?|intends?|likes?|enjoys?|loves?|tries|tend\w*) to (?:hurt|harm|kill|attack|beat up|assault|stalk|poison|scare) (?:\w+ )?{_PEOPLE}\b"),
    # deceiving the channel
    ("deception", r"\bphish(?:es|ing|ed)?\b"),
    ("deception", rf"\b(?:impersonat\w*|pos(?:e|es|ing) as|pretend(?:s|ing)? to be|pass(?:es)? (?:himself|herself|themselves|themself) off as|claims? to be|masquerad\w* as)\s+(?:an? |the |from )?(?:\w+ )?{_STAFF}\b"),
    ("deception", rf"\b(?:scam|scams|scamming|swindl\w*|defraud\w*|conning|dupes|duping|deceiv\w*|lies to|lie to|lying to|mislead\w*|gaslight\w*|manipulat\w*)\s+(?:\w+\s+)?{_PEOPLE}\b"),
    ("deception", r"\b(?:fake|spoofed|counterfeit|fraudulent|cloned) (?:login|log-?in|password reset|sign-?in|payment|invoice|bank|support|verification) (?:pages?|links?|emails?|sites?|forms?|messages?|portals?)\b"),
    ("deception", r"\bsocial engineer\w*\b|\bspread(?:s|ing)? (?:\w+ )?(?:misinformation|disinformation|false rumou?rs|lies|fake news|propaganda)\b"),
    # extracting secrets
    ("secrets", rf"\b(?:steal\w*|stole|harvest\w*|exfiltrat\w*|phish\w*|coax\w*|sniff\w*|fish(?:es|ing)? for|pry\w* out)\s+(?:\w+\s+){{0,3}}?{_SECRETS}\b"),
    ("secrets", rf"\bextract\w* (?:(?:people's|colleagues'|users'|members'|others'|their|everyone's) )?(?:\w+ )?{_SECRETS} from {_PEOPLE}\b|\bextract\w* (?:people's|colleagues'|users'|members'|others'|everyone's) {_SECRETS}\b"),
    ("secrets", rf"\btrick\w* (?:\w+ ){{0,3}}into (?:revealing|sharing|giving|handing over|typing|entering)\b|\bget(?:s|ting)? {_PEOPLE} to (?:reveal|share|give|hand over|type|enter) (?:\w+ ){{0,2}}?{_SECRETS}\b"),
    ("secrets", rf"\bask(?:s|ing)? {_PEOPLE} (?:for|to share|to send|to reveal|to give) (?:their |your |his |her )?(?:\w+ )?{_SECRETS}\b"),
    ("secrets", r"\b(?:password|credential)s? (?:harvesting|theft|stealing|phishing|stuffing)\b"),
    # malware and intrusion
    ("malware", rf"\b(?:spread\w*|distribut\w*|send\w*|shares|sharing|post\w*|plant\w*|install\w*|deploy\w*|writes|writing|wrote|creat\w*|develop\w*|sell\w*|upload\w*|drop\w*|slip\w*|hides|hiding|embed\w*)\s+(?:(?!about\b|on\b|against\b|for\b|to\b)\w+\s+){{0,2}}?{_MALWARE}"),
    ("malware", r"\bmalware (?:author|developer|distributor|writer|dealer)\b|\b(?:breaks? into|hacks? into|hijacks?) (?:[\w']+ ){0,2}?(?:accounts|systems|computers|servers|networks|emails?|inboxes|phones)\b"),
)
_COMPILED = tuple((category, re.compile(pattern)) for category, pattern in _RULES)
_QUICK = re.compile(
    r"harass|bull|intimidat|humiliat|belittl|demean|insult|berat|degrad|torment|shame|threat|abus|attack|name-?call|slur|"
    r"cry\b|troll|spam|flood|hate|racis|sexis|phobic|semiti|xenophob|bigot|misogyn|despise|loathe|look\w* down|deport|"
    r"extermin|get rid|expel|nazi|white|master race|racial|ethnic|subhuman|inferior|admire|support|praise|glorif|celebrat|"
    r"dehumaniz|vilif|blackmail|extort|dox|stalk|incite|encourag|promot|hurt|harm|kill|beat|assault|poison|phish|"
    r"impersonat|pose|posing|pretend|pass\w* off|claim|masquerad|scam|swindl|defraud|\bcon|dupe|dupin|deceiv|lie|lying|"
    r"mislead|gaslight|manipulat|trick|fake|spoof|counterfeit|fraud|clone|social engineer|spread|extract|steal|harvest|"
    r"exfiltrat|coax|sniff|fish|pry|ask|password|credential|malware|ransom|virus|trojan|keylog|spyware|worm|rootkit|"
    r"backdoor|botnet|miner|stealer|malicious|infected|hack|break\w* into|hijack"
)

# Words that put the act on the other side: resisting it, reporting it, suffering it, studying it.
_AGAINST = re.compile(
    r"\b(?:against|anti|prevent\w*|stop\w*|report\w*|protect\w*|defend\w*|defen[cs]e|detect\w*|spot\w*|recogni[sz]\w*|"
    r"avoid\w*|refus\w*|never|fight\w*|combat\w*|warn\w*|victim\w*|survivor\w*|bullied|harassed|phished|scammed|"
    r"counter\w*|awareness|train\w*|teach\w*|educat\w*|moderat\w*|investigat\w*|research\w*|stud(?:y|ies|ying)|"
    r"hates?|dislikes?|despises?|can't stand|cannot stand|annoy\w*|frustrat\w*|intoleran\w*|tolerate|zero tolerance|"
    r"worr\w*|afraid|fear\w*|calls? out|call\w* out|stand\w* up (?:to|for)|security|simulat\w*|test\w*|audit\w*|"
    r"ethical|penetration|pentest\w*|suspicious of|distrust\w*|wary|assumes?|believes? (?:that )?(?:everyone|people|they)|"
    r"patience for|no time for|condemn\w*|oppos\w*|reject\w*|challeng\w*|confront\w*|push\w* back|accus\w*|"
    r"suspects?|convinced|think\w* (?:that )?(?:everyone|people|they)|better than|rather than|instead of|worse than|"
    r"not|never|doesn't|does not|don't|do not|won't|will not)\b"
)
# Phrases that enable rather than negate ("not afraid to harass") must not read as resistance.
_ENABLING = re.compile(
    r"\b(?:not|never|isn't|is not|aren't|are not) (?:afraid|hesitant|shy|ashamed|above)\b|\bnever hesitates?\b|"
    r"\b(?:doesn't|does not|don't|do not|won't|will not) (?:hesitate|think twice|shy away)\b|\bunafraid\b"
)
_LEET_WORD = re.compile(r"[a-z][0-9@$]|[0-9@$][a-z]")
# The same words after the act: "phishing simulations", "malware detection".
_DEFENCE_AFTER = re.compile(
    r"\b(?:awareness|simulat\w*|detect\w*|prevent\w*|defen[cs]es?|security|ethical|pentest\w*|penetration|training|"
    r"report\w*|spot\w*|protect\w*|victims?|tests?|exercises?|drills?)\b"
)
_SKIP_KEYS = {"dislikes"}
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")


def _texts(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path or "persona", node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if str(key) in _SKIP_KEYS:
                continue
            yield from _texts(value, f"{path}.{key}" if path else str(key))
        return
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _texts(item, f"{path}[{i}]")


def _persona_dict(spec: Any) -> dict[str, Any]:
    if hasattr(spec, "to_tinytroupe_dict"):
        return spec.to_tinytroupe_dict()
    if isinstance(spec, Mapping):
        inner = spec.get("persona")
        if isinstance(inner, Mapping) and (spec.get("type") in ("TinyPerson", "Fragment") or len(spec) <= 2):
            return dict(inner)
        return dict(spec)
    raise TypeError(f"a persona is a dictionary or a PersonaSpec, not {type(spec).__name__}")


def _harm(text: str) -> tuple[str, str] | None:
    """The first harmful act in folded ``text`` that no nearby words speak against, as (category, words)."""
    if not _QUICK.search(text):
        return None
    for sentence in _SENTENCE.split(text):
        sentence = _ENABLING.sub("willing", sentence)
        for category, pattern in _COMPILED:
            match = pattern.search(sentence)
            if match and not _AGAINST.search(sentence[: match.start()]) and not _DEFENCE_AFTER.search(sentence[match.end() :]):
                return category, match.group(0)
    return None


def _findings(persona: dict[str, Any]) -> list[PersonaFinding]:
    found: list[PersonaFinding] = []
    for field, raw in _texts(persona):
        folded = fold(raw)
        variants = [folded]
        if _LEET_WORD.search(folded):
            variants += leet_variants(folded)
        for text in variants:
            hit = _harm(text)
            if hit:
                found.append(PersonaFinding(category=hit[0], field=field, match=hit[1]))
                break
        hijack = inspect_input(raw)
        if hijack and hijack.kind in ("override", "role-marker"):
            found.append(PersonaFinding(category="prompt injection", field=field, match=hijack.match))
    return found


_LABELS = {
    "harassment": "harassment",
    "hate": "hate",
    "threats": "threats",
    "deception": "deceiving the channel",
    "secrets": "extracting secrets",
    "malware": "malware or intrusion",
    "prompt injection": "overriding its instructions",
}


def _one_line(words: str) -> str:
    """A field's path or words inside a reason: a file's keys may hold line breaks, which would start a
    line of the bot's own in the reply that quotes them."""
    return clip(" ".join(words.split()), 80)


def check_persona_spec(spec: Any, mode: Literal["team", "red-team"] = "team") -> PersonaCheck:
    """Whether a persona (a spec dict, a TinyTroupe agent or fragment, or a PersonaSpec) may join.

    ``team``: a persona asking for malicious behaviour is refused, with the reasons. ``red-team``:
    it is admitted with ``red_team=True`` so its posts are labelled.
    """
    findings = _findings(_persona_dict(spec))
    if not findings:
        return PersonaCheck(allowed=True)
    reasons = [f'{_LABELS[f.category]} ({_one_line(f.field)}: "{_one_line(f.match)}")' for f in findings]
    if mode == "red-team":
        return PersonaCheck(allowed=True, red_team=True, reasons=reasons, findings=findings)
    return PersonaCheck(
        allowed=False,
        reasons=["the persona is written to do harm in a team channel: " + r for r in reasons],
        findings=findings,
    )
