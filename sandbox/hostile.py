"""`--hostile`: the awkward org of issue 14 on top of the seeded one (demo and tests).

- the Transition Success Manager ``INACTIVE_TSM`` has left: inactive, still set on accounts;
- the first respondent with an alarming comment writes it over two lines with a phone's typographic
  apostrophe and a double space (only a normalised match finds it);
- the first recovery pulse answered says the customer remains "Very dissatisfied".
Abandoned partial responses come from the simulation itself (some partial respondents never finish).
"""

from __future__ import annotations

from typing import Any

INACTIVE_TSM = "tsm4@closedloop.example"
MULTILINE_COMMENT = "Billing still\ndoesn\u2019t  work since go-live."
PULSE_ANSWER = "Very dissatisfied"


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
