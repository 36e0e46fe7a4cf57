"""Persona validation: does a simulated person behave like the person it is meant to be?

Before trusting a cast, a researcher interviews it. The validator asks a persona a few questions
(written from the expectations), the persona answers through its normal turn on a copy of itself,
so the interview leaves the real persona's memory untouched, and a judge scores the answers against
the expectations. ``drift`` reads what a persona has recently said and thought in its world and
checks it still matches its spec.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from simulation.actions import ActionType
from simulation.agent import TinyPerson
from simulation.disclaimer import Labelled
from simulation.llm.base import Attribution, ChatRequest, LanguageModel, Message
from simulation.prompts import render_persona

__all__ = ["DriftReport", "InterviewTurn", "PersonaValidator", "ValidationResult"]

INTERVIEWER = "interviewer"
DEFAULT_QUESTIONS = 3


class InterviewTurn(BaseModel):
    question: str
    answer: str


class ValidationResult(Labelled):
    persona: str
    #: 0 (nothing like the expectations) to 1 (exactly as expected).
    score: float
    justification: str
    transcript: list[InterviewTurn]

    @property
    def passed(self) -> bool:
        return self.score >= 0.5


class DriftReport(Labelled):
    persona: str
    #: 0 (nothing like the spec) to 1 (fully in character); None when there was nothing to read.
    consistency: float | None
    drifted: bool
    findings: list[str] = Field(default_factory=list)
    #: How many recent actions were read.
    actions_read: int = 0


def _fraction(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"must be between 0 and 1, got {value}")
    return value


class _Questions(BaseModel):
    questions: list[str] = Field(description="Interview questions, each one short and open")


class _Judgement(BaseModel):
    score: float = Field(description="0 to 1: how well the answers match the expectations")
    justification: str = Field(description="Why, citing the answers, two or three sentences")

    @field_validator("score")
    @classmethod
    def _is_fraction(cls, value: float) -> float:
        return _fraction(value)


class _DriftJudgement(BaseModel):
    consistency: float = Field(description="0 to 1: how consistent the recent behaviour is with the persona")
    drifted: bool = Field(description="True when the person no longer behaves like the persona")
    findings: list[str] = Field(description="Specific inconsistencies, or what stayed in character")

    @field_validator("consistency")
    @classmethod
    def _is_fraction(cls, value: float) -> float:
        return _fraction(value)


_QUESTIONS_SYSTEM = (
    "You prepare a short interview that tests whether a simulated persona matches expectations. "
    "Write open questions that let the person show (not merely claim) the expected traits."
)
_JUDGE_SYSTEM = (
    "You judge whether a simulated persona behaves as expected. Read the persona, the expectations "
    "and the interview, and score from 0 (not at all) to 1 (fully), citing the answers."
)
_DRIFT_SYSTEM = (
    "You check whether a simulated persona still behaves like its specification. Compare its "
    "recent words and thoughts with the persona and report inconsistencies (opinions, tone, facts "
    "about itself)."
)


class PersonaValidator:
    def __init__(self, model: LanguageModel) -> None:
        self.model = model

    async def validate(
        self,
        person: TinyPerson,
        expectations: str,
        *,
        questions: list[str] | None = None,
        n_questions: int = DEFAULT_QUESTIONS,
    ) -> ValidationResult:
        """Interview ``person`` (on a copy) and score the answers against ``expectations``."""
        if not expectations.strip():
            raise ValueError("validation needs expectations to check against")
        asked = [q.strip() for q in questions or [] if q.strip()] or await self._questions(person, expectations, n_questions)
        transcript = await self.interview(person, asked)
        request = ChatRequest(
            messages=[
                Message(role="system", content=_JUDGE_SYSTEM),
                Message(
                    role="user",
                    content="\n".join(
                        [
                            f"Persona of {person.name}:",
                            *render_persona(person.persona_data),
                            f"Expectations: {expectations}",
                            "Interview:",
                            *(f"Q: {t.question}\nA: {t.answer}" for t in transcript),
                        ]
                    ),
                ),
            ],
            attribution=Attribution(world=person.world_id, persona=person.name),
            task="validation_judge",
            context={
                "name": person.name,
                "persona": person.persona_data,
                "expectations": expectations,
                "transcript": [t.model_dump() for t in transcript],
            },
        )
        judgement, result = await self.model.structured(request, _Judgement, schema_name="ValidationJudgement")
        return ValidationResult(
            model_name=result.model,
            persona=person.name,
            score=judgement.score,
            justification=judgement.justification.strip(),
            transcript=transcript,
        )

    async def interview(self, person: TinyPerson, questions: list[str]) -> list[InterviewTurn]:
        """Ask each question in turn through the persona's normal act path, on a copy of it.

        The copy has the persona's memory and model, so answers reflect what it lived through; the
        person itself hears nothing of the interview.
        """
        copy = TinyPerson.from_state(person.state(), person.model, world_name=person.world_name)
        copy.world_id, copy.situation = person.world_id, person.situation
        turns: list[InterviewTurn] = []
        for question in questions:
            copy.listen(question, INTERVIEWER, target=copy.name)
            result = await copy.act(consolidate=False)  # the copy is thrown away: no fold to pay for
            said = [a.content for a in result.actions if a.type is ActionType.TALK]
            thought = [a.content for a in result.actions if a.type is ActionType.THINK]
            answer = " ".join(said) if said else ("(said nothing; thought: " + " ".join(thought) + ")" if thought else "(no answer)")
            turns.append(InterviewTurn(question=question, answer=answer))
        return turns

    async def _questions(self, person: TinyPerson, expectations: str, n: int) -> list[str]:
        request = ChatRequest(
            messages=[
                Message(role="system", content=_QUESTIONS_SYSTEM),
                Message(
                    role="user",
                    content=f"Persona: {person.spec.summary()}\nExpectations: {expectations}\nWrite {n} questions.",
                ),
            ],
            attribution=Attribution(world=person.world_id, persona=person.name),
            task="validation_questions",
            context={"name": person.name, "persona": person.persona_data, "expectations": expectations, "n": n},
        )
        reply, _ = await self.model.structured(request, _Questions, schema_name="InterviewQuestions")
        asked = [q.strip() for q in reply.questions if q.strip()][:n]
        return asked or [f"Tell me about yourself, {person.first_name}: what do you do and what matters to you?"]

    async def drift(self, person: TinyPerson, recent_n: int = 20) -> DriftReport:
        """Compare the persona's last ``recent_n`` actions (words and thoughts) with its spec."""
        actions = [e for e in person.episodic.episodes if e.kind == "action"][-recent_n:]
        if not actions:
            return DriftReport(
                model_name=self.model.name,
                persona=person.name,
                consistency=None,
                drifted=False,
                findings=["nothing to compare yet: the persona has not said or thought anything"],
            )
        lines = [("(thinks) " if e.type == "THINK" else "(says) ") + e.content for e in actions]
        request = ChatRequest(
            messages=[
                Message(role="system", content=_DRIFT_SYSTEM),
                Message(
                    role="user",
                    content="\n".join(
                        [f"Persona of {person.name}:", *render_persona(person.persona_data), "Recent behaviour:", *lines]
                    ),
                ),
            ],
            attribution=Attribution(world=person.world_id, persona=person.name),
            task="validation_drift",
            context={"name": person.name, "persona": person.persona_data, "recent": lines},
        )
        judgement, result = await self.model.structured(request, _DriftJudgement, schema_name="DriftJudgement")
        return DriftReport(
            model_name=result.model,
            persona=person.name,
            consistency=judgement.consistency,
            drifted=judgement.drifted,
            findings=[f.strip() for f in judgement.findings if f.strip()],
            actions_read=len(actions),
        )
