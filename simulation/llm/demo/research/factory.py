"""The demo's persona factory: plausible, distinct people from name lists, following the job, place and
country a description names and each slot's constraint (age, gender, city or countryside)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo.research.ages import ANY_AGE, WORKING_AGE, age_within
from simulation.llm.demo.seeded import pick, stable_order
from simulation.llm.demo.text import capitalised

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
    return pick(seed + "g", ["Female", "Male"])


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
        country = code or pick(seed + "c", sorted(_NAMES))
        women, men, surnames, nationality, cities, towns = _NAMES[country]
        gender = _gender(slot, seed)
        firsts = women if gender == "Female" else men
        name = ""
        for attempt in range(200):
            candidate = f"{pick(f'{seed}|f{attempt}', firsts)} {pick(f'{seed}|s{attempt}', surnames)}"
            if _fold(candidate) not in taken:
                name = candidate
                break
        if not name:  # every combination used: a middle initial makes a new person
            name = f"{firsts[0]} {chr(65 + made % 26)}. {surnames[i % len(surnames)]}"
        taken.add(_fold(name))
        rural = _is_rural(slot)
        if rural is None:
            rural = pick(seed + "r", "cct") == "t"
        title, organization, job = asked_job or pick(seed + "j", _JOBS)
        working = asked_job is not None and not title.startswith(("Retired", "University student"))
        age = age_within(slot, seed + "a", WORKING_AGE if working else ANY_AGE)
        if asked_job is None and (title == "Retired engineer" and age < 60 or title == "University student" and age > 30):
            title, organization, job = _JOBS[(_JOBS.index((title, organization, job)) + 1) % len(_JOBS)]
        personas.append(
            {
                "name": name,
                "age": age,
                "gender": gender,
                "nationality": nationality,
                "residence": asked_place or pick(seed + "home", towns if rural else cities),
                "education": pick(seed + "e", _EDUCATION),
                "occupation": {"title": title, "organization": capitalised(organization), "description": job},
                "traits": stable_order(seed + "t", _TRAITS)[:3],
                "interests": stable_order(seed + "i", _INTERESTS)[:3],
                "likes": stable_order(seed + "l", _LIKES)[:2],
                "dislikes": stable_order(seed + "d", _DISLIKES)[:2],
                "skills": [f"Experienced {title.lower()}.", "Good with people."],
                "beliefs": stable_order(seed + "b", _BELIEFS)[:2],
                "long_term_goals": stable_order(seed + "o", _GOALS)[:2],
                "style": pick(seed + "s", _STYLES),
            }
        )
    return {"personas": personas}
