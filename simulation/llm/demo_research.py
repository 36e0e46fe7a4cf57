"""The demo model's answers for research requests: personas, plans, polls, summaries, judgements.

Like the rest of the demo model it understands nothing: it composes answers from the request's
context (the persona's own words, the events' exact text, the options offered) by word overlap and
stable hashing, so a newcomer sees every research feature give a plausible, repeatable result
offline. Each handler returns a value valid for the schema its module asks for.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from itertools import product
from typing import Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo_model import (
    _a,
    _cap,
    _most_relevant,
    _Persona,
    _pick,
    _schema_of,
    _sentence,
    _STOP,
    _words,
    lead_kind,
)

Handler = Callable[[ChatRequest], Any]


def _rank(seed: str, items: list[str]) -> list[str]:
    """``items`` in a stable pseudo-random order: a deterministic shuffle."""
    return sorted(items, key=lambda item: hashlib.sha256(f"{seed}|{item}".encode()).digest())


def _clip(text: str, limit: int) -> str:
    """``text`` as written, cut at a word boundary to at most ``limit`` characters (a quote must match)."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0].rstrip(",;:—-")


def _telling_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of ``text`` that says something ("Agreed." and "Good question." do not),
    exactly as written."""
    sentences = re.findall(r"\S.*?[.!?](?=\s|$)|\S.+$", text.strip(), re.DOTALL)
    telling = next((x for x in sentences if len(x.split()) >= 4), text)
    return _first_sentence(telling, limit)


def _first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of ``text`` exactly as written (a quote must match the source)."""
    match = re.match(r"\s*(.+?[.!?])(?=\s|$)", text, re.DOTALL)
    sentence = (match.group(1) if match else text).strip()
    return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0]


# -- sampling plans ---------------------------------------------------------------------------

_FRACTION_WORDS = {
    "three quarters": 0.75,
    "two thirds": 2 / 3,
    "one third": 1 / 3,
    "a third": 1 / 3,
    "one quarter": 0.25,
    "a quarter": 0.25,
    "a fifth": 0.2,
    "one fifth": 0.2,
    "a tenth": 0.1,
    "half": 0.5,
}
_PERCENT = re.compile(r"(\d+(?:[.,]\d+)?)\s*(?:%|percent\b|per cent\b)", re.IGNORECASE)
_NESTED = re.compile(r"\b(?:of them|of those|of these|among them|of whom)\b", re.IGNORECASE)
_FILLER = re.compile(r"^(?:(?:are|is|be|should be|who are|with|and|of the population|of people)\s+)+", re.IGNORECASE)


_WHOLE = re.compile(r"\b(?:all of them|all|everyone|everybody|every one|each of them)\b", re.IGNORECASE)
_REST = re.compile(r"^\s*(?:and\s+)?(?:the rest|the others|the remainder|everyone else|all the others|all others)\b",
                   re.IGNORECASE)
_GENDER_WORDS = re.compile(r"\b(?:women|woman|female|mothers|men|man|male|fathers)\b", re.IGNORECASE)
_PLACE_WORDS = re.compile(r"\b(?:city|cities|urban|rural|countryside|village|town|metropolitan)\b", re.IGNORECASE)


def _clause(text: str) -> tuple[float, str] | None:
    """A clause's share and what it says of that share; a clause naming no share ("over 60",
    "all of them women") is about everyone."""
    share = None
    match = _PERCENT.search(text)
    if match:
        share = float(match.group(1).replace(",", ".")) / 100
        text = text[: match.start()] + text[match.end() :]
    else:
        for words, value in _FRACTION_WORDS.items():
            found = re.search(rf"\b{words}\b", text, re.IGNORECASE)
            if found:
                share = value
                text = text[: found.start()] + text[found.end() :]
                break
    if share is None:
        share, text = 1.0, _WHOLE.sub(" ", text, count=1)
    text = _NESTED.sub(" ", text)
    description = _FILLER.sub("", " ".join(text.split())).strip(" .")
    return (min(max(share, 0.0), 1.0), description) if description else None


def _attribute(description: str) -> str | None:
    """What a group is told apart by (age, gender, place), so "30% under 30, 30% 30-60" splits one
    attribute into groups instead of being crossed with itself."""
    text = description.casefold()
    if _AGE_RANGE.search(text) or _AGE_BOUND.search(text) or _AGE_PLUS.search(text):
        return "age"
    if _GENDER_WORDS.search(text):
        return "gender"
    if _PLACE_WORDS.search(text):
        return "place"
    return None


class _Dimension:
    """Groups of one attribute: their shares and traits (each possibly split further "of them"),
    and what the rest of the population is."""

    def __init__(self, share: float, description: str) -> None:
        self.parts: list[tuple[float, str, list[tuple[float, str]]]] = [(share, description, [])]
        self.rest: str | None = None

    @property
    def attribute(self) -> str | None:
        return _attribute(self.parts[0][1])

    def takes(self, share: float, description: str) -> bool:
        """Whether a further top-level group belongs here (same attribute, room left)."""
        return (self.rest is None and self.attribute is not None and _attribute(description) == self.attribute
                and sum(p[0] for p in self.parts) + share <= 1 + 1e-6)

    def options(self) -> list[tuple[float, list[str]]]:
        options: list[tuple[float, list[str]]] = []
        for share, description, children in self.parts:
            inside: list[tuple[float, list[str]]] = [(share, [description])]
            for child_share, child in children:
                inside = [
                    (s * f, traits + [t])
                    for s, traits in inside
                    for f, t in ((child_share, child), (1 - child_share, f"not {child}"))
                ]
            options += inside
        left = 1 - sum(p[0] for p in self.parts)
        rest = [self.rest] if self.rest else [f"not {d}" for _, d, _ in self.parts]
        return [*options, (left, rest)] if left > 1e-9 else options


def sampling_plan(request: ChatRequest) -> dict[str, Any]:
    """Percentages and fractions, read clause by clause; "of them" splits the clause before it, and
    "the rest …" says who the remainder are. Groups of one attribute (age bands) share a dimension;
    dimensions are taken as independent and crossed, as a statistician would assume.
    """
    plan = str(request.context.get("plan", ""))
    dimensions: list[_Dimension] = []
    for raw in re.split(r"[;,]|\band\b(?=\s+(?:\d|half|a third|a quarter|the rest|the others))", plan):
        rest = _REST.match(raw)
        if rest:
            described = _clause(raw[rest.end():])
            if described and dimensions and dimensions[-1].rest is None:
                dimensions[-1].rest = described[1]
            continue
        nested = bool(_NESTED.search(raw))
        parsed = _clause(raw)
        if parsed is None:
            continue
        if nested and dimensions:
            dimensions[-1].parts[-1][2].append(parsed)
        elif dimensions and dimensions[-1].takes(*parsed):
            dimensions[-1].parts.append((parsed[0], parsed[1], []))
        else:
            dimensions.append(_Dimension(*parsed))
    if not dimensions:
        return {"cells": [{"share": 1.0, "traits": []}]}
    cells = []
    for combination in product(*(d.options() for d in dimensions)):
        share = 1.0
        traits: list[str] = []
        for s, t in combination:
            share *= s
            traits += t
        if share > 1e-9:
            cells.append({"share": round(share, 6), "traits": traits})
    return {"cells": cells[:32]}


# -- personas ---------------------------------------------------------------------------------

_NAMES: dict[str, tuple[list[str], list[str], list[str], str, list[str], list[str]]] = {
    # country: (women's names, men's names, surnames, nationality, cities, towns)
    "us": (
        ["Emily", "Jasmine", "Maria", "Ashley", "Keisha", "Hannah", "Mei", "Rachel", "Tanya", "Olivia", "Grace", "Lucia"],
        ["Michael", "DeShawn", "Carlos", "Tyler", "Kevin", "Brandon", "Jamal", "Ethan", "Luis", "Daniel", "Hiro", "Noah"],
        ["Johnson", "Williams", "Garcia", "Nguyen", "Brown", "Patel", "Miller", "Rodriguez", "Kim", "Davis", "Walker", "Lopez"],
        "American",
        ["Chicago, Illinois", "Houston, Texas", "Atlanta, Georgia", "Seattle, Washington", "Philadelphia, Pennsylvania", "Phoenix, Arizona"],
        ["Ames, Iowa", "Bozeman, Montana", "Dalton, Georgia", "Hays, Kansas", "Athens, Ohio", "Laramie, Wyoming"],
    ),
    "br": (
        ["Ana", "Juliana", "Fernanda", "Camila", "Beatriz", "Larissa", "Patrícia", "Luana", "Gabriela", "Renata"],
        ["João", "Pedro", "Lucas", "Rafael", "Thiago", "Gustavo", "Marcelo", "Felipe", "Bruno", "Eduardo"],
        ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Rodrigues", "Almeida", "Nascimento", "Lima"],
        "Brazilian",
        ["São Paulo, Brazil", "Rio de Janeiro, Brazil", "Belo Horizonte, Brazil", "Recife, Brazil", "Porto Alegre, Brazil"],
        ["Paraty, Brazil", "Lençóis, Brazil", "Pirenópolis, Brazil", "Tiradentes, Brazil", "Bonito, Brazil"],
    ),
    "es": (
        ["Lucía", "Carmen", "Marta", "Paula", "Elena", "Nerea", "Laura", "Ainhoa", "Sara", "Irene"],
        ["Javier", "Pablo", "Sergio", "Álvaro", "Diego", "Jordi", "Iker", "Manuel", "Adrián", "Raúl"],
        ["García", "Fernández", "López", "Martínez", "Sánchez", "Romero", "Navarro", "Torres", "Ruiz", "Domínguez"],
        "Spanish",
        ["Madrid, Spain", "Barcelona, Spain", "Valencia, Spain", "Seville, Spain", "Bilbao, Spain"],
        ["Ronda, Spain", "Teruel, Spain", "Soria, Spain", "Cuenca, Spain", "Zafra, Spain"],
    ),
    "de": (
        ["Anna", "Lena", "Julia", "Katharina", "Sophie", "Miriam", "Hannah", "Leonie", "Sabine", "Clara"],
        ["Lukas", "Jonas", "Felix", "Stefan", "Tobias", "Markus", "Jan", "Florian", "Matthias", "Emre"],
        ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Wagner", "Becker", "Hoffmann", "Koch", "Yilmaz"],
        "German",
        ["Berlin, Germany", "Hamburg, Germany", "Munich, Germany", "Cologne, Germany", "Leipzig, Germany"],
        ["Husum, Germany", "Wernigerode, Germany", "Lindau, Germany", "Celle, Germany", "Bautzen, Germany"],
    ),
    "in": (
        ["Ananya", "Priyanka", "Kavya", "Meera", "Divya", "Sneha", "Lakshmi", "Farah", "Neha", "Ishita"],
        ["Arjun", "Rahul", "Vikram", "Karthik", "Aditya", "Rohan", "Imran", "Sanjay", "Nikhil", "Suresh"],
        ["Sharma", "Iyer", "Reddy", "Gupta", "Menon", "Khan", "Das", "Joshi", "Pillai", "Singh"],
        "Indian",
        ["Mumbai, India", "Bengaluru, India", "Delhi, India", "Chennai, India", "Hyderabad, India"],
        ["Ooty, India", "Hampi, India", "Alleppey, India", "Pushkar, India", "Coorg, India"],
    ),
    "uk": (
        ["Charlotte", "Amelia", "Aisha", "Sophie", "Eleanor", "Chloe", "Niamh", "Priya", "Holly", "Zara"],
        ["Oliver", "George", "Harry", "Callum", "Mohammed", "James", "Rhys", "Owen", "Samuel", "Kwame"],
        ["Smith", "Jones", "Taylor", "Brown", "Evans", "Wilson", "Hughes", "Ahmed", "Clarke", "Murphy"],
        "British",
        ["London, UK", "Manchester, UK", "Glasgow, UK", "Birmingham, UK", "Bristol, UK"],
        ["Hexham, UK", "Tenby, UK", "Keswick, UK", "Ludlow, UK", "Oban, UK"],
    ),
    "pt": (
        ["Inês", "Beatriz", "Mariana", "Ana", "Joana", "Catarina", "Sofia", "Rita", "Leonor", "Marta"],
        ["João", "Tiago", "Rui", "Pedro", "Miguel", "Duarte", "Gonçalo", "André", "Nuno", "Ricardo"],
        ["Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Sousa", "Gomes"],
        "Portuguese",
        ["Lisbon, Portugal", "Porto, Portugal", "Coimbra, Portugal", "Braga, Portugal", "Faro, Portugal"],
        ["Évora, Portugal", "Tomar, Portugal", "Lagos, Portugal", "Viseu, Portugal", "Óbidos, Portugal"],
    ),
}
#: Words that place a description in a country: the country, its people, its cities.
_COUNTRIES = {
    "us": ("usa", "united states", "america", "american", "new york", "chicago", "texas", "california", "kansas",
           "ohio", "florida", "seattle", "boston", "iowa", "nebraska", "oklahoma", "georgia", "michigan"),
    "br": ("brazil", "brasil", "brazilian", "são paulo", "sao paulo", "rio de janeiro"),
    "es": ("spain", "spanish", "españa", "madrid", "barcelona", "valencia", "seville", "bilbao"),
    "de": ("germany", "german", "deutschland", "berlin", "munich", "hamburg", "cologne"),
    "in": ("india", "indian", "mumbai", "delhi", "bangalore", "bengaluru"),
    "uk": ("united kingdom", "britain", "british", "england", "uk", "london", "manchester", "glasgow"),
    "pt": ("portugal", "portuguese", "lisbon", "lisboa", "porto", "coimbra"),
}
_JOBS = [
    ("Nurse", "a regional hospital", "You work rotating shifts on a busy surgical ward."),
    ("Software developer", "a mid-sized software company", "You build and maintain web applications."),
    ("Primary school teacher", "a public school", "You teach a class of eight-year-olds."),
    ("Electrician", "your own small business", "You wire homes and small shops and set your own hours."),
    ("Accountant", "a regional accounting firm", "You prepare tax returns and audits for small businesses."),
    ("Retail store manager", "a supermarket chain", "You run a team of twenty and hit weekly sales targets."),
    ("Graphic designer", "a freelance studio", "You design brands and packaging for local clients."),
    ("Truck driver", "a logistics company", "You drive long-haul routes several nights a week."),
    ("University student", "a public university", "You study and work part-time in a café."),
    ("Pharmacist", "a neighbourhood pharmacy", "You advise patients and manage prescriptions."),
    ("Farmer", "your family farm", "You grow vegetables and sell at regional markets."),
    ("Marketing coordinator", "a consumer brand", "You plan campaigns and track their results."),
    ("Retired engineer", "formerly a utilities company", "You worked forty years on water networks and now volunteer."),
    ("Chef", "a busy bistro", "You run the kitchen's evening service."),
]
_TRAITS = [
    "You are practical and like things that simply work.",
    "You are curious and love trying new things.",
    "You are cautious with money and compare prices carefully.",
    "You are outgoing and talk to everyone.",
    "You are sceptical of hype and ask for proof.",
    "You are patient and a good listener.",
    "You are competitive and driven.",
    "You are easy-going and rarely get upset.",
    "You are well organised and plan ahead.",
    "You are impulsive and follow your gut.",
]
_INTERESTS = [
    "Cooking for friends.", "Football.", "Gardening.", "Video games.", "Hiking.", "Personal finance.",
    "Music festivals.", "Home improvement.", "Reading mystery novels.", "Travel on a budget.",
    "Volunteering in the community.", "Photography.", "Cycling.", "New gadgets and technology.",
]
_LIKES = [
    "Good value for money.", "Quiet mornings.", "Honest advice.", "Fresh local food.", "Smart home devices.",
    "Clean, simple design.", "Time outdoors.", "Friendly customer service.", "Public transport that runs on time.",
    "Trying new restaurants.",
]
_DISLIKES = [
    "Hidden fees.", "Long queues.", "Pushy salespeople.", "Apps that want too much personal data.",
    "Noise late at night.", "Waste and excess packaging.", "Complicated contracts.", "Being kept on hold.",
    "Traffic jams.", "Products that break quickly.",
]
_BELIEFS = [
    "Hard work should pay off.", "Technology should make life simpler, not busier.",
    "Family comes first.", "Local businesses keep a town alive.", "Everyone deserves a second chance.",
    "Privacy matters more than convenience.", "You should buy quality once rather than cheap twice.",
    "Climate change needs action now.", "Saving for a rainy day is just common sense.",
]
_GOALS = [
    "To buy a home of my own.", "To retire comfortably.", "To start my own business.",
    "To travel more with my family.", "To get a promotion within two years.", "To pay off my debts.",
    "To stay healthy and active.", "To learn a new language.",
]
_STYLES = [
    "Casual and direct; short sentences.", "Warm and chatty, with lots of examples.",
    "Careful and precise; weighs both sides.", "Blunt and funny.", "Polite and a little formal.",
]
_EDUCATION = [
    "High school diploma.", "Vocational training certificate.", "Bachelor's degree.", "Master's degree.",
    "Some college, no degree.",
]


def _fold(name: str) -> str:
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


def _job(text: str) -> tuple[str, str, str] | None:
    """The job a description asks for ("nurses on night shifts…" → the nurse), if it names one."""
    lowered = text.casefold()
    for title, organization, job in _JOBS:
        noun = title.split()[-1].casefold()
        if re.search(rf"\b{re.escape(noun)}s?\b", lowered):
            return title, organization, job
    return None


def _place(text: str, code: str | None) -> str | None:
    """The city a description names, as the country's list spells it ("in Lisbon" → "Lisbon, Portugal")."""
    if code is None:
        # A place the demo has no names for is still where they live: "accountants in Oslo" → "Oslo".
        named = re.search(r"\b(?:in|from|around|near)\s+((?:[A-Z][\w'’.-]*)(?:(?:,\s*|\s+)[A-Z][\w'’.-]*)*)", text)
        return named.group(1) if named else None
    lowered = _fold(text)
    return next((city for city in _NAMES[code][4] if re.search(rf"\b{re.escape(_fold(city.split(',')[0]))}\b", lowered)),
                None)


def _country(text: str) -> str | None:
    """The country a description names first ("…of Spain … Latin American: 5.9%" is Spain)."""
    lowered = f" {text.casefold()} "
    found = [(m.start(), code) for code, words in _COUNTRIES.items() for w in words
             if (m := re.search(rf"\b{re.escape(w)}\b", lowered))]
    return min(found)[1] if found else None


_AGE_RANGE = re.compile(r"(?<![\d.])(\d{1,3})\s*(?:-|–|to|and)\s*(\d{1,3})(?![\d.%])")
_AGE_BOUND = re.compile(r"(not\s+)?(under|below|younger than|less than|over|above|older than|at least)\s+(\d{1,3})")
_AGE_PLUS = re.compile(r"(not\s+)?(\d{1,3})\s*(?:\+|or older|and over|or more|and older)")
_UNDER = ("under", "below", "younger than", "less than")


#: Ages of anyone, and of someone in work (a description that names a job asks for a working person).
ANY_AGE, WORKING_AGE = (19, 74), (21, 66)


def _age(constraint: str, seed: str, bounds: tuple[int, int] = ANY_AGE) -> int:
    """An age inside the constraint's bounds ("under 30", "not over 60", "25-34", "65+"), else in ``bounds``."""
    text = constraint.casefold()
    low, high = bounds
    for match in _AGE_RANGE.finditer(text):
        a, b = int(match.group(1)), int(match.group(2))
        if re.search(r"\bnot\s+$", text[: match.start()]):  # "not 30-60": above the band if there is room
            low, high = (max(low, b + 1), high) if high > b else (low, min(high, a - 1))
        else:
            low, high = a, b
    for negated, word, number in _AGE_BOUND.findall(text):
        n = int(number)
        if word in _UNDER:
            low, high = (max(low, n), high) if negated else (low, min(high, n - 1))
        elif word == "at least":
            low, high = (low, min(high, n - 1)) if negated else (max(low, n), high)
        else:
            low, high = (low, min(high, n)) if negated else (max(low, n + 1), high)
    for negated, number in _AGE_PLUS.findall(text):
        n = int(number)
        low, high = (low, min(high, n - 1)) if negated else (max(low, n), high)
    low = min(max(low, 16), 95)
    high = max(low, min(high, 95))
    return low + int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % (high - low + 1)


def _is_rural(constraint: str) -> bool | None:
    text = constraint.casefold()
    if re.search(r"\bnot (?:in |living in )?(?:a |the )?(?:city|cities|urban)", text) or re.search(
        r"rural|countryside|village|small town|outside (?:of )?(?:a |the )?(?:city|cities)", text
    ):
        return True
    if re.search(r"\b(?:city|cities|urban|metropolitan)\b", text):
        return False
    return None


def _gender(constraint: str, seed: str) -> str:
    text = constraint.casefold()
    negated = re.search(r"\bnot (?:a )?(women|woman|female|men|man|male)\b", text)
    if re.search(r"\b(?:women|woman|female|mothers)\b", text) and not negated:
        return "Female"
    if re.search(r"\b(?:men|man|male|fathers)\b", text) and not negated:
        return "Male"
    if negated:
        return "Male" if negated.group(1) in ("women", "woman", "female") else "Female"
    return _pick(seed + "g", ["Female", "Male"])


def persona_factory(request: ChatRequest) -> dict[str, Any]:
    """Plausible, distinct people from name lists, following each slot's constraint."""
    ctx = request.context
    description = str(ctx.get("description", "")) + " " + str(ctx.get("context", ""))
    code = _country(description)
    taken = {_fold(n) for n in ctx.get("avoid", [])}
    made = int(ctx.get("made", 0))
    asked_job = _job(description)
    asked_place = _place(description, code)
    personas = []
    for i, slot in enumerate(ctx.get("slots", [])):
        seed = f"{description}|{made + i}|{slot}|{ctx.get('retry')}"
        country = code or _pick(seed + "c", sorted(_NAMES))
        women, men, surnames, nationality, cities, towns = _NAMES[country]
        gender = _gender(slot, seed)
        firsts = women if gender == "Female" else men
        name = ""
        for attempt in range(200):
            candidate = f"{_pick(f'{seed}|f{attempt}', firsts)} {_pick(f'{seed}|s{attempt}', surnames)}"
            if _fold(candidate) not in taken:
                name = candidate
                break
        if not name:  # every combination used: a middle initial makes a new person
            name = f"{firsts[0]} {chr(65 + made % 26)}. {surnames[i % len(surnames)]}"
        taken.add(_fold(name))
        rural = _is_rural(slot)
        if rural is None:
            rural = _pick(seed + "r", "cct") == "t"
        title, organization, job = asked_job or _pick(seed + "j", _JOBS)
        working = asked_job is not None and not title.startswith(("Retired", "University student"))
        age = _age(slot, seed + "a", WORKING_AGE if working else ANY_AGE)
        if asked_job is None and (title == "Retired engineer" and age < 60 or title == "University student" and age > 30):
            title, organization, job = _JOBS[(_JOBS.index((title, organization, job)) + 1) % len(_JOBS)]
        personas.append(
            {
                "name": name,
                "age": age,
                "gender": gender,
                "nationality": nationality,
                "residence": asked_place or _pick(seed + "home", towns if rural else cities),
                "education": _pick(seed + "e", _EDUCATION),
                "occupation": {"title": title, "organization": _cap(organization), "description": job},
                "traits": _rank(seed + "t", _TRAITS)[:3],
                "interests": _rank(seed + "i", _INTERESTS)[:3],
                "likes": _rank(seed + "l", _LIKES)[:2],
                "dislikes": _rank(seed + "d", _DISLIKES)[:2],
                "skills": [f"Experienced {title.lower()}.", "Good with people."],
                "beliefs": _rank(seed + "b", _BELIEFS)[:2],
                "long_term_goals": _rank(seed + "o", _GOALS)[:2],
                "style": _pick(seed + "s", _STYLES),
            }
        )
    return {"personas": personas}


# -- polls ------------------------------------------------------------------------------------


#: The options an opening answer stands for, most fitting first (the last is a summary's word for it).
_LEAD_VOTES = {
    "yes": ("yes", "yeah", "yep", "sure", "agree", "for it"),
    "wait": ("later", "not yet", "wait", "no", "nope", "disagree", "would wait"),
    "no": ("no", "nope", "disagree", "not yet", "later", "against it"),
}


def _lead_vote(line: str, options: list[str]) -> str | None:
    """The option an answer's yes/no opening stands for, if one of them is on offer."""
    kind = lead_kind(line)
    if kind is None:
        return None
    offered = {o.casefold().strip(" .!"): o for o in options}
    return next((offered[v] for v in _LEAD_VOTES[kind] if v in offered), None)


def poll_answer(request: ChatRequest) -> dict[str, Any]:
    """The option sharing most words with what the persona likes, least with what it dislikes."""
    ctx = request.context
    p = _Persona(str(ctx.get("name", "")), ctx.get("persona") or {})
    options = [str(o) for o in ctx.get("options", [])] or ["(no options)"]
    seed = f"{p.name}|{ctx.get('question')}"
    fond = _words(" ".join([*p.likes, *p.interests, *p.beliefs, *p.goals, p.occupation]))
    wary = _words(" ".join(p.dislikes))
    # What the persona already said outweighs its general tastes: in its latest words naming an
    # option, the option named first is the one it chose ("I'd go with X; Y matters less").
    # Only words about this question count ("Yes, I think so" about pricing is no vote on Friday),
    # and an option counts as a whole word ("no" is not in "not yet").
    # An answer opening "Not yet" or "Yes, I think so" to a question on the same matter is a vote too.
    about = _words(str(ctx.get("question", ""))) - _words(" ".join(options))
    answered = ctx.get("answered", [])
    stated, statement = None, ""
    for exchange in reversed(answered):
        line, heard = str(exchange.get("said", "")), str(exchange.get("heard", ""))
        if about and not _words(f"{heard} {line}") & about:
            continue
        named = [(m.start(), o) for o in options
                 if (m := re.search(rf"(?<!\w){re.escape(o.casefold())}(?!\w)", line.casefold()))]
        stated = min(named)[1] if named else _lead_vote(line, options)
        if stated is not None:
            statement = line
            break
    scores = [10 * (o == stated) + len(_words(o) & fond) - 2 * len(_words(o) & wary) for o in options]
    best = max(scores)
    choice = _pick(seed, [o for o, s in zip(options, scores) if s == best])
    if choice == stated:
        return {"choice": choice, "reason": f"Like I said: {_first_sentence(statement, 200)}"}
    reasons = [
        *p.beliefs,
        *(f"I'm all for {_sentence(x)}" for x in p.likes),
        *(f"I'm wary of {_sentence(x)}" for x in p.dislikes),
        *(f"I care about {_sentence(x)}" for x in p.interests),
    ]
    reason = _sentence(_most_relevant(choice, reasons, seed)
                       or (f"it fits how I live as {_a(p.occupation)}" if p.occupation else "it fits how I live"))
    opener = _pick(seed + "o", ["Easy one.", "Honestly,", "For me it's clear."] if p.casual else ["I would choose this.", "On balance,", "For me,"])
    # After "On balance," the reason goes on in lower case; after a full sentence it starts one.
    return {"choice": choice, "reason": f"{opener} {reason if opener.endswith(',') else _cap(reason)}, so {choice} suits me best."}


# -- summaries --------------------------------------------------------------------------------


_ADDRESSEE = re.compile(r"^\s*[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)?,\s+")


#: A summary's word for a yes, a "not yet" and a no.
_VOTE_WORDS = ("For it.", "Would wait.", "Against it.")


#: A later round's "you've heard the others now, where do you agree?" goes on with the same topic.
_FOLLOW_UP = re.compile(r"^(?:you've heard\b|thinking it over\b)", re.IGNORECASE)


def _topics(events: list[dict[str, Any]], speakers: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The conversation cut where a person asks something new: each topic, as asked, with the
    personas' words said on it. The same question put to each persona in turn (a focus group) is
    one topic, and coming back to an earlier question adds to it."""
    topics: list[tuple[str, list[dict[str, Any]]]] = []
    current: list[dict[str, Any]] | None = None
    for event in events:
        if event.get("kind") == "stimulus" and event.get("source") not in speakers:
            # "Priya, would you pay…" asks Priya; the topic is what is asked.
            asked = " ".join(_ADDRESSEE.sub("", str(event.get("content", ""))).split())
            if not asked or (_FOLLOW_UP.match(asked) and current is not None):
                continue
            known = next((said for topic, said in topics if topic.casefold() == asked.casefold()), None)
            if known is None:
                topics.append((asked, []))
                known = topics[-1][1]
            current = known
        elif event.get("kind") == "action" and event.get("type") == "TALK":
            if current is None:  # personas talking before anyone asked: their first words set the topic
                topics.append((str(event.get("content", "")), []))
                current = topics[-1][1]
            current.append(event)
    return [(topic, said) for topic, said in topics if said]


def _label(topic: str, words: int) -> str:
    """A topic as quoted in a summary: its first ``words`` words."""
    cut = topic.split()
    return f"\"{_cap(' '.join(cut[:words]))}{'…' if len(cut) > words else ''}\""


def _statement(text: str, limit: int = 160) -> str:
    """The first sentence of ``text`` that is no question ("About the new logo? A feature nobody
    uses is a cost." states the second), exactly as written."""
    sentences = re.findall(r"\S.*?[.!?](?=\s|$)|\S.+$", text.strip(), re.DOTALL)
    stated = next((x for x in sentences if not x.rstrip().endswith("?")), text)
    return _first_sentence(stated, limit)


def summarize(request: ChatRequest) -> dict[str, Any]:
    """Topics in the order people raised them; on each, who is for it, who would wait and what the
    others said; each persona's stance is its answer on the latest topic it spoke to."""
    events = request.context.get("events", [])
    speakers = list(request.context.get("speakers", []))
    talks = [e for e in events if e.get("kind") == "action" and e.get("type") == "TALK"]
    topics = _topics(events, speakers)
    several = len(topics) > 1
    labels = [_label(topic, 14) for topic, _ in topics] or ["the topic"]
    points: list[str] = []
    latest: dict[str, dict[str, Any]] = {}
    for topic, said in topics:
        on = f"On {_label(topic, 8)}: " if several else ""
        grouped: dict[str, list[str]] = {}
        stances: list[str] = []
        for name in speakers:
            own = [e for e in said if e.get("source") == name]
            if not own:
                continue
            # A persona's stance is its answer to what was asked, not a later "Good question. My take: …"
            answer = own[0]
            content = str(answer["content"])
            vote = _lead_vote(content, [w.rstrip(".").casefold() for w in _VOTE_WORDS])
            stance = f"{_cap(vote)}." if vote else _statement(content)
            if vote:
                grouped.setdefault(stance, []).append(name)
            else:
                stances.append(f"{on}{name}: {stance}")
            latest[name] = {
                "persona": name,
                # Where several topics came up, a yes or no says which question it answered.
                "stance": f"{stance[:-1]} (on {_label(topic, 8)})." if vote and several else stance,
                # An answer opening "Not yet…" is put in a word; the quote then gives its reason too.
                "quotes": [{"event_id": answer["id"], "text": _clip(content, 160) if vote else _statement(content, 120)}],
            }
        # Yes/no answers are grouped by their word ("Would wait: Henrik Lindqvist, Tomasz Kowalski").
        votes = [f"{word.rstrip('.')}: {', '.join(grouped[word])}" for word in _VOTE_WORDS if word in grouped]
        if votes:  # one line a topic when there are several
            points += [on + "; ".join(votes)] if several else votes
        points += stances
    about = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])}, then {labels[-1]}"
    overview = (
        f"{len(speakers)} persona{'s' if len(speakers) != 1 else ''} ({', '.join(speakers)}) talked about "
        f"{about} in {len(talks)} message{'s' if len(talks) != 1 else ''}. (Composed by the offline demo model.)"
    )
    positions = [latest[name] for name in speakers if name in latest]
    return {"overview": overview, "key_points": points, "positions": positions}


# -- extraction -------------------------------------------------------------------------------

_LINE_HEAD = re.compile(r"^(?:\[\d\d:\d\d\]\s*)?(?:\([^)]*\)\s*)?(?:[^:]{1,60}:\s+)?")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_YES = {"yes", "agree", "like", "love", "support", "choose", "would", "definitely"}
_NO = {"no", "not", "never", "against", "wary", "hate", "dislike", "won't", "wouldn't"}


def extract(request: ChatRequest) -> Any:
    """Fills the schema from the material: persona facts by name, else the most relevant line."""
    ctx = request.context
    lines = [str(line) for line in ctx.get("lines", [])]
    persona = ctx.get("persona") or {}
    return _fill(_schema_of(request), "", lines, persona, str(ctx.get("subject", "")))


_TOPIC_KEYS = {"topic", "question", "subject", "theme", "prompt"}


def _body(line: str) -> str:
    return _LINE_HEAD.sub("", line, count=1).strip()


def _said_by(lines: list[str], subject: str) -> list[str]:
    """The subject's own lines when it has any (a record about a persona is built from its words,
    never from someone else's), else every line."""
    return (_own_lines(lines, subject) if subject else []) or lines


def _own_lines(lines: list[str], subject: str) -> list[str]:
    """What the subject said: "You: ..." in a persona's memory, "Name: ..." in a transcript."""
    heads = ("You:", "You (to ", f"{subject}:", f"{subject} (to ")
    return [line for line in lines if re.sub(r"^\[\d\d:\d\d\]\s*", "", line).startswith(heads)]


#: Fields that ask where someone stands: their latest words answer them when nothing says more.
_STANCE_KEYS = {"stance", "opinion", "view", "position", "attitude", "sentiment", "take", "answer", "summary"}


_SHORT_STOP = {"the", "and", "you", "for", "are", "was", "not", "but", "too", "our", "its", "how", "why", "who", "any"}


def _field_words(text: str) -> set[str]:
    """Words that tie a line to a field: short ones too ("pay" in "willingness_to_pay"), endings aside."""
    return {_stem(w) for w in re.findall(r"[a-zà-ÿ]{3,}", text.casefold()) if w not in _STOP and w not in _SHORT_STOP}


def _relevant(lines: list[str], key: str, description: str, subject: str) -> str | None:
    """The topic for topic-like fields; else, among the subject's own words (all lines when it said
    nothing), the line that with the question it answered shares most words with the field; else,
    for a stance, its last words, and for any other field nothing (a field the talk never touched
    stays empty rather than repeating the last message)."""
    bodies = [b for b in (_body(line) for line in lines) if b]
    if not bodies:
        return None
    if key.casefold() in _TOPIC_KEYS:
        return bodies[0]
    own = _own_lines(lines, subject)
    wanted = _field_words(key.replace("_", " ") + " " + description)
    chosen = _said_by(lines, subject)
    best, found, heard = 0, None, ""
    for line in lines:
        body = _body(line)
        if line in chosen and body:
            # "Not yet. I'm wary of roadmap promises" answers "would you pay 5 euros?": both count.
            score = len(_field_words(f"{body} {heard if line in own else ''}") & wanted)
            if score > best:
                best, found = score, body
        if line not in own:
            heard = body
    if found is not None:
        return found
    if key.casefold() not in _STANCE_KEYS and not description:
        return None
    mine = [b for b in (_body(line) for line in own) if b]
    return (mine or [b for b in (_body(line) for line in chosen) if b] or bodies)[-1]


def _fill(schema: dict[str, Any], key: str, lines: list[str], persona: dict[str, Any], subject: str) -> Any:
    kind = schema.get("type")
    nullable = isinstance(kind, list) and "null" in kind
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if not options:
            return None
        # A field that may be null stays null when the talk never touched it.
        nullable = len(options) < len(schema["anyOf"])
        return _fill({**options[0], "type": [options[0].get("type"), "null"]} if nullable else options[0],
                     key, lines, persona, subject)
    description = str(schema.get("description", ""))
    fact = persona.get(key) if key else None
    if isinstance(fact, dict):
        fact = fact.get("title")
    if key == "name" and subject and not persona:
        fact = None
    if schema.get("enum"):
        text = " ".join(_said_by(lines, subject)).casefold()
        counts = [(text.count(str(v).casefold()), -i, v) for i, v in enumerate(schema["enum"])]
        best = max(counts)
        return best[2] if best[0] or not nullable else None
    if kind == "object":
        return {k: _fill(v, k, lines, persona, subject) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        item = schema.get("items", {})
        if item.get("type") in ("string", ["string", "null"]):
            picked = []
            for line in reversed(_said_by(lines, subject)):
                body = _LINE_HEAD.sub("", line, count=1).strip()
                if body and body not in picked:
                    picked.append(body)
                if len(picked) == 3:
                    break
            return picked[::-1]
        return [_fill(item, key, lines, persona, subject)]
    line = _relevant(lines, key, description, subject)
    if kind in ("integer", "number"):
        if isinstance(fact, (int, float)) and not isinstance(fact, bool):
            return fact
        found = _NUMBER.search(line or "")
        if found:
            return int(float(found.group())) if kind == "integer" else float(found.group())
        return None if nullable else 0
    if kind == "boolean":
        words = set((line or "").casefold().replace(",", " ").replace(".", " ").split())
        return len(words & _YES) > len(words & _NO)
    if kind == "null":
        return None
    if fact is not None and not isinstance(fact, (list, dict)) and str(fact):
        return str(fact)
    if key in ("name", "persona", "who") and subject:
        return subject
    return line if line is not None else (None if nullable else "")


# -- enrichment -------------------------------------------------------------------------------


def enrich(request: ChatRequest) -> dict[str, Any]:
    """The content kept whole, followed by one concrete line per requirement."""
    ctx = request.context
    content = str(ctx.get("content", "")).strip()
    requirements = [r.strip() for r in re.split(r"[;\n]|\.\s", str(ctx.get("requirements", ""))) if r.strip()]
    topic = " ".join(content.split()[:8]).rstrip(".,;:")
    details = [_detail(r, topic) for r in requirements] or [
        f"- Who it is for: people who want \"{topic}\" without the fuss.",
        "- What it costs: €4.99 a month, the first month free.",
    ]
    if ctx.get("earlier"):
        details.append("- Consistent with the earlier material.")
    return {"content": "\n".join([content, "", *details, "", "(Details made up by the offline demo model.)"])}


def _detail(requirement: str, topic: str) -> str:
    """A made-up line that does what ``requirement`` asks (a price, a testimonial, a date…), or says it
    is left to a language model."""
    asked = requirement.casefold()
    lines = []
    if re.search(r"\b(price|cost|pricing|fee)", asked):
        lines.append("Price: €4.99 a month, the first month free.")
    if re.search(r"\b(testimonial|quote|review)", asked):
        lines.append("\u201cIt gave me back an hour every day.\u201d \u2014 Marta, early user")
    if re.search(r"\b(date|deadline|launch|when)", asked):
        lines.append("Available from 1 March.")
    if re.search(r"\b(audience|who|target)", asked):
        lines.append(f"Made for busy people who want \"{topic}\" without the fuss.")
    if not lines:
        return f"- {_cap(requirement.rstrip('.'))}: not worked in (the demo model writes only prices, testimonials, dates and audiences)."
    return "\n".join(f"- {line}" for line in lines)


# -- storytelling -----------------------------------------------------------------------------


def story_beat(request: ChatRequest) -> dict[str, Any]:
    """Opens on the purpose; then turns to the quietest persona, the whole group, or a new scene,
    never repeating a beat the personas already heard."""
    ctx = request.context
    purpose = str(ctx.get("purpose", "")).strip().rstrip(".")
    personas = list(ctx.get("personas", []))
    said_by = ctx.get("said_by", {})
    recent = ctx.get("recent", [])
    aim = _sentence(purpose)
    if not recent or not personas:
        return {
            "kind": "message",
            "content": f"Let's begin. Our aim: {aim}. What comes to mind first?",
            "target": None,
            "rationale": "Nothing has happened yet, so the beat opens on the purpose.",
        }
    quietest = min(personas, key=lambda n: (said_by.get(n, 0), personas.index(n)))
    last = next((e for e in reversed(recent) if e.get("type") == "TALK"), None)
    hook = f" {last['source']} said: \"{_telling_sentence(str(last['content']), 80)}\"" if last else ""
    beats = sum(1 for e in recent if e.get("source") == "narrator" or e.get("type") == "VISUAL")
    candidates = [
        {
            "kind": "message",
            "content": f"{quietest.split()[0]}, we haven't heard much from you yet.{hook} Where do you stand? Our aim: {aim}.",
            "target": quietest,
            "rationale": f"{quietest} has spoken least, and the purpose needs every view.",
        },
        {
            "kind": "message",
            "content": f"Let's hear from everyone on this: {aim}. What would change your mind?",
            "target": None,
            "rationale": "Opening the question to the whole group surfaces disagreement.",
        },
        {
            "kind": "scene",
            "content": f"Something new happens that bears on the question at hand ({aim}): a friend shares a strong opinion about it.",
            "target": None,
            "rationale": "A scene change keeps the conversation moving towards the purpose.",
        },
    ]
    heard = {str(e.get("content", "")) for e in recent} | {str(ctx.get("repeated", ""))}
    fresh = [c for c in candidates if c["content"] not in heard]
    if fresh:
        return fresh[0] if beats % 3 != 2 else fresh[-1]
    return {**candidates[2], "content": f"Later, beat {beats + 1}: {candidates[2]['content']}"}


# -- validation -------------------------------------------------------------------------------


def validation_questions(request: ChatRequest) -> dict[str, Any]:
    ctx = request.context
    questions = [
        "Tell me a little about yourself and your work: what does a normal week look like?",
        "What do you enjoy most, and what do you try to avoid?",
        "What do you believe in strongly, and why?",
        "What do you hope to achieve in the next few years?",
    ]
    return {"questions": questions[: max(1, int(ctx.get("n", 3)))]}


def _stem(word: str) -> str:
    """A word without its common English endings, so "protects" meets "protect" and "protecting"."""
    for ending in ("ing", "ed", "es", "s"):
        if len(word) > len(ending) + 3 and word.endswith(ending):
            return word[: -len(ending)]
    return word


def validation_judge(request: ChatRequest) -> dict[str, Any]:
    """Share of the expectations' words the persona's answers and profile bear out, minus contradictions."""
    ctx = request.context
    p = _Persona(str(ctx.get("name", "")), ctx.get("persona") or {})
    expected = {_stem(w): w for w in _words(str(ctx.get("expectations", "")))}
    answers = " ".join(str(t.get("answer", "")) for t in ctx.get("transcript", []))
    profile = p.all_text
    for dislike in p.dislikes:
        profile = profile.replace(dislike, " ")
    support = {_stem(w) for w in _words(answers) | _words(profile)}
    # A word of what the persona dislikes speaks against it only where nothing else it says supports it
    # ("roadmap promises made to prospects" is a dislike; owning the roadmap is the job).
    disliked = {_stem(w) for w in _words(" ".join(p.dislikes))} - support
    against = sorted(expected[k] for k in expected.keys() & disliked)
    matched = sorted(expected[k] for k in expected.keys() & support)
    missing = sorted(set(expected.values()) - set(matched) - set(against))
    score = 0.0 if not expected else max(0.0, (len(matched) - len(against)) / len(expected))
    score = round(min(1.0, 0.1 + 0.9 * score), 2)
    parts = [f"Borne out: {', '.join(matched[:8]) or 'nothing'}."]
    if against:
        parts.append(f"Contradicted by what {p.first} dislikes: {', '.join(sorted(against)[:5])}.")
    if missing:
        parts.append(f"Not shown: {', '.join(missing[:8])}.")
    parts.append("(Scored by word overlap by the offline demo model.)")
    return {"score": score, "justification": " ".join(parts)}


def validation_drift(request: ChatRequest) -> dict[str, Any]:
    """Share of recent lines that draw on the persona's own words; under half counts as drift."""
    ctx = request.context
    p = _Persona(str(ctx.get("name", "")), ctx.get("persona") or {})
    own = _words(p.all_text)
    recent = [str(line) for line in ctx.get("recent", [])]
    off = [line for line in recent if not (_words(line) & own)]
    consistency = round(1 - len(off) / len(recent), 2) if recent else 1.0
    findings = [f"Out of character? {line[:120]}" for line in off[:3]] or [
        f"Recent words draw on {p.first}'s own interests, beliefs and work."
    ]
    return {"consistency": consistency, "drifted": consistency < 0.5, "findings": findings}


HANDLERS: dict[str, Handler] = {
    "sampling_plan": sampling_plan,
    "persona_factory": persona_factory,
    "poll_answer": poll_answer,
    "summarize": summarize,
    "extract": extract,
    "enrich": enrich,
    "story_beat": story_beat,
    "validation_questions": validation_questions,
    "validation_judge": validation_judge,
    "validation_drift": validation_drift,
}
