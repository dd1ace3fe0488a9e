"""`--hostile`: the awkward org of issue 14 on top of the seeded one (demo and tests).

- the Transition Success Manager ``INACTIVE_TSM`` has left: inactive, still set on accounts;
- the first respondent with an alarming comment writes it over two lines with a phone's typographic
  apostrophe and a double space (only a normalised match finds it);
- the first recovery pulse answered says the customer remains "Very dissatisfied";
- the first partial response of the main survey strongly disagrees with its first statement and is never
  finished (an abandoned negative partial: SOP 1.1 "any question that receives ...").
"""

from __future__ import annotations

from typing import Any

INACTIVE_TSM = "tsm4@closedloop.example"
MULTILINE_COMMENT = "Billing still\ndoesn\u2019t  work since go-live."
PULSE_ANSWER = "Very dissatisfied"
ABANDONED_ANSWER = "Strongly Disagree"


def apply(state) -> None:
    """At seed time: mark the org hostile and deactivate the TSM (kept on their accounts)."""
    state.data["config"]["hostile"] = True
    state.data["hostile"] = {}
    for user in state.data["sf"]["User"].values():
        if user["Username"] == INACTIVE_TSM:
            user["IsActive"] = False


def shape(state, survey: dict, response: dict, profile: list[str], main_title: str) -> None:
    """Rewrite the first alarming comment / the first pulse of a hostile org (no-op otherwise)."""
    used: dict[str, Any] | None = state.data.get("hostile")
    if used is None or response["response_status"] != "completed":
        return
    questions = {q["id"]: q for q in survey["pages"][0]["questions"]}
    answered = response["pages"][0]["questions"]
    if survey["title"] == main_title and "alarming" in profile and "comment" not in used:
        for question in answered:
            if questions[question["id"]]["family"] == "open_ended":
                question["answers"] = [{"text": MULTILINE_COMMENT}]
                used["comment"] = response["id"]
    elif survey["title"] != main_title and "pulse" not in used:
        first = answered[0]
        choices = questions[first["id"]]["answers"]["choices"]
        first["answers"] = [{"choice_id": next(c["id"] for c in choices if c["text"] == PULSE_ANSWER)}]
        used["pulse"] = response["id"]


def abandon(state, survey: dict, response: dict, plan: dict, main_title: str) -> None:
    """Make the first partial main-survey response of a hostile org negative and never completed."""
    used: dict[str, Any] | None = state.data.get("hostile")
    if used is None or "partial" in used or response["response_status"] != "partial":
        return
    if survey["title"] != main_title:
        return
    questions = {q["id"]: q for q in survey["pages"][0]["questions"]}
    for answered in response["pages"][0]["questions"]:
        question = questions[answered["id"]]
        if question["family"] != "matrix":
            continue
        row = question["answers"]["rows"][0]["id"]
        choice = next(c["id"] for c in question["answers"]["choices"] if c["text"] == ABANDONED_ANSWER)
        others = [a for a in answered["answers"] if a.get("row_id") != row]
        answered["answers"] = [{"row_id": row, "choice_id": choice}, *others]
        plan["complete_after_hours"] = None
        used["partial"] = response["id"]
        return
