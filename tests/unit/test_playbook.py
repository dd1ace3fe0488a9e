"""The playbook loads, round-trips, and names the key and the value of anything bad."""

from __future__ import annotations

import pytest
import yaml
from survey_builders import playbook_data

from closed_loop.playbook import (
    DEFAULT_PATH,
    PlaybookError,
    dump_playbook,
    load_playbook,
    parse_playbook,
)
from closed_loop.templating import templates_dir


def test_default_playbook_holds_the_sop_rules():
    pb = load_playbook()
    assert [a.text for a in pb.triggers.negative_answer.answers] == [
        "Strongly Disagree",
        "Not helpful at all",
        "Disagree",
        "Not very helpful",
    ]
    assert pb.routing.mrr_threshold == 3000 and pb.routing.comparison == "gt"
    assert [s.key for s in pb.steps] == [
        "acknowledge",
        "investigate",
        "internal_call",
        "customer_call",
        "corrective_action",
        "follow_up",
        "escalate",
        "document",
    ]
    assert (pb.step("acknowledge").window.min, pb.step("acknowledge").window.max) == (1, 3)
    assert pb.step("follow_up").activation_args == ("acknowledge",)
    assert pb.step("escalate").activation_args == ("dissatisfied", "overdue")
    assert pb.dispatch.survey_delay_days == 14
    assert pb.salesforce.case.external_id == "Survey_Response_Id__c"
    assert pb.username("doi") == "doi@closedloop.example"
    assert pb.triggers.unresolved_issue.answers == ["No", "Partially"]  # not YAML booleans


def test_env_var_selects_another_file(tmp_path, monkeypatch):
    data = playbook_data()
    data["routing"]["mrr_threshold"] = "5000"
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("CLOSED_LOOP_PLAYBOOK", str(path))
    assert load_playbook().routing.mrr_threshold == 5000
    assert load_playbook(DEFAULT_PATH).routing.mrr_threshold == 3000


def test_round_trip_through_yaml(tmp_path):
    pb = load_playbook()
    path = tmp_path / "dumped.yaml"
    path.write_text(dump_playbook(pb))
    again = load_playbook(path)
    assert again == pb
    assert again.model_dump() == pb.model_dump()


def test_yaml_documents_the_tie_and_missing_values():
    text = DEFAULT_PATH.read_text()
    assert "exactly 3000" in text and "mrr_missing" in text and "tsm_missing" in text


def test_every_step_template_exists():
    for step in load_playbook().steps:
        if step.template:
            assert (templates_dir() / step.template).is_file(), step.template


def _set(data, path, value):
    node = data
    *parents, last = path
    for key in parents:
        node = node[key]
    node[last] = value


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("routing", "mrr_threshold"), "three thousand", ["routing.mrr_threshold", "'three thousand'"]),
        (("routing", "comparison"), "greater", ["routing.comparison", "'greater'"]),
        (
            ("triggers", "low_score", "bands", 0, "severity"),
            "urgent",
            ["triggers.low_score.bands[0].severity", "'urgent'"],
        ),
        (("steps", 2, "window", "max"), -1, ["steps[2].window.max", "-1"]),
        (("steps", 0, "window", "min"), 9, ["steps[0].window", "min 9 is after max 3"]),
        (("steps", 1, "owner"), "cfo", ["steps[1].owner", "'cfo'"]),
        (("steps", 5, "activation"), "on_complete_of:nothing", ["steps[5].activation", "'nothing'"]),
        (("steps", 5, "activation"), "whenever", ["steps[5].activation", "'whenever'"]),
        (("calendar", "country"), "XX", ["calendar", "'XX'"]),
        (("calendar", "timezone"), "Mars/Olympus", ["calendar.timezone", "'Mars/Olympus'"]),
        (("calendar", "closures", 0), "2025-13-40", ["calendar.closures[0]", "'2025-13-40'"]),
        (
            ("triggers", "alarming_comment", "patterns", 1),
            "((",
            ["triggers.alarming_comment.patterns[1]", "'(('"],
        ),
        (
            ("salesforce", "case", "external_id"),
            "Survey Response Id",
            ["salesforce.case.external_id", "'Survey Response Id'"],
        ),
        (("intake", "schedule"), "every 15 min", ["intake.schedule", "'every 15 min'"]),
        (("tiers", "missing_mrr_tier"), "gold", ["tiers", "'gold'"]),
        (
            ("people", "roles", "doi", "username"),
            "not-an-email",
            ["people.roles.doi.username", "'not-an-email'"],
        ),
        (("dispatch", "survey_delay_days"), "two weeks", ["dispatch.survey_delay_days", "'two weeks'"]),
        (("routing", "mrr_treshold"), 3000, ["routing.mrr_treshold", "Extra inputs"]),
    ],
)
def test_bad_values_name_the_key_and_the_value(path, value, expected):
    data = playbook_data()
    _set(data, path, value)
    with pytest.raises(PlaybookError) as err:
        parse_playbook(data)
    for text in expected:
        assert text in str(err.value)


def test_missing_section_is_named():
    data = playbook_data()
    del data["sla"]
    with pytest.raises(PlaybookError, match=r"sla: Field required"):
        parse_playbook(data)


def test_priority_matrix_must_cover_every_tier():
    data = playbook_data()
    del data["priority"]["case"]["high"]["lower"]
    with pytest.raises(PlaybookError, match=r"priority\.case\.high"):
        parse_playbook(data)


def test_unreadable_files(tmp_path):
    with pytest.raises(PlaybookError, match="cannot read"):
        load_playbook(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("routing: [unclosed\n")
    with pytest.raises(PlaybookError, match="not valid YAML"):
        load_playbook(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(PlaybookError):
        load_playbook(empty)


def test_models_are_frozen():
    pb = load_playbook()
    with pytest.raises(ValueError):
        pb.routing.mrr_threshold = 1  # type: ignore[misc]


# --- attacks on the playbook (issue 19 item 9): each a clear error with its key path -----------------


def test_a_key_given_twice_is_refused_with_its_path(tmp_path):
    """A second ``triggers:`` block (YAML keeps the last) would silently turn the SOP trigger off."""
    text = DEFAULT_PATH.read_text() + "\ntriggers:\n  negative_answer: {enabled: false}\n"
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(PlaybookError, match=r"gives a key twice .*triggers \(line \d+\)"):
        load_playbook(path)
    nested = DEFAULT_PATH.read_text().replace(
        "  mrr_threshold: 3000\n", "  mrr_threshold: 3000\n  mrr_threshold: 999999\n"
    )
    path.write_text(nested)
    with pytest.raises(PlaybookError, match=r"routing\.mrr_threshold \(line \d+\)"):
        load_playbook(path)


def test_a_huge_playbook_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(DEFAULT_PATH.read_text() + "#" + "x" * 2_000_000 + "\n")
    with pytest.raises(PlaybookError, match=r"bytes; the limit is 1,000,000"):
        load_playbook(path)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("intake", "schedule"), "every day at the hour", ["intake.schedule", "five-field cron"]),
        (("intake", "schedule"), "99 * * * *", ["intake.schedule", "'99 * * * *'"]),
        (("intake", "schedule"), "*/15 * * * * *", ["intake.schedule"]),
        (
            ("steps", 5, "activation"),
            "on_complete_of:follow_up",
            ["steps[5].activation", "'follow_up' waits on its own completion"],
        ),
        (("surveys", "recovery_pulse", "title"), "post-implementation  FEEDBACK", ["surveys", "same title"]),
        (
            ("triggers", "alarming_comment", "patterns", 0),
            r"(\w+)\s+\1",
            ["triggers.alarming_comment.patterns[0]", "linear-time (RE2)"],
        ),
        (("steps", 0, "window", "max"), 100000, ["steps[0].window.max", "100000"]),
        (("dispatch", "survey_delay_days"), 10**9, ["dispatch.survey_delay_days"]),
        (("routing", "mrr_threshold"), "1e30", ["routing.mrr_threshold"]),
        (("intake", "watermark_overlap_minutes"), 10**7, ["intake.watermark_overlap_minutes"]),
        (("triggers", "low_score", "scale_max"), 10**12, ["triggers.low_score.scale_max"]),
        (("company", "name"), "Northwind\r\nBcc: everyone@example.com", ["company.name", "\\r\\nBcc"]),
        (("steps", 0, "title"), "Acknowledge\nnow", ["steps[0].title"]),
    ],
)
def test_attacks_on_the_playbook_name_the_key(path, value, expected):
    test_bad_values_name_the_key_and_the_value(path, value, expected)


def test_a_two_step_cycle_is_refused():
    data = playbook_data()
    _set(data, ("steps", 0, "activation"), "on_complete_of:follow_up")  # acknowledge <-> follow_up
    with pytest.raises(PlaybookError, match=r"steps\[0\]\.activation: 'acknowledge' waits on its own"):
        parse_playbook(data)


def test_a_catastrophic_pattern_scores_a_long_comment_in_linear_time():
    """``(a+)+$`` backtracks exponentially in Python's re; the playbook's engine (RE2) does not. Bound by
    work: 30 characters already take Python's engine minutes (2**30 paths), RE2 reads 200,000 at once."""
    from closed_loop.playbook import compile_pattern

    data = playbook_data()
    _set(data, ("triggers", "alarming_comment", "patterns", 0), "(a+)+$")
    pb = parse_playbook(data)
    pattern = compile_pattern(pb.triggers.alarming_comment.patterns[0])
    assert pattern.search("a" * 200_000 + "!") is None
    assert pattern.search("b" + "a" * 200_000) is not None
    assert compile_pattern(r"\bcancel").search("We will CANCEL the contract") is not None
