"""The reference scorer: the same rules as ``closed_loop.domain.scoring.score_responses`` as a plain
per-answer loop. The property-test oracle (tests/unit/test_scoring.py) and the benchmark baseline
(bench/micro.py); not runtime code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from closed_loop.domain.scoring import (
    _SHAPE_CHOICE,
    _SHAPE_MATRIX,
    _SHAPE_OPEN,
    ANSWER_COLUMNS,
    CHOICE_FAMILIES,
    ScoringResult,
    SurveyIndex,
    Trigger,
    _accounts,
    _assemble,
    _flatten,
    _index,
)
from closed_loop.playbook import Playbook, compile_pattern, fold_typography, normalise

# --- the rules, compiled from the playbook on their own (not from domain/triggers.py) ----------------------


@dataclass(frozen=True)
class _Rules:
    negative: dict[str, str]  # normalised answer text -> severity
    low_q: str | None
    low_min: int
    low_max: int
    bands: tuple[tuple[int, str], ...]  # (at_or_below, severity), lowest first
    unresolved_q: str | None
    unresolved: frozenset[str]
    unresolved_sev: str
    follow_q: str | None
    follow: frozenset[str]
    follow_sev: str
    comment_qs: frozenset[str]
    comment_other: bool
    patterns: tuple[tuple[str, Any], ...]  # (source, RE2 pattern)
    comment_sev: str
    risk_on: bool
    risk_answers: frozenset[str]
    risk_score: int | None
    risk_sev: str
    topics: dict[str, str]
    default_topic: str

    @classmethod
    def of(cls, pb: Playbook) -> _Rules:
        t = pb.triggers
        neg, low, unr, fol, com, risk = (
            t.negative_answer,
            t.low_score,
            t.unresolved_issue,
            t.follow_up_request,
            t.alarming_comment,
            t.at_risk,
        )
        return cls(
            negative={normalise(a.text): a.severity for a in neg.answers} if neg.enabled else {},
            low_q=normalise(low.question) if low.enabled else None,
            low_min=low.scale_min,
            low_max=low.scale_max,
            bands=tuple(sorted((b.at_or_below, b.severity) for b in low.bands)),
            unresolved_q=normalise(unr.question) if unr.enabled else None,
            unresolved=frozenset(map(normalise, unr.answers)),
            unresolved_sev=unr.severity,
            follow_q=normalise(fol.question) if fol.enabled else None,
            follow=frozenset(map(normalise, fol.answers)),
            follow_sev=fol.severity,
            comment_qs=frozenset(map(normalise, com.questions)),
            comment_other=com.include_other_text,
            patterns=tuple((p, compile_pattern(fold_typography(p))) for p in com.patterns)
            if com.enabled
            else (),
            comment_sev=com.severity,
            risk_on=risk.enabled,
            risk_answers=frozenset(map(normalise, risk.neutral_or_worse_answers)),
            risk_score=risk.score_at_or_below,
            risk_sev=risk.severity,
            topics={normalise(k): v for k, v in pb.topics.by_heading.items()},
            default_topic=pb.topics.default_topic,
        )

    def band(self, score: int) -> tuple[int, str] | None:
        return next(((limit, sev) for limit, sev in self.bands if score <= limit), None)


# The explanations, written out here so that the comparison with the scorer pins them byte for byte.


def _rule_negative(answer: str) -> str:
    return f"answer '{answer}' is in the SOP's negative answers"


def _rule_low(score: int, limit: int, rules: _Rules) -> str:
    return f"score {score} is at or below {limit} on the {rules.low_min}-{rules.low_max} scale"


def _rule_unresolved(answer: str) -> str:
    return f"answer '{answer}' means an issue is still unresolved"


def _rule_follow(answer: str) -> str:
    return f"answer '{answer}' asks us to get in touch"


def _rule_comment(pattern: str) -> str:
    return f"comment matches the alarming pattern '{pattern}'"


def _rule_risk(answer: str) -> str:
    return f"the account is flagged at risk and answer '{answer}' is neutral or worse"


_NOT_A_NUMBER = (
    "answer {!r} to the score question has no place on the {}..{} scale "
    "(the question needs exactly one choice per point, in position order)"
)


def _shape_problem(family: str, row_id: Any, choice_id: Any, other_id: Any, text: Any, n_rows: int) -> str:
    """Why an answer does not fit its question's family ('' when it does)."""
    if family in CHOICE_FAMILIES and choice_id is None and other_id is None:
        return _SHAPE_CHOICE
    if family == "matrix" and n_rows and row_id is None and other_id is None:
        return _SHAPE_MATRIX
    if family == "open_ended" and text is None:
        return _SHAPE_OPEN
    return ""


# --- the plain per-answer loop -----------------------------------------------------------------------------


def score_responses_naive(
    details: Mapping[str, Any] | SurveyIndex,
    responses: Sequence[Mapping[str, Any]],
    playbook: Playbook,
    accounts_at_risk: Mapping[str, bool] | None = None,
    respondent_account: Mapping[str, str] | None = None,
) -> ScoringResult:
    """Same contract as ``score_responses``, evaluated answer by answer in plain Python."""
    index, rules = _index(details), _Rules.of(playbook)
    raw = _flatten(responses)
    accounts = _accounts(raw, respondent_account)
    triggers: list[tuple[str, int, Trigger]] = []
    problems: list[tuple[str, int, str]] = []
    comments: list[tuple[str, int, str, str]] = []
    rows: list[dict[str, Any]] = []
    risk_done: set[str] = set()
    for rec in raw.records:
        rid, seq = rec["response_id"], rec["seq"]
        q = index.questions.get(rec["question_id"])
        row = _naive_row(rec, q, rules)
        rows.append(row)
        problem = row["problem"]
        score = None
        on_low = rules.low_q is not None and q is not None and normalise(q.heading) == rules.low_q
        if problem is None and on_low and row["choice_text"] is not None:
            score = q.scale_value(rec["choice_id"], rules.low_min, rules.low_max)
            if score is None:
                problem = row["problem"] = _NOT_A_NUMBER.format(
                    row["choice_text"], rules.low_min, rules.low_max
                )
                score = None
        if problem is not None:
            problems.append((rid, seq, problem))
            continue
        comment = row["text"] if q.family == "open_ended" and row["text"] is not None else row["other_text"]
        if comment is not None:
            comments.append((rid, seq, q.heading, comment))
        for kind, answer, rule, sev in _naive_fired(q, row, score, comment, rules):
            triggers.append(
                (
                    rid,
                    seq,
                    Trigger(kind, q.question_id, q.heading, row["row_text"], answer, rule, sev, row["topic"]),
                )
            )
        acc = accounts.get(rid)
        if rules.risk_on and rid not in risk_done and acc and (accounts_at_risk or {}).get(acc):
            shown = _naive_neutral(q, row, score, rules)
            if shown is not None:
                risk_done.add(rid)
                triggers.append(
                    (
                        rid,
                        seq,
                        Trigger(
                            "at_risk",
                            q.question_id,
                            q.heading,
                            row["row_text"],
                            shown,
                            _rule_risk(shown),
                            rules.risk_sev,
                            row["topic"],
                        ),
                    )
                )
    answers = pd.DataFrame(rows, columns=ANSWER_COLUMNS)
    return _assemble(raw, triggers, problems, comments, answers, rules.default_topic, accounts)


def _naive_row(rec: dict[str, Any], q: Any, rules: _Rules) -> dict[str, Any]:
    is_other = rec["other_id"] is not None
    row = {
        "response_id": rec["response_id"],
        "seq": rec["seq"],
        "question_id": rec["question_id"],
        "heading": q.heading if q else None,
        "family": q.family if q else None,
        "row_id": rec["row_id"],
        "row_text": None,
        "choice_id": rec["choice_id"],
        "choice_text": None,
        "other_text": rec["text"] if is_other else None,
        "text": None if is_other else rec["text"],
        "topic": None,
        "problem": None,
    }
    if q is None:
        row["problem"] = f"unknown question id {rec['question_id']}"
        return row
    row["choice_text"] = q.choices.get(rec["choice_id"]) if rec["choice_id"] is not None else None
    row["row_text"] = q.rows.get(rec["row_id"]) if rec["row_id"] is not None else None
    row["topic"] = rules.topics.get(normalise(row["row_text"] or "")) or rules.topics.get(
        normalise(q.heading)
    )
    where = f" for question '{q.heading}'"
    if rec["choice_id"] is not None and row["choice_text"] is None:
        row["problem"] = f"unknown choice id {rec['choice_id']}{where}"
    elif rec["row_id"] is not None and row["row_text"] is None and q.rows:
        row["problem"] = f"unknown row id {rec['row_id']}{where}"
    elif is_other and rec["other_id"] != q.other_id:
        row["problem"] = f"unknown other id {rec['other_id']}{where}"
    else:
        shape = _shape_problem(
            q.family, rec["row_id"], rec["choice_id"], rec["other_id"], row["text"], len(q.rows)
        )
        if shape:
            row["problem"] = f"malformed answer #{rec['seq']} to '{q.heading}': {shape}"
    return row


def _naive_fired(q: Any, row: dict[str, Any], score: int | None, comment: str | None, rules: _Rules):
    heading, choice = normalise(q.heading), row["choice_text"]
    if choice is not None and q.family in CHOICE_FAMILIES:
        sev = rules.negative.get(normalise(choice))
        if sev:
            yield "negative_answer", choice, _rule_negative(choice), sev
    if score is not None:
        band = rules.band(score)
        if band:
            yield "low_score", str(score), _rule_low(score, band[0], rules), band[1]
    if choice is not None and q.family in CHOICE_FAMILIES:
        if heading == rules.unresolved_q and normalise(choice) in rules.unresolved:
            yield "unresolved_issue", choice, _rule_unresolved(choice), rules.unresolved_sev
        if heading == rules.follow_q and normalise(choice) in rules.follow:
            yield "follow_up_request", choice, _rule_follow(choice), rules.follow_sev
    body = row["text"] if q.family == "open_ended" else None
    if body is None and rules.comment_other:
        body = row["other_text"]
    if body is not None and (not rules.comment_qs or heading in rules.comment_qs):
        for source, pattern in rules.patterns:
            if pattern.search(normalise(body)):
                yield "alarming_comment", body, _rule_comment(source), rules.comment_sev
                break


def _naive_neutral(q: Any, row: dict[str, Any], score: int | None, rules: _Rules) -> str | None:
    choice = row["choice_text"]
    if choice is not None and q.family in CHOICE_FAMILIES and normalise(choice) in rules.risk_answers:
        return choice
    if score is not None and rules.risk_score is not None and score <= rules.risk_score:
        return str(score)
    return None
