"""Playbook vs survey drift: every question and answer text the playbook's rules name must exist in the
survey as SurveyMonkey serves it. A reworded question or a typo in the playbook silently turns a trigger
off (no match, no trigger, no Case); this names each mismatch with its playbook key path.

Used at every intake on the details just read (mismatches are quarantined and alerted) and reusable by a
go-live preflight. Plain Python: no Airflow, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from closed_loop.domain.survey import Question, SurveyIndex
from closed_loop.playbook import Playbook, normalise

CHOICE_FAMILIES = ("single_choice", "multiple_choice", "matrix")


@dataclass(frozen=True)
class Mismatch:
    """One playbook text the survey does not have: ``key`` is the playbook path, ``text`` the value."""

    key: str
    text: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem} ({self.text!r})"


def _headings(index: SurveyIndex) -> dict[str, Question]:
    return {normalise(q.heading): q for q in index.questions.values()}


def _rows(index: SurveyIndex) -> set[str]:
    return {normalise(t) for q in index.questions.values() for t in q.rows.values()}


def _choices(questions: Iterable[Question]) -> set[str]:
    return {normalise(t) for q in questions if q.family in CHOICE_FAMILIES for t in q.choices.values()}


def _question(index: SurveyIndex, key: str, heading: str, out: list[Mismatch]) -> Question | None:
    found = _headings(index).get(normalise(heading))
    if found is None:
        out.append(Mismatch(key, heading, f"no question with this heading in survey {index.title!r}"))
    return found


def _answers(question: Question | None, key: str, texts: Iterable[str], out: list[Mismatch]) -> None:
    if question is None:
        return
    have = _choices([question])
    for i, text in enumerate(texts):
        if normalise(text) not in have:
            out.append(Mismatch(f"{key}[{i}]", text, f"not a choice of {question.heading!r}"))


def main_survey_drift(index: SurveyIndex, playbook: Playbook) -> list[Mismatch]:
    """Mismatches between the main survey and the playbook's triggers and topics."""
    t, out = playbook.triggers, []
    everywhere = _choices(index.questions.values())
    if t.negative_answer.enabled:
        for i, answer in enumerate(t.negative_answer.answers):
            if normalise(answer.text) not in everywhere:
                key = f"triggers.negative_answer.answers[{i}].text"
                out.append(Mismatch(key, answer.text, "no question of the survey offers this answer"))
    if t.at_risk.enabled:
        for i, text in enumerate(t.at_risk.neutral_or_worse_answers):
            if normalise(text) not in everywhere:
                key = f"triggers.at_risk.neutral_or_worse_answers[{i}]"
                out.append(Mismatch(key, text, "no question of the survey offers this answer"))
    if t.low_score.enabled:
        question = _question(index, "triggers.low_score.question", t.low_score.question, out)
        if question is not None:
            scale = {str(n) for n in range(t.low_score.scale_min, t.low_score.scale_max + 1)}
            offered = {c.strip() for c in question.choices.values()}
            if not offered & scale:
                span = f"{t.low_score.scale_min}..{t.low_score.scale_max}"
                out.append(
                    Mismatch("triggers.low_score", t.low_score.question, f"no choice is a score {span}")
                )
    for name in ("unresolved_issue", "follow_up_request"):
        rule = getattr(t, name)
        if rule.enabled:
            question = _question(index, f"triggers.{name}.question", rule.question, out)
            _answers(question, f"triggers.{name}.answers", rule.answers, out)
    if t.alarming_comment.enabled:
        for i, heading in enumerate(t.alarming_comment.questions):
            _question(index, f"triggers.alarming_comment.questions[{i}]", heading, out)
    known = set(_headings(index)) | _rows(index)
    for heading in playbook.topics.by_heading:
        if normalise(heading) not in known:
            out.append(
                Mismatch(f"topics.by_heading.{heading}", heading, "no question or matrix row with this text")
            )
    return out


def pulse_survey_drift(index: SurveyIndex, playbook: Playbook) -> list[Mismatch]:
    """Mismatches between the recovery pulse survey and the playbook's recovery rules."""
    out: list[Mismatch] = []
    recovery = playbook.recovery
    question = _question(index, "recovery.satisfaction_question", recovery.satisfaction_question, out)
    _answers(question, "recovery.satisfied_answers", recovery.satisfied_answers, out)
    return out
