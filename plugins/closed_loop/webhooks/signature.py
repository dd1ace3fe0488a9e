"""SurveyMonkey's webhook signature (no Airflow import).

Documented in the v3 API's "Webhook Callbacks" section: the ``Sm-Signature`` header is the base64 of an
HMAC-SHA1 digest of the raw request body, keyed ``"<api key or client id>&<api secret>"``; ``Sm-Apikey``
carries the API key / client id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign(body: bytes, api_key: str, api_secret: str) -> str:
    """The ``Sm-Signature`` value SurveyMonkey sends for ``body``."""
    key = f"{api_key}&{api_secret}".encode()
    return base64.b64encode(hmac.new(key, body, hashlib.sha1).digest()).decode("ascii")


def verify(body: bytes, signature: str | None, api_key: str, api_secret: str) -> bool:
    """True when ``signature`` is the one for ``body`` (constant-time comparison)."""
    if not signature:
        return False
    return hmac.compare_digest(sign(body, api_key, api_secret).encode(), signature.strip().encode())
