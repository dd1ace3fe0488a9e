"""SOP 6.1 "if the customer remains dissatisfied, escalate": is a recovery-pulse answer negative?

The playbook's ``recovery`` section defines it like the main triggers: a satisfaction answer among
``dissatisfied_answers``, or a recommend score at or below ``score_at_or_below``. Texts match through the
one normalisation (``playbook.normalise``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from closed_loop.playbook import Playbook, normalise

KIND = "recovery_dissatisfied"


def pulse_dissatisfaction(answers: Iterable[Mapping], playbook: Playbook) -> list[dict]:
    """The answers that say the customer remains dissatisfied, as trigger dicts (kind, question_id,
    heading, row, answer, rule, severity); empty when the pulse is not negative. ``answers`` are the
    flattened answer rows (heading, choice_text, ...)."""
    rules = playbook.recovery
    sad = {normalise(a) for a in rules.dissatisfied_answers}
    satisfaction, score_q = normalise(rules.satisfaction_question), normalise(rules.score_question)
    fired = []
    for a in answers:
        heading, choice = normalise(a.get("heading") or ""), a.get("choice_text")
        if choice is None:
            continue
        if heading == satisfaction and normalise(choice) in sad:
            rule = f"'{choice}' is among the playbook's dissatisfied recovery answers"
        elif (
            heading == score_q
            and rules.score_at_or_below is not None
            and str(choice).strip().isdigit()
            and (int(str(choice).strip()) <= rules.score_at_or_below)
        ):
            rule = f"recommend score {choice} is at or below {rules.score_at_or_below} after the follow-up"
        else:
            continue
        where = {"question_id": a.get("question_id"), "heading": a.get("heading"), "row": a.get("row_text")}
        fired.append({"kind": KIND, **where, "answer": str(choice), "rule": rule, "severity": "high"})
    return fired
