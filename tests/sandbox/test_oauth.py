"""OAuth 2.0 JWT bearer and client-credentials flows: the sandbox token endpoint (expiring tokens) and the
hook's re-authentication (once) on INVALID_SESSION_ID. Expected shapes from Salesforce Help, "OAuth 2.0 JWT
Bearer Flow for Server-to-Server Integration" / "OAuth 2.0 Client Credentials Flow"."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from closed_loop.hooks import ClosedLoopSalesforceHook, SalesforceSessionExpired

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TWO_HOURS_AND_A_BIT = {"advance_hours": 2, "advance_minutes": 1}  # Salesforce's default session timeout


def token_requests(sandbox) -> int:
    return sandbox.admin("GET", "counters")["sf"]["endpoints"].get("POST oauth2/token", 0)


def post_token(sandbox, **form):
    return sandbox.session().post(f"{sandbox.sf_instance_url}/services/oauth2/token", data=form, timeout=10)


def assertion(sandbox, key_pem=None, **claims):
    key = key_pem or open(sandbox.sf_jwt_key_file).read()
    body = {
        "iss": sandbox.sf_consumer_key,
        "sub": sandbox.sf_username,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 120,
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256")


def hook_for(sandbox, monkeypatch, auth):
    for name, value in sandbox.airflow_conn_env(auth).items():
        monkeypatch.setenv(name, value)
    return ClosedLoopSalesforceHook(max_attempts=1)


@pytest.mark.parametrize("auth", ["jwt_bearer", "client_credentials"])
def test_hook_authenticates_and_re_authenticates_once_when_the_token_expires(sandbox, monkeypatch, auth):
    hook = hook_for(sandbox, monkeypatch, auth)
    before = token_requests(sandbox)
    assert list(hook.query("SELECT Id FROM User WHERE Username = {u}", u=sandbox.sf_username))
    assert hook.auth_flow == auth and token_requests(sandbox) == before + 1
    first_token = hook.get_conn().session_id
    assert first_token != sandbox.sf_access_token
    sandbox.admin("POST", "clock", TWO_HOURS_AND_A_BIT)
    # the expired token is refused, the hook gets a new one and repeats the write with its headers
    doi = next(hook.query("SELECT Id FROM User WHERE Username = 'doi@closedloop.example'"))["Id"]
    assert token_requests(sandbox) == before + 2 and hook.get_conn().session_id != first_token
    sandbox.admin("POST", "clock", TWO_HOURS_AND_A_BIT)
    (result,) = hook.upsert_records(
        "Case", "Survey_Response_Id__c", [{"Survey_Response_Id__c": f"oauth-{auth}", "OwnerId": doi}]
    )
    assert result["success"] and token_requests(sandbox) == before + 3
    stored = {c["Id"]: c["OwnerId"] for c in sandbox.admin("GET", "records/Case")}
    assert stored[result["id"]] == doi  # Sforce-Auto-Assign: FALSE survived the re-authentication


def test_re_authentication_happens_once_then_the_error_surfaces(sandbox, monkeypatch):
    hook = hook_for(sandbox, monkeypatch, "client_credentials")
    hook.get_conn()
    before = token_requests(sandbox)
    sandbox.admin("POST", "faults", {"sf_expire_session": True})
    try:
        with pytest.raises(SalesforceSessionExpired):
            list(hook.query("SELECT Id FROM User"))
    finally:
        sandbox.admin("DELETE", "faults")
    assert token_requests(sandbox) == before + 1


def test_direct_session_token_does_not_expire_and_is_not_refreshed(sandbox, monkeypatch):
    hook = hook_for(sandbox, monkeypatch, "direct")
    sandbox.admin("POST", "clock", TWO_HOURS_AND_A_BIT)
    before = token_requests(sandbox)
    assert list(hook.query("SELECT Id FROM User LIMIT 1"))
    assert token_requests(sandbox) == before and hook.auth_flow == "direct"


def test_token_endpoint_replies_with_the_documented_shape(sandbox):
    reply = post_token(sandbox, grant_type=JWT_GRANT, assertion=assertion(sandbox))
    assert reply.status_code == 200
    body = reply.json()
    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"} <= set(body)
    assert body["token_type"] == "Bearer" and body["instance_url"] == sandbox.sf_instance_url
    api = f"{sandbox.sf_instance_url}/services/data/v61.0/limits"
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert sandbox.session().get(api, headers=auth, timeout=10).status_code == 200


def test_client_credentials_accepts_http_basic(sandbox):
    reply = sandbox.session().post(
        f"{sandbox.sf_instance_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(sandbox.sf_consumer_key, sandbox.sf_consumer_secret),
        timeout=10,
    )
    assert reply.status_code == 200 and reply.json()["access_token"]


def _other_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}, 401, "invalid_client"),
        ({"grant_type": "password", "username": "u", "password": "p"}, 400, "unsupported_grant_type"),
        ({"grant_type": JWT_GRANT, "assertion": "not-a-jwt"}, 400, "invalid_grant"),
        ({"grant_type": JWT_GRANT, "assertion": "KEY:other"}, 400, "invalid_grant"),  # signed by another key
        ({"grant_type": JWT_GRANT, "assertion": "AUD:https://evil.example"}, 400, "invalid_grant"),
        ({"grant_type": JWT_GRANT, "assertion": "EXP:-60"}, 400, "invalid_grant"),  # expired assertion
        ({"grant_type": JWT_GRANT, "assertion": "SUB:nobody@closedloop.example"}, 400, "invalid_grant"),
    ],
)
def test_token_endpoint_rejects_bad_requests(sandbox, form, status, error):
    form = dict(form)
    spec = form.get("assertion", "")
    if ":" in spec and spec.split(":", 1)[0] in ("KEY", "AUD", "EXP", "SUB"):
        kind, value = spec.split(":", 1)
        claims = {
            "KEY": lambda: {},
            "AUD": lambda: {"aud": value},
            "EXP": lambda: {"exp": int(time.time()) + int(value)},
            "SUB": lambda: {"sub": value},
        }[kind]()
        form["assertion"] = assertion(sandbox, _other_key() if kind == "KEY" else None, **claims)
    reply = post_token(sandbox, **form)
    assert reply.status_code == status
    assert reply.json()["error"] == error and "error_description" in reply.json()
