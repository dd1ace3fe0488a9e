"""`python -m sandbox --port 0 --seed 7 --state PATH`: print one JSON line, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import trustme

from sandbox import hostile, oauth, seed, sf_schema, webhooks
from sandbox.server import SandboxServer
from sandbox.state import SandboxState
from sandbox.testing import SandboxInfo


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--state", type=Path, required=True, help="JSON state file (reloaded when present)")
    parser.add_argument("--accounts", type=int, default=60)
    parser.add_argument("--start-clock", default=None, help="ISO start time (default 2026-07-01T09:00:00Z)")
    parser.add_argument("--sf-daily-limit", type=int, default=None)
    parser.add_argument("--sm-minute-limit", type=int, default=None)
    parser.add_argument("--sm-day-limit", type=int, default=None)
    parser.add_argument(
        "--field-names",
        default=None,
        help='JSON: this org\'s own names for documented fields, e.g. {"Account.MRR__c": "Monthly_Rev__c"}',
    )
    parser.add_argument(
        "--hostile",
        action="store_true",
        help="the awkward org of issue 14: an inactive TSM, a multi-line comment, a negative pulse",
    )
    parser.add_argument(
        "--save-interval",
        type=float,
        default=0,
        help="seconds between state saves (default 0: after every write; large states use e.g. 30)",
    )
    return parser.parse_args(argv)


def _certificates(state_path: Path) -> tuple[Path, Path]:
    """Reuse the CA kept next to the state file (so restarts stay trusted); issue a fresh server cert."""
    ca_file = state_path.with_name(state_path.stem + ".ca.pem")
    ca_key = state_path.with_name(state_path.stem + ".ca-key.pem")
    if ca_file.exists() and ca_key.exists():
        ca = trustme.CA.from_pem(ca_file.read_bytes(), ca_key.read_bytes())
    else:
        ca = trustme.CA(organization_name="closed-loop sandbox")
        ca.cert_pem.write_to_path(str(ca_file))
        ca.private_key_pem.write_to_path(str(ca_key))
        os.chmod(ca_key, 0o600)
    server_pem = state_path.with_name(state_path.stem + ".server.pem")
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1", "sandbox")  # "sandbox": the compose service name
    cert.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    os.chmod(server_pem, 0o600)
    return ca_file, server_pem


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    path = args.state.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    overrides = {
        k: v
        for k, v in {
            "sf_daily_limit": args.sf_daily_limit,
            "sm_minute_limit": args.sm_minute_limit,
            "sm_day_limit": args.sm_day_limit,
        }.items()
        if v is not None
    }
    if path.exists():
        state = SandboxState.load(path)
        sf_schema.rename_fields(state.data["config"].get("field_names") or {})
    else:
        config = {"sf_daily_limit": 15000, "sm_minute_limit": 120, "sm_day_limit": 500}
        state = seed.build(args.seed, args.start_clock, args.accounts, config)
        state.path = path
        if args.hostile:
            hostile.apply(state)
        state.data["config"]["field_names"] = json.loads(args.field_names or "{}")
        sf_schema.rename_fields(state.data["config"]["field_names"])
        sf_schema.rename_in_records(state.data["sf"])
    state.data["config"].update(overrides)
    jwt_key_file = path.with_name(path.stem + ".jwt-key.pem")
    app = oauth.ensure_app(state, jwt_key_file)
    state.save()
    ca_file, server_pem = _certificates(path)
    server = SandboxServer(args.host, args.port, state, str(server_pem), args.save_interval)
    port = server.server_address[1]
    base = f"https://{args.host}:{port}"
    info = {
        "sf_instance_url": base,
        "sm_base_url": base + "/v3",
        "ca_file": str(ca_file),
        "sf_access_token": state.data["tokens"]["sf"],
        "sm_access_token": state.data["tokens"]["sm"],
        "admin_url": base + "/_sandbox",
        "pid": os.getpid(),
        **webhooks.info(state),
        "sf_consumer_key": app["consumer_key"],
        "sf_consumer_secret": app["consumer_secret"],
        "sf_jwt_key_file": str(jwt_key_file),
        "sf_username": oauth.RUN_AS,
    }
    info["airflow_conn_env"] = SandboxInfo(**info).airflow_conn_env()
    print(json.dumps(info), flush=True)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        with state.lock:
            state.save()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
