"""The SurveyMonkey webhook receiver: a small Starlette service, its own process.

    python -m closed_loop.webhooks.receiver --host 0.0.0.0 --port 8090

``POST /surveymonkey/webhook`` checks a delivery (``closed_loop.webhooks.delivery``), answers at once, and
hands the ids (event, survey, response) to a coalescing publisher that wakes response_intake through the
Redis pub/sub channel the triggerer listens on: at most one message per ``coalesce_seconds`` however many
deliveries arrive, re-sent while no listener is subscribed. ``HEAD`` answers 200 (SurveyMonkey checks the
``subscription_url`` with a HEAD when the webhook is created). The service holds only the webhook secret
and the Redis address: no Salesforce or SurveyMonkey API credentials, nothing about respondents, and it
never logs a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from closed_loop.webhooks.delivery import ReceiverSettings, Verdict, inspect, too_large

PATH = "/surveymonkey/webhook"
MAX_IDS_PER_MESSAGE = 100
log = logging.getLogger("closed_loop.webhooks.receiver")


class WakeUpPublisher:
    """Coalesce accepted events into few Redis messages; keep them while nobody listens."""

    def __init__(self, redis, channel: str, coalesce_seconds: float, retry_seconds: float = 1.0) -> None:
        self.redis, self.channel = redis, channel
        self.coalesce_seconds, self.retry_seconds = coalesce_seconds, retry_seconds
        self.pending: list[dict] = []
        self.messages = 0
        self._kick = asyncio.Event()
        self._last = float("-inf")

    def add(self, event: dict) -> None:
        self.pending.append(event)
        self._kick.set()

    async def run(self) -> None:
        while True:
            await self._kick.wait()
            await asyncio.sleep(max(0.0, self._last + self.coalesce_seconds - time.monotonic()))
            self._kick.clear()
            batch, self.pending = self.pending, []
            if not batch:
                continue
            message = json.dumps({"count": len(batch), "events": batch[:MAX_IDS_PER_MESSAGE]})
            try:
                listeners = await self.redis.publish(self.channel, message)
            except Exception as exc:  # Redis down: keep the batch, try again
                log.warning("wake-up publish failed (%s); retrying", type(exc).__name__)
                listeners = 0
            if listeners:
                self._last = time.monotonic()
                self.messages += 1
                log.info("wake-up published: %d event(s), %d listener(s)", len(batch), listeners)
            else:
                self.pending = (batch + self.pending)[-10 * MAX_IDS_PER_MESSAGE :]
                await asyncio.sleep(self.retry_seconds)
                self._kick.set()


def create_app(settings: ReceiverSettings, redis) -> Starlette:
    """The ASGI app; ``redis`` is a ``redis.asyncio.Redis`` (dedupe keys and the wake-up channel)."""
    publisher = WakeUpPublisher(redis, settings.channel, settings.coalesce_seconds)
    tally: Counter[str] = Counter()

    async def webhook(request: Request) -> Response:
        if request.method in ("HEAD", "GET"):
            return Response(status_code=200)
        verdict = await _read_and_inspect(request, settings)
        if verdict.accepted:
            first = await redis.set(
                f"{settings.channel}:seen:{verdict.event['event_id']}",
                1,
                nx=True,
                ex=settings.dedupe_ttl_seconds,
            )
            if first:
                publisher.add(verdict.event)
            else:
                verdict = Verdict(200, "duplicate_event")
        tally[verdict.reason] += 1
        peer = request.client.host if request.client else "-"
        if verdict.status >= 400:
            log.warning("webhook rejected: %s (HTTP %d) from %s", verdict.reason, verdict.status, peer)
        else:
            event_id = verdict.event["event_id"] if verdict.event else "-"
            log.info("webhook %s: event %s from %s", verdict.reason, event_id, peer)
        return JSONResponse({"status": verdict.reason}, status_code=verdict.status)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "deliveries": dict(tally),
                "wake_ups": publisher.messages,
                "pending": len(publisher.pending),
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(publisher.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await redis.aclose()

    return Starlette(
        routes=[Route(PATH, webhook, methods=["POST", "HEAD", "GET"]), Route("/healthz", health)],
        lifespan=lifespan,
    )


async def _read_and_inspect(request: Request, settings: ReceiverSettings) -> Verdict:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and too_large(int(declared), settings):
        return Verdict(413, "oversized")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if too_large(len(body), settings):
            return Verdict(413, "oversized")
    return inspect({k.lower(): v for k, v in request.headers.items()}, bytes(body), settings)


def settings_from_connections(webhook_conn_id: str, channel: str, **overrides) -> ReceiverSettings:
    """The webhook secret from an Airflow connection: login = API key / client id, password = API
    secret; extra may set max_body_bytes, max_age_seconds, coalesce_seconds."""
    conn = _connection(webhook_conn_id)
    if not conn.login or not conn.password:
        raise ValueError(f"connection {webhook_conn_id!r} needs login (API key) and password (API secret)")
    extra = conn.extra_dejson
    tunables = {
        k: type(getattr(ReceiverSettings, k))(extra[k])
        for k in ("max_body_bytes", "max_age_seconds", "max_skew_seconds", "coalesce_seconds")
        if k in extra
    }
    return ReceiverSettings(conn.login, conn.password, channel, **{**tunables, **overrides})


def redis_from_connection(redis_conn_id: str):
    """A ``redis.asyncio.Redis`` from an Airflow ``redis`` connection (host, port, password, extra.db)."""
    import redis.asyncio as aioredis

    conn = _connection(redis_conn_id)
    extra = conn.extra_dejson
    return aioredis.Redis(
        host=conn.host or "127.0.0.1",
        port=int(conn.port or 6379),
        db=int(extra.get("db", 0)),
        password=conn.password or None,
        ssl=bool(extra.get("ssl", False)),
    )


def _connection(conn_id: str):
    from airflow.models.connection import Connection

    return Connection.get_connection_from_secrets(conn_id)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import socket
    import sys

    import uvicorn

    from closed_loop.webhooks import settings as config

    parser = argparse.ArgumentParser(description="Receive SurveyMonkey webhooks; wake response_intake.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 = any free port (printed)")
    parser.add_argument("--conn-id", default=config.WEBHOOK_CONN_ID)
    parser.add_argument("--redis-conn-id", default=config.redis_conn_id())
    parser.add_argument("--channel", default=config.channel())
    args = parser.parse_args(argv)
    settings = settings_from_connections(args.conn_id, args.channel)  # imports Airflow (its logging)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    app = create_app(settings, redis_from_connection(args.redis_conn_id))
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    print(json.dumps({"url": f"http://{args.host}:{sock.getsockname()[1]}{PATH}"}), flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
