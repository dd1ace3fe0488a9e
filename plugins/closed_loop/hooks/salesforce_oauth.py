"""OAuth 2.0 server-to-server flows for the Salesforce connection: JWT bearer and client credentials.

Salesforce is retiring SOAP ``login()`` (username/password): not available from API 65.0, disabled by default
in new orgs, retired for API 31.0-64.0 with Summer '27. Integrations use a connected app (or external client
app) and one of these flows against ``<login_url>/services/oauth2/token`` (Salesforce Help, "OAuth 2.0 JWT
Bearer Flow for Server-to-Server Integration", "OAuth 2.0 Client Credentials Flow ..."). simple-salesforce
implements both too, but only against ``https://<domain>.salesforce.com``; this client takes the token URL
from the connection, so the same code reaches a My Domain, a sandbox org or the local sandbox.

Connection fields (the provider's names where it has them):
- ``extra.login_url``: e.g. ``https://login.salesforce.com``, ``https://test.salesforce.com`` or the My Domain
  URL (client credentials needs the My Domain URL).
- ``extra.auth_flow``: ``jwt_bearer`` or ``client_credentials`` (inferred when absent).
- ``extra.consumer_key``; JWT: ``login`` (the integration user's username) + ``extra.private_key`` or
  ``extra.private_key_file_path``; client credentials: ``extra.consumer_secret``.
- ``extra.audience`` (JWT ``aud``; default ``https://login.salesforce.com``, ``https://test.salesforce.com``
  for sandbox orgs, the login URL itself for a host outside salesforce.com).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from closed_loop.hooks.errors import SalesforceApiError

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FLOWS = ("jwt_bearer", "client_credentials")


@dataclass(frozen=True)
class OAuthFlow:
    """One configured server-to-server flow; ``fetch`` returns a fresh (access token, instance URL)."""

    flow: str
    login_url: str
    consumer_key: str
    username: str | None = None
    private_key: str | None = None
    consumer_secret: str | None = None
    audience: str | None = None

    @classmethod
    def from_connection(cls, login: str | None, extras: dict[str, Any]) -> OAuthFlow | None:
        """The flow a connection asks for (None without ``extra.login_url``: direct session or the
        provider's own flows). Raises ValueError naming what is missing."""
        login_url = (extras.get("login_url") or "").rstrip("/")
        if not login_url:
            return None
        key = extras.get("private_key")
        if not key and extras.get("private_key_file_path"):
            key = Path(extras["private_key_file_path"]).read_text()
        flow = extras.get("auth_flow") or ("jwt_bearer" if key else "client_credentials")
        if flow not in FLOWS:
            raise ValueError(f"extra.auth_flow must be one of {FLOWS}, got {flow!r}")
        needed = {"consumer_key": extras.get("consumer_key")}
        if flow == "jwt_bearer":
            needed |= {"login (username)": login, "private_key or private_key_file_path": key}
        else:
            needed |= {"consumer_secret": extras.get("consumer_secret")}
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise ValueError(f"Salesforce {flow} connection lacks {', '.join(missing)}")
        return cls(
            flow=flow,
            login_url=login_url,
            consumer_key=extras["consumer_key"],
            username=login if flow == "jwt_bearer" else None,
            private_key=key if flow == "jwt_bearer" else None,
            consumer_secret=extras.get("consumer_secret") if flow == "client_credentials" else None,
            audience=extras.get("audience"),
        )

    @property
    def token_url(self) -> str:
        return f"{self.login_url}/services/oauth2/token"

    def jwt_audience(self) -> str:
        if self.audience:
            return self.audience
        host = urlsplit(self.login_url).hostname or ""
        if not host.endswith("salesforce.com"):
            return self.login_url
        return "https://test.salesforce.com" if host.startswith("test.") else "https://login.salesforce.com"

    def form(self) -> dict[str, str]:
        if self.flow == "client_credentials":
            return {
                "grant_type": "client_credentials",
                "client_id": self.consumer_key,
                "client_secret": self.consumer_secret or "",
            }
        claims = {
            "iss": self.consumer_key,
            "sub": self.username,
            "aud": self.jwt_audience(),
            "exp": int(time.time()) + 180,  # Salesforce: at most 3 minutes ahead
        }
        return {"grant_type": JWT_GRANT, "assertion": jwt.encode(claims, self.private_key, algorithm="RS256")}

    def fetch(self, session: requests.Session, timeout: float) -> tuple[str, str]:
        """POST the token request; (access_token, instance_url) or SalesforceApiError("OAUTH_<error>")."""
        try:
            reply = session.post(self.token_url, data=self.form(), timeout=timeout)
            body = reply.json()
        except requests.RequestException as exc:
            raise SalesforceApiError("OAUTH_CONNECTION_ERROR", type(exc).__name__) from None
        except ValueError:
            raise SalesforceApiError("OAUTH_BAD_RESPONSE", "the token reply is not JSON") from None
        if reply.status_code != 200 or not body.get("access_token"):
            error = str(body.get("error") or f"HTTP_{reply.status_code}")
            raise SalesforceApiError(
                f"OAUTH_{error.upper()}", str(body.get("error_description") or ""), reply.status_code
            )
        return body["access_token"], body.get("instance_url") or self.login_url
