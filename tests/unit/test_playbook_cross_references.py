"""Cross-references between playbook sections: each broken one is refused with its exact message, and the
first problem in section order is the one reported (steps, then roles, then priorities)."""

from __future__ import annotations

import pytest
from survey_builders import playbook_data

from closed_loop.playbook import PlaybookError, parse_playbook


def _roles(data) -> list[str]:
    return sorted(set(data["people"]["roles"]) | {"lp"})


def _message(data) -> str:
    with pytest.raises(PlaybookError) as err:
        parse_playbook(data)
    text = str(err.value)
    assert text.startswith("invalid playbook <data>:\n  <root>: "), text
    return text.removeprefix("invalid playbook <data>:\n  <root>: ")


def test_duplicate_step_keys():
    data = playbook_data()
    data["steps"][1]["key"] = data["steps"][0]["key"]
    keys = [s["key"] for s in data["steps"]]
    assert _message(data) == f"steps: keys must be unique, got {keys}"


def test_unknown_step_owner_lists_the_roles():
    data = playbook_data()
    data["steps"][2]["owner"] = "cfo"
    assert _message(data) == f"steps[2].owner: unknown role 'cfo' (roles: {_roles(data)})"


@pytest.mark.parametrize(
    ("activation", "unknown"),
    [("on_complete_of:nothing", "nothing"), ("on_condition:sometimes", "sometimes")],
)
def test_unknown_activation_argument(activation, unknown):
    data = playbook_data()
    data["steps"][3]["activation"] = activation
    assert _message(data) == f"steps[3].activation: unknown {unknown!r} in {activation!r}"


def test_a_step_waiting_on_itself():
    data = playbook_data()
    key = data["steps"][4]["key"]
    data["steps"][4]["activation"] = f"on_complete_of:{key}"
    assert _message(data) == (
        f"steps[4].activation: {key!r} waits on its own completion ('on_complete_of:{key}'), so it is never "
        "created"
    )


def test_unknown_topic_audience_role():
    data = playbook_data()
    data["topics"]["audience"]["marketing"] = ["ms", "cfo"]
    assert _message(data) == "topics.audience.marketing: unknown role 'cfo'"


@pytest.mark.parametrize(
    "where",
    [
        ("otherwise",),
        ("missing_mrr", "role"),
        ("missing_tsm", "role"),
        ("inactive_user", "role"),
        "summary_to",
    ],
)
def test_unknown_routing_role(where):
    data = playbook_data()
    if where == "summary_to":
        data["steps"][0]["summary_to"] = ["nobody"]
    elif len(where) == 1:
        data["routing"][where[0]] = "nobody"
    else:
        data["routing"][where[0]][where[1]] = "nobody"
    assert _message(data) == "routing: unknown role 'nobody'"


@pytest.mark.parametrize("key", ["dissatisfied", "fallback", "overdue"])
def test_unknown_escalation_owner(key):
    data = playbook_data()
    owners = data["sla"]["escalation_owners"]
    if key == "overdue":
        owners["overdue"]["ms"] = "nobody"
    else:
        owners[key] = "nobody"
    assert _message(data) == "sla.escalation_owners: unknown role 'nobody'"


def test_case_priorities_must_name_exactly_the_tiers():
    data = playbook_data()
    tiers = sorted(b["name"] for b in data["tiers"]["bands"])
    data["priority"]["case"]["medium"]["extra"] = "High"
    assert _message(data) == f"priority.case.medium must name exactly the tiers {tiers}"
    del data["priority"]["case"]["medium"]["extra"]
    del data["priority"]["case"]["low"]
    assert _message(data) == f"priority.case.low must name exactly the tiers {tiers}"


def test_task_priorities_must_cover_high_medium_low():
    data = playbook_data()
    del data["priority"]["task"]["Low"]
    assert _message(data) == "priority.task must map each of High, Medium, Low"


def test_the_first_broken_section_is_reported():
    data = playbook_data()
    del data["priority"]["task"]["Low"]
    data["sla"]["escalation_owners"]["fallback"] = "nobody"
    data["routing"]["otherwise"] = "cfo"
    data["topics"]["audience"]["marketing"] = ["ghost"]
    data["steps"][1]["owner"] = "phantom"
    assert _message(data).startswith("steps[1].owner: unknown role 'phantom'")
    data["steps"][1]["owner"] = "lp"
    assert _message(data) == "topics.audience.marketing: unknown role 'ghost'"
    data["topics"]["audience"]["marketing"] = ["ms"]
    assert _message(data) == "routing: unknown role 'cfo'"
    data["routing"]["otherwise"] = "doi"
    assert _message(data) == "sla.escalation_owners: unknown role 'nobody'"
    data["sla"]["escalation_owners"]["fallback"] = "management"
    assert _message(data) == "priority.task must map each of High, Medium, Low"
