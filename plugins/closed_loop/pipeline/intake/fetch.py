"""Reading responses from SurveyMonkey: changed since the watermark (keyset paging, future timestamps
bounded), abandoned partials past the grace period, and only what the ledger can store (ids, text)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from closed_loop.ledger.responses import ID_CHARS, STATUS_CHARS
from closed_loop.ledger.types import utcnow
from closed_loop.pipeline.intake.common import Problem, parse_ts, partial_watermark_name, watermark_name

PARTIAL_POLL_EVERY = timedelta(hours=1)  # abandoned partials are looked for at most hourly (1 SM call)
PARTIAL_FIRST_LOOKBACK = timedelta(days=7)
FUTURE_SKEW = timedelta(minutes=5)  # clock skew tolerated between SurveyMonkey and this worker
PAGE = 100


CHUNK = 500  # responses fetched, scored and recorded together (5 pages): memory stays flat with the backlog


def changed_chunks(
    sm_hook, ledger, survey_id: str, overlap_minutes: int, size: int | None = None
) -> Iterator[tuple[list, str | None, list[Problem]]]:
    """Completed responses modified since the watermark minus the overlap (all when there is none), in
    chunks of at most ``size`` as they are paged: ``(responses new or changed since the ledger's copy,
    watermark after this chunk or None, problems)``. Record each chunk before asking for the next: the
    next one is compared with the ledger, and a crash resumes from the last chunk recorded.

    The watermark never moves backwards nor passes the fetch time: a ``date_modified`` after it (plus a
    small skew) is impossible, reported as a problem (the response is still recorded) and ignored for
    the watermark, so one bad timestamp cannot freeze intake."""
    fetched_at = utcnow()
    previous = parse_ts(ledger.get_watermark(watermark_name(survey_id)))
    since = previous - timedelta(minutes=overlap_minutes) if previous else None
    newest = previous
    seen: dict[str, datetime | None] = {}  # versions handed out this run (a dry run records nothing)
    stream = iter(_read_since(sm_hook, survey_id, since))
    while batch := list(islice(stream, size or CHUNK)):
        by_id, not_objects, problems = {}, [], []
        for raw in batch:
            if not isinstance(raw, dict):
                not_objects.append(_storable(raw))  # kept: with_ids quarantines them (never dropped silently)
                continue
            by_id[str(raw.get("id"))] = _storable(raw)
            modified = parse_ts(raw.get("date_modified"))
            if modified and modified > fetched_at + FUTURE_SKEW:
                problems.append(_future_problem(raw, modified, fetched_at))
            elif modified and (newest is None or modified > newest):
                newest = modified
        fresh = [r for r in _changed(ledger, list(by_id.values())) if _first_seen(seen, r)]
        mark = newest.isoformat() if newest and newest != previous else None
        previous = newest
        yield fresh + not_objects, mark, problems


def _first_seen(seen: dict, raw: Mapping) -> bool:
    rid, modified = str(raw.get("id")), parse_ts(raw.get("date_modified"))
    if rid in seen and seen[rid] == modified:
        return False
    seen[rid] = modified
    return True


def fetch_changed(
    sm_hook, ledger, survey_id: str, overlap_minutes: int, problems: list | None = None
) -> tuple[list[dict], str | None]:
    """``changed_chunks`` as one list (deduplicated by id, latest kept) and the final watermark value."""
    by_id: dict[str, Any] = {}
    mark = None
    for i, (chunk, chunk_mark, found) in enumerate(
        changed_chunks(sm_hook, ledger, survey_id, overlap_minutes)
    ):
        by_id |= {(str(r.get("id")) if isinstance(r, dict) else f"#{i}:{n}"): r for n, r in enumerate(chunk)}
        mark = chunk_mark or mark
        if problems is not None:
            problems += found
    return list(by_id.values()), mark


def _read_since(sm_hook, survey_id: str, since: datetime | None) -> Iterable[Any]:
    """Every response modified since ``since``, oldest first, read page by page from the last
    ``date_modified`` seen (keyset paging) instead of by page number: a response modified during the
    fetch moves to the end of the list and shifts later ones back, which made plain offset paging skip
    one response at each page boundary. Boundary items are read twice and deduplicated by the caller;
    a page whose items all share one second (no progress) falls back to offset paging from there."""
    start = since
    while True:
        pages = sm_hook.iter_responses(survey_id=survey_id, start_modified_at=start, per_page=PAGE)
        batch = []
        for raw in pages:
            batch.append(raw)
            if len(batch) == PAGE:
                break
        yield from batch
        if len(batch) < PAGE:
            return
        last = next((parse_ts(r.get("date_modified")) for r in reversed(batch) if isinstance(r, dict)), None)
        last = last.replace(microsecond=0) if last else None  # SurveyMonkey filters to the second
        if last is None or (start is not None and last <= start):
            yield from pages  # no progress by time: the rest by page number (at worst a duplicate read)
            return
        start = last


def _future_problem(raw: Mapping, modified: datetime, fetched_at: datetime) -> Problem:
    rid = str(raw.get("id"))[:64]
    return Problem(
        f"intake:future_timestamp:{rid}:{modified.isoformat()}",
        rid,
        f"date_modified {modified.isoformat()} is after the fetch time "
        f"{fetched_at.isoformat(timespec='seconds')}: an impossible timestamp; the response is recorded, "
        "the watermark ignores it",
        {"response_id": rid, "date_modified": raw.get("date_modified")},
    )


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """The response with text every database stores: lone surrogates (non-UTF-8 bytes escaped in the
    JSON) become U+FFFD and NUL characters are dropped; otherwise one such comment fails the batch.
    Containers are fixed in place (the parsed JSON is ours: no copy of the response is made)."""
    if isinstance(value, str):
        return (
            _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)
            if _UNSTORABLE.search(value)
            else value
        )
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str | dict | list):
                value[k] = _storable(v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, str | dict | list):
                value[i] = _storable(v)
    return value


def _changed(ledger, raws: list[dict]) -> list[dict]:
    """Drop responses the ledger already holds with the same date_modified (the overlap re-reads
    them): nothing to record or score, so an idle run costs no details call."""
    ids = [str(r.get("id")) for r in raws]
    if not ids:
        return raws
    seen = ledger.response_versions(ids)
    return [r for r in raws if seen.get(str(r.get("id"))) is None
            or seen[str(r.get("id"))] != parse_ts(r.get("date_modified"))]  # fmt: skip


def abandoned_window(
    ledger, survey_id: str, now: datetime, grace_hours: int
) -> tuple[datetime, datetime] | None:
    """(start, cutoff) of the partial responses to look at: last changed after the previous cutoff and
    at least ``grace_hours`` ago (left unfinished past the grace period); None when the previous poll
    is less than ``PARTIAL_POLL_EVERY`` old (one SM call at most hourly)."""
    cutoff = now - timedelta(hours=grace_hours)
    previous = parse_ts(ledger.get_watermark(partial_watermark_name(survey_id)))
    if previous is not None and cutoff - previous < PARTIAL_POLL_EVERY:
        return None
    return previous or cutoff - PARTIAL_FIRST_LOOKBACK, cutoff


def abandoned_chunks(
    sm_hook, ledger, survey_id: str, window: tuple[datetime, datetime], size: int | None = None
) -> Iterator[list[dict]]:
    """The partial responses last changed in ``window`` that the ledger does not hold yet, in chunks."""
    start, cutoff = window
    stream = sm_hook.iter_responses(survey_id=survey_id, start_modified_at=start, end_modified_at=cutoff,
                                    status="partial", per_page=PAGE)  # fmt: skip
    while batch := list(islice(stream, size or CHUNK)):
        raws = [_storable(r) for r in batch if isinstance(r, dict)]
        seen = ledger.response_versions(str(r.get("id")) for r in raws)
        yield [r for r in raws if str(r.get("id")) not in seen]


def with_ids(raws: list[dict], survey_id: str) -> tuple[list[dict], list[Problem]]:
    """Responses that carry an id and fit the ledger's columns; the others cannot be stored and are
    quarantined by content hash, the raw JSON kept (an over-long id failed the whole batch on
    PostgreSQL, which enforces ``varchar(n)``; SQLite does not)."""
    good, bad = [], []
    for raw in raws:
        rid = raw.get("id") if isinstance(raw, dict) else None
        valid = isinstance(rid, str | int) and not isinstance(rid, bool)
        overlong = _overlong(raw) if valid else []
        if valid and not overlong:
            good.append(raw)
            continue
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:32]
        if overlong:
            key, what = f"intake:too_long:{digest}", "does not fit the ledger: " + "; ".join(overlong[:5])
        else:
            key = f"intake:no_id:{digest}"
            what = "has no id" if isinstance(raw, dict) else f"is not a JSON object ({type(raw).__name__})"
        bad.append(Problem(key, None, f"a response of survey {survey_id} {what}",
                            {"survey_id": survey_id, "raw": raw}))  # fmt: skip
    return good, bad


_ID_CHARS = ID_CHARS  # every SurveyMonkey id column is varchar(64)
_FIELD_CHARS = {"response_status": STATUS_CHARS}


def _overlong(value: Any, where: str = "") -> list[str]:
    """Paths of id fields (``id``, ``*_id``) and bounded fields longer than their ledger column."""
    out: list[str] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        path = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))
        if isinstance(item, dict | list):
            out += _overlong(item, path)
            continue
        name = key if isinstance(key, str) else ""
        limit = _FIELD_CHARS.get(name) or (_ID_CHARS if name == "id" or name.endswith("_id") else None)
        if limit and isinstance(item, str | int) and not isinstance(item, bool) and len(str(item)) > limit:
            out.append(f"{path} is {len(str(item))} characters (at most {limit})")
    return out
