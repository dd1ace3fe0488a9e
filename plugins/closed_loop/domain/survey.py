"""Index of a SurveyMonkey ``GET /surveys/{id}/details`` document: question ids -> headings and choices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from closed_loop.playbook import normalise


class SurveyDetailsError(ValueError):
    """The survey details document does not have SurveyMonkey's /details shape."""


@dataclass(frozen=True)
class Question:
    """One question: heading, family/subtype, choice and row texts by id, and the optional "other" id."""

    question_id: str
    heading: str
    family: str
    subtype: str
    position: int
    choices: Mapping[str, str] = field(default_factory=dict)
    rows: Mapping[str, str] = field(default_factory=dict)
    other_id: str | None = None
    other_text: str | None = None
    choice_positions: Mapping[str, int] = field(default_factory=dict)

    def scale_value(self, choice_id: str | None, low: int, high: int) -> int | None:
        """The value of a choice on a ``low..high`` rating scale from the question's structure (its
        choices in ``position`` order, the first is ``low``), never from the label's text. None when the
        choice is unknown or the question does not have exactly ``high - low + 1`` choices."""
        ordered = sorted(self.choice_positions, key=lambda cid: (self.choice_positions[cid], cid))
        if choice_id not in self.choice_positions or len(ordered) != high - low + 1:
            return None
        return low + ordered.index(choice_id)


@dataclass(frozen=True)
class SurveyIndex:
    survey_id: str
    title: str
    questions: Mapping[str, Question]

    def by_heading(self, heading: str) -> Question | None:
        """The question whose heading matches ``heading`` ignoring case and whitespace."""
        wanted = normalise(heading)
        return next((q for q in self.questions.values() if normalise(q.heading) == wanted), None)


def _need(obj: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise SurveyDetailsError(f"{where}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise SurveyDetailsError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _texts(items: Any, where: str) -> dict[str, str]:
    if not isinstance(items, list):
        raise SurveyDetailsError(f"{where}: expected a list, got {items!r}")
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        item_id = str(_need(item, "id", f"{where}[{i}]", (str, int)))
        out[item_id] = str(item.get("text", ""))
    return out


def _question(raw: Any, where: str) -> Question:
    qid = str(_need(raw, "id", where, (str, int)))
    headings = _need(raw, "headings", where, list)
    if not headings or not isinstance(headings[0], Mapping) or "heading" not in headings[0]:
        raise SurveyDetailsError(f"{where}.headings: expected [{{'heading': ...}}], got {headings!r}")
    answers = raw.get("answers") or {}
    if not isinstance(answers, Mapping):
        raise SurveyDetailsError(f"{where}.answers: expected an object, got {answers!r}")
    choices = _texts(answers.get("choices", []), f"{where}.answers.choices")
    positions = _positions(answers.get("choices", []))
    for c, col in enumerate(answers.get("cols", []) or []):  # matrix menu: choices live under cols
        choices.update(_texts((col or {}).get("choices", []), f"{where}.answers.cols[{c}].choices"))
    other = answers.get("other")
    if other is not None and (not isinstance(other, Mapping) or "id" not in other):
        raise SurveyDetailsError(f"{where}.answers.other: expected an object with an id, got {other!r}")
    return Question(
        question_id=qid,
        heading=str(headings[0]["heading"]),
        family=str(_need(raw, "family", where, str)),
        subtype=str(raw.get("subtype") or ""),
        position=int(raw.get("position") or 0),
        choices=choices,
        rows=_texts(answers.get("rows", []), f"{where}.answers.rows"),
        other_id=str(other["id"]) if other else None,
        other_text=str(other.get("text", "")) if other else None,
        choice_positions=positions,
    )


def _positions(items: list) -> dict[str, int]:
    """``{choice id: position}`` (documented ``answers.choices[].position``; list order when absent)."""
    out = {}
    for i, item in enumerate(items):
        try:
            out[str(item["id"])] = int(item.get("position") or i + 1)
        except (TypeError, ValueError):
            out[str(item["id"])] = i + 1
    return out


def parse_survey_details(details: Mapping[str, Any]) -> SurveyIndex:
    """Index every question of a /details document; raise SurveyDetailsError naming the bad part."""
    if not isinstance(details, Mapping):
        raise SurveyDetailsError(f"survey details: expected an object, got {type(details).__name__}")
    pages = _need(details, "pages", "survey details", list)
    questions: dict[str, Question] = {}
    for p, page in enumerate(pages):
        for q, raw in enumerate(_need(page, "questions", f"pages[{p}]", list)):
            question = _question(raw, f"pages[{p}].questions[{q}]")
            if question.question_id in questions:
                raise SurveyDetailsError(f"pages[{p}].questions[{q}]: duplicate id {question.question_id!r}")
            questions[question.question_id] = question
    return SurveyIndex(str(details.get("id", "")), str(details.get("title", "")), questions)
