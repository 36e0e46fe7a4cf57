"""Personas as a model writes them for the persona factory."""

from __future__ import annotations

import json


def person(name: str, age: int = 41, **extra: object) -> dict:
    data = {
        "name": name,
        "age": age,
        "gender": "Female",
        "nationality": "Spanish",
        "residence": "Valencia, Spain",
        "education": "Bachelor's degree",
        "occupation": {"title": "Nurse", "organization": "Hospital La Fe", "description": "Night shifts on a ward."},
        "traits": ["Calm under pressure."],
        "interests": ["Running."],
        "likes": ["Paella on Sundays."],
        "dislikes": ["Traffic."],
        "skills": ["Triage."],
        "beliefs": ["Public health care is worth paying for."],
        "long_term_goals": ["To lead a ward."],
        "style": "Warm and direct.",
    }
    data.update(extra)
    return data


def batch(*people: dict) -> str:
    return json.dumps({"personas": list(people)})
