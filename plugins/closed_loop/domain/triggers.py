"""The trigger registry: one class per trigger kind, registered under its playbook section name.

``compile_triggers(playbook)`` builds every registered kind from ``playbook.triggers.<section>`` (the
enabled ones, in registration order: the order of a response's triggers on the same answer). The scorer
(domain/scoring.py) lets each kind ``prepare`` the flat answers frame, then ``fire``: a kind returns column
masks over the frame (vectorised, no per-answer Python) and words each fired row with ``explain``.

Adding a kind: a ``TriggerKind`` subclass decorated ``@register("<section>")``, its section under
``triggers:`` in include/playbook.yaml and that section's model on ``playbook.Triggers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from closed_loop.domain.survey import SurveyIndex
from closed_loop.playbook import Playbook, PlaybookError, compile_pattern, fold_typography, normalise

CHOICE_FAMILIES = frozenset({"single_choice", "multiple_choice", "matrix"})


@dataclass(frozen=True)
class Answers:
    """The flat answers frame a kind fires on (one row per answer; columns: scoring.ANSWER_COLUMNS plus
    ``heading_n``/``choice_n`` normalised texts and ``score``), with the masks most kinds start from."""

    frame: pd.DataFrame
    ok: pd.Series  # no problem with the answer
    is_choice: pd.Series  # ok, a choice question, answered with a known choice
    at_risk: Mapping[str, bool]  # response id -> its account is flagged at risk

    @classmethod
    def of(cls, a: pd.DataFrame, at_risk: Mapping[str, bool]) -> Answers:
        ok = a["problem"].isna()
        return cls(a, ok, ok & a["family"].isin(CHOICE_FAMILIES) & a["choice_text"].notna(), at_risk)


@dataclass(frozen=True)
class Fired:
    """The rows of ``mask`` fire; ``answer`` is what each shows, ``explain(*why)`` words each."""

    mask: pd.Series
    answer: pd.Series
    why: tuple[pd.Series, ...]
    severity: str | pd.Series


class TriggerKind:
    """One trigger kind, compiled from its playbook section (``kind`` is the section name)."""

    kind: ClassVar[str]

    def __init__(self, section: Any, playbook: Playbook) -> None:
        self.enabled: bool = section.enabled
        self.severity: str | None = getattr(section, "severity", None)

    def prepare(self, frame: pd.DataFrame, index: SurveyIndex) -> None:
        """Add or correct columns before any kind fires (only the score question's values today)."""

    def fire(self, answers: Answers) -> Fired | None:
        raise NotImplementedError

    def explain(self, *why: Any) -> str:
        """The human-readable reason one fired row gives (a Trigger's ``rule``)."""
        raise NotImplementedError


REGISTRY: dict[str, type[TriggerKind]] = {}


def register(section: str) -> Callable[[type[TriggerKind]], type[TriggerKind]]:
    def add(cls: type[TriggerKind]) -> type[TriggerKind]:
        cls.kind = section
        REGISTRY[section] = cls
        return cls

    return add


def compile_triggers(playbook: Playbook) -> list[TriggerKind]:
    """The enabled trigger kinds, in registration order."""
    kinds = []
    for section, cls in REGISTRY.items():
        settings = getattr(playbook.triggers, section, None)
        if settings is None:
            raise PlaybookError(f"triggers.{section}: missing (the {cls.__name__} trigger kind reads it)")
        kinds.append(cls(settings, playbook))
    return [k for k in kinds if k.enabled]


@register("negative_answer")
class NegativeAnswer(TriggerKind):
    """SOP: a choice answered with one of the negative texts, at that text's severity."""

    def __init__(self, section: Any, playbook: Playbook) -> None:
        super().__init__(section, playbook)
        self.severities = {normalise(a.text): a.severity for a in section.answers}

    def fire(self, answers: Answers) -> Fired:
        choice = answers.frame["choice_text"]
        severity = answers.frame["choice_n"].map(self.severities)
        return Fired(answers.is_choice & severity.notna(), choice, (choice,), severity)

    def explain(self, answer: str) -> str:
        return f"answer '{answer}' is in the SOP's negative answers"


_NOT_A_NUMBER = (
    "answer {!r} to the score question has no place on the {}..{} scale "
    "(the question needs exactly one choice per point, in position order)"
)


@register("low_score")
class LowScore(TriggerKind):
    """Article: a poor rating; the severity of the lowest band at or above the score."""

    def __init__(self, section: Any, playbook: Playbook) -> None:
        super().__init__(section, playbook)
        self.question = normalise(section.question)
        self.low, self.high = section.scale_min, section.scale_max
        self.bands = tuple(sorted((b.at_or_below, b.severity) for b in section.bands))

    def prepare(self, frame: pd.DataFrame, index: SurveyIndex) -> None:
        """``score``: an answer's value on the scale, from its choice's position; an answer to the score
        question with no place on the scale is a problem."""
        values = {
            (q.question_id, cid): q.scale_value(cid, self.low, self.high)
            for q in index.questions.values()
            if normalise(q.heading) == self.question
            for cid in q.choices
        }
        on_low = frame["problem"].isna() & (frame["heading_n"] == self.question)
        on_low &= frame["choice_text"].notna()
        rows = frame.loc[on_low, ["question_id", "choice_id"]]
        keys = zip(rows["question_id"], rows["choice_id"], strict=True)
        numbers = pd.Series([values.get(k) for k in keys], index=rows.index, dtype="float64")
        good = numbers.notna()
        frame.loc[numbers.index[good], "score"] = numbers[good]
        bad = numbers.index[~good]
        frame.loc[bad, "problem"] = [
            _NOT_A_NUMBER.format(c, self.low, self.high) for c in frame.loc[bad, "choice_text"]
        ]

    def fire(self, answers: Answers) -> Fired:
        score = answers.frame["score"]
        index = answers.frame.index
        fits = [(score <= limit).to_numpy() for limit, _ in self.bands]
        limit = pd.Series(np.select(fits, [lim for lim, _ in self.bands], -1), index=index)
        severity = pd.Series(np.select(fits, [sev for _, sev in self.bands], ""), index=index)
        shown = score.fillna(-1).astype("int64").astype("str")
        return Fired(answers.ok & score.notna() & (limit >= 0), shown, (score, limit), severity)

    def explain(self, score: float, limit: int) -> str:
        return f"score {int(score)} is at or below {limit} on the {self.low}-{self.high} scale"


class _ChoiceOnQuestion(TriggerKind):
    """One question answered with one of the section's answers, at the section's severity."""

    def __init__(self, section: Any, playbook: Playbook) -> None:
        super().__init__(section, playbook)
        self.question = normalise(section.question)
        self.answers = frozenset(map(normalise, section.answers))

    def fire(self, answers: Answers) -> Fired:
        a = answers.frame
        mask = answers.is_choice & (a["heading_n"] == self.question) & a["choice_n"].isin(self.answers)
        return Fired(mask, a["choice_text"], (a["choice_text"],), self.severity)


@register("unresolved_issue")
class UnresolvedIssue(_ChoiceOnQuestion):
    """Article: the customer says their concern is not fully addressed."""

    def explain(self, answer: str) -> str:
        return f"answer '{answer}' means an issue is still unresolved"


@register("follow_up_request")
class FollowUpRequest(_ChoiceOnQuestion):
    """Article: the customer asks to be contacted."""

    def explain(self, answer: str) -> str:
        return f"answer '{answer}' asks us to get in touch"


@register("alarming_comment")
class AlarmingComment(TriggerKind):
    """Article: an open-ended answer (or "Other" text) matching a pattern; the first pattern is told."""

    def __init__(self, section: Any, playbook: Playbook) -> None:
        super().__init__(section, playbook)
        self.questions = frozenset(map(normalise, section.questions))  # empty: every question
        self.include_other = section.include_other_text
        # RE2: linear time, no ReDoS; matched against normalised, typography-folded text
        self.patterns = tuple((p, compile_pattern(fold_typography(p))) for p in section.patterns)

    def fire(self, answers: Answers) -> Fired:
        a, ok = answers.frame, answers.ok
        matched = pd.Series(None, index=a.index, dtype=object)
        body = a["text"].where(a["family"] == "open_ended")
        if self.include_other:
            body = body.where(body.notna(), a["other_text"])
        body = body.where(ok & (a["heading_n"].isin(self.questions) if self.questions else ok))
        texts = body.map(normalise, na_action="ignore").dropna()
        for source, pattern in self.patterns:
            hits = texts.map(lambda text, p=pattern: p.search(text) is not None).astype(bool)
            matched[matched.isna() & hits.reindex(a.index, fill_value=False)] = source
        return Fired(matched.notna(), body, (matched,), self.severity)

    def explain(self, pattern: str) -> str:
        return f"comment matches the alarming pattern '{pattern}'"


@register("at_risk")
class AtRisk(TriggerKind):
    """Article: a vulnerable customer: the account is flagged at risk and an answer is neutral or worse
    (a listed answer, or a score at or below the limit); once per response, on its first such answer."""

    def __init__(self, section: Any, playbook: Playbook) -> None:
        super().__init__(section, playbook)
        self.answers = frozenset(map(normalise, section.neutral_or_worse_answers))
        self.score_at_or_below = section.score_at_or_below

    def fire(self, answers: Answers) -> Fired | None:
        if not any(answers.at_risk.values()):
            return None
        a, score = answers.frame, answers.frame["score"]
        risky = a["response_id"].map(answers.at_risk).fillna(False).astype(bool)
        neutral = answers.is_choice & a["choice_n"].isin(self.answers)
        low = (score <= self.score_at_or_below) if self.score_at_or_below is not None else False
        mask = (answers.ok & risky & (neutral | low)).fillna(False).astype(bool)
        first = mask & ~a["response_id"].where(mask).duplicated()
        shown = a["choice_text"].astype(object).where(neutral, score.fillna(-1).astype("int64").astype("str"))
        return Fired(first, shown, (shown,), self.severity)

    def explain(self, answer: str) -> str:
        return f"the account is flagged at risk and answer '{answer}' is neutral or worse"
