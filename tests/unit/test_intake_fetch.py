"""Intake's fetch against a result set that changes while it is being paged (issue 19 item 6).

``FakeResponses`` pages like SurveyMonkey's ``/responses/bulk`` (``start_modified_at`` inclusive, to the
second; ``sort_by=date_modified`` ASC, id as tie-break; each page computed when it is requested).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from closed_loop.pipeline import intake

T0 = datetime(2026, 7, 1, 9, tzinfo=UTC)


class FakeResponses:
    def __init__(self, n: int, edit_after_page: int | None = None, edit_index: int = 5):
        self.items = [{"id": str(1000 + i), "date_modified": (T0 + timedelta(minutes=i)).isoformat()}
                      for i in range(n)]  # fmt: skip
        self.edit_after_page, self.edit_index, self.calls = edit_after_page, edit_index, 0

    def _view(self, start):
        start = start.replace(tzinfo=UTC) if isinstance(start, datetime) and start.tzinfo is None else start
        if isinstance(start, datetime):
            start = start.replace(microsecond=0)
        rows = [r for r in self.items if start is None or datetime.fromisoformat(r["date_modified"]) >= start]
        return sorted(rows, key=lambda r: (datetime.fromisoformat(r["date_modified"]), int(r["id"])))

    def iter_responses(self, *, survey_id, start_modified_at=None, per_page=100, **_):
        page = 1
        while True:
            self.calls += 1
            if self.edit_after_page is not None and self.calls > self.edit_after_page:
                latest = max(datetime.fromisoformat(r["date_modified"]) for r in self.items)
                self.items[self.edit_index]["date_modified"] = (latest + timedelta(minutes=1)).isoformat()
                self.edit_after_page = None  # the respondent edited an answer while we paged
            rows = self._view(start_modified_at)[(page - 1) * per_page : page * per_page]
            yield from (dict(r) for r in rows)
            if len(rows) < per_page:
                return
            page += 1


@pytest.fixture
def ledger(sqlite_ledger):
    return sqlite_ledger


def test_a_response_edited_during_a_multi_page_fetch_shifts_nothing_out(ledger):
    """Offset paging: the edited response leaves page 1, every later one moves back one place, and the
    one at the page boundary was never read (250 responses, 3 pages: 249 read)."""
    sm = FakeResponses(250, edit_after_page=1)
    fresh, mark = intake.fetch_changed(sm, ledger, "s1", 10)
    assert {r["id"] for r in fresh} == {r["id"] for r in sm.items}
    assert len(fresh) == 250
    edited = sm.items[5]
    assert mark == edited["date_modified"]  # the latest modification seen is the watermark
    assert sm.calls <= 4  # 3 pages, plus one re-read from a page boundary at most


def test_an_unchanged_result_set_costs_no_extra_calls(ledger):
    sm = FakeResponses(150)
    fresh, _ = intake.fetch_changed(sm, ledger, "s1", 10)
    assert len(fresh) == 150 and sm.calls == 2


def test_many_responses_in_one_second_still_all_read(ledger):
    sm = FakeResponses(230)
    for row in sm.items:  # all in the same second: keyset paging cannot progress by time
        row["date_modified"] = T0.isoformat()
    fresh, _ = intake.fetch_changed(sm, ledger, "s1", 10)
    assert len({r["id"] for r in fresh}) == 230


def test_a_future_date_modified_is_reported_and_never_becomes_the_watermark(ledger):
    sm = FakeResponses(12)
    sm.items[3]["date_modified"] = "2031-01-01T00:00:00+00:00"
    problems: list = []
    fresh, mark = intake.fetch_changed(sm, ledger, "s1", 10, problems)
    assert len(fresh) == 12  # recorded all the same: the customer's answers are not lost
    assert datetime.fromisoformat(mark) < datetime.now(UTC)
    assert mark == max(r["date_modified"] for r in sm.items if not r["date_modified"].startswith("2031"))
    [problem] = problems
    assert problem.record_id == "1003" and "is after the fetch time" in problem.reason


def _record(ledger, chunk, mark):
    """What intake does with a chunk before asking for the next: the responses and their watermark."""
    rows = [{"response_id": r["id"], "date_modified": r["date_modified"], "raw": r} for r in chunk]
    ledger.record_responses(rows, watermark_name=intake.watermark_name("s1") if mark else None,
                            watermark_value=mark)  # fmt: skip


def test_a_backlog_is_streamed_in_bounded_chunks_each_with_the_watermark_it_reaches(ledger):
    """1,200 responses in chunks of 500: each chunk recorded before the next is read, and its watermark
    is the latest date_modified in it (SurveyMonkey sorts by date_modified ASC), so a crash between
    chunks resumes after the last one recorded."""
    sm = FakeResponses(1200)
    chunks = []
    for chunk, mark, problems in intake.changed_chunks(sm, ledger, "s1", 10, size=500):
        assert problems == []
        chunks.append(([r["id"] for r in chunk], mark))
        _record(ledger, chunk, mark)
    modified = {r["id"]: r["date_modified"] for r in sm.items}
    assert len(chunks) == 3 and all(len(ids) <= 500 for ids, _ in chunks)
    assert sorted(i for ids, _ in chunks for i in ids) == sorted(modified)  # each response exactly once
    assert [mark for _, mark in chunks] == [max(modified[i] for i in ids) for ids, _ in chunks]
    assert sm.calls == 13  # keyset pages of 99 new items each (1,200 / 99): chunking adds no call


def test_a_crash_after_the_first_chunk_resumes_from_its_watermark_and_reads_the_rest(ledger):
    sm = FakeResponses(1200)
    stream = intake.changed_chunks(sm, ledger, "s1", 10, size=500)
    first, mark, _ = next(stream)
    _record(ledger, first, mark)
    stream.close()  # the worker dies here: chunks 2 and 3 were never recorded
    assert ledger.get_watermark(intake.watermark_name("s1")) == max(r["date_modified"] for r in first)
    rest = [r["id"] for chunk, m, _ in intake.changed_chunks(sm, ledger, "s1", 10, size=500) for r in chunk]
    recorded = {r["id"] for r in first}
    assert sorted(rest) == sorted(r["id"] for r in sm.items if r["id"] not in recorded)  # no loss, no repeat
