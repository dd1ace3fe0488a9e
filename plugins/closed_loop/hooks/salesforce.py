"""Salesforce hook: the official provider's ``SalesforceHook`` plus what the project needs on top.

Added: a direct session from the connection (extra ``access_token`` + ``instance_url``, optional
``version``, default 61.0), a CA bundle (extra ``ca_bundle``; verification is never disabled), a request
timeout (extra ``timeout``, default 60 s), escaped SOQL with lazy paging, sObject Collections in chunks of
200 (5 per Composite call) with per-record results, Composite query batches, bounded retries,
``Sforce-Limit-Info`` tracking and typed errors.

Retries (tenacity, exponential with jitter): queries, updates and upserts are retried on 5xx, timeouts and
broken connections; a plain create is retried only when the connection was never established, because
a timed-out create may have run. Callers that need idempotent creates upsert by an external id
(the playbook's ``salesforce.case.external_id`` / ``salesforce.task.external_id``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from typing import Any
from urllib.parse import quote_plus

import requests
import tenacity
from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
from airflow.sdk.log import mask_secret
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceError

from closed_loop.hooks.errors import (
    SalesforceApiError,
    SalesforceBudgetExhausted,
    SalesforceSessionExpired,
    never_sent,
    require_https,
)
from closed_loop.hooks.salesforce_oauth import OAuthFlow
from closed_loop.hooks.sf_composite import CompositeMixin

DEFAULT_API_VERSION = "61.0"
# Assignment Rule header (REST API Developer Guide, "Assignment Rule Header"): absent means TRUE, so the
# org's active assignment rules re-own every Case (and Lead/Account) the API creates or updates.
ASSIGNMENT_RULE_OBJECTS = frozenset({"Account", "Case", "Lead"})
MAX_URL_CHARS = 16_000
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ClosedLoopSalesforceHook(CompositeMixin, SalesforceHook):
    """``SalesforceHook`` with direct sessions, sObject Collections, retries and API-usage tracking.

    :param salesforce_conn_id: connection of type ``salesforce``.
    :param session_id: access token overriding the connection's (as in the provider).
    :param session: custom ``requests.Session`` (as in the provider).
    :param max_attempts: attempts per call, including the first.
    :param max_wait: longest single retry wait, in seconds.
    """

    conn_name_attr = "salesforce_conn_id"
    default_conn_name = "salesforce_default"
    conn_type = "salesforce"
    hook_name = "Salesforce"

    def __init__(
        self,
        salesforce_conn_id: str = default_conn_name,
        session_id: str | None = None,
        session: requests.Session | None = None,
        *,
        max_attempts: int = 4,
        max_wait: float = 30.0,
    ) -> None:
        super().__init__(salesforce_conn_id=salesforce_conn_id, session_id=session_id, session=session)
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.timeout: float = 60.0
        self.calls_made = 0
        self.sleep = time.sleep  # replaceable in tests
        self._usage: tuple[int, int] | None = None
        self._secrets: list[str] = []
        self._reauth: Callable[[], str] | None = None  # a fresh access token (None: direct session)
        self.auth_flow = "direct"

    # -- connection ---------------------------------------------------------------------------------
    @cached_property
    def conn(self) -> Salesforce:
        """A ``simple_salesforce.Salesforce``: direct session when the extra has a token, else the
        provider's login flows; either way on a session with the CA bundle and the usage hook."""
        connection = self.get_connection(self.conn_id)
        extras = connection.extra_dejson
        session = self.session or requests.Session()
        ca_bundle = self._get_field(extras, "ca_bundle")
        if ca_bundle:
            session.verify = ca_bundle
            # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override session.verify unless trust_env is off
            session.trust_env = False
        session.hooks["response"].append(self._on_response)
        self.session = session
        self.timeout = float(self._get_field(extras, "timeout") or self.timeout)
        token = self.session_id or self._get_field(extras, "access_token")
        instance_url = self._get_field(extras, "instance_url")
        version = str(self._get_field(extras, "version") or DEFAULT_API_VERSION)
        flow = OAuthFlow.from_connection(connection.login, extras)
        if flow is not None:  # OAuth 2.0 JWT bearer / client credentials against extra.login_url
            token, instance_url = flow.fetch(session, self.timeout)
            self._reauth = lambda: flow.fetch(session, self.timeout)[0]
            self.auth_flow = flow.flow
        if token and instance_url:
            require_https(instance_url, "the Salesforce connection's extra instance_url")
            self._remember_secret(token)
            sf = Salesforce(session_id=token, instance_url=instance_url, version=version, session=session)
        else:
            sf = SalesforceHook.conn.func(self)  # the provider's login flows (simple-salesforce)
            login = sf._salesforce_login_partial
            if login is not None:
                # re-login here, not inside simple-salesforce: its retry drops per-call headers
                # (Sforce-Auto-Assign) after refreshing the session
                sf._salesforce_login_partial = None
                self._reauth = lambda: login()[0]
                self.auth_flow = getattr(sf, "auth_type", "login")
        self._remember_secret(getattr(sf, "session_id", None))
        return sf

    def _reauthenticate(self) -> None:
        sf = self.get_conn()
        sf.session_id = self._reauth()
        sf._generate_headers()
        self._remember_secret(sf.session_id)
        self.log.warning("Salesforce session expired or invalid; re-authenticated (%s)", self.auth_flow)

    def _remember_secret(self, secret: str | None) -> None:
        if secret and secret not in self._secrets:
            mask_secret(secret)
            self._secrets.append(secret)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.calls_made += 1
        info = response.headers.get("Sforce-Limit-Info")
        usage = Salesforce.parse_api_usage(info).get("api-usage") if info else None
        if usage is not None:
            self._usage = (usage.used, usage.total)

    def api_usage(self) -> tuple[int, int] | None:
        """(used, max) from the latest ``Sforce-Limit-Info`` header, None before any response."""
        return self._usage

    def describe(self, sobject: str) -> dict:
        """``GET sobjects/{sobject}/describe/``: fields with type, length, externalId, unique, picklists."""
        _check_name(sobject)
        return self._call(
            self.get_conn().restful, f"sobjects/{sobject}/describe/", idempotent=True, timeout=self.timeout
        )

    def limits(self) -> dict:
        """``GET /limits`` (e.g. ``DailyApiRequests {Max, Remaining}``)."""
        return self._call(self.get_conn().restful, "limits/", idempotent=True, timeout=self.timeout)

    def test_connection(self) -> tuple[bool, str]:
        """Describe the org's objects (``GET sobjects/``: needs only API access, not "View Setup and
        Configuration" as ``/limits`` does); the budget comes from ``Sforce-Limit-Info``. The message
        never contains a token."""
        try:
            self._call(self.get_conn().restful, "sobjects/", idempotent=True, timeout=self.timeout)
        except Exception as exc:
            return False, self._redact(str(exc))
        used, total = self._usage or (None, None)
        left = total - used if used is not None else "unknown"
        return True, f"Connection successfully tested (API requests left today: {left})"

    # -- calls with retries and typed errors --------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, idempotent: bool, **kwargs: Any) -> Any:
        """``_call_once``; on ``INVALID_SESSION_ID`` re-authenticate once (OAuth or login flows) and
        repeat the call: a 401 was refused before it ran, so even a create is safe to repeat."""
        try:
            return self._call_once(fn, *args, idempotent=idempotent, **kwargs)
        except SalesforceSessionExpired:
            if self._reauth is None:
                raise
            self._reauthenticate()
            return self._call_once(fn, *args, idempotent=idempotent, **kwargs)

    def _call_once(self, fn: Callable[..., Any], *args: Any, idempotent: bool, **kwargs: Any) -> Any:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: _retryable(exc, idempotent)),
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=tenacity.wait_exponential_jitter(initial=1, max=self.max_wait),
            sleep=lambda seconds: self.sleep(seconds),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(fn, *args, **kwargs)
        except SalesforceError as exc:
            raise _typed_error(exc) from None
        except requests.JSONDecodeError:  # a 2xx whose body is not JSON (the call may have run)
            raise SalesforceApiError("BAD_RESPONSE", "the reply is not valid JSON") from None
        except requests.Timeout:
            raise SalesforceApiError("TIMEOUT", f"no answer within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise SalesforceApiError("CONNECTION_ERROR", type(exc).__name__) from None

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        self.log.warning(
            "Salesforce call failed (%s %s); attempt %d, retrying in %.1f s",
            type(exc).__name__,
            getattr(exc, "status", ""),
            retry_state.attempt_number,
            retry_state.next_action.sleep if retry_state.next_action else 0,
        )

    # -- SOQL ---------------------------------------------------------------------------------------
    def query(self, soql_template: str, /, include_deleted: bool = False, **params: Any) -> Iterator[dict]:
        """Yield the records of an escaped SOQL query, page by page, without ``attributes``.

        ``params`` fill ``{name}`` placeholders through ``format_soql`` (quotes, backslashes and lists
        are escaped); values are never concatenated into the query text.
        """
        return self._iter_query(format_soql(soql_template, **params), include_deleted)

    def _iter_query(self, soql: str, include_deleted: bool) -> Iterator[dict]:
        sf = self.get_conn()
        page = self._call(
            sf.query, soql, include_deleted=include_deleted, idempotent=True, timeout=self.timeout
        )
        while True:
            for record in page["records"]:
                yield _without_attributes(record)
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self._call(
                sf.query_more,
                page["nextRecordsUrl"],
                identifier_is_url=True,
                include_deleted=include_deleted,
                idempotent=True,
                timeout=self.timeout,
            )

    def query_in_chunks(
        self,
        soql_template: str,
        field_values: Iterable[Any],
        /,
        chunk: int = 2000,
        placeholder: str = "values",
        **params: Any,
    ) -> Iterator[dict]:
        """Run ``soql_template`` once per chunk of ``field_values`` bound to ``{values}`` (an IN list),
        halving a chunk until its query URL stays under ~16,000 characters (about 550 record ids)."""
        values = list(dict.fromkeys(field_values))
        for start in range(0, len(values), chunk):
            yield from self._query_fitting(soql_template, values[start : start + chunk], placeholder, params)

    def _query_fitting(self, template: str, values: list, placeholder: str, params: dict) -> Iterator[dict]:
        soql = format_soql(template, **{**params, placeholder: values})
        if len(self.get_conn().base_url) + len("query/?q=") + len(quote_plus(soql)) > MAX_URL_CHARS:
            if len(values) == 1:
                raise ValueError("A single IN value makes the query URL too long")
            half = len(values) // 2
            yield from self._query_fitting(template, values[:half], placeholder, params)
            yield from self._query_fitting(template, values[half:], placeholder, params)
            return
        yield from self._iter_query(soql, include_deleted=False)

    # -- sObject Collections ------------------------------------------------------------------------
    # Writes are sObject Collections of 200 records, 5 per Composite call (sf_composite.CompositeMixin);
    # ``headers`` go on each subrequest (e.g. ``Sforce-Auto-Assign``).
    def create_records(
        self,
        sobject: str,
        records: Sequence[dict],
        all_or_none: bool = False,
        headers=None,
        *,
        unique_key: str | None = None,
    ) -> list[dict]:
        """Create records, 1,000 per call. Not retried after a timeout, unless every record carries the
        unique external id ``unique_key`` (a repeat then fails ``DUPLICATE_VALUE`` instead of duplicating)."""
        if unique_key:
            _check_name(unique_key)
            _require_field(records, unique_key)
        keyed = unique_key is not None
        return self._collection("POST", "composite/sobjects", sobject, records, all_or_none, keyed, headers)

    def update_records(
        self, sobject: str, records: Sequence[dict], all_or_none: bool = False, headers=None
    ) -> list[dict]:
        """Update records by ``Id``, 1,000 per call."""
        _require_field(records, "Id")
        return self._collection("PATCH", "composite/sobjects", sobject, records, all_or_none, True, headers)

    def upsert_records(
        self,
        sobject: str,
        ext_id_field: str,
        records: Sequence[dict],
        all_or_none: bool = False,
        headers=None,
    ) -> list[dict]:
        """Insert or update by an external id field, 1,000 per call; safe to retry."""
        _check_name(ext_id_field)
        _require_field(records, ext_id_field)
        path = f"composite/sobjects/{sobject}/{ext_id_field}"
        return self._collection("PATCH", path, sobject, records, all_or_none, True, headers)

    def _verify_owners(self, sobject: str, batch: Sequence[dict], results: list[dict]) -> None:
        """Read back ``OwnerId`` of the written records that set one (Composite queries: one call per
        10,000); a record the org re-owned anyway (a trigger, a flow) becomes a failed result with
        ``OWNER_REASSIGNED``."""
        expected = {
            res["id"]: rec["OwnerId"]
            for rec, res in zip(batch, results, strict=True)
            if res["success"] and res["id"] and rec.get("OwnerId")
        }
        if not expected:
            return
        soql = f"SELECT Id, OwnerId FROM {sobject} WHERE Id IN {{values}}"
        actual = {row["Id"]: row.get("OwnerId") for row in self.query_ids(soql, list(expected))}
        for res in results:
            want = expected.get(res["id"])
            if want and actual.get(res["id"]) != want:
                res["success"] = False
                res["errors"] = [
                    {
                        "statusCode": "OWNER_REASSIGNED",
                        "message": f"the org re-owned the {sobject} after the write "
                        f"(expected {want}, now {actual.get(res['id'])})",
                        "fields": ["OwnerId"],
                    }
                ]


def write_headers() -> dict[str, str]:
    """Request headers for every REST write (sObject rows, Collections, Composite, Bulk API 2.0 jobs),
    whatever the object: ``Sforce-Auto-Assign: FALSE`` keeps the owner the playbook routed instead of
    letting the org's Case (Lead, Account) assignment rules re-own the record."""
    return {"Sforce-Auto-Assign": "FALSE"}


def _record_result(item: dict, created_default: bool) -> dict:
    success = bool(item.get("success"))
    return {
        "id": item.get("id"),
        "success": success,
        "created": bool(item.get("created", created_default and success)),
        "errors": [
            {"statusCode": e.get("statusCode"), "message": e.get("message"), "fields": e.get("fields") or []}
            for e in item.get("errors") or []
        ],
    }


def _typed_error(exc: SalesforceError) -> SalesforceApiError:
    content = exc.content
    first = content[0] if isinstance(content, list) and content else content
    first = first if isinstance(first, dict) else {}
    code = first.get("errorCode") or f"HTTP_{exc.status}"
    message = first.get("message") or (content[:200] if isinstance(content, str) else "")
    if code == "INVALID_SESSION_ID" or exc.status == 401:
        return SalesforceSessionExpired(code, message, exc.status)
    if code == "REQUEST_LIMIT_EXCEEDED":
        return SalesforceBudgetExhausted(code, message, exc.status)
    return SalesforceApiError(code, message, exc.status)


def _retryable(exc: BaseException, idempotent: bool) -> bool:
    if never_sent(exc):
        return True
    if isinstance(exc, SalesforceError):
        return idempotent and (exc.status or 0) >= 500
    return idempotent and isinstance(exc, requests.ConnectionError | requests.Timeout)


def _without_attributes(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_attributes(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [_without_attributes(v) for v in value]
    return value


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"Not an sObject or field API name: {name!r}")


def _require_field(records: Sequence[dict], field: str) -> None:
    missing = [i for i, r in enumerate(records) if not r.get(field)]
    if missing:
        raise ValueError(f"{len(missing)} record(s) lack {field} (first at index {missing[0]})")
