"""quarterly_report through `airflow dags test`: a ledger holding several quarters -> one email, archived."""

from __future__ import annotations

import csv
import email
import io
import json
import re
from email import policy

import pandas as pd
import pytest
from sqlalchemy import insert

from closed_loop.ledger.models import TABLES
from closed_loop.reporting.quarters import Quarter
from devtools.synthetic import synthetic_report_data

pytestmark = pytest.mark.airflow
REPORTED = Quarter.parse("2026-Q3")


def _rows(frame: pd.DataFrame) -> list[dict]:
    out = []
    for record in frame.to_dict("records"):
        row = {}
        for key, value in record.items():
            if value is None or (not isinstance(value, list | tuple | dict) and pd.isna(value)):
                value = None
            elif isinstance(value, pd.Timestamp):
                value = value.to_pydatetime() if value.tzinfo else value.date()
            row[key] = value
        out.append(row)
    return out


def fill_ledger(ledger, data) -> None:
    with ledger.session() as s:
        for name in data.__dataclass_fields__:
            rows = _rows(getattr(data, name))
            if name == "cases":
                for row in rows:
                    row["status"] = "closed" if row.get("closed_at") else "open"
            if rows:
                s.execute(insert(TABLES[name]), rows)


@pytest.fixture
def filled(stack):
    data = synthetic_report_data(REPORTED.trailing(5), seed=5, invites_per_quarter=60)
    fill_ledger(stack.ledger, data)
    return data


def report_emails(stack):
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in stack.emails()]


def test_report_is_emailed_once_archived_and_matches_the_ledger(stack, stack_airflow, filled, tmp_path):
    archive = tmp_path / "reports"
    stack_airflow.extra_env["CLOSED_LOOP_REPORT_DIR"] = str(archive)

    first = stack_airflow.dags_test("quarterly_report", "2026-10-01")  # Thursday: Q4's first business day
    assert first.ok, first.output[-3000:]
    [msg] = report_emails(stack)
    assert "2026-Q3" in msg["Subject"]
    assert msg["To"] == "leadership@northwind-billing.example"

    # every cid in the HTML resolves to an inline PNG part
    html = msg.get_body(("html",)).get_content()
    cids = set(re.findall(r'src="cid:([^"]+)"', html))
    parts = {p["Content-ID"].strip("<>"): p for p in msg.walk() if p["Content-ID"]}
    assert cids and cids <= set(parts)
    assert all(parts[c].get_content_type() == "image/png" for c in cids)
    assert msg.get_body(("plain",)).get_content().strip()

    # the CSV figures agree with a plain count over the rows we put in the ledger
    [attachment] = [p for p in msg.iter_attachments() if p.get_content_type() == "text/csv"]
    rows = list(csv.DictReader(io.StringIO(attachment.get_content())))
    sent = filled.survey_sends
    in_q = sent["sent_at"].dt.date.between(REPORTED.start, REPORTED.end)
    expected_sent = int(((sent["kind"] == "invite") & (sent["status"] == "sent") & in_q).sum())
    figure = {(r["metric"], r["quarter"]): r["value"] for r in rows}
    assert float(figure[("surveys_sent", "2026-Q3")]) == expected_sent
    responses = filled.responses
    main = responses[~responses["is_recovery"].astype(bool)]
    main_q = main[main["date_created"].dt.date.between(REPORTED.start, REPORTED.end)]
    expected_rate = main_q["negative"].astype(bool).mean()
    assert float(figure[("negative_rate", "2026-Q3")]) == pytest.approx(expected_rate, abs=1e-3)

    archived = archive / "quarterly_report_2026-Q3.html"
    assert archived.exists() and "data:image/png;base64," in archived.read_text()

    # rerun of the same logical date: no second email
    again = stack_airflow.dags_test("quarterly_report", "2026-10-01")
    assert again.ok, again.output[-3000:]
    assert len(stack.emails()) == 1

    # not the quarter's first business day and no quarter asked for: skipped, nothing sent
    other_day = stack_airflow.dags_test("quarterly_report", "2026-10-02")
    assert other_day.returncode == 0
    assert len(stack.emails()) == 1

    # any past quarter on request, e.g. the one before
    past = stack_airflow.dags_test("quarterly_report", "2026-10-02", {"quarter": "2026-Q2"})
    assert past.ok, past.output[-3000:]
    subjects = sorted(m["Subject"] for m in report_emails(stack))
    assert len(subjects) == 2 and any("2026-Q2" in s for s in subjects)


def test_empty_ledger_gives_an_honest_short_report(stack, stack_airflow, tmp_path):
    stack_airflow.extra_env["CLOSED_LOOP_REPORT_DIR"] = str(tmp_path / "reports")
    result = stack_airflow.dags_test("quarterly_report", "2026-10-01")
    assert result.ok, result.output[-3000:]
    [msg] = report_emails(stack)
    text = msg.get_body(("plain",)).get_content().lower()
    assert "no " in text and "2026-q3" in text
    returned = re.search(r"closed-loop result: (\{.*?\})\s", result.output)
    assert returned and json.loads(returned.group(1))["empty"] is True
