"""The report email: valid MIME, inline charts that resolve, text + CSV, safe self-contained HTML."""

from __future__ import annotations

import csv
import io
import re
from email import message_from_bytes, policy

import pandas as pd
import pytest

from closed_loop.reporting.data import ReportData
from closed_loop.reporting.email import build_message, csv_filename, render_standalone_html
from closed_loop.reporting.metrics import compute_metrics
from closed_loop.reporting.quarters import Quarter
from devtools.synthetic import synthetic_report_data

Q = Quarter(2026, 3)
EVIL = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 16  # content does not matter to MIME checks; keeps these tests fast
FAKE_CHARTS = {name: PNG + name.encode() for name in ("trend", "pareto_questions", "pareto_topics", "sla")}


def ledger_with_evil_text() -> ReportData:
    data = synthetic_report_data(Q.trailing(6), seed=5)
    cases = data.cases.copy()
    closed = cases["closed_at"].dt.tz_convert(None).dt.to_period("Q") == pd.Period("2026Q3")
    cases.loc[closed, "root_cause"] = EVIL  # becomes the top root cause
    data.cases = cases
    return data


@pytest.fixture(scope="module")
def metrics():
    return compute_metrics(ledger_with_evil_text(), Q)


@pytest.fixture(scope="module")
def parsed(metrics):
    msg = build_message(
        metrics,
        sender="reports@closedloop.example",
        recipients=["vp.cs@closedloop.example", "doi@closedloop.example"],
        charts=FAKE_CHARTS,
    )
    return message_from_bytes(msg.as_bytes(), policy=policy.default)


def html_of(parsed) -> str:
    return parsed.get_body(("html",)).get_content()


def test_headers_and_structure(parsed, metrics):
    assert str(parsed["Subject"]).strip().startswith("Closed-loop quarterly report 2026-Q3: negative rate ")
    assert parsed["To"] == "vp.cs@closedloop.example, doi@closedloop.example"
    assert parsed.get_content_type() == "multipart/mixed"
    alternative = parsed.get_payload()[0]
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "multipart/related"]
    assert not parsed.defects and all(not p.defects for p in parsed.walk())


def test_every_cid_resolves_to_an_inline_png(parsed):
    html = html_of(parsed)
    cids = re.findall(r'src="cid:([^"]+)"', html)
    assert len(cids) == 4
    related = parsed.get_payload()[0].get_payload()[1]
    images = {
        p["Content-ID"].strip("<>"): p for p in related.iter_parts() if p.get_content_maintype() == "image"
    }
    assert set(cids) == set(images)
    for cid in cids:
        part = images[cid]
        assert part.get_content_type() == "image/png"
        assert part.get_content_disposition() == "inline"
        assert part.get_content().startswith(b"\x89PNG")
    assert {images[c].get_content() for c in cids} == set(FAKE_CHARTS.values())


def test_text_alternative_and_csv_attachment(parsed, metrics):
    text = parsed.get_body(("plain",)).get_content()
    assert "WHAT CHANGED" in text and metrics.quarter.label in text
    assert "<td" not in text and "<table" not in text
    attachments = list(parsed.iter_attachments())
    assert [a.get_filename() for a in attachments] == [csv_filename(metrics)]
    table = list(csv.reader(io.StringIO(attachments[0].get_content())))
    assert table[0] == ["metric", "quarter", "value"]
    values = {(m, q): v for m, q, v in table[1:]}
    assert float(values[("negative_rate", "2026-Q3")]) == pytest.approx(
        metrics.current["negative_rate"], abs=1e-4
    )
    assert int(values[("surveys_sent", "2025-Q3")]) == metrics.figures("2025-Q3")["surveys_sent"]


def test_html_is_self_contained(parsed):
    html = html_of(parsed).lower()
    for forbidden in ("<script", "<link", "<style", "@import", "url(", "http://", "https://", "//fonts"):
        assert forbidden not in html, forbidden
    assert html.count("<table") >= 5


def test_customer_text_is_escaped(parsed, metrics):
    assert metrics.root_causes.iloc[0]["root_cause"] == EVIL.lower()
    html = html_of(parsed)
    assert "&lt;script&gt;alert(" in html
    assert "<img src=x" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")


def test_standalone_html_embeds_the_images(metrics):
    html = render_standalone_html(metrics, charts=FAKE_CHARTS)
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "cid:" not in html and "<script" not in html.lower()


def test_empty_quarter_email_is_short_and_valid():
    m = compute_metrics(ReportData(), Q)
    msg = message_from_bytes(
        build_message(m, sender="a@b.c", recipients=["d@e.f"]).as_bytes(), policy=policy.default
    )
    assert str(msg["Subject"]).strip() == "Closed-loop quarterly report 2026-Q3: no activity recorded"
    html = msg.get_body(("html",)).get_content()
    assert "Nothing to report for 2026-Q3" in html
    assert "Where negative feedback comes from" not in html
    cids = re.findall(r'src="cid:([^"]+)"', html)
    related = msg.get_payload()[0].get_payload()[1]
    assert cids and set(cids) <= {
        p["Content-ID"].strip("<>") for p in related.iter_parts() if p["Content-ID"]
    }
    assert "Nothing to report" in msg.get_body(("plain",)).get_content()
