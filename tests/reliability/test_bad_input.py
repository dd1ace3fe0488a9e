"""Bad input: broken JSON from either API, garbled or hostile responses, MRR as text, odd dates, a playbook
with a bad value. Each gives a clear error or a quarantined record with a reason; the batch proceeds.
Plus a hypothesis fuzz of the response parser/scorer: no crash, every injected defect reported."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import PB, PIPELINES, assert_clean, audit, fault_on, intake_run, intake_setup

from closed_loop.hooks.errors import SalesforceApiError, SurveyMonkeyBadPayload

DESCRIPTION_LIMIT = 32_000


def _finish(w) -> dict:
    w.clear_faults()
    PIPELINES["intake"][1](w.fresh_hooks(), run_id="next")
    report = audit(w)
    assert_clean(report)
    return report


@pytest.mark.parametrize("fault", ["sm_malformed_json", "sm_truncated_json"])
def test_broken_surveymonkey_json_stops_cleanly(world, record, fault):
    intake_setup(world)
    world.notes["intake_ran"] = True
    world.faults(**{fault: 1})
    with pytest.raises(SurveyMonkeyBadPayload, match="is not JSON"):
        intake_run(world)
    assert world.ledger.read_frame("responses").empty, "nothing half-recorded, the watermark did not move"
    report = _finish(world)
    record(f"SurveyMonkey {fault.split('_', 1)[1]} body (2xx)",
           "SurveyMonkeyBadPayload, nothing recorded; next run completed", **report["totals"])  # fmt: skip


@pytest.mark.parametrize("fault", ["sf_malformed_json", "sf_truncated_json"])
def test_broken_salesforce_json_on_a_case_create_stops_cleanly(world, monkeypatch, record, fault):
    """The create ran, its reply is garbage: a typed error, and the rerun finds and updates the same Cases."""
    intake_setup(world)
    world.notes["intake_ran"] = True
    fault_on(monkeypatch, world, "sf.create_records", "case", **{fault: 1})
    with pytest.raises(SalesforceApiError, match="BAD_RESPONSE"):
        intake_run(world)
    monkeypatch.undo()
    report = _finish(world)
    record(f"Salesforce {fault.split('_', 1)[1]} reply to the Case create",
           "SalesforceApiError BAD_RESPONSE; next run updated the same Cases",
           **report["totals"])  # fmt: skip


def _comment_question(state) -> str:
    survey = next(s for s in state["sm"]["surveys"].values() if s["title"] == PB.surveys.main.title)
    return next(
        q["id"]
        for p in survey["pages"]
        for q in p["questions"]
        if q["headings"][0]["heading"].startswith("Is there anything else")
    )


def _set_comment(raw: dict, qid: str, text: str) -> None:
    for page in raw["pages"]:
        for q in page["questions"]:
            if q["id"] == qid:
                q["answers"] = [{"text": text}]
                return
    raw["pages"][-1]["questions"].append({"id": qid, "answers": [{"text": text}]})


def test_garbled_batch_is_quarantined_with_reasons_and_the_rest_proceeds(world, monkeypatch, record):
    from tests.integration.test_intake_pipeline import ground_truth, sandbox_state, survey_cases, survey_tasks

    intake_setup(world)
    state = sandbox_state(world.stack)
    truth = ground_truth(world.stack, state)
    negatives = sorted(rid for rid, t in truth.items() if t["negative"])
    positives = sorted(rid for rid, t in truth.items() if not t["negative"])
    qid = _comment_question(state)
    long_comment = ("<script>alert('x')</script> " + "very long complaint " * 2500)[:40_000]
    bad_unicode = "caf\udce9 \ud800 cr\u00e8me \x00 <b>bold</b>"  # lone surrogates (non-UTF-8 bytes) + NUL
    real = world.sm.iter_responses
    edits = {}

    def garbled(*args, **kwargs):
        for raw in real(*args, **kwargs):
            raw = copy.deepcopy(raw)
            rid = raw["id"]
            if rid == positives[0]:
                raw.pop("id")  # no id
                edits["no_id"] = rid
            elif rid == positives[1]:
                raw["recipient_id"] = "999999999"  # a response for an unknown recipient
                edits["unknown_recipient"] = rid
            elif rid == positives[2]:
                raw["pages"][0]["questions"].append({"id": "123456789", "answers": [{"choice_id": "1"}]})
                raw["date_modified"] = "07/09/2026 2:15 PM"  # odd date format
                edits["unknown_question"] = rid
            elif rid == positives[3]:
                raw["pages"] = "not a list"  # missing/ill-shaped fields
                edits["bad_pages"] = rid
            elif rid == negatives[0]:
                _set_comment(raw, qid, long_comment)
                edits["long_comment"] = rid
            elif rid == negatives[1]:
                _set_comment(raw, qid, bad_unicode)
                edits["bad_unicode"] = rid
            yield raw

    monkeypatch.setattr(world.sm, "iter_responses", garbled)
    ingest, opened = intake_run(world)  # no exception: the batch proceeds
    assert len(edits) == 6
    reasons = dict(world.ledger.read_frame("quarantine")[["q_key", "reason"]].itertuples(index=False))
    no_id = [r for k, r in reasons.items() if k.startswith("intake:no_id:")]
    assert no_id == [f"a response of survey {state_main(state)} has no id"]
    assert "unknown respondent" in reasons[f"intake:unknown_respondent:{edits['unknown_recipient']}"]
    assert "question" in reasons[f"intake:answers:{edits['unknown_question']}"]
    assert "'pages' is not a list" in reasons[f"intake:answers:{edits['bad_pages']}"]
    assert ingest.recorded == ingest.fetched - 1 and opened.failures == 0

    state = sandbox_state(world.stack)
    cases = {c["Survey_Response_Id__c"]: c for c in survey_cases(state)}
    assert set(negatives) <= set(cases), "every negative still got its Case"
    for rid in (edits["long_comment"], edits["bad_unicode"]):
        assert len(cases[rid]["Description"]) <= DESCRIPTION_LIMIT
    tasks = survey_tasks(state)
    assert all(len(t.get("Description") or "") <= DESCRIPTION_LIMIT for t in tasks)
    long_tasks = [t for t in tasks if t["Closed_Loop_Key__c"].startswith(edits["long_comment"])]
    assert long_tasks and any("<script>" in (t.get("Description") or "") for t in long_tasks)
    stored = world.ledger.get_response(edits["long_comment"])
    assert any(len(a["text"] or "") == len(long_comment) for a in stored["answers"]), "kept whole"
    world.notes["intake_ran"] = True
    report = audit(world)
    # the response without an id cannot be stored as a response: its raw JSON is kept in the quarantine
    assert report["lost_responses"] == 1
    [held] = [q for q in world.ledger.read_frame("quarantine").to_dict("records")
              if q["q_key"].startswith("intake:no_id:")]  # fmt: skip
    assert held["payload"]["raw"]["recipient_id"] == truth[edits["no_id"]]["raw"]["recipient_id"]
    assert_clean(report | {"lost_responses": 0})
    record("garbled batch: no id, unknown recipient, unknown question id + odd date, 'pages' not a list, "
           "40,000-char <script> comment, lone-surrogate/NUL comment",
           "4 quarantined with reasons (the id-less one with its raw JSON), the rest scored; Descriptions "
           "<= 32,000; no Salesforce failure",
           **report["totals"])  # fmt: skip


def state_main(state) -> str:
    return next(s["id"] for s in state["sm"]["surveys"].values() if s["title"] == PB.surveys.main.title)


def test_unknown_choice_ids_are_reported_per_response(world, record):
    intake_setup(world)
    world.notes["intake_ran"] = True
    world.faults(sm_unknown_choice_ids=True)
    ingest, _ = intake_run(world)
    assert ingest.answer_problems == ingest.fetched > 0
    world.clear_faults()
    bad = [q for q in world.ledger.read_frame("quarantine")["reason"] if "unknown choice id" in q]
    assert len(bad) == ingest.fetched
    report = _finish(world)
    record("one unknown choice id in every response", f"{len(bad)} quarantined with the id; rest scored",
           **report["totals"])  # fmt: skip


def test_mrr_as_text_and_odd_dates_from_salesforce(world, monkeypatch, record):
    """Text MRR routes to the DOI with a 'not a number' flag; an odd go-live date is not guessed."""
    from reliability_helpers import START

    from closed_loop.domain.routing import AccountFacts, parse_mrr, route
    from closed_loop.pipeline import dispatch

    assert parse_mrr("about 4k") == (None, True) and parse_mrr("3,500.00")[0] is not None
    decision = route(AccountFacts("001X", "Acme", "about 4k", "tsm1@closedloop.example"), (), PB)
    assert decision.lp_username == PB.username("doi")
    assert PB.routing.unparseable_mrr_flag in decision.flags
    real = world.sf.query_many  # the sync reads Accounts and Contacts in one Composite call

    def odd(*args, **kwargs):
        return [
            [rec | {"MRR__c": "about 4k", "Go_Live_Date__c": "06/17/2026"} if "MRR__c" in rec else rec
             for rec in records]
            for records in real(*args, **kwargs)
        ]  # fmt: skip

    monkeypatch.setattr(world.sf, "query_many", odd)
    world.clock(START)
    out = dispatch.sync_go_lives(world.sf, world.ledger, PB, START)  # no crash
    frame = world.ledger.read_frame("accounts")
    assert out["accounts"] == len(frame) > 0
    assert frame["mrr"].isna().all() and frame["go_live_date"].isna().all()
    record("MRR as text, go-live as MM/DD/YYYY", "synced with MRR/date empty (no guess); routed to the DOI "
           "with the 'MRR is not a number' flag")  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "shown"),
    [
        (("dispatch", "survey_delay_days"), "fourteen", "dispatch.survey_delay_days"),
        (("routing", "mrr_threshold"), "lots", "routing.mrr_threshold"),
        (("sla", "pre_due_reminder_business_days"), -3, "sla.pre_due_reminder_business_days"),
    ],
)
def test_playbook_bad_value_names_key_and_value(tmp_path, record, path, value, shown):
    from closed_loop.playbook import PlaybookError, load_playbook

    data = PB.model_dump(mode="json")
    data[path[0]][path[1]] = value
    target = tmp_path / "playbook.yaml"
    target.write_text(yaml.safe_dump(data))
    with pytest.raises(PlaybookError) as err:
        load_playbook(target)
    assert shown in str(err.value) and repr(value) in str(err.value) and str(target) in str(err.value)
    record(f"playbook {shown}: {value!r}", str(err.value).splitlines()[-1].strip())


# -- fuzz ----------------------------------------------------------------------------------------------

from tests.unit.survey_builders import HAPPY, response, survey_details  # noqa: E402

DETAILS = survey_details()
BASE = response(DETAILS, "900", HAPPY)
JUNK = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))  # fmt: skip


def _answers(raw):
    return [a for p in raw["pages"] for q in p["questions"] for a in q.get("answers", [])]


MUTATIONS = {
    "unknown_choice": lambda raw, draw: _answers(raw)[0].update(choice_id=str(draw(st.integers(1, 99)))),
    "unknown_question": lambda raw, draw: raw["pages"][0]["questions"].append(
        {"id": draw(st.text("0123456789", min_size=1, max_size=6)), "answers": [{"text": "x"}]}
    ),
    "answer_not_object": lambda raw, draw: raw["pages"][0]["questions"][0]["answers"].append(draw(JUNK)),
    "text_not_string": lambda raw, draw: _answers(raw)[-1].update(
        text=draw(st.integers() | st.lists(st.text(max_size=2), max_size=2))
    ),  # fmt: skip
    "choice_not_id": lambda raw, draw: _answers(raw)[1].update(choice_id=draw(st.floats() | st.booleans())),
    "pages_not_list": lambda raw, draw: raw.update(pages=draw(st.text(max_size=5) | st.integers())),
    "question_without_answers": lambda raw, draw: raw["pages"][-1]["questions"].append({"id": "6"}),
    "empty_answer": lambda raw, draw: raw["pages"][0]["questions"][0]["answers"].append({}),
}


@st.composite
def batches(draw):
    out, expected = [], {}
    for i in range(draw(st.integers(1, 6))):
        raw = copy.deepcopy(BASE) | {"id": str(1000 + i), "recipient_id": f"r{i}"}
        kinds = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=3, unique=True))
        if "pages_not_list" in kinds:
            kinds = ["pages_not_list"]
        for kind in kinds:
            MUTATIONS[kind](raw, draw)
        text = draw(st.text(max_size=50))  # arbitrary unicode, surrogates included, as a comment
        if raw.get("pages") and isinstance(raw["pages"], list) and not kinds:
            raw["pages"][-1]["questions"].append({"id": "600000007", "answers": [{"text": text}]})
        if draw(st.booleans()) and not kinds:
            raw.pop("id")  # an orphan: reported at batch level
            expected[f"#{i}"] = ["no_id"]
        else:
            expected[raw["id"]] = kinds
        out.append(raw)
    return out, expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_fuzz_parser_and_scorer_never_crash_and_report_every_defect(batch):
    from closed_loop.domain.scoring import score_responses

    responses, expected = batch
    result = score_responses(DETAILS, responses, PB)
    scores = {s.response_id: s for s in result.scores}
    for rid, kinds in expected.items():
        if rid.startswith("#"):
            assert any(p.startswith(f"response {rid}: no id") for p in result.problems), result.problems
        elif kinds:
            assert scores[rid].problems, (kinds, responses)
        else:
            assert not scores[rid].problems and not scores[rid].negative, scores[rid]


def test_dates_in_odd_formats_are_not_guessed():
    from closed_loop.ledger.types import to_date, to_utc

    assert to_date("2026-07-01") == dt.date(2026, 7, 1)
    for bad in ("07/01/2026", "1 July 2026", "2026-13-01", ""):
        with pytest.raises((ValueError, TypeError)):
            to_utc(bad) if bad else to_date("not a date")
