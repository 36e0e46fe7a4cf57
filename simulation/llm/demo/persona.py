"""The bits of a persona the demo model draws on, read from any persona layout (flat or TinyTroupe's nested one)."""

from __future__ import annotations

from typing import Any


def _flatten(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _flatten(v)]
    if isinstance(value, list):
        return [s for v in value for s in _flatten(v)]
    return [str(value)] if isinstance(value, str) and value else []


class Persona:
    """The bits of a persona the demo model draws on."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.name = name
        self.first = name.split()[0] if name else "I"
        occupation = data.get("occupation")
        if isinstance(occupation, dict):
            occupation = occupation.get("title") or ""
        self.occupation = str(occupation or "")
        prefs = data.get("preferences") if isinstance(data.get("preferences"), dict) else {}
        self.interests = _flatten(prefs.get("interests") or data.get("interests") or [])
        self.likes = _flatten(prefs.get("likes") or data.get("likes") or [])
        self.dislikes = _flatten(prefs.get("dislikes") or data.get("dislikes") or [])
        self.beliefs = _flatten(data.get("beliefs") or [])
        self.goals = _flatten(data.get("long_term_goals") or data.get("goals") or [])
        personality = data.get("personality")
        traits = personality.get("traits") if isinstance(personality, dict) else data.get("traits")
        self.traits = _flatten(traits or [])
        self.style = str(data.get("style") or data.get("speaking_style") or "")
        self.all_text = " ".join(_flatten(data))

    @property
    def casual(self) -> bool:
        return any(w in self.style.lower() for w in ("casual", "informal", "blunt", "direct", "laid-back"))
