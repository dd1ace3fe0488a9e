"""Synthetic survey answers: a seeded mix of happy and negative respondents across every trigger kind."""

from __future__ import annotations

import random
from typing import Any

from sandbox.seed import MAIN_TITLE
from sandbox.state import SandboxState, sm_datetime

TRAITS = ["impl", "marketing", "pm", "nps", "unresolved", "followup", "alarming", "html", "other"]
ALARMING = [
    "We are considering cancelling our subscription.",
    "Honestly we are looking at other vendors now.",
    "If this is not fixed by next month we will terminate the contract.",
    "Our CFO wants to cancel. Billing runs failed twice since go-live.",
]
HTML = [
    "<script>alert('x')</script> The onboarding was fine.",
    '<b>Great</b> team & "quick" responses',
    "Invoices look wrong <img src=x onerror=alert(1)>",
]
POSITIVE = [
    "Great team, thank you!",
    "Smooth go-live overall.",
    "Training could be a bit longer, otherwise good.",
    "Thanks — the PM was very responsive.",
]
OTHER_TEXT = [
    "We never received the launch kit",
    "Marketing didn't contact us at all",
    "n/a - handled in-house",
]
ROOT_CAUSES = [
    "Data migration mapping was incomplete.",
    "Go-live date slipped due to integration delays.",
    "Training did not cover the invoicing workflow.",
]
ACTIONS = [
    "Held a remediation call and fixed the mappings.",
    "Delivered an extra training session.",
    "Escalated the integration defect and shipped a fix.",
]
OUTCOMES = [
    "Customer confirmed the issue is resolved.",
    "Customer satisfied with the follow-up.",
    "Partially resolved; customer accepted the workaround.",
]


def _choice(question: dict, index: int) -> dict:
    return {"choice_id": question["answers"]["choices"][index]["id"]}


def _main_answers(rng: random.Random, questions: list[dict]) -> tuple[list[dict], list[str]]:
    traits = [] if rng.random() < 0.42 else rng.sample(TRAITS, rng.choice([1, 1, 2, 3]))
    matrix, pm, marketing, nps, resolved, follow, comment = questions
    bad = lambda: rng.choice([3, 4])  # noqa: E731 - Disagree / Strongly Disagree (or the helpful equivalents)
    rows = matrix["answers"]["rows"]
    scores = [rng.choice([0, 0, 1, 1, 2]) for _ in rows]
    if "impl" in traits:
        for row in rng.sample([0, 1, 2, 4], rng.choice([1, 2])):
            scores[row] = bad()
    if "marketing" in traits:
        scores[3] = bad()
    out = [
        {
            "id": matrix["id"],
            "answers": [{"row_id": r["id"], **_choice(matrix, s)} for r, s in zip(rows, scores, strict=True)],
        }
    ]
    out.append(
        {"id": pm["id"], "answers": [_choice(pm, bad() if "pm" in traits else rng.choice([0, 1, 1, 2]))]}
    )
    if "other" in traits:
        other = marketing["answers"]["other"]
        out.append(
            {"id": marketing["id"], "answers": [{"other_id": other["id"], "text": rng.choice(OTHER_TEXT)}]}
        )
    elif "marketing" in traits or rng.random() > 0.1:
        pick = bad() if "marketing" in traits else rng.choice([0, 1, 2])
        out.append({"id": marketing["id"], "answers": [_choice(marketing, pick)]})
    score = rng.randint(0, 6) if "nps" in traits else rng.randint(7, 10)
    out.append({"id": nps["id"], "answers": [_choice(nps, score)]})
    out.append(
        {
            "id": resolved["id"],
            "answers": [_choice(resolved, rng.choice([1, 2]) if "unresolved" in traits else 0)],
        }
    )
    out.append(
        {
            "id": follow["id"],
            "answers": [_choice(follow, 0 if "followup" in traits or rng.random() < 0.1 else 1)],
        }
    )
    text = (
        rng.choice(ALARMING)
        if "alarming" in traits
        else rng.choice(HTML)
        if "html" in traits
        else (rng.choice(POSITIVE) if rng.random() < 0.5 else None)
    )
    if text:
        out.append({"id": comment["id"], "answers": [{"text": text}]})
    return out, traits or ["happy"]


def _pulse_answers(rng: random.Random, questions: list[dict]) -> tuple[list[dict], list[str]]:
    unhappy = rng.random() < 0.35
    satisfied, nps = questions
    return (
        [
            {
                "id": satisfied["id"],
                "answers": [_choice(satisfied, rng.choice([3, 4]) if unhappy else rng.choice([0, 1, 2]))],
            },
            {
                "id": nps["id"],
                "answers": [_choice(nps, rng.randint(0, 6) if unhappy else rng.randint(7, 10))],
            },
        ],
        ["unhappy" if unhappy else "happy"],
    )


def answer_pages(rng: random.Random, survey: dict, partial: bool) -> tuple[list[dict], list[str]]:
    page = survey["pages"][0]
    build = _main_answers if survey["title"] == MAIN_TITLE else _pulse_answers
    questions, profile = build(rng, page["questions"])
    if partial:
        questions = questions[:2] if survey["title"] == MAIN_TITLE else questions[:1]
    return [{"id": page["id"], "questions": questions}], profile


def build_response(
    state: SandboxState, rng: random.Random, survey: dict, collector: dict, recipient: dict, partial: bool
) -> dict[str, Any]:
    response_id = state.new_sm_id("response", 12000000000)
    pages, profile = answer_pages(rng, survey, partial)
    now = sm_datetime(state.now)
    return {
        "id": response_id,
        "recipient_id": recipient["id"],
        "collector_id": collector["id"],
        "survey_id": survey["id"],
        "collection_mode": "default",
        "response_status": "partial" if partial else "completed",
        "custom_value": "",
        "custom_variables": {},
        "first_name": recipient.get("first_name", ""),
        "last_name": recipient.get("last_name", ""),
        "email_address": recipient["email"],
        "ip_address": "",
        "logic_path": {},
        "page_path": [],
        "total_time": rng.randint(40, 900),
        "date_created": now,
        "date_modified": now,
        "edit_url": "",
        "analyze_url": "",
        "metadata": {
            "contact": {
                "email": {"type": "string", "value": recipient["email"]},
                "first_name": {"type": "string", "value": recipient.get("first_name", "")},
                "last_name": {"type": "string", "value": recipient.get("last_name", "")},
                **{
                    f"custom_value{k}": {"type": "string", "value": v}
                    for k, v in (recipient.get("custom_fields") or {}).items()
                },
            }
        },
        "pages": pages,
        "_profile": profile,
    }


def complete(state: SandboxState, rng: random.Random, survey: dict, response: dict) -> None:
    response["pages"], _ = answer_pages(rng, survey, partial=False)
