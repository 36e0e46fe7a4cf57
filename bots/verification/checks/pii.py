"""Personal data in a persona's post: e-mail addresses, phone numbers, card numbers, IBANs,
government ids, passport numbers and street addresses.

A persona invents details, and an invented phone number or address may well belong to someone
real; a channel is no place for either. Each kind is matched by a pattern and then validated
(phone numbers by ``phonenumbers``, cards by Luhn and issuer prefix, IBANs and national ids by
``python-stdnum``), so prices, years, versions, times and order numbers are left alone. A phone
number without a country code counts when it is valid in one of the channel's countries and
grouped exactly as that country writes it; a passport number, which has no check digit, only
next to the word for passport. Emphasis around the data (``_john@example.com_``), a line break
inside an address or card number, a card grouped by dots and an IBAN in lower case are the same
data. Found data is replaced by a label such as ``[email removed]``, or the post is blocked if the
policy says so.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import phonenumbers
from stdnum import iban, luhn
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import ssn

from bots.verification.base import Check, CheckResult, VerdictAction, VerificationContext
from bots.verification.gate import required_pieces
from bots.verification.text import caseless, strip_invisible, unwrap_markup
from bots.verification.urls import is_top_level_domain
from config.verification import VerificationPolicy

__all__ = ["LABELS", "PiiCheck", "PiiFinding", "find_pii"]

LABELS = {
    "email": "[email removed]",
    "phone": "[phone number removed]",
    "card": "[card number removed]",
    "iban": "[IBAN removed]",
    "id": "[ID number removed]",
    "passport": "[passport number removed]",
    "address": "[address removed]",
}
_NAMES = {"email": "email address", "phone": "phone number", "card": "card number", "iban": "IBAN", "id": "ID number",
          "passport": "passport number", "address": "street address"}


@dataclass(frozen=True)
class PiiFinding:
    start: int
    end: int
    kind: str
    detail: str = ""


# -- e-mail ------------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.%+-])[\w][\w.%+-]{0,63}@(?:[\w-]{1,63}\.)+[^\W\d_]{2,24}\b")
#: A line break (with any spaces around it) inside an address: "john.doe@" at the end of one line.
_BREAK = r"(?:[ \t]*\n[ \t]*)"
_EMAIL_BROKEN = re.compile(
    rf"(?<![\w.%+-])[\w][\w.%+-]{{0,63}}{_BREAK}?@{_BREAK}?(?:[\w-]{{1,63}}{_BREAK}?\.{_BREAK}?)+"
    r"(?P<tld>[^\W\d_]{2,24})\b"
)
_AT = r"(?:\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+)"
_DOT = r"(?:\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+)"
_EMAIL_SPELLED = re.compile(
    rf"(?<![\w.])[\w][\w.+-]{{0,63}}{_AT}[\w-]{{1,63}}(?:(?:\.|{_DOT})[\w-]{{1,63}})*(?:\.|{_DOT})"
    r"(?:com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|me|info|biz|dev|app)\b",
    re.IGNORECASE,
)


def _emails(text: str) -> Iterator[PiiFinding]:
    if "@" in text:
        for m in _EMAIL.finditer(text):
            yield PiiFinding(m.start(), m.end(), "email")
        if "\n" in text:
            # Split over two lines, it is still an address; only on a real top-level domain, so a
            # line ending in a word and the next starting "@alice.smith" is no address.
            for m in _EMAIL_BROKEN.finditer(text):
                if "\n" in m.group(0) and is_top_level_domain(m.group("tld")):
                    yield PiiFinding(m.start(), m.end(), "email")
    lowered = text.lower()
    if " at " in lowered or "at]" in lowered or "at)" in lowered or "at}" in lowered or "at>" in lowered:
        for m in _EMAIL_SPELLED.finditer(text):
            spelled = m.group(0)
            # "meet at noon dot com" style prose needs a bracketed token to count.
            if re.search(r"[\[({<]\s*(?:at|dot)\s*[\])}>]", spelled, re.IGNORECASE) or " dot " in spelled.lower():
                yield PiiFinding(m.start(), m.end(), "email")


# -- cards, IBANs --------------------------------------------------------------------------------

#: Digits grouped by spaces, dashes or dots, or broken over two lines ("4111 1111\n1111 1111").
_CARD = re.compile(r"(?<![\d.,-])\d(?:(?:[ .-]|[ \t]*\n[ \t]*)?\d){12,18}(?![\d]|[.,]\d)")
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9]|22)|35(?:2[89]|[3-8])|62|8[1-8])")


def _cards(text: str) -> Iterator[PiiFinding]:
    for m in _CARD.finditer(text):
        if "." in m.group(0) and any(len(group) == 3 for group in re.split(r"\D+", m.group(0))):
            continue  # "4.123.456.789.012": thousands, which cards never group in threes
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn.is_valid(digits) and len(set(digits)) > 1:
            yield PiiFinding(m.start(), m.end(), "card")


#: In any case: "de89 3704 …" typed in lower case is the same account.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}\b", re.IGNORECASE)


def _ibans(text: str) -> Iterator[PiiFinding]:
    for m in _IBAN.finditer(text):
        raw = m.group(0).upper()
        # The match may run into following capitalised words; try shorter cuts at spaces.
        cuts = [len(raw)] + [i for i in range(len(raw) - 1, 14, -1) if raw[i] == " "]
        for cut in cuts:
            candidate = raw[:cut].rstrip()
            if iban.is_valid(candidate.replace(" ", "")):
                yield PiiFinding(m.start(), m.start() + len(candidate), "iban")
                break


# -- government ids ------------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_KEYWORD = re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?| #)?)\D{0,20}?(?<!\d)(\d{9})(?!\d)")
_NINO = re.compile(r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_DNI = re.compile(r"\b(?:\d{8}|[XYZ]\d{7})-?[A-Z]\b")
_CODICE_FISCALE = re.compile(r"\b[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]\b")
_NIR = re.compile(r"(?<!\d)[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?!\d)")
_AADHAAR = re.compile(r"(?<![\d-])[2-9]\d{3}[ -]\d{4}[ -]\d{4}(?![\d-])")
_PAN = re.compile(r"\b[A-Z]{3}[ABCFGHLJPT][A-Z]\d{4}[A-Z]\b")
# Ten- or eleven-digit national numbers look like anything; only with their name nearby.
_KEYWORD_IDS: tuple[tuple[re.Pattern[str], Callable[[str], bool], int], ...] = (
    (re.compile(r"(?i)\bnhs(?: number| no\.?)?\D{0,15}?(?<!\d)(\d{3} ?\d{3} ?\d{4})(?!\d)"), nhs.is_valid, 10),
    (re.compile(r"(?i)\b(?:steuer-?id|steueridentifikationsnummer|idnr|tax id)\D{0,15}?(?<!\d)(\d{2} ?\d{3} ?\d{3} ?\d{3})(?!\d)"),
     idnr.is_valid, 11),
    (re.compile(r"(?i)\b(?:bsn|burgerservicenummer)\D{0,15}?(?<!\d)(\d{9})(?!\d)"), bsn.is_valid, 9),
)


def _dni_or_nie(value: str) -> bool:
    return bool(dni.is_valid(value) or nie.is_valid(value))


#: Numbers in a shape of their own: (pattern, validity test or None, name, the fewest digits a
#: match has). A message with fewer digits is not searched for it.
_SHAPED_IDS: tuple[tuple[re.Pattern[str], Callable[[str], bool] | None, str, int], ...] = (
    (_NINO, None, "UK NINO", 6),
    (_DNI, _dni_or_nie, "Spanish DNI/NIE", 7),
    (_CODICE_FISCALE, codicefiscale.is_valid, "Italian codice fiscale", 7),
    (_NIR, nir.is_valid, "French NIR", 14),
    (_AADHAAR, aadhaar.is_valid, "Aadhaar", 12),
    (_PAN, pan.is_valid, "Indian PAN", 4),
)
#: The fewest digits a US social security number has, with or without its name.
_SSN_DIGITS = 9


def _ids(text: str) -> Iterator[PiiFinding]:
    digits = len(_DIGIT.findall(text))
    if digits >= _SSN_DIGITS:
        for m in _SSN.finditer(text):
            if ssn.is_valid(m.group(1) + m.group(3) + m.group(4)):
                yield PiiFinding(m.start(), m.end(), "id", "US SSN")
        if re.search(r"(?i)ssn|social security", text):
            for m in _SSN_KEYWORD.finditer(text):
                if ssn.is_valid(m.group(1)):
                    yield PiiFinding(m.start(1), m.end(1), "id", "US SSN")
    for pattern, validate, name, fewest in _SHAPED_IDS:
        if digits < fewest:
            continue
        for m in pattern.finditer(text):
            if validate is None or _valid(validate, m.group(0)):
                yield PiiFinding(m.start(), m.end(), "id", name)
    for pattern, validate, fewest in _KEYWORD_IDS:
        if digits < fewest:
            continue
        for m in pattern.finditer(text):
            if _valid(validate, m.group(1)):
                yield PiiFinding(m.start(1), m.end(1), "id")


def _valid(validate: Callable[[str], bool], value: str) -> bool:
    try:
        return bool(validate(re.sub(r"[\s-]", "", value)))
    except Exception:
        return False


# -- passport numbers ----------------------------------------------------------------------------
# No checksum is printed in a passport number, and its shape (a letter or two and digits) is every
# order number's: only with the word for passport just before it.
_PASSPORT = re.compile(
    r"(?i:\b(?:passport|pasaporte|passaporte|reisepass(?:nummer)?|pass(?:nummer|-?nr\.?)|passeport|passaporto|paspoort|"
    r"paszport(?:u|owy)?|passnummer)(?:[\s-]+(?:number|no\.?|nr\.?|num\.?|numero|número|nummer|numer|n[°º]|id))?)"
    r"(?:\s+(?i:his|her|their|my|our|your|the|of|szefa|jego|jej|mojego|mojej|su|mi|tu|seu|sua|meu|minha|sein|seine|ihr|ihre|"
    r"mein|meine|son|sa|mon|ma|del|della|di|do|da|de))?"
    r"(?:\s*(?i:is|was|es|é|e|ist|lautet|est|è|jest|to|är|ar|=|:|#|-))*\s*[:#]?\s*"
    r"(?<![A-Za-z0-9])([A-Z]{0,4}\d[A-Z0-9]{4,8})(?![A-Za-z0-9])"
)


#: In every word for passport above, in lower case: a message without it names no passport.
_PASSPORT_WORD = "pas"


def _passports(text: str) -> Iterator[PiiFinding]:
    if _PASSPORT_WORD not in caseless(text):
        return
    for m in _PASSPORT.finditer(text):
        value = m.group(1)
        if 6 <= len(value) <= 9 and sum(c.isdigit() for c in value) >= 5:
            yield PiiFinding(m.start(1), m.end(1), "passport")


# -- phone numbers -------------------------------------------------------------------------------

_PHONE_CANDIDATE = re.compile(r"(?<![\w#$€£¥/:.,+-])(?:\+|00)?\s?(?:\(\d{1,5}\)\s?)?\d[\d ().\-/]{5,22}\d(?![\w]|[.,]\d)")
_PHONE_CONTEXT = re.compile(r"(?i)(?:call|phone|tel|mobile|cell|whats ?app|signal|text me|reach me|ring|number|nummer|numéro|telefono|teléfono|handy)\W{0,3}(?:\w+\W+){0,3}$")
_DATE = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$")
_YEARS = re.compile(r"^(?:1[89]|20)\d{2}\s?[-–/]\s?(?:1[89]|20)?\d{2}$")
_DOTTED = re.compile(r"^\d+(?:\.\d+)+$")
_THOUSANDS = re.compile(r"^\d{1,2}(?:[ .]\d{3})+$")
_MONEY_BEFORE = re.compile(r"[$€£¥₹]\s?$|\b(?:usd|eur|gbp|chf|rs|inr)\s?$", re.IGNORECASE)
_MONEY_AFTER = re.compile(r"^\s?(?:[$€£¥₹%]|k\b|m\b|bn\b|usd|eur|gbp|dollars|euros|pounds|users|customers|rows|items|km|kg|mb|gb)", re.IGNORECASE)
_TRUNK_REGIONS = ("GB", "DE", "FR", "IT", "NL", "ES", "AU", "IN", "BR", "IE", "BE", "CH", "AT", "SE")
#: Countries tried for a number without a country code when the channel names none.
DEFAULT_PHONE_REGIONS = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "PT", "BR", "IN", "AU", "CA", "MX", "SE", "BE", "CH", "AT", "IE",
)


def _phones(text: str, regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS) -> Iterator[PiiFinding]:
    for m in _PHONE_CANDIDATE.finditer(text):
        raw = m.group(0).strip()
        start = m.start() + m.group(0).index(raw[0])
        digits = re.sub(r"\D", "", raw)
        # A number has at most 15 digits (E.164), not counting the "00" dialled for the "+".
        significant = len(digits) - 2 if raw.startswith("00") else len(digits)
        if not 7 <= significant <= 15 or _not_a_phone(raw, text, start, start + len(raw)):
            continue
        if _valid_phone(raw, digits, text[max(0, start - 40) : start], regions):
            yield PiiFinding(start, start + len(raw), "phone")


def _not_a_phone(raw: str, text: str, start: int, end: int) -> bool:
    if _DATE.match(raw) or _YEARS.match(raw) or _THOUSANDS.match(raw):
        return True
    if _DOTTED.match(raw) and (min(len(g) for g in raw.split(".")) == 1 or raw.count(".") == 3):
        return True  # versions and IP addresses
    return bool(_MONEY_BEFORE.search(text[max(0, start - 5) : start]) or _MONEY_AFTER.match(text[end : end + 10]))


def _valid_phone(raw: str, digits: str, before: str, regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS) -> bool:
    international = raw.startswith(("+", "00"))
    separated = bool(re.search(r"[ ().\-/]", raw.lstrip("+")))
    if not international and not separated and not _PHONE_CONTEXT.search(before):
        return False  # a bare run of digits is an order number until something says it is a phone
    if international:
        candidates: tuple[str | None, ...] = (None,)
        raw = "+" + raw[2:] if raw.startswith("00") else raw
    elif digits.startswith("0"):
        candidates = _TRUNK_REGIONS
    else:
        candidates = ("US", "IN")
    for region in candidates:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    if international:
        return False
    # Without a country code ("(11) 98765-4321", "612 34 56 78"): a number of one of the regions,
    # grouped exactly the way that country writes its numbers, so a grouped order number is not one.
    for region in regions:
        try:
            if not phonenumbers.is_valid_number(phonenumbers.parse(raw, region)):
                continue  # cheap; the grouping check below is not
        except phonenumbers.NumberParseException:
            continue
        for match in phonenumbers.PhoneNumberMatcher(raw, region, leniency=phonenumbers.Leniency.EXACT_GROUPING):
            if match.raw_string == raw:
                return True
    return False


# -- street addresses ----------------------------------------------------------------------------

_SUFFIX = (
    r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|Crescent|"
    r"Close|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Mews|Gardens|Grove|Row|Alley|Plaza"
)
_NOT_A_NAME = r"(?!(?:Weeks?|Days?|Hours?|Minutes?|Months?|Years?|Times?|More|Other|Of|Or|And|To|In|On|At|For|New|Big|Small)\b)"
_ADDRESS_EN = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?(?:-\d{{1,5}})?,?\s+{_NOT_A_NAME}(?:(?:[A-Z][A-Za-z'’-]*|\d{{1,3}}(?:st|nd|rd|th))\.?\s+){{1,4}}"
    rf"(?:{_SUFFIX})\b\.?(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Fl|#)\.?\s*[\w-]{{1,6}})?"
)
_ADDRESS_DE = re.compile(
    r"\b[A-ZÄÖÜÅÆØ][a-zäöüßåæø-]{2,40}(?:straße|strasse|str\.|weg|gasse|allee|platz|damm|ufer|straat|laan|gracht|gatan|"
    r"vägen|veien|vej|gade|gata|katu|tie)"
    r"\s+\d{1,4}\s?[a-z]?\b"
)
_ADDRESS_ROMANCE = re.compile(
    r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?i:rue|avenue|boulevard|bd|chemin|allée|impasse|quai)\s+(?:de\s+la\s+|de\s+l'|du\s+|des\s+|de\s+|d')?[A-ZÀ-Ý][\w'’-]+"
    r"|(?:\b(?:Calle|Avenida|Avda\.|Av\.|Carrer|Via|Viale|V\.le|Piazza|P\.zza|Piazzale|Largo|Vicolo|Corso|Rua|Travessa|"
    r"Praça|Alameda|Estrada|Paseo|Pº|Plaza|Pza\.|Ronda|Travesía|Camino|Carretera)|(?<!\w)C/)\s*"
    r"(?:(?:de\s+la|de\s+las|de\s+los|del|de|dei|degli|delle|della|dello|da|das|do|dos|di)\s+)?"
    r"[A-ZÀ-Ý][\w'’-]+(?:\s+(?:de\s+|da\s+|do\s+|del\s+|di\s+)?[A-ZÀ-Ý][\w'’-]+){0,2},?\s+(?:n\.?º?\s*)?\d{1,4}\b"
)
#: Polish ("ul. Marszałkowska 84/92 m. 15, 00-514 Warszawa"), with the postcode and town when given.
_ADDRESS_PL = re.compile(
    r"\b(?:ul\.|ulica|al\.|aleja|aleje|pl\.|plac|os\.|osiedle)\s+(?:[A-ZŻŹĆĄŚĘŁÓŃ0-9][\w.'’-]*\s+){0,3}?"
    r"[A-ZŻŹĆĄŚĘŁÓŃ][\w'’-]+\s+\d{1,4}[A-Za-z]?(?:/\d{1,4}[A-Za-z]?)?(?:\s+(?:m\.?|lok\.?)\s*\d{1,4})?"
    r"(?:,?\s+\d{2}-\d{3}(?:\s+[A-ZŻŹĆĄŚĘŁÓŃ][\w-]+)?)?"
)
#: Hungarian ("Váci utca 12") and Turkish ("İstiklal Caddesi No: 45") street names before the number.
_ADDRESS_HU_TR = re.compile(
    r"\b[A-ZÁÉÍÓÖŐÚÜŰ][\w-]+\s+(?:utca|út|tér|körút)\s+\d{1,4}\b"
    r"|(?:\b|(?<=\s)|^)[A-ZÇĞİÖŞÜ][\w-]+\s+(?:Caddesi|Cad\.|Sokak|Sokağı|Sok\.|Bulvarı|Blv\.)\s*,?\s*No\s*[:.]?\s*\d{1,4}"
)


#: What the Romance-language street pattern needs, which ``required_pieces`` cannot read off it (its
#: French words are matched in any case): one of these words as written, or of these in any case.
_ROMANCE_WORDS = (
    ("Calle", "Av", "Carrer", "Via", "V.le", "Piazza", "P.zza", "Largo", "Vicolo", "Corso", "Rua", "Travessa", "Praça",
     "Alameda", "Estrada", "Paseo", "Pº", "Plaza", "Pza.", "Ronda", "Travesía", "Camino", "Carretera", "C/"),
    ("rue", "avenue", "boulevard", "bd", "chemin", "allée", "impasse", "quai"),
)
#: Each address pattern with the pieces of text one of which every address it matches contains
#: (as written, then in any case, in lower case): a message with none of them is not searched with it.
_ADDRESSES: tuple[tuple[re.Pattern[str], frozenset[str] | tuple[str, ...], tuple[str, ...]], ...] = (
    (_ADDRESS_EN, required_pieces((_ADDRESS_EN,)), ()),
    (_ADDRESS_DE, required_pieces((_ADDRESS_DE,)), ()),
    (_ADDRESS_ROMANCE, *_ROMANCE_WORDS),
    (_ADDRESS_PL, required_pieces((_ADDRESS_PL,)), ()),
    (_ADDRESS_HU_TR, required_pieces((_ADDRESS_HU_TR,)), ()),
)


def _may_match(text: str, lowered: str, written: Iterable[str], any_case: Iterable[str]) -> bool:
    """Whether ``text`` (``lowered``: its ``caseless`` form) has one of the pieces."""
    return any(word in text for word in written) or any(word in lowered for word in any_case)


def _addresses(text: str) -> Iterator[PiiFinding]:
    lowered = caseless(text)
    for pattern, written, any_case in _ADDRESSES:
        if not _may_match(text, lowered, written, any_case):
            continue
        for m in pattern.finditer(text):
            yield PiiFinding(m.start(), m.end(), "address")


# -- all together --------------------------------------------------------------------------------

# Earlier finders win overlaps: an IBAN or card is not also a phone number.
_FINDERS: tuple[Callable[[str], Iterator[PiiFinding]], ...] = (
    _emails, _ibans, _cards, _ids, _passports, _phones, _addresses
)
_HAS_DIGIT_OR_AT = re.compile(r"[\d@]|\bat\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
#: The fewest digits each finder's findings contain (e-mail addresses need none).
_MIN_DIGITS: dict[Callable[[str], Iterator[PiiFinding]], int] = {
    _emails: 0, _ibans: 2, _cards: 13, _ids: 4, _passports: 5, _phones: 7, _addresses: 1
}


def find_pii(text: str, phone_regions: tuple[str, ...] | list[str] = DEFAULT_PHONE_REGIONS) -> list[PiiFinding]:
    """Non-overlapping findings in ``text``, in order of position; ``phone_regions`` are the
    countries whose numbers count without a country code."""
    regions = tuple(phone_regions)
    if not _HAS_DIGIT_OR_AT.search(text):
        return []
    # Emphasis (``_john@example.com_``) hides nothing; spans stay those of ``text``.
    text = unwrap_markup(text)
    digits = len(_DIGIT.findall(text))
    kept: list[PiiFinding] = []
    for finder in _FINDERS:
        if digits < _MIN_DIGITS[finder]:
            continue
        for finding in finder(text, regions) if finder is _phones else finder(text):
            if not any(finding.start < k.end and k.start < finding.end for k in kept):
                kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


def redact(text: str, findings: list[PiiFinding]) -> str:
    parts: list[str] = []
    last = 0
    for finding in findings:
        parts.append(text[last : finding.start])
        parts.append(LABELS[finding.kind])
        last = finding.end
    parts.append(text[last:])
    return "".join(parts)


class PiiCheck(Check):
    """Redacts personal data (``rewrite``), or blocks the post when ``policy.pii_action`` is ``block``."""

    name = "pii"

    def __init__(self, policy: VerificationPolicy) -> None:
        self.policy = policy
        # phonenumbers loads its metadata and compiles its patterns on first use: tens of ms that
        # would otherwise land on the first post with a number in it.
        find_pii("123 456 789, 612 34 56 78")

    async def run(self, text: str, context: VerificationContext) -> CheckResult:
        clean = strip_invisible(text)
        regions = tuple(context.phone_regions) or tuple(self.policy.phone_regions) or DEFAULT_PHONE_REGIONS
        findings = find_pii(clean, regions)
        if not findings and not clean.isascii():
            # Fullwidth digits and at-signs are still digits and at-signs to a reader.
            normal = unicodedata.normalize("NFKC", clean)
            if normal != clean:
                clean, findings = normal, find_pii(normal, regions)
        if not findings:
            return CheckResult(check=self.name)
        kinds = list(dict.fromkeys(_NAMES[f.kind] for f in findings))
        if self.policy.pii_action == "block":
            return CheckResult(check=self.name, action=VerdictAction.BLOCK, reason="personal data: " + ", ".join(kinds), score=1.0)
        return CheckResult(
            check=self.name,
            action=VerdictAction.REWRITE,
            reason="personal data removed: " + ", ".join(kinds),
            score=1.0,
            text=redact(clean, findings),
        )
