"""``POST /services/oauth2/token``: the OAuth 2.0 JWT bearer and client-credentials flows, expiring tokens.

Documented behaviour (Salesforce Help, "OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration" and
"OAuth 2.0 Client Credentials Flow for Server-to-Server Integration"): the form-encoded request carries
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` + ``assertion`` (an RS256 JWT with ``iss`` =
consumer key, ``sub`` = username, ``aud`` = the login server, ``exp`` at most a few minutes ahead), or
``grant_type=client_credentials`` with the consumer key/secret (form fields or HTTP Basic). The reply is
``{access_token, instance_url, id, token_type: "Bearer", issued_at, signature, scope}``; errors are
``{"error", "error_description"}`` (400 ``invalid_grant`` / ``invalid_request`` / ``unsupported_grant_type``,
401 ``invalid_client``). Access tokens expire with the session timeout (``sf_token_lifetime_s`` of sandbox
time, default 2 h); then the API answers 401 ``INVALID_SESSION_ID``.
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.reply import Reply, Request
from sandbox.state import SandboxState, iso, parse_ts

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_LIFETIME_S = 7200
RUN_AS = "integration@closedloop.example"  # the client-credentials flow's "Run As" user
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


def ensure_app(state: SandboxState, key_file: Path) -> dict:
    """The connected app (consumer key/secret + the certificate's public key); the private key is written
    to ``key_file`` (mode 600) so clients can sign assertions. Reused across restarts."""
    app = state.data.get("oauth_app")
    if app and key_file.exists():
        return app
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    seed = str(state.data.get("seed"))
    app = {
        "consumer_key": "3MVG9SBX" + hashlib.sha256(f"{seed}:ck".encode()).hexdigest()[:40],
        "consumer_secret": hashlib.sha256(f"{seed}:cs".encode()).hexdigest()[:64].upper(),
        "public_key_pem": key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    }
    state.data["oauth_app"] = app
    return app


def valid_token(state: SandboxState, token: str) -> bool:
    """The seeded direct-session token (never expires), or an issued one that has not expired yet."""
    if token and token == state.data["tokens"]["sf"]:
        return True
    issued = state.data.get("oauth_tokens", {}).get(token)
    return bool(issued) and parse_ts(issued["expires"]) > state.now


def _fail(status: int, error: str, description: str) -> Reply:
    return Reply(status, {"error": error, "error_description": description})


def token(state: SandboxState, req: Request) -> Reply:
    app = state.data.get("oauth_app")
    if req.method != "POST" or app is None:
        return _fail(400, "invalid_request", "must use HTTP POST")
    form = dict(parse_qsl(req.body.decode("utf-8", "replace")))
    grant = form.get("grant_type")
    if grant == JWT_GRANT:
        username, problem = _check_assertion(state, req, app, form.get("assertion") or "")
    elif grant == "client_credentials":
        username, problem = _check_client(app, req, form), None
        if username is None:
            return _fail(401, "invalid_client", "invalid client credentials")
    else:
        return _fail(400, "unsupported_grant_type", "grant type not supported")
    if problem:
        return _fail(400, *problem)
    user = next(
        (u for u in state.data["sf"]["User"].values() if u["Username"].lower() == username.lower()), None
    )
    if user is None or not user.get("IsActive", True):
        return _fail(400, "invalid_grant", "user hasn't approved this consumer")
    return _issue(state, req, user)


def _check_assertion(state, req, app, assertion: str) -> tuple[str, tuple[str, str] | None]:
    audiences = [*LOGIN_AUDIENCES, req.base_url]
    try:
        claims = jwt.decode(
            assertion,
            app["public_key_pem"],
            algorithms=["RS256"],
            audience=audiences,
            issuer=app["consumer_key"],
            options={"require": ["iss", "sub", "aud", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        return "", ("invalid_grant", "expired authorization code")
    except jwt.InvalidIssuerError:
        return "", ("invalid_client_id", "client identifier invalid")
    except jwt.InvalidAudienceError:
        return "", ("invalid_grant", "audience is invalid")
    except jwt.PyJWTError:
        return "", ("invalid_grant", "invalid assertion")
    if int(claims["exp"]) > time.time() + 300:
        return "", ("invalid_grant", "invalid assertion: exp is more than 3 minutes ahead")
    return str(claims["sub"]), None


def _check_client(app: dict, req: Request, form: dict) -> str | None:
    key, secret = form.get("client_id"), form.get("client_secret")
    auth = req.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return None
    if key == app["consumer_key"] and secret == app["consumer_secret"]:
        return RUN_AS
    return None


def _issue(state: SandboxState, req: Request, user: dict) -> Reply:
    n = state._next("oauth_token")
    digest = hashlib.sha256(f"{state.data.get('seed')}:{n}".encode()).hexdigest()
    access = f"00D8d000000SBOX!AQ{digest[:60]}"
    lifetime = int((state.data.get("org") or {}).get("sf_token_lifetime_s") or DEFAULT_LIFETIME_S)
    tokens = state.data.setdefault("oauth_tokens", {})
    for old in [t for t, v in tokens.items() if parse_ts(v["expires"]) <= state.now]:
        del tokens[old]
    tokens[access] = {"user": user["Id"], "expires": iso(state.now + timedelta(seconds=lifetime))}
    return Reply(
        200,
        {
            "access_token": access,
            "instance_url": req.base_url,
            "id": f"{req.base_url}/id/00D8d000000SBOX/{user['Id']}",
            "token_type": "Bearer",
            "issued_at": str(int(state.now.timestamp() * 1000)),
            "signature": base64.b64encode(hashlib.sha256(access.encode()).digest()).decode(),
            "scope": "api",
        },
    )
