"""Score SurveyMonkey responses against the playbook's triggers: negative?, severity, topics and why.

``score_responses`` flattens the batch once into a pandas frame, joins it with the survey's heading,
choice and row tables and evaluates every trigger as column operations (its plain per-answer loop
reference, the benchmark baseline and property-test oracle, is tests/scoring_reference.py).
Unknown ids and malformed answers are reported as problems; the rest of the response is still scored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from closed_loop.domain.survey import SurveyIndex, parse_survey_details
from closed_loop.playbook import SEVERITY_RANK, TOPICS, Playbook, compile_pattern, fold_typography, normalise

CHOICE_FAMILIES = frozenset({"single_choice", "multiple_choice", "matrix"})
KINDS = (
    "negative_answer",
    "low_score",
    "unresolved_issue",
    "follow_up_request",
    "alarming_comment",
    "at_risk",
)
_KIND_RANK = {k: i for i, k in enumerate(KINDS)}
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


# --- rules compiled from the playbook (shared by both implementations) --------------------------------


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
    patterns: tuple[tuple[str, Any], ...]  # (source, RE2 pattern: linear time, no ReDoS)
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
    return raw


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


def _shape_problem(family: str, row_id: Any, choice_id: Any, other_id: Any, text: Any, n_rows: int) -> str:
    """Why an answer does not fit its question's family ('' when it does)."""
    if family in CHOICE_FAMILIES and choice_id is None and other_id is None:
        return _SHAPE_CHOICE
    if family == "matrix" and n_rows and row_id is None and other_id is None:
        return _SHAPE_MATRIX
    if family == "open_ended" and text is None:
        return _SHAPE_OPEN
    return ""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


# --- assembling the result (shared) -------------------------------------------------------------------


def _assemble(
    raw: _Raw,
    triggers: list[tuple[str, int, Trigger]],
    problems: list[tuple[str, int, str]],
    comments: list[tuple[str, int, str, str]],
    answers: pd.DataFrame,
    rules: _Rules,
    accounts: Mapping[str, str | None],
) -> ScoringResult:
    by_resp: dict[str, list[tuple[int, int, Trigger]]] = defaultdict(list)
    for rid, seq, trig in triggers:
        by_resp[rid].append((seq, _KIND_RANK[trig.kind], trig))
    probs: dict[str, list[tuple[int, str]]] = defaultdict(list, {k: list(v) for k, v in raw.problems.items()})
    for rid, seq, msg in problems:
        probs[rid].append((seq, msg))
    notes: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for rid, seq, heading, text in comments:
        notes[rid].append((seq, heading, text))
    scores = []
    for rid in raw.order:
        fired = tuple(t for _, _, t in sorted(by_resp[rid], key=lambda x: x[:2]))
        severity = max((t.severity for t in fired), key=SEVERITY_RANK.__getitem__, default=None)
        mapped = {t.topic for t in fired if t.topic}
        topics = tuple(t for t in TOPICS if t in mapped) or ((rules.default_topic,) if fired else ())
        scores.append(
            ResponseScore(
                response_id=rid,
                negative=bool(fired),
                severity=severity,
                topics=topics,
                triggers=fired,
                problems=tuple(m for _, m in sorted(probs[rid])),
                comments=tuple((h, t) for _, h, t in sorted(notes[rid])),
                recipient_id=raw.recipients.get(rid),
                account_id=accounts.get(rid),
            )
        )
    flat = list(raw.orphans) + [f"response {s.response_id}: {m}" for s in scores for m in s.problems]
    return ScoringResult(scores, answers, flat)


def _accounts(raw: _Raw, respondent_account: Mapping[str, str] | None) -> dict[str, str | None]:
    lookup = respondent_account or {}
    return {rid: lookup.get(rec) if rec else None for rid, rec in raw.recipients.items()}


def _index(details: Mapping[str, Any] | SurveyIndex) -> SurveyIndex:
    return details if isinstance(details, SurveyIndex) else parse_survey_details(details)


# --- vectorised implementation ------------------------------------------------------------------------


def _tables(index: SurveyIndex, rules: _Rules) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Question, choice and row lookup tables, with their normalised texts and topics (small)."""
    qs = list(index.questions.values())
    questions = pd.DataFrame(
        {
            "question_id": [q.question_id for q in qs],
            "heading": [q.heading for q in qs],
            "heading_n": [normalise(q.heading) for q in qs],
            "family": [q.family for q in qs],
            "expected_other": [q.other_id for q in qs],
            "question_topic": [rules.topics.get(normalise(q.heading)) for q in qs],
        },
        columns=["question_id", "heading", "heading_n", "family", "expected_other", "question_topic"],
    ).astype("str")
    questions["n_rows"] = pd.Series([len(q.rows) for q in qs], dtype="int64")
    choices = pd.DataFrame(
        [(q.question_id, cid, text, normalise(text)) for q in qs for cid, text in q.choices.items()],
        columns=["question_id", "choice_id", "choice_text", "choice_n"],
    ).astype("str")
    choices["choice_score"] = pd.Series(
        [_choice_score(q, cid, rules) for q in qs for cid in q.choices], dtype="float64"
    )
    rows = pd.DataFrame(
        [
            (q.question_id, rid, text, rules.topics.get(normalise(text)))
            for q in qs
            for rid, text in q.rows.items()
        ],
        columns=["question_id", "row_id", "row_text", "row_topic"],
    ).astype("str")
    return questions, choices, rows


def _frame(raw: _Raw, index: SurveyIndex, rules: _Rules) -> pd.DataFrame:
    """Flat answers joined with headings, choice and row texts, topics and per-answer problems."""
    cols = ["question_id", *_ID_KEYS, "text"]
    a = pd.DataFrame(raw.records, columns=["response_id", "seq", *cols])
    a = a.astype({"response_id": "str", "seq": "int64", **dict.fromkeys(cols, "str")})
    questions, choices, rows = _tables(index, rules)
    a = a.merge(questions, on="question_id", how="left")
    a = a.merge(choices, on=["question_id", "choice_id"], how="left")
    a = a.merge(rows, on=["question_id", "row_id"], how="left")
    a["n_rows"] = a["n_rows"].fillna(0).astype("int64")
    is_other = a["other_id"].notna()
    a["other_text"] = a["text"].where(is_other)
    a["text"] = a["text"].where(~is_other)
    a["topic"] = a["row_topic"].where(a["row_topic"].notna(), a["question_topic"])
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
    a["problem"] = pd.Series(None, index=a.index, dtype=object)
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
        a.loc[bad, "problem"] = picked
    _score_column(a, rules)
    return a


def _choice_score(q: Any, choice_id: str, rules: _Rules) -> float:
    """A choice's value on the low-score scale (NaN off that question or off the scale)."""
    if rules.low_q is None or normalise(q.heading) != rules.low_q:
        return np.nan
    value = q.scale_value(choice_id, rules.low_min, rules.low_max)
    return np.nan if value is None else float(value)


def _score_column(a: pd.DataFrame, rules: _Rules) -> None:
    """Numeric value of answers to the low-score question; a non-numeric or off-scale one is a problem."""
    a["score"] = np.nan
    if rules.low_q is None:
        return
    on_low = a["problem"].isna() & (a["heading_n"] == rules.low_q) & a["choice_text"].notna()
    numbers = a.loc[on_low, "choice_score"]
    good = numbers.notna()
    a.loc[numbers.index[good], "score"] = numbers[good]
    bad = numbers.index[~good]
    a.loc[bad, "problem"] = [
        _NOT_A_NUMBER.format(c, rules.low_min, rules.low_max) for c in a.loc[bad, "choice_text"]
    ]


def _vector_triggers(
    a: pd.DataFrame, rules: _Rules, at_risk: Mapping[str, bool]
) -> list[tuple[str, int, Trigger]]:
    """Every rule as column operations over the flat answers; texts are built for fired rows only."""
    ok = a["problem"].isna()
    is_choice = ok & a["family"].isin(CHOICE_FAMILIES) & a["choice_text"].notna()
    score = a["score"]
    found: list[pd.DataFrame] = []

    def add(mask, kind: str, answers: pd.Series, rule, rule_args: list[pd.Series], severity) -> None:
        """Keep the rows of ``mask`` as triggers; ``rule(*values)`` words each from ``rule_args``."""
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        part = a.loc[mask, ["response_id", "seq", "question_id", "heading", "row_text", "topic"]].copy()
        part["kind"] = kind
        part["answer"] = answers[mask].astype(object).to_numpy()
        part["rule"] = [rule(*v) for v in zip(*(arg[mask].tolist() for arg in rule_args), strict=True)]
        part["severity"] = severity[mask].to_numpy() if isinstance(severity, pd.Series) else severity
        found.append(part)

    choice = a["choice_text"]
    neg_sev = a["choice_n"].map(rules.negative)
    add(is_choice & neg_sev.notna(), "negative_answer", choice, _rule_negative, [choice], neg_sev)

    if rules.bands:
        fits = [(score <= lim).to_numpy() for lim, _ in rules.bands]
        limit = pd.Series(np.select(fits, [lim for lim, _ in rules.bands], -1), index=a.index)
        severity = pd.Series(np.select(fits, [sev for _, sev in rules.bands], ""), index=a.index)
        score_text = score.fillna(-1).astype("int64").astype("str")
        add(
            ok & score.notna() & (limit >= 0),
            "low_score",
            score_text,
            lambda value, lim: _rule_low(int(value), lim, rules),
            [score, limit],
            severity,
        )

    for question, answers, kind, sev, rule in (
        (rules.unresolved_q, rules.unresolved, "unresolved_issue", rules.unresolved_sev, _rule_unresolved),
        (rules.follow_q, rules.follow, "follow_up_request", rules.follow_sev, _rule_follow),
    ):
        if question is not None:
            mask = is_choice & (a["heading_n"] == question) & a["choice_n"].isin(answers)
            add(mask, kind, choice, rule, [choice], sev)

    if rules.patterns:
        matched = pd.Series(None, index=a.index, dtype=object)
        body = a["text"].where(a["family"] == "open_ended")
        if rules.comment_other:
            body = body.where(body.notna(), a["other_text"])
        body = body.where(ok & (a["heading_n"].isin(rules.comment_qs) if rules.comment_qs else ok))
        texts = body.map(normalise, na_action="ignore").dropna()  # patterns match normalised text
        for source, pattern in rules.patterns:
            hits = texts.map(lambda text, p=pattern: p.search(text) is not None).astype(bool)
            matched[matched.isna() & hits.reindex(a.index, fill_value=False)] = source
        add(matched.notna(), "alarming_comment", body, _rule_comment, [matched], rules.comment_sev)

    if rules.risk_on and any(at_risk.values()):
        risky = a["response_id"].map(at_risk).fillna(False).astype(bool)
        neutral = is_choice & a["choice_n"].isin(rules.risk_answers)
        low = (score <= rules.risk_score) if rules.risk_score is not None else False
        mask = (ok & risky & (neutral | low)).fillna(False).astype(bool)
        first = mask & ~a["response_id"].where(mask).duplicated()
        shown = choice.astype(object).where(neutral, score.fillna(-1).astype("int64").astype("str"))
        add(first, "at_risk", shown, _rule_risk, [shown], rules.risk_sev)

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


def score_responses(
    details: Mapping[str, Any] | SurveyIndex,
    responses: Sequence[Mapping[str, Any]],
    playbook: Playbook,
    accounts_at_risk: Mapping[str, bool] | None = None,
    respondent_account: Mapping[str, str] | None = None,
) -> ScoringResult:
    """Score a batch (vectorised): one ResponseScore per response with an id, in input order."""
    index, rules = _index(details), _Rules.of(playbook)
    raw = _flatten(responses)
    accounts = _accounts(raw, respondent_account)
    risk = {rid: bool((accounts_at_risk or {}).get(acc)) for rid, acc in accounts.items() if acc}
    a = _frame(raw, index, rules)
    triggers = _vector_triggers(a, rules, risk)
    bad = a[a["problem"].notna()]
    problems = list(zip(bad["response_id"], bad["seq"].astype(int), bad["problem"], strict=True))
    is_comment = a["problem"].isna() & (
        (a["family"] == "open_ended") & a["text"].notna() | a["other_text"].notna()
    )
    c = a[is_comment]
    comments = list(
        zip(
            c["response_id"],
            c["seq"].astype(int),
            c["heading"].astype(str),
            c["text"].where(c["text"].notna(), c["other_text"]),
            strict=True,
        )
    )
    return _assemble(raw, triggers, problems, comments, a[ANSWER_COLUMNS], rules, accounts)
