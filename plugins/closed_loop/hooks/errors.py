"""Typed errors raised by the closed-loop hooks (messages never carry tokens or request URLs)."""

from __future__ import annotations

from typing import Any

import requests
from urllib3.exceptions import NewConnectionError


class InsecureEndpoint(ValueError):
    """An API base URL that is not https://: a bearer token must never travel in clear text."""


def require_https(url: str, what: str) -> str:
    """``url`` when its scheme is https, else ``InsecureEndpoint`` naming the connection field."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme != "https":
        shown = url.split("?", 1)[0][:120]
        raise InsecureEndpoint(f"{what} must be an https:// URL (got {shown!r}): no clear text")
    return url


class SmtpOutcomeUnknown(Exception):
    """The connection broke after the message data was handed to the SMTP server and before its reply:
    the server may have accepted it. Under the at-most-once policy it is never resent automatically."""


class SalesforceApiError(Exception):
    """A whole Salesforce call failed (per-record failures are returned, never raised).

    :param code: Salesforce ``errorCode`` (e.g. ``MALFORMED_QUERY``) or ``HTTP_<status>``.
    :param completed: per-record results of the chunks that finished before the failure.
    """

    def __init__(
        self, code: str, message: str, status: int | None = None, completed: list[dict] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.code = code
        self.message = message
        self.status = status
        self.completed: list[dict] = completed or []


class SalesforceSessionExpired(SalesforceApiError):
    """INVALID_SESSION_ID: the access token expired or was revoked; a new token is needed."""


class SalesforceBudgetExhausted(SalesforceApiError):
    """REQUEST_LIMIT_EXCEEDED: the org's rolling 24 h API budget is spent; stop and resume later."""


class SurveyMonkeyError(Exception):
    """A SurveyMonkey call failed; carries the HTTP status and SurveyMonkey's error id."""

    retry_after: float | None = None  # seconds until the minute window reopens (429 with headers)
    partial: dict | None = None  # what a multi-call helper completed before failing

    def __init__(
        self, status: int | None, error_id: str | None, name: str | None, message: str | None
    ) -> None:
        parts = [f"SurveyMonkey error {error_id or '-'}"]
        if name:
            parts.append(name)
        text = " ".join(parts) + (f": {message}" if message else "") + (f" (HTTP {status})" if status else "")
        super().__init__(text)
        self.status = status
        self.error_id = error_id
        self.name = name
        self.message = message


class SurveyMonkeyBadRequest(SurveyMonkeyError):
    """Ids 1000-1004 (HTTP 400): the request is invalid; retrying will not help."""


class SurveyMonkeyAuthError(SurveyMonkeyError):
    """Ids 1010-1013 (HTTP 401): missing, invalid, expired or revoked token."""


class SurveyMonkeyPermissionDenied(SurveyMonkeyError):
    """Ids 1014-1018 (HTTP 403): scope, plan or ownership does not allow the call."""


class SurveyMonkeyNotFound(SurveyMonkeyError):
    """Id 1020 (HTTP 404)."""


class SurveyMonkeyConflict(SurveyMonkeyError):
    """Ids 1025/1026 (HTTP 409): e.g. a message already sent."""


class SurveyMonkeyPayloadTooLarge(SurveyMonkeyError):
    """Id 1030 (HTTP 413)."""


class SurveyMonkeyRateLimited(SurveyMonkeyError):
    """Id 1040 (HTTP 429) after the retries were used up."""


class SurveyMonkeyServerError(SurveyMonkeyError):
    """Ids 1050/1051 (HTTP 5xx)."""


class SurveyMonkeyBudgetExhausted(SurveyMonkeyError):
    """The daily request budget (minus the reserve) would be crossed: stop cleanly, resume tomorrow."""

    def __init__(self, message: str, remaining: int | None = None, needed: int | None = None) -> None:
        super().__init__(None, None, "Budget exhausted", message)
        self.remaining = remaining
        self.needed = needed


class SurveyMonkeyBadPayload(SurveyMonkeyError):
    """A response body that is not the JSON expected (malformed, truncated, wrong shape)."""


def surveymonkey_error_class(status: int | None, error_id: Any) -> type[SurveyMonkeyError]:
    """The typed error for a SurveyMonkey error id, falling back to the HTTP status."""
    try:
        number = int(error_id)
    except (TypeError, ValueError):
        number = None
    if number is not None:
        for low, high, cls in _ID_RANGES:
            if low <= number <= high:
                return cls
    if status is not None:
        if status >= 500:
            return SurveyMonkeyServerError
        return _STATUS_CLASSES.get(status, SurveyMonkeyError)
    return SurveyMonkeyError


_ID_RANGES: list[tuple[int, int, type[SurveyMonkeyError]]] = [
    (1000, 1004, SurveyMonkeyBadRequest),
    (1010, 1013, SurveyMonkeyAuthError),
    (1014, 1018, SurveyMonkeyPermissionDenied),
    (1020, 1020, SurveyMonkeyNotFound),
    (1025, 1026, SurveyMonkeyConflict),
    (1030, 1030, SurveyMonkeyPayloadTooLarge),
    (1040, 1040, SurveyMonkeyRateLimited),
    (1050, 1051, SurveyMonkeyServerError),
]
_STATUS_CLASSES: dict[int, type[SurveyMonkeyError]] = {
    400: SurveyMonkeyBadRequest,
    401: SurveyMonkeyAuthError,
    403: SurveyMonkeyPermissionDenied,
    404: SurveyMonkeyNotFound,
    409: SurveyMonkeyConflict,
    413: SurveyMonkeyPayloadTooLarge,
    429: SurveyMonkeyRateLimited,
}


def never_sent(exc: BaseException) -> bool:
    """True when the connection failed before the request left (connect timeout, refused): always safe
    to retry, whatever the call."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        return isinstance(getattr(exc.args[0], "reason", None), NewConnectionError)
    return False
