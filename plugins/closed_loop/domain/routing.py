"""Who leads the follow-up (LP), the account's tier and channel, and who joins the internal call."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from closed_loop.playbook import Playbook

ATTEND_TSM_CALL = "attend_tsm_call"
SCHEDULE_CALL = "schedule_call"
_MONEY = re.compile(r"^\$?\s*(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")


def parse_mrr(value: Any) -> tuple[Decimal | None, bool]:
    """(MRR, unparseable?) from a number or text such as "3,000.00" or "$3000"; "$4K" is unparseable.

    None or an empty string is simply missing (False); anything else that is not a non-negative
    finite amount is treated as missing and reported as unparseable (True), never guessed.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, False
    if isinstance(value, bool):
        return None, True
    if isinstance(value, Decimal | int | float):
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return None, True
    else:
        text = str(value).strip()
        if not _MONEY.match(text):
            return None, True
        amount = Decimal(text.lstrip("$").strip().replace(",", ""))
    if not amount.is_finite() or amount < 0:
        return None, True
    return amount, False


@dataclass(frozen=True)
class AccountFacts:
    """What routing needs to know about an account; ``mrr`` may be given raw and is parsed here."""

    account_id: str
    name: str
    mrr: Decimal | None = None
    tsm_username: str | None = None
    tsm_active: bool = True
    at_risk: bool = False
    mrr_unparseable: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        amount, unparseable = parse_mrr(self.mrr)
        object.__setattr__(self, "mrr", amount)
        object.__setattr__(self, "mrr_unparseable", unparseable)


@dataclass(frozen=True)
class Routing:
    lp_role: str  # "tsm" or a playbook role (doi)
    lp_username: str
    tier: str
    channel: str
    internal_call_audience: tuple[str, ...]
    customer_call_variant: str
    flags: tuple[str, ...] = ()
    inactive_roles: tuple[str, ...] = ()  # role users found inactive (their part went to the fallback)


def internal_call_audience(
    topics: Iterable[str], playbook: Playbook, inactive_roles: Iterable[str] = ()
) -> tuple[str, ...]:
    """Roles to invite, in playbook role order; the default topic's audience when no topic is known.
    An inactive role is replaced by the playbook's ``routing.inactive_user`` role."""
    audience, gone = playbook.topics.audience, set(inactive_roles)
    fallback = playbook.routing.inactive_user.role
    chosen = {
        fallback if role in gone else role
        for topic in (tuple(topics) or (playbook.topics.default_topic,))
        for role in audience[topic]
    }
    return tuple(role for role in playbook.people.roles if role in chosen)


def route(
    account: AccountFacts,
    topics: Iterable[str],
    playbook: Playbook,
    inactive_roles: Iterable[str] = (),
) -> Routing:
    """Apply the playbook's routing: LP by MRR threshold with documented fallbacks, tier and audience.

    The one lead decision, from the account (MRR, TSM and whether that user is active) and the role
    users' state: ``inactive_roles`` names the playbook roles (doi, ms...) whose user is inactive;
    one of them never leads or joins, the ``routing.inactive_user`` role does, flagged."""
    rules = playbook.routing
    topics = tuple(topics)
    gone = tuple(sorted(set(inactive_roles)))
    flags: list[str] = []
    if account.mrr is None:
        lp_role = rules.missing_mrr.role
        flags.append(rules.unparseable_mrr_flag if account.mrr_unparseable else rules.missing_mrr.flag)
    elif rules.above(account.mrr):
        if account.tsm_username and account.tsm_active:
            lp_role = rules.above_threshold
        else:
            lp_role = rules.missing_tsm.role
            flags.append(rules.missing_tsm.flag)
    else:
        lp_role = rules.otherwise
    audience = internal_call_audience(topics, playbook, gone)
    if gone:  # the summary goes to the DOI & MS on every case: an inactive one always matters
        flags.append(rules.inactive_user.flag)
    if lp_role in gone:
        lp_role = rules.inactive_user.role
    lp_username = account.tsm_username if lp_role == "tsm" else playbook.username(lp_role)
    band = playbook.tiers.band_for(account.mrr)
    return Routing(
        lp_role=lp_role,
        lp_username=str(lp_username),
        tier=band.name,
        channel=band.channel,
        internal_call_audience=audience,
        customer_call_variant=ATTEND_TSM_CALL if lp_role == "tsm" else SCHEDULE_CALL,
        flags=tuple(flags),
        inactive_roles=gone,
    )
