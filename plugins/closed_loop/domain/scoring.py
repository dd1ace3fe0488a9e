"""Score SurveyMonkey responses against the playbook's triggers: negative?, severity, topics and why.

``score_responses`` flattens the batch once into a pandas frame, joins it with the survey's heading,
choice and row tables and lets every trigger kind of the registry (domain/triggers.py) fire on it as
column operations (its plain per-answer loop reference, the benchmark baseline and property-test oracle,
is tests/scoring_reference.py). Unknown ids and malformed answers are reported as problems; the rest of
the response is still scored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from closed_loop.domain.survey import SurveyIndex, parse_survey_details
from closed_loop.domain.triggers import (
    CHOICE_FAMILIES,
    REGISTRY,
    Answers,
    Fired,
    TriggerKind,
    compile_triggers,
)
from closed_loop.playbook import SEVERITY_RANK, TOPICS, Playbook, normalise

_ID_KEYS = ("choice_id", "row_id", "col_id", "other_id")
ANSWER_COLUMNS = [
    "response_id",
    "seq",
    "question_id",
    "heading",
    "family",
    "row_id",
    "row_text",
    "choice_id",
    "choice_text",
    "other_text",
    "text",
    "topic",
    "problem",
]


@dataclass(frozen=True)
class Trigger:
    """One rule that fired, with enough context for a human to see why."""

    kind: str
    question_id: str
    heading: str
    row: str | None
    answer: str
    rule: str
    severity: str
    topic: str | None = None


@dataclass(frozen=True)
class ResponseScore:
    response_id: str
    negative: bool
    severity: str | None
    topics: tuple[str, ...]
    triggers: tuple[Trigger, ...]
    problems: tuple[str, ...] = ()
    comments: tuple[tuple[str, str], ...] = ()  # (heading, text) of open-ended and "Other" answers
    recipient_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True)
class ScoringResult:
    scores: list[ResponseScore]
    answers: pd.DataFrame
    problems: list[str]

    def negatives(self) -> list[ResponseScore]:
        return [s for s in self.scores if s.negative]


# --- flattening the raw JSON (shared) -----------------------------------------------------------------


@dataclass
class _Raw:
    order: list[str]
    records: list[dict[str, Any]]
    problems: dict[str, list[tuple[int, str]]]
    orphans: list[str]
    recipients: dict[str, str | None]


def _as_id(value: Any) -> str | None:
    """Ids arrive as strings (SurveyMonkey) or ints; anything else is not an id (bool is not an int here)."""
    kind = type(value)
    return value if kind is str else str(value) if kind is int else None


def _flatten(responses: Iterable[Mapping[str, Any]]) -> _Raw:
    raw = _Raw([], [], defaultdict(list), [], {})
    seq = 0
    for index, resp in enumerate(responses):
        rid = _as_id(resp.get("id")) if isinstance(resp, dict) else None
        if rid is None:
            raw.orphans.append(f"response #{index}: no id, skipped")
            continue
        if rid in raw.recipients:
            raw.problems[rid].append((seq, f"duplicate response #{index} ignored (the first one is scored)"))
            continue
        raw.order.append(rid)
        raw.recipients[rid] = _as_id(resp.get("recipient_id"))
        pages = resp.get("pages")
        pages = [] if pages is None else pages  # "" or 0 are garbled, not "no pages": reported below
        if not isinstance(pages, list):
            raw.problems[rid].append((seq, "'pages' is not a list"))
            continue
        seq = _flatten_pages(raw, rid, pages, seq)
    return raw


def _flatten_pages(raw: _Raw, rid: str, pages: list[Any], seq: int) -> int:
    """Append one response's answers (or their problems) to ``raw``; the last answer's seq."""
    for page in pages:
        questions = page.get("questions") if isinstance(page, dict) else None
        if not isinstance(questions, list):
            raw.problems[rid].append((seq, "a page without a 'questions' list"))
            continue
        for question in questions:
            is_dict = isinstance(question, dict)
            qid = _as_id(question.get("id")) if is_dict else None
            answers = question.get("answers") if is_dict else None
            if qid is None or not isinstance(answers, list):
                raw.problems[rid].append((seq, "a question without an id or an 'answers' list"))
                continue
            for answer in answers:
                seq += 1
                record = _record(rid, seq, qid, answer)
                if isinstance(record, str):
                    raw.problems[rid].append((seq, record))
                else:
                    raw.records.append(record)
    return seq


def _record(rid: str, seq: int, qid: str, answer: Any) -> dict[str, Any] | str:
    """One flat answer record, or the problem that makes it malformed."""
    if not isinstance(answer, dict):
        return f"malformed answer #{seq} to question {qid!r}: expected an object, got {type(answer).__name__}"
    get = answer.get
    record = {"response_id": rid, "seq": seq, "question_id": qid}
    for key in _ID_KEYS:
        value = get(key)
        record[key] = as_id = _as_id(value)
        if as_id is None and value is not None:
            return f"malformed answer #{seq} to question {qid!r}: {key} is not an id"
    text = get("text")
    if text is not None and type(text) is not str:
        return f"malformed answer #{seq} to question {qid!r}: text is not a string"
    record["text"] = text
    if text is None and record["choice_id"] is None and record["other_id"] is None:
        return f"malformed answer #{seq} to question {qid!r}: no choice_id, other_id or text"
    return record


_SHAPE_CHOICE = "a choice question answered without choice_id"
_SHAPE_MATRIX = "a matrix answer without row_id"
_SHAPE_OPEN = "an open-ended answer without text"


# --- assembling the result (shared with the reference) ------------------------------------------------


def _assemble(
    raw: _Raw,
    triggers: list[tuple[str, int, Trigger]],
    problems: list[tuple[str, int, str]],
    comments: list[tuple[str, int, str, str]],
    answers: pd.DataFrame,
    default_topic: str,
    accounts: Mapping[str, str | None],
) -> ScoringResult:
    """One ResponseScore per response in input order: triggers by answer, then by registry order."""
    rank = {kind: i for i, kind in enumerate(REGISTRY)}
    by_resp: dict[str, list[tuple[int, int, Trigger]]] = defaultdict(list)
    for rid, seq, trig in triggers:
        by_resp[rid].append((seq, rank[trig.kind], trig))
    probs = _by_response(raw.problems, ((rid, (seq, msg)) for rid, seq, msg in problems))
    notes = _by_response({}, ((rid, (seq, heading, text)) for rid, seq, heading, text in comments))
    scores = [
        _score(
            raw,
            rid,
            sorted(by_resp[rid], key=lambda x: x[:2]),
            probs[rid],
            notes[rid],
            accounts,
            default_topic,
        )
        for rid in raw.order
    ]
    flat = list(raw.orphans) + [f"response {s.response_id}: {m}" for s in scores for m in s.problems]
    return ScoringResult(scores, answers, flat)


def _score(
    raw: _Raw,
    rid: str,
    ranked: list[tuple[int, int, Trigger]],
    problems: list[tuple[int, str]],
    notes: list[tuple[int, str, str]],
    accounts: Mapping[str, str | None],
    default_topic: str,
) -> ResponseScore:
    fired = tuple(t for _, _, t in ranked)
    severity = max((t.severity for t in fired), key=SEVERITY_RANK.__getitem__, default=None)
    mapped = {t.topic for t in fired if t.topic}
    topics = tuple(t for t in TOPICS if t in mapped) or ((default_topic,) if fired else ())
    return ResponseScore(
        response_id=rid,
        negative=bool(fired),
        severity=severity,
        topics=topics,
        triggers=fired,
        problems=tuple(m for _, m in sorted(problems)),
        comments=tuple((h, t) for _, h, t in sorted(notes)),
        recipient_id=raw.recipients.get(rid),
        account_id=accounts.get(rid),
    )


def _by_response(first: Mapping[str, list[Any]], more: Iterable[tuple[str, Any]]) -> defaultdict[str, list]:
    grouped: defaultdict[str, list] = defaultdict(list, {k: list(v) for k, v in first.items()})
    for rid, item in more:
        grouped[rid].append(item)
    return grouped


def _accounts(raw: _Raw, respondent_account: Mapping[str, str] | None) -> dict[str, str | None]:
    lookup = respondent_account or {}
    return {rid: lookup.get(rec) if rec else None for rid, rec in raw.recipients.items()}


def _index(details: Mapping[str, Any] | SurveyIndex) -> SurveyIndex:
    return details if isinstance(details, SurveyIndex) else parse_survey_details(details)


# --- vectorised implementation ------------------------------------------------------------------------


def _tables(index: SurveyIndex, topics: Mapping[str, str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Question, choice and row lookup tables, with their normalised texts and topics (small)."""
    qs = list(index.questions.values())
    questions = pd.DataFrame(
        {
            "question_id": [q.question_id for q in qs],
            "heading": [q.heading for q in qs],
            "heading_n": [normalise(q.heading) for q in qs],
            "family": [q.family for q in qs],
            "expected_other": [q.other_id for q in qs],
            "question_topic": [topics.get(normalise(q.heading)) for q in qs],
        },
        columns=["question_id", "heading", "heading_n", "family", "expected_other", "question_topic"],
    ).astype("str")
    questions["n_rows"] = pd.Series([len(q.rows) for q in qs], dtype="int64")
    choices = pd.DataFrame(
        [(q.question_id, cid, text, normalise(text)) for q in qs for cid, text in q.choices.items()],
        columns=["question_id", "choice_id", "choice_text", "choice_n"],
    ).astype("str")
    rows = pd.DataFrame(
        [(q.question_id, rid, text, topics.get(normalise(text))) for q in qs for rid, text in q.rows.items()],
        columns=["question_id", "row_id", "row_text", "row_topic"],
    ).astype("str")
    return questions, choices, rows


def _frame(raw: _Raw, index: SurveyIndex, topics: Mapping[str, str]) -> pd.DataFrame:
    """Flat answers joined with headings, choice and row texts, topics and per-answer problems."""
    cols = ["question_id", *_ID_KEYS, "text"]
    a = pd.DataFrame(raw.records, columns=["response_id", "seq", *cols])
    a = a.astype({"response_id": "str", "seq": "int64", **dict.fromkeys(cols, "str")})
    questions, choices, rows = _tables(index, topics)
    a = a.merge(questions, on="question_id", how="left")
    a = a.merge(choices, on=["question_id", "choice_id"], how="left")
    a = a.merge(rows, on=["question_id", "row_id"], how="left")
    a["n_rows"] = a["n_rows"].fillna(0).astype("int64")
    is_other = a["other_id"].notna()
    a["other_text"] = a["text"].where(is_other)
    a["text"] = a["text"].where(~is_other)
    a["topic"] = a["row_topic"].where(a["row_topic"].notna(), a["question_topic"])
    a["problem"] = _problems(a, is_other)
    a["score"] = np.nan  # the answer's value on the low_score scale (triggers.LowScore.prepare fills it)
    return a


def _problems(a: pd.DataFrame, is_other: pd.Series) -> pd.Series:
    """Why each answer cannot be scored (None for a good one): unknown ids, a shape unfit for its question."""
    no_row = a["row_id"].isna() & a["other_id"].isna()
    conditions = [
        a["heading"].isna(),
        a["choice_id"].notna() & a["choice_text"].isna(),
        a["row_id"].notna() & a["row_text"].isna() & (a["n_rows"] > 0),
        is_other & (a["other_id"] != a["expected_other"]),
        a["family"].isin(CHOICE_FAMILIES) & a["choice_id"].isna() & a["other_id"].isna(),
        (a["family"] == "matrix") & (a["n_rows"] > 0) & no_row,
        (a["family"] == "open_ended") & a["text"].isna(),
    ]
    conditions = [c.fillna(False).to_numpy(bool) for c in conditions]
    bad = np.logical_or.reduce(conditions)
    problem = pd.Series(None, index=a.index, dtype=object)
    if bad.any():
        b = a.loc[bad]
        where = " for question '" + b["heading"] + "'"
        malformed = "malformed answer #" + b["seq"].astype("str") + " to '" + b["heading"] + "': "
        messages = [
            "unknown question id " + b["question_id"],
            "unknown choice id " + b["choice_id"] + where,
            "unknown row id " + b["row_id"] + where,
            "unknown other id " + b["other_id"] + where,
            malformed + _SHAPE_CHOICE,
            malformed + _SHAPE_MATRIX,
            malformed + _SHAPE_OPEN,
        ]
        picked = np.select(
            [c[bad] for c in conditions], [m.astype(object).to_numpy() for m in messages], None
        )
        problem[bad] = picked
    return problem


_FIRED_COLUMNS = ["response_id", "seq", "question_id", "heading", "row_text", "topic"]


def _fired_rows(a: pd.DataFrame, kind: TriggerKind, fired: Fired) -> pd.DataFrame | None:
    """The fired rows of one kind as trigger columns; explanations are worded for fired rows only."""
    mask = fired.mask.fillna(False).astype(bool)
    if not mask.any():
        return None
    part = a.loc[mask, _FIRED_COLUMNS].copy()
    part["kind"] = kind.kind
    part["answer"] = fired.answer[mask].astype(object).to_numpy()
    why = (arg[mask].tolist() for arg in fired.why)
    part["rule"] = [kind.explain(*values) for values in zip(*why, strict=True)]
    severity = fired.severity
    part["severity"] = severity[mask].to_numpy() if isinstance(severity, pd.Series) else severity
    return part


def _triggers(
    a: pd.DataFrame, kinds: Iterable[TriggerKind], at_risk: Mapping[str, bool]
) -> list[tuple[str, int, Trigger]]:
    """Every registered kind fires on the whole frame; (response id, answer seq, Trigger) per fired row."""
    answers = Answers.of(a, at_risk)
    found = [part for kind in kinds if (part := _kind_rows(a, kind, answers)) is not None]
    if not found:
        return []
    t = pd.concat(found, ignore_index=True)
    optional = {c: t[c].astype(object).where(t[c].notna(), None).tolist() for c in ("row_text", "topic")}
    return [
        (rid, seq, Trigger(kind, qid, heading, row, str(answer), rule, sev, topic))
        for rid, seq, kind, qid, heading, row, answer, rule, sev, topic in zip(
            t["response_id"].tolist(),
            t["seq"].astype(int).tolist(),
            t["kind"].tolist(),
            t["question_id"].tolist(),
            t["heading"].tolist(),
            optional["row_text"],
            t["answer"].tolist(),
            t["rule"].tolist(),
            t["severity"].tolist(),
            optional["topic"],
            strict=True,
        )
    ]


def _kind_rows(a: pd.DataFrame, kind: TriggerKind, answers: Answers) -> pd.DataFrame | None:
    fired = kind.fire(answers)
    return None if fired is None else _fired_rows(a, kind, fired)


def _comments(a: pd.DataFrame) -> list[tuple[str, int, str, str]]:
    """(response id, seq, heading, text) of the good open-ended and "Other" answers."""
    is_comment = a["problem"].isna() & (
        (a["family"] == "open_ended") & a["text"].notna() | a["other_text"].notna()
    )
    c = a[is_comment]
    return list(
        zip(
            c["response_id"],
            c["seq"].astype(int),
            c["heading"].astype(str),
            c["text"].where(c["text"].notna(), c["other_text"]),
            strict=True,
        )
    )


def score_responses(
    details: Mapping[str, Any] | SurveyIndex,
    responses: Sequence[Mapping[str, Any]],
    playbook: Playbook,
    accounts_at_risk: Mapping[str, bool] | None = None,
    respondent_account: Mapping[str, str] | None = None,
) -> ScoringResult:
    """Score a batch (vectorised): one ResponseScore per response with an id, in input order."""
    index, kinds = _index(details), compile_triggers(playbook)
    raw = _flatten(responses)
    accounts = _accounts(raw, respondent_account)
    risk = {rid: bool((accounts_at_risk or {}).get(acc)) for rid, acc in accounts.items() if acc}
    a = _frame(raw, index, {normalise(k): v for k, v in playbook.topics.by_heading.items()})
    for kind in kinds:
        kind.prepare(a, index)
    triggers = _triggers(a, kinds, risk)
    bad = a[a["problem"].notna()]
    problems = list(zip(bad["response_id"], bad["seq"].astype(int), bad["problem"], strict=True))
    default_topic = playbook.topics.default_topic
    return _assemble(raw, triggers, problems, _comments(a), a[ANSWER_COLUMNS], default_topic, accounts)
