"""Invents personas for a described population, a few per model call, with no two alike.

A research run needs many distinct people quickly; asking for them one at a time is slow and gives
look-alikes, asking for all at once overflows replies. So personas come in small batches, each
batch told who already exists. What the model returns is checked in code (valid persona, unique
name, plausible age); bad entries are asked for once more, then the factory fails with a typed error
rather than hand back a broken cast. A sampling plan ("40 % under 30, half of them in cities") is
turned into exact per-persona quotas in code, so the cast adds up to ``n`` on every run.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field, field_validator

from simulation.llm.base import ChatRequest, LanguageModel, Message
from simulation.llm.errors import LLMError, StructuredOutputError
from simulation.persona import PersonaError, PersonaSpec

__all__ = [
    "BATCH_SIZE",
    "PersonaFactory",
    "PersonaFactoryError",
    "SamplingCell",
    "SamplingPlan",
]

#: Personas per model call: small enough for a short reply, large enough to contrast them.
BATCH_SIZE = 5
MAX_AGE = 110


class PersonaFactoryError(LLMError):
    """The model could not produce valid, distinct personas, even after being asked again.

    ``made``: the valid personas it did produce, for a caller that would rather keep them than
    nothing (a small local model often gets one of five wrong twice).
    """

    def __init__(self, message: str, *, problems: Iterable[str] = (), raw: str = "",
                 made: Iterable[PersonaSpec] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)
        self.raw = raw
        self.made = list(made)


# -- sampling plans ---------------------------------------------------------------------------


class SamplingCell(BaseModel):
    """One group of the population: its share and what every member has in common."""

    share: float = Field(description="Fraction of the whole population in this group, 0 to 1")
    traits: list[str] = Field(description="What everyone in the group has in common, e.g. 'under 30', 'lives in a city'")

    @field_validator("share")
    @classmethod
    def _is_a_fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"share must be between 0 and 1, got {value}")
        return value


class SamplingPlan(BaseModel):
    """A population split into non-overlapping groups; shares need not sum exactly to 1."""

    cells: list[SamplingCell] = Field(description="Non-overlapping groups whose shares add up to 1")

    def allocate(self, n: int) -> list[str]:
        """One constraint per persona (``""`` for none), exactly ``n``, the same on every run.

        Largest-remainder quotas (ties to the earlier group), then interleaved so each batch of
        personas mixes the groups instead of taking one group at a time.
        """
        cells = [(c.share, "; ".join(t.strip() for t in c.traits if t.strip())) for c in self.cells if c.share > 0]
        total = sum(share for share, _ in cells)
        if n <= 0 or total <= 0:
            return [""] * max(n, 0)
        if total < 1 - 1e-6:
            cells.append((1 - total, ""))  # the rest of the population, unconstrained
            total = 1.0
        quotas = [share / total * n for share, _ in cells]
        counts = [int(q) for q in quotas]
        by_remainder = sorted(range(len(cells)), key=lambda i: (-(quotas[i] - counts[i]), i))
        for i in by_remainder[: n - sum(counts)]:
            counts[i] += 1
        slots = [
            ((j + 0.5) / count, i, cells[i][1]) for i, count in enumerate(counts) for j in range(count)
        ]
        return [text for _, _, text in sorted(slots)]


# -- what the model returns -------------------------------------------------------------------


class GeneratedOccupation(BaseModel):
    title: str
    organization: str
    description: str


class GeneratedPersona(BaseModel):
    """A persona as the model writes it: flat and fixed, so strict structured output accepts it."""

    name: str = Field(description="Full name that fits the person's background")
    age: int
    gender: str
    nationality: str
    residence: str = Field(description="City or town, and country")
    education: str
    occupation: GeneratedOccupation
    traits: list[str] = Field(description="Personality traits, 3 to 5")
    interests: list[str]
    likes: list[str]
    dislikes: list[str]
    skills: list[str]
    beliefs: list[str]
    long_term_goals: list[str]
    style: str = Field(description="How the person talks and writes")

    def to_tinytroupe(self) -> dict[str, Any]:
        """TinyTroupe's persona layout, so generated people save and load like hand-written ones."""
        return {
            "name": self.name.strip(),
            "age": self.age,
            "gender": self.gender,
            "nationality": self.nationality,
            "residence": self.residence,
            "education": self.education,
            "occupation": self.occupation.model_dump(),
            "personality": {"traits": self.traits},
            "preferences": {"interests": self.interests, "likes": self.likes, "dislikes": self.dislikes},
            "skills": self.skills,
            "beliefs": self.beliefs,
            "long_term_goals": self.long_term_goals,
            "style": self.style,
        }


class PersonaBatch(BaseModel):
    personas: list[GeneratedPersona]


# -- names ------------------------------------------------------------------------------------


def _name_key(name: str) -> str:
    """Names compare without case, accents or extra spaces: "José  Díaz" equals "jose diaz"."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


class _Names:
    """Names already in use (given ones and generated ones)."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = {_name_key(n): n.strip() for n in names if n and n.strip()}
        self._given = set(self._names)

    def given(self, name: str) -> bool:
        """Whether ``name`` is one of the names given at the start (a persona already in the world)."""
        return _name_key(name) in self._given

    def __contains__(self, name: str) -> bool:
        return _name_key(name) in self._names

    def add(self, name: str) -> None:
        self._names.setdefault(_name_key(name), name.strip())

    def sorted(self) -> list[str]:
        return sorted(self._names.values(), key=_name_key)

    def unique(self, name: str) -> str:
        """``name`` made unique the same way every time: a middle initial, then a number."""
        parts = name.split()
        for letter in "ABCDEFGHJKLMNPRSTVW":
            candidate = (
                " ".join([*parts[:-1], f"{letter}.", parts[-1]]) if len(parts) > 1 else f"{name} {letter}."
            )
            if candidate not in self:
                return candidate
        number = 2
        while f"{name} {number}" in self:
            number += 1
        return f"{name} {number}"


# -- the factory ------------------------------------------------------------------------------

_SYSTEM = (
    "You create realistic personas for simulations of the population described below. Each is a "
    "distinct, believable individual: a full name that fits their background, an age, a job, a home, "
    "and the traits, interests, likes, dislikes, skills, beliefs, goals and speaking style that make "
    "them behave like a real person with real opinions. Make them differ from each other and from the "
    "people already created along every dimension the description names (age, gender, place, "
    "income, occupation, views...). Follow each slot's constraint exactly. Never reuse a name."
)

_PLAN_SYSTEM = (
    "Turn the sampling plan below into non-overlapping groups of the population. Each group has a "
    "share (fraction 0-1 of the whole population) and the traits all its members share. Nested parts "
    "(\"half of them...\") split their parent group. Shares must add up to 1: include the rest of the "
    "population as a group too."
)


class PersonaFactory:
    """Generates personas with ``model``; ``context`` is extra background added to every request."""

    def __init__(self, model: LanguageModel, context: str = "", *, batch_size: int = BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model
        self.context = context
        self.batch_size = batch_size
        #: (name, constraint) for every persona of the last ``generate``, to check the quotas.
        self.assignments: list[tuple[str, str]] = []

    async def generate(
        self,
        n: int,
        population_description: str,
        *,
        sampling_plan: str | SamplingPlan | None = None,
        existing_names: Iterable[str] = (),
    ) -> list[PersonaSpec]:
        """``n`` new personas from the population, none named like each other or ``existing_names``.

        Raises ``PersonaFactoryError`` when the model keeps returning invalid personas (after one
        re-ask of the bad ones), once every batch was tried; its ``made`` holds the valid ones. The
        model layer's typed errors are raised for transport failures.
        """
        if n < 0:
            raise ValueError(f"cannot generate {n} personas")
        if not population_description.strip():
            raise ValueError("generating personas needs a description of the population")
        self.assignments = []
        if n == 0:
            return []
        constraints = await self.constraints(n, sampling_plan)
        names = _Names(existing_names)
        made: list[PersonaSpec] = []
        kept: list[str] = []
        failures: list[str] = []
        try:
            for start in range(0, n, self.batch_size):
                slots = constraints[start : start + self.batch_size]
                results, failed = await self._batch(population_description, slots, names, made)
                made += [spec for spec in results if spec is not None]
                kept += [c for spec, c in zip(results, slots) if spec is not None]
                failures += [f"persona {start + i + 1}: {problem}" for i, problem in failed]
        except PersonaFactoryError as error:  # no usable answer at all: the earlier batches still count
            error.made = made + error.made
            raise
        finally:
            self.assignments = [(spec.name, c) for spec, c in zip(made, kept)]
        if failures:
            raise PersonaFactoryError(
                f"{self.model.name} gave invalid personas twice: " + " | ".join(failures), problems=failures,
                made=made,
            )
        return made

    async def constraints(self, n: int, sampling_plan: str | SamplingPlan | None) -> list[str]:
        """The per-persona constraints of a plan (asked of the model when the plan is text)."""
        if sampling_plan is None or (isinstance(sampling_plan, str) and not sampling_plan.strip()):
            return [""] * n
        plan = sampling_plan if isinstance(sampling_plan, SamplingPlan) else await self._parse_plan(sampling_plan)
        return plan.allocate(n)

    async def _parse_plan(self, text: str) -> SamplingPlan:
        request = ChatRequest(
            messages=[
                Message(role="system", content=_PLAN_SYSTEM),
                Message(role="user", content=f"Sampling plan: {text}"),
            ],
            task="sampling_plan",
            context={"plan": text},
        )
        try:
            plan, _ = await self.model.structured(request, SamplingPlan)
        except StructuredOutputError as error:
            raise PersonaFactoryError(
                f"could not turn the sampling plan into groups: {error}", problems=[str(error)], raw=error.raw
            ) from error
        if not plan.cells or sum(c.share for c in plan.cells) <= 0:
            raise PersonaFactoryError(f"the sampling plan {text!r} gave no groups with a share")
        return plan

    # -- batches ------------------------------------------------------------------------------

    async def _batch(
        self, description: str, slots: list[str], names: _Names, made: list[PersonaSpec]
    ) -> tuple[list[PersonaSpec | None], list[tuple[int, str]]]:
        """A persona for each slot (None where the model failed twice), and (slot, problems) of those."""
        reply = await self._ask(self._request(description, slots, names, made))
        results: list[PersonaSpec | None] = [None] * len(slots)
        problems: dict[int, list[str]] = {}
        for i, slot in enumerate(slots):
            entry = reply.personas[i] if i < len(reply.personas) else None
            spec, issues = _check(entry, slot, names)
            if spec is not None:
                results[i] = spec
                names.add(spec.name)
            else:
                problems[i] = issues
        failed = await self._redo(description, slots, problems, results, names, made) if problems else []
        return results, failed

    async def _redo(
        self,
        description: str,
        slots: list[str],
        problems: dict[int, list[str]],
        results: list[PersonaSpec | None],
        names: _Names,
        made: list[PersonaSpec],
    ) -> list[tuple[int, str]]:
        """Ask once more for the bad slots only; a name clash left after that is renamed. Returns the
        slots still bad, with their problems."""
        bad = sorted(problems)
        done = [spec for spec in results if spec is not None]
        complaint = "\n".join(
            f"- persona {n + 1}: " + "; ".join(problems[i]) for n, i in enumerate(bad)
        )
        request = self._request(description, [slots[i] for i in bad], names, made + done, complaint=complaint)
        reply = await self._ask(request)
        failures: list[tuple[int, str]] = []
        for n, i in enumerate(bad):
            entry = reply.personas[n] if n < len(reply.personas) else None
            spec, issues = _check(entry, slots[i], names)
            if spec is None and entry is not None and names.given(entry.name):
                # A copy of someone already here: renamed ("Henrik A. Lindqvist") it would pass for them.
                issues = [f"name {entry.name.strip()!r} belongs to a persona already in the world"]
            elif spec is None and entry is not None and all(p.startswith("name ") for p in issues):
                data = entry.to_tinytroupe()
                data["name"] = names.unique(entry.name.strip())
                spec, issues = _check_data(data, slots[i], names)
            if spec is None:
                failures.append((i, "; ".join(issues)))
                continue
            results[i] = spec
            names.add(spec.name)
        return failures

    async def _ask(self, request: ChatRequest) -> PersonaBatch:
        try:
            batch, _ = await self.model.structured(request, PersonaBatch)
        except StructuredOutputError as error:
            raise PersonaFactoryError(
                f"{self.model.name} gave no valid persona list after a re-ask: {error}",
                problems=[str(error)],
                raw=error.raw,
            ) from error
        return batch

    def _request(
        self,
        description: str,
        slots: list[str],
        names: _Names,
        made: list[PersonaSpec],
        *,
        complaint: str = "",
    ) -> ChatRequest:
        system = _SYSTEM + (f"\nBackground: {self.context}" if self.context else "")
        lines = [f"Population: {description.strip()}", f"Create exactly {len(slots)} personas, in this order:"]
        lines += [f"{i + 1}. {slot or 'any member of the population'}" for i, slot in enumerate(slots)]
        if made:
            lines.append("Already created (differ from them):")
            lines += [f"- {spec.summary()}" for spec in made[-20:]]
        taken = names.sorted()
        if taken:
            lines.append("Names already taken (do not use): " + ", ".join(taken))
        if complaint:
            lines += ["Your previous answer had problems:", complaint, "Create these personas again."]
        return ChatRequest(
            messages=[Message(role="system", content=system), Message(role="user", content="\n".join(lines))],
            task="persona_factory",
            context={
                "description": description,
                "context": self.context,
                "slots": slots,
                "avoid": taken,
                "made": len(made),
                "retry": bool(complaint),
            },
        )


def _check(entry: GeneratedPersona | None, slot: str, names: _Names) -> tuple[PersonaSpec | None, list[str]]:
    if entry is None:
        return None, ["missing: the reply had fewer personas than asked for"]
    return _check_data(entry.to_tinytroupe(), slot, names)


def _check_data(data: dict[str, Any], slot: str, names: _Names) -> tuple[PersonaSpec | None, list[str]]:
    """A valid spec, or the problems that make it unusable (name problems start with "name ")."""
    issues: list[str] = []
    name = str(data.get("name") or "")
    if not name.strip():
        issues.append("the persona has no name")
    elif name in names:
        issues.append(f"name {name!r} is already taken")
    age = data.get("age")
    if isinstance(age, int) and not 0 <= age <= MAX_AGE:
        issues.append(f"age {age} is not a plausible age")
    if issues:
        return None, issues
    try:
        spec = PersonaSpec.from_data(data, source="persona factory")
    except PersonaError as error:
        return None, [str(error).removeprefix("persona factory: ")]
    return spec, []
