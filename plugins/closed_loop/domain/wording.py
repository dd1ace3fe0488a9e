"""People's words for what the pipeline knows: why a response was flagged, field labels, flags.

Everything an LP or a manager reads goes through here, so no regex, rule id or field API name reaches
them: a trigger is told as the answer the customer gave (or the sentence they wrote), a field as its
label, a data-quality flag as a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from closed_loop.domain.scoring import Trigger
    from closed_loop.playbook import Playbook

QUOTE_MAX = 300
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*")
_SPACES = re.compile(r"\s+")


def field_label(api_name: str) -> str:
    """A custom field's label as Salesforce derives it from the API name (``My_Field__c`` -> ``My Field``)."""
    return api_name.removesuffix("__c").replace("_", " ").strip()


def field_labels(api_names: Iterable[str]) -> list[str]:
    return [field_label(n) for n in api_names]


def _quote(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= QUOTE_MAX else text[: QUOTE_MAX - 1].rstrip() + "\u2026"


def fired_sentence(comment: str, patterns: Iterable[str]) -> str:
    """The sentence of ``comment`` that an alarming-comment pattern matched, compared the way scoring
    compares (the playbook's one normalisation); the whole comment, clipped, when no single sentence
    matches (e.g. a match across a line break)."""
    from closed_loop.playbook import compile_pattern, fold_typography, normalise

    compiled = []
    for p in patterns:
        try:
            compiled.append(compile_pattern(fold_typography(p)))
        except Exception:  # noqa: BLE001,S112 - a pattern the playbook validation let through: skip it
            continue
    for sentence in (s for s in _SENTENCE_END.split(comment) if s.strip()):
        if any(c.search(normalise(sentence)) for c in compiled):
            return _quote(sentence)
    return _quote(comment)


def describe_trigger(trigger: Trigger, playbook: Playbook | None = None) -> str:
    """One line saying, in words, which answer or sentence made the response negative."""
    where = f"{trigger.heading} \u2014 {trigger.row}" if trigger.row else trigger.heading
    kind = trigger.kind
    if kind == "alarming_comment":
        patterns = playbook.triggers.alarming_comment.patterns if playbook else ()
        return f'Wrote: "{fired_sentence(trigger.answer, patterns)}" ({trigger.heading})'
    if kind == "low_score":
        top = playbook.triggers.low_score.scale_max if playbook else 10
        return f'Scored {trigger.answer} out of {top} on "{where}"'
    if kind == "follow_up_request":
        return f'Asked to be contacted ("{trigger.answer}" to "{where}")'
    if kind == "at_risk":
        return f'Answered "{trigger.answer}" to "{where}" while the account is flagged at risk'
    return f'Answered "{trigger.answer}" to "{where}"'


def flag_sentence(flag: str, playbook: Playbook) -> str:
    """A data-quality flag (``mrr_missing``...) as the sentence an LP can act on."""
    routing = playbook.routing
    fallback = playbook.people.roles[routing.inactive_user.role].title
    return {
        routing.missing_mrr.flag: "the account has no MRR in Salesforce",
        routing.unparseable_mrr_flag: "the account's MRR in Salesforce is not a number",
        routing.missing_tsm.flag: "the account has no active Transition Success Manager in Salesforce",
        routing.inactive_user.flag: "a role user (the Director of Implementations or the Marketing "
        f"Specialist) is inactive in Salesforce, so the {fallback} takes their part",
    }.get(flag, flag.replace("_", " "))
