"""SurveyMonkey-shaped test data: the main survey's /details document and responses built by text."""

from __future__ import annotations

from typing import Any

MATRIX = "Please rate your agreement with each statement about your implementation."
ROWS = [
    "The implementation team understood our business needs.",
    "Go-live happened on the agreed timeline.",
    "Training prepared our team to use the product.",
    "Marketing launch materials met our expectations.",
    "The product works the way we were told it would.",
]
AGREE = ["Strongly Agree", "Agree", "Neither Agree nor Disagree", "Disagree", "Strongly Disagree"]
HELPFUL = ["Extremely helpful", "Very helpful", "Somewhat helpful", "Not very helpful", "Not helpful at all"]
IPM = "How helpful was your implementation project manager?"
MARKETING = "How helpful was the marketing onboarding?"
RECOMMEND = "How likely are you to recommend us to a colleague?"
RESOLVED = "Have all the issues you raised during implementation been resolved?"
CONTACT = "Would you like someone from our team to contact you about your feedback?"
COMMENT = "Is there anything else you would like to share with us?"
OTHER = "Other (please specify)"


def survey_details(survey_id: str = "400000001") -> dict[str, Any]:
    """The conventions' main survey in the /surveys/{id}/details shape, with numeric-string ids."""
    counter = iter(range(700000001, 799999999))

    def choices(texts: list[str]) -> list[dict[str, Any]]:
        return [
            {"id": str(next(counter)), "position": i + 1, "text": t, "visible": True}
            for i, t in enumerate(texts)
        ]

    def question(pos: int, family: str, subtype: str, heading: str, answers: dict | None = None) -> dict:
        q = {
            "id": str(600000000 + pos),
            "position": pos,
            "family": family,
            "subtype": subtype,
            "headings": [{"heading": heading}],
            "href": f"https://api.example/v3/q/{pos}",
        }
        if answers is not None:
            q["answers"] = answers
        return q

    rows = [
        {"id": str(next(counter)), "position": i + 1, "text": t, "visible": True} for i, t in enumerate(ROWS)
    ]
    questions = [
        question(1, "matrix", "rating", MATRIX, {"rows": rows, "choices": choices(AGREE)}),
        question(2, "single_choice", "vertical", IPM, {"choices": choices(HELPFUL)}),
        question(
            3,
            "single_choice",
            "vertical",
            MARKETING,
            {
                "choices": choices(HELPFUL),
                "other": {"id": str(next(counter)), "text": OTHER, "visible": True},
            },
        ),
        question(4, "single_choice", "horiz", RECOMMEND, {"choices": choices([str(n) for n in range(11)])}),
        question(5, "single_choice", "vertical", RESOLVED, {"choices": choices(["Yes", "Partially", "No"])}),
        question(6, "single_choice", "vertical", CONTACT, {"choices": choices(["Yes", "No"])}),
        question(7, "open_ended", "essay", COMMENT),
    ]
    return {
        "id": survey_id,
        "title": "Post-Implementation Feedback",
        "pages": [
            {"id": "300000001", "position": 1, "title": "", "questions": questions[:3]},
            {"id": "300000002", "position": 2, "title": "", "questions": questions[3:]},
        ],
    }


def _ids(details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for page in details["pages"]:
        for q in page["questions"]:
            answers = q.get("answers", {})
            out[q["headings"][0]["heading"]] = {
                "id": q["id"],
                "page": page["id"],
                "choices": {c["text"]: c["id"] for c in answers.get("choices", [])},
                "rows": {r["text"]: r["id"] for r in answers.get("rows", [])},
                "other": answers.get("other", {}).get("id"),
            }
    return out


def answer(details: dict[str, Any], heading: str, value: Any) -> list[dict[str, Any]]:
    """Answers for one question: a choice text, {row text: choice text}, ("other", text) or free text."""
    q = _ids(details)[heading]
    if isinstance(value, dict):
        return [{"row_id": q["rows"][row], "choice_id": q["choices"][text]} for row, text in value.items()]
    if isinstance(value, tuple) and value[0] == "other":
        return [{"other_id": q["other"], "text": value[1]}]
    if q["choices"]:
        return [{"choice_id": q["choices"][value]}]
    return [{"text": value}]


def response(
    details: dict[str, Any], response_id: str, answers: dict[str, Any], recipient_id: str | None = None
) -> dict[str, Any]:
    """A /responses/bulk item answering ``{heading: value}`` (see ``answer``)."""
    index = _ids(details)
    pages: dict[str, list[dict[str, Any]]] = {}
    for heading, value in answers.items():
        q = index[heading]
        pages.setdefault(q["page"], []).append({"id": q["id"], "answers": answer(details, heading, value)})
    return {
        "id": response_id,
        "recipient_id": recipient_id or f"rcp-{response_id}",
        "collector_id": "500000001",
        "survey_id": details["id"],
        "response_status": "completed",
        "date_created": "2025-03-03T15:04:05+00:00",
        "date_modified": "2025-03-03T15:04:05+00:00",
        "pages": [{"id": pid, "questions": qs} for pid, qs in pages.items()],
    }


HAPPY = {
    MATRIX: dict.fromkeys(ROWS, "Agree"),
    IPM: "Very helpful",
    MARKETING: "Extremely helpful",
    RECOMMEND: "9",
    RESOLVED: "Yes",
    CONTACT: "No",
    COMMENT: "All good, thank you.",
}


def playbook_data() -> dict[str, Any]:
    """The repository playbook as plain data, for tests that change one value."""
    import copy

    from closed_loop.playbook import load_playbook

    return copy.deepcopy(load_playbook().model_dump(mode="json"))


def playbook_with(**changes: Any):
    """The repository playbook with dotted-path changes, e.g. ``{"routing.mrr_threshold": 5000}``."""
    from closed_loop.playbook import parse_playbook

    data = playbook_data()
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return parse_playbook(data)
