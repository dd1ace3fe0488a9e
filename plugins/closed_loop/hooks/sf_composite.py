"""The Salesforce Composite resource (``POST /composite``) for the hook: many writes or queries, one API call.

REST API Developer Guide, "Send Multiple Requests Using Composite": up to 25 subrequests, up to 5 of them
sObject Collections or query operations (Query, QueryAll, Query More); "the entire series of requests counts
as a single call toward your API limits". So writes go as sObject Collections of 200 records, 5 per call
(1,000 records a call), and independent queries as 5 query operations per call, their next pages too.
Per-record results are kept: a failed subrequest turns into per-record failures with its error code, the
other subrequests' results are returned as usual (``allOrNone`` false at both levels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote_plus, urlsplit

from simple_salesforce import format_soql

from closed_loop.hooks.errors import SalesforceApiError

COLLECTION_SIZE = 200
COMPOSITE_HEAVY = 5  # sObject Collections or query operations per composite call
MAX_SOQL_CHARS = 100_000  # SOQL and SOSL Reference, "SOQL and SOSL Limits"
ID_CHUNK = 2000  # one query page: an IN list longer than this needs a second page anyway


class CompositeMixin:
    """Composite-based writes and queries for ``ClosedLoopSalesforceHook`` (needs ``get_conn``, ``_call``,
    ``timeout``)."""

    def _api_path(self) -> str:
        return urlsplit(self.get_conn().base_url).path.rstrip("/") + "/"

    def composite(
        self,
        subrequests: Sequence[Mapping],
        *,
        idempotent: bool,
        all_or_none: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> list[dict]:
        """One ``POST composite``; returns the ``compositeResponse`` items in the order of ``subrequests``.
        ``headers`` go on the composite request itself (e.g. ``write_headers()``)."""
        body = {"allOrNone": all_or_none, "compositeRequest": list(subrequests)}
        reply = self._call(
            self.get_conn().restful,
            "composite",
            method="POST",
            json=body,
            headers=dict(headers or {}),
            idempotent=idempotent,
            timeout=self.timeout,
        )
        items = reply.get("compositeResponse") if isinstance(reply, dict) else None
        if not isinstance(items, list) or len(items) != len(subrequests):
            raise SalesforceApiError("BAD_RESPONSE", f"expected {len(subrequests)} composite results")
        by_ref = {item.get("referenceId"): item for item in items}
        return [by_ref.get(sub["referenceId"], {}) for sub in subrequests]

    # -- writes -----------------------------------------------------------------------------------
    def _collection(
        self,
        method: str,
        path: str,
        sobject: str,
        records: Sequence[dict],
        all_or_none: bool,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
    ) -> list[dict]:
        """Per-record results ``{id, success, created, errors[{statusCode, message, fields}]}`` in input
        order, 200 records per collection and 5 collections per composite call; a whole-call failure
        raises, with the finished calls' results in ``exc.completed``."""
        from closed_loop.hooks.salesforce import (
            ASSIGNMENT_RULE_OBJECTS,
            _check_name,
            _record_result,
            write_headers,
        )

        _check_name(sobject)
        headers = {**write_headers(), **(headers or {})}  # Sforce-Auto-Assign: FALSE on every write
        records = list(records)
        url = self._api_path() + path
        chunks = [records[i : i + COLLECTION_SIZE] for i in range(0, len(records), COLLECTION_SIZE)]
        results: list[dict] = []
        for start in range(0, len(chunks), COMPOSITE_HEAVY):
            group = chunks[start : start + COMPOSITE_HEAVY]
            subs = []
            for n, batch in enumerate(group):
                body = {
                    "allOrNone": all_or_none,
                    "records": [
                        {"attributes": {"type": sobject}, **{k: v for k, v in r.items() if k != "attributes"}}
                        for r in batch
                    ],
                }
                sub = {"method": method, "url": url, "referenceId": f"c{n}", "body": body}
                sub["httpHeaders"] = dict(headers)
                subs.append(sub)
            try:
                replies = self.composite(subs, idempotent=idempotent, headers=headers)
                written = [r for b, item in zip(group, replies, strict=True)
                           for r in _chunk_results(b, item, method == "POST", _record_result)]  # fmt: skip
                if sobject in ASSIGNMENT_RULE_OBJECTS:
                    self._verify_owners(sobject, [r for b in group for r in b], written)
            except SalesforceApiError as exc:
                exc.completed = results
                raise
            results.extend(written)
        return results

    # -- queries ----------------------------------------------------------------------------------
    def query_many(self, soqls: Sequence[str], include_deleted: bool = False) -> list[list[dict]]:
        """Run already-escaped SOQL statements through Composite, 5 query operations (first pages and
        next pages alike) per call; returns each statement's records (without ``attributes``), in order."""
        from closed_loop.hooks.salesforce import _without_attributes

        resource = "queryAll" if include_deleted else "query"
        out: list[list[dict]] = [[] for _ in soqls]
        pending = [(i, f"{self._api_path()}{resource}/?q={quote_plus(s)}") for i, s in enumerate(soqls)]
        while pending:
            batch, pending = pending[:COMPOSITE_HEAVY], pending[COMPOSITE_HEAVY:]
            subs = [{"method": "GET", "url": url, "referenceId": f"q{n}"} for n, (_, url) in enumerate(batch)]
            for (i, _), item in zip(batch, self.composite(subs, idempotent=True), strict=True):
                status, body = item.get("httpStatusCode") or 0, item.get("body")
                if status >= 400 or not isinstance(body, dict):
                    code, message = _first_error(body, status)
                    raise SalesforceApiError(code, message, status)
                out[i].extend(_without_attributes(r) for r in body.get("records") or [])
                if not body.get("done", True) and body.get("nextRecordsUrl"):
                    pending.append((i, body["nextRecordsUrl"]))
        return out

    def id_statements(self, soql_template: str, ids: Sequence[str], **params: Any) -> list[str]:
        """``soql_template`` with ``{values}`` bound to chunks of up to 2,000 distinct ``ids`` (one page
        each), halving a chunk until its statement is under 100,000 characters."""
        values = list(dict.fromkeys(ids))
        soqls: list[str] = []
        stack = [values[i : i + ID_CHUNK] for i in range(0, len(values), ID_CHUNK)][::-1]
        while stack:
            chunk = stack.pop()
            soql = format_soql(soql_template, **{**params, "values": chunk})
            if len(soql) > MAX_SOQL_CHARS and len(chunk) > 1:
                half = len(chunk) // 2
                stack.extend([chunk[half:], chunk[:half]])
                continue
            soqls.append(soql)
        return soqls

    def query_ids(
        self, soql_template: str, ids: Sequence[str], include_deleted: bool = False, **params: Any
    ) -> list[dict]:
        """Records of ``soql_template`` for ``ids`` (``id_statements``), all through ``query_many``."""
        soqls = self.id_statements(soql_template, ids, **params)
        return [r for rows in self.query_many(soqls, include_deleted) for r in rows]


def _first_error(body: Any, status: int) -> tuple[str, str]:
    first = body[0] if isinstance(body, list) and body else body
    first = first if isinstance(first, dict) else {}
    return first.get("errorCode") or f"HTTP_{status}", first.get("message") or ""


def _chunk_results(batch: Sequence[dict], item: Mapping, created_default: bool, convert) -> list[dict]:
    """One collection subrequest's per-record results; a failed subrequest fails each of its records."""
    status, body = item.get("httpStatusCode") or 0, item.get("body")
    if status < 400 and isinstance(body, list) and len(body) == len(batch):
        return [convert(r, created_default=created_default) for r in body]
    code, message = _first_error(body, status) if status >= 400 else ("BAD_RESPONSE", "unexpected reply")
    error = {"statusCode": code, "message": message, "fields": []}
    return [{"id": None, "success": False, "created": False, "errors": [error]} for _ in batch]
