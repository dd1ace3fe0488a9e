"""SurveyMonkey v3 hook: one Airflow connection, typed errors, paced retries and a daily budget guard.

Connection (type ``surveymonkey``): host = base URL (default ``https://api.surveymonkey.com/v3``; EU
``https://api.eu.surveymonkey.com/v3``, CA ``https://api.surveymonkey.ca/v3``), password = access token.
Extra (all optional): ``ca_bundle`` (path, TLS verification is never disabled), ``timeout`` (s, default 30),
``daily_reserve`` (calls kept free of the daily limit, default 10), ``max_attempts`` (default 5),
``max_wait`` (longest single retry wait in s, default 60).

Retry policy, per call (``idempotent``): a 429 is always retried (the request was refused, not run), as is a
connection that was never established; 5xx, read timeouts and broken connections are retried only for
idempotent calls. GET/PUT/DELETE default to idempotent, POST/PATCH do not: a POST that creates or sends is
never repeated blindly, the caller reconciles (e.g. lists the message's recipients) instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from closed_loop.hooks.errors import (
    SurveyMonkeyBadPayload,
    SurveyMonkeyBudgetExhausted,
    SurveyMonkeyError,
    SurveyMonkeyRateLimited,
    SurveyMonkeyServerError,
    never_sent,
    require_https,
    surveymonkey_error_class,
)

DEFAULT_BASE_URL = "https://api.surveymonkey.com/v3"
# API hosts of one region: paging links (links.next) may name any of them. api.surveymonkey.net is not in
# the v3 docs but appears in real list pages of US accounts; a host of another region is refused.
_US_HOSTS = frozenset({"api.surveymonkey.com", "api.surveymonkey.net"})
REGION_HOSTS = {
    "api.surveymonkey.com": _US_HOSTS,
    "api.surveymonkey.net": _US_HOSTS,
    "api.eu.surveymonkey.com": frozenset({"api.eu.surveymonkey.com"}),
    "api.surveymonkey.ca": frozenset({"api.surveymonkey.ca"}),
}
# Scopes the project's calls need (v3 docs, each endpoint's "Available Methods"); View Users is not one.
REQUIRED_SCOPES = {
    "surveys_read": "GET /surveys, /surveys/{id}/details",
    "collectors_read": "GET collectors, messages, recipients",
    "collectors_write": "POST collectors, messages, recipients/bulk, send",
    "responses_read_detail": "GET responses/bulk",
}
RECIPIENT_LISTS = ("succeeded", "invalids", "existing", "bounced", "opted_out", "duplicate")
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_HEADER = "X-Ratelimit-App-Global-{}"


@dataclass
class RateLimits:
    """The latest rate-limit headers seen (None until a response carried them)."""

    day_limit: int | None = None
    day_remaining: int | None = None
    day_reset: int | None = None
    minute_limit: int | None = None
    minute_remaining: int | None = None
    minute_reset: int | None = None
    minute_reset_at: float | None = None  # time.monotonic() when the minute window reopens

    def update(self, headers: Any) -> None:
        for field in ("day_limit", "day_remaining", "day_reset", "minute_limit", "minute_remaining"):
            value = _int_header(headers, field)
            if value is not None:
                setattr(self, field, value)
        reset = _int_header(headers, "minute_reset")
        if reset is not None:
            self.minute_reset = reset
            self.minute_reset_at = time.monotonic() + reset


def _int_header(headers: Any, field: str) -> int | None:
    window, kind = field.split("_")
    raw = headers.get(_HEADER.format(f"{window.title()}-{kind.title()}"))
    try:
        return int(float(raw)) if raw is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class SurveyMonkeySettings:
    """What the hook reads from its Airflow connection."""

    base_url: str
    token: str
    verify: str | bool
    timeout: float
    daily_reserve: int
    max_attempts: int
    max_wait: float


def base_url_from(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """The API base URL from a connection: a full URL in host, or host[:port] + schema path."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        netloc = f"{host}:{port}" if port else host
        host = f"https://{netloc}/{(schema or 'v3').strip('/')}"
    return require_https(host, "the SurveyMonkey connection's base URL (host)").rstrip("/")


class SurveyMonkeyHook(BaseHook):
    """Talk to the SurveyMonkey v3 API through an Airflow connection.

    :param surveymonkey_conn_id: connection of type ``surveymonkey`` (see the module docstring).
    """

    conn_name_attr = "surveymonkey_conn_id"
    default_conn_name = "surveymonkey_default"
    conn_type = "surveymonkey"
    hook_name = "SurveyMonkey"

    def __init__(self, surveymonkey_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.surveymonkey_conn_id = surveymonkey_conn_id
        self.calls_made = 0
        self.rate = RateLimits()
        self.granted_scopes: list[str] | None = None  # X-OAuth-Scopes-Granted of the latest response
        self.sleep = time.sleep  # replaceable in tests

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form: host is the base URL, password the access token."""
        return {
            "hidden_fields": ["schema", "port", "login"],
            "relabeling": {"host": "Base URL", "password": "Access token"},
            "placeholders": {
                "host": DEFAULT_BASE_URL,
                "extra": '{"ca_bundle": "/path/ca.pem", "timeout": 30, "daily_reserve": 10}',
            },
        }

    # -- connection ---------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> SurveyMonkeySettings:
        conn = self.get_connection(self.surveymonkey_conn_id)
        extra = conn.extra_dejson
        token = conn.password or extra.get("access_token")
        if not token:
            raise ValueError(f"Connection {self.surveymonkey_conn_id!r} has no access token (password)")
        mask_secret(token)
        return SurveyMonkeySettings(
            base_url=base_url_from(conn.host, conn.schema, conn.port),
            token=token,
            verify=extra.get("ca_bundle") or True,
            timeout=float(extra.get("timeout") or 30),
            daily_reserve=int(extra.get("daily_reserve", 10)),
            max_attempts=int(extra.get("max_attempts") or 5),
            max_wait=float(extra.get("max_wait") or 60),
        )

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @cached_property
    def session(self) -> requests.Session:
        settings = self.settings
        session = requests.Session()
        session.headers.update({"Authorization": f"bearer {settings.token}", "Accept": "application/json"})
        session.verify = settings.verify
        if settings.verify is not True:
            # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override session.verify unless trust_env is off
            session.trust_env = False
        return session

    def get_conn(self) -> requests.Session:
        """The configured ``requests.Session`` (bearer token, CA bundle); pass ``settings.timeout``."""
        return self.session

    def test_connection(self) -> tuple[bool, str]:
        """Call ``GET /surveys?per_page=1`` (the View Surveys scope the project needs anyway, unlike
        ``/users/me``, which needs View Users); never echoes the token."""
        try:
            self.request("GET", "/surveys", params={"per_page": 1})
        except Exception as exc:
            return False, self._redact(str(exc))
        return True, "Connection successfully tested"

    # -- requests -----------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path_or_url: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        *,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one API call (with retries) and return the decoded JSON body (None for an empty body).

        :param path_or_url: path under the base URL, or an absolute URL on the same origin (links.next).
        :param idempotent: whether repeating the call after an ambiguous failure is safe; default by method.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS
        url = self._url(path_or_url)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: self._retryable(exc, idempotent)),
            stop=tenacity.stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            sleep=lambda seconds: self.sleep(seconds),
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(self._send, method, url, params, json)

    def _url(self, path_or_url: str) -> str:
        if "://" not in path_or_url:
            return f"{self.base_url}/{path_or_url.lstrip('/')}"
        if not same_region(path_or_url, self.base_url):
            raise ValueError("Refusing to send the SurveyMonkey token to another origin")
        return path_or_url

    def _send(self, method: str, url: str, params: dict | None, json: Any) -> Any:
        self._pace()
        self.calls_made += 1
        self.log.debug("SurveyMonkey %s %s", method, urlsplit(url).path)
        response = self.session.request(method, url, params=params, json=json, timeout=self.settings.timeout)
        self.rate.update(response.headers)
        granted = response.headers.get("X-OAuth-Scopes-Granted")
        if granted is not None:
            self.granted_scopes = [s.strip() for s in granted.split(",") if s.strip()]
        if response.status_code >= 400:
            raise self._error(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise SurveyMonkeyBadPayload(
                response.status_code, None, "Bad payload", f"{len(response.content)}-byte body is not JSON"
            ) from None

    def _pace(self) -> None:
        """Wait for the minute window to reopen when the last response said it was used up."""
        if self.rate.minute_remaining == 0 and self.rate.minute_reset_at is not None:
            delay = self.rate.minute_reset_at - time.monotonic()
            if delay > 0:
                self.log.info("SurveyMonkey minute limit reached; waiting %.1f s", delay)
                self.sleep(min(delay, self.settings.max_wait))
            self.rate.minute_remaining = None

    def _error(self, response: requests.Response) -> SurveyMonkeyError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        error_id = str(error["id"]) if error.get("id") is not None else None
        name, message = error.get("name"), error.get("message")
        if message:
            message = self._redact(str(message))[:500]
        if status == 429 and self.rate.day_remaining == 0:
            return SurveyMonkeyBudgetExhausted(f"daily request limit reached ({message or 'HTTP 429'})", 0)
        exc = surveymonkey_error_class(status, error_id)(status, error_id, name, message)
        if isinstance(exc, SurveyMonkeyRateLimited):
            reset = _int_header(response.headers, "minute_reset")
            exc.retry_after = float(reset) if reset is not None else None
        return exc

    @staticmethod
    def _retryable(exc: BaseException, idempotent: bool) -> bool:
        if isinstance(exc, SurveyMonkeyRateLimited) or never_sent(exc):
            return True
        if isinstance(exc, SurveyMonkeyServerError | requests.ConnectionError | requests.Timeout):
            return idempotent
        return False

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            self.rate.minute_remaining = None  # this wait is the pacing
            return min(max(retry_after, 0.0) + 1.0, self.settings.max_wait)
        return tenacity.wait_exponential_jitter(initial=1, max=self.settings.max_wait)(retry_state)

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0
        self.log.warning(
            "SurveyMonkey call failed (%s %s); attempt %d, retrying in %.1f s",
            type(exc).__name__,
            getattr(exc, "error_id", None) or getattr(exc, "status", None) or "",
            retry_state.attempt_number,
            wait,
        )

    def _redact(self, text: str) -> str:
        token = self.__dict__.get("settings") and self.settings.token
        return text.replace(token, "***") if token else text

    # -- budget -------------------------------------------------------------------------------------
    def budget_guard(self, calls_needed: int) -> None:
        """Raise ``SurveyMonkeyBudgetExhausted`` if a batch of ``calls_needed`` would cross the daily
        limit minus the reserve. Unknown until a response carried the headers: then it passes."""
        remaining = self.rate.day_remaining
        if remaining is None:
            return
        if remaining - calls_needed < self.settings.daily_reserve:
            raise SurveyMonkeyBudgetExhausted(
                f"{calls_needed} calls needed, {remaining} left today, reserve {self.settings.daily_reserve}",
                remaining=remaining,
                needed=calls_needed,
            )

    # -- helpers ------------------------------------------------------------------------------------
    def paginate(
        self, path: str, params: dict[str, Any] | None = None, per_page: int = 100
    ) -> Iterator[dict]:
        """Yield the ``data`` items of every page, following ``links.next``."""
        query: dict[str, Any] | None = {"per_page": per_page, **(params or {})}
        url: str | None = path
        seen: set[str] = set()
        while url:
            page = self.request("GET", url, params=query)
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                raise SurveyMonkeyBadPayload(None, None, "Bad payload", "list page without a data array")
            yield from page["data"]
            seen.add(url)
            url = (page.get("links") or {}).get("next")
            query = None  # links.next carries the query
            if url in seen:
                raise SurveyMonkeyBadPayload(None, None, "Bad payload", "links.next points to a seen page")

    def find_survey(self, title: str) -> dict | None:
        """The survey whose title is exactly ``title``; None if absent, ValueError if ambiguous."""
        matches = [s for s in self.paginate("/surveys", {"title": title}) if s.get("title") == title]
        if len(matches) > 1:
            raise ValueError(f"{len(matches)} surveys are titled {title!r}")
        return matches[0] if matches else None

    def survey_details(self, survey_id: str) -> dict:
        return self.request("GET", f"/surveys/{survey_id}/details")

    def survey_versions(self) -> dict[str, str | None]:
        """``{survey id: date_modified}`` of every survey of the account: one call per 1,000 surveys
        (``GET /surveys?include=date_modified``), to tell whether a survey changed since it was read."""
        surveys = self.paginate("/surveys", {"include": "date_modified"}, per_page=1000)
        return {str(s.get("id")): s.get("date_modified") for s in surveys}

    def get_or_create_email_collector(self, survey_id: str, name: str) -> dict:
        """The survey's open email collector named ``name``, created when missing (so reruns reuse it)."""
        for collector in self.paginate(f"/surveys/{survey_id}/collectors", {"include": "type,status"}):
            if (
                collector.get("name") == name
                and collector.get("type", "email") == "email"
                and collector.get("status", "open") != "closed"
            ):
                return collector
        return self.request(
            "POST", f"/surveys/{survey_id}/collectors", json={"type": "email", "name": name}, idempotent=False
        )

    def create_message(
        self,
        collector_id: str,
        type: str,  # SurveyMonkey's field name
        subject: str,
        body_html: str,
        recipient_status: str | None = None,
    ) -> dict:
        """Create an invite/reminder/thank_you message (status ``not_sent``)."""
        body: dict[str, Any] = {"type": type, "subject": subject, "body_html": body_html}
        if recipient_status:
            body["recipient_status"] = recipient_status
        return self.request("POST", f"/collectors/{collector_id}/messages", json=body, idempotent=False)

    def add_recipients_bulk(
        self, collector_id: str, message_id: str, contacts: Iterable[dict], chunk: int = 500
    ) -> dict[str, list]:
        """Add contacts (``{email, first_name, last_name, custom_fields}``) to an unsent message.

        Returns the merged ``succeeded/invalids/existing/bounced/opted_out/duplicate`` lists. On a failure
        the raised error carries ``partial`` (the lists of the chunks already accepted).
        """
        merged: dict[str, list] = {key: [] for key in RECIPIENT_LISTS}
        contacts = list(contacts)
        path = f"/collectors/{collector_id}/messages/{message_id}/recipients/bulk"
        for start in range(0, len(contacts), chunk):
            try:
                reply = self.request("POST", path, json={"contacts": contacts[start : start + chunk]})
            except SurveyMonkeyError as exc:
                exc.partial = merged
                raise
            if not isinstance(reply, dict):
                raise SurveyMonkeyBadPayload(
                    None, None, "Bad payload", "bulk recipients reply is not an object"
                )
            for key in RECIPIENT_LISTS:
                merged[key].extend(reply.get(key) or [])
        return merged

    def list_message_recipients(
        self, collector_id: str, message_id: str, include: str = "survey_response_status,mail_status"
    ) -> list[dict]:
        """All recipients of a message (used to reconcile after an ambiguous bulk add or send)."""
        path = f"/collectors/{collector_id}/messages/{message_id}/recipients"
        return list(self.paginate(path, {"include": include} if include else None))

    def send_message(
        self, collector_id: str, message_id: str, scheduled_date: datetime | str | None = None
    ) -> dict:
        """Send (or schedule) a ``not_sent`` message. Never retried on an ambiguous failure."""
        body = {}
        if scheduled_date is not None:
            body["scheduled_date"] = (
                scheduled_date.isoformat() if isinstance(scheduled_date, datetime) else scheduled_date
            )
        path = f"/collectors/{collector_id}/messages/{message_id}/send"
        return self.request("POST", path, json=body, idempotent=False)

    def iter_responses(
        self,
        *,
        survey_id: str | None = None,
        collector_id: str | None = None,
        start_modified_at: datetime | str | None = None,
        end_modified_at: datetime | str | None = None,
        status: str | None = "completed",
        simple: bool = False,
        per_page: int = 100,
    ) -> Iterator[dict]:
        """Yield responses (bulk, full answers) oldest modification first, from one survey or collector."""
        if (survey_id is None) == (collector_id is None):
            raise ValueError("Give exactly one of survey_id or collector_id")
        path = (
            f"/surveys/{survey_id}/responses/bulk"
            if survey_id
            else f"/collectors/{collector_id}/responses/bulk"
        )
        params: dict[str, Any] = {"sort_by": "date_modified", "sort_order": "ASC"}
        if start_modified_at is not None:
            params["start_modified_at"] = _sm_time(start_modified_at)
        if end_modified_at is not None:
            params["end_modified_at"] = _sm_time(end_modified_at)
        if status:
            params["status"] = status
        if simple:
            params["simple"] = "true"
        return self.paginate(path, params, per_page=per_page)


def _sm_time(value: datetime | str) -> str:
    """SurveyMonkey's ``YYYY-MM-DDTHH:MM:SS`` (UTC) for a datetime; strings pass through."""
    if isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def same_region(url: str, base_url: str) -> bool:
    """Whether ``url`` is on the same scheme and port as ``base_url`` and on an API host of its region."""
    got, base = urlsplit(url), urlsplit(base_url)
    base_host = (base.hostname or "").lower()
    hosts = REGION_HOSTS.get(base_host, frozenset({base_host}))
    return (
        got.scheme.lower() == base.scheme.lower()
        and (got.hostname or "").lower() in hosts
        and got.port == base.port
    )
