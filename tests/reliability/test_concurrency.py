"""Concurrency: two overlapping runs of the same pipeline step (two workers, each with its own hooks and its
own ledger connection, on one PostgreSQL ledger) send nothing twice. A barrier makes both workers reach
the claim at the same moment, the worst interleaving: the ledger's keys and transactions decide the
winner and the other worker's step becomes a no-op."""

from __future__ import annotations

import threading
import types

import pytest
from reliability_helpers import PIPELINES, World, assert_clean, audit

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_world(tmp_path, pg_database_url):
    """A LocalStack whose ledger is a throw-away PostgreSQL database (dropped afterwards)."""
    from devtools.stack import LocalStack

    with LocalStack(tmp_path / "pg", seed=7, ledger_url=pg_database_url) as local, local.connections():
        yield World(local)


# (pipeline, where both workers meet, what the loser's step must amount to)
RACES = [
    pytest.param("dispatch", "ledger.mark_send_intent", id="send_invites-claim"),
    pytest.param("reminders", "ledger.claim_reminders", id="send_reminders-claim"),
    pytest.param("intake", "sf.create_records", id="open_cases-create"),
    pytest.param("sweep", "ledger.email_intent", id="sweep-email-intent"),
]


def _worker_world(main: World) -> World:
    """A second worker: its own engine/connection pool on the same database, its own hooks."""
    from closed_loop.ledger import Ledger

    ledger = Ledger.from_url(main.ledger.engine.url.render_as_string(hide_password=False))
    return World(types.SimpleNamespace(ledger=ledger, sandbox=main.stack.sandbox))


def _meet_at(w: World, target: str, barrier: threading.Barrier) -> None:
    owner, name = target.split(".")
    obj = getattr(w, owner)
    real, met = getattr(obj, name), []

    def wrapper(*args, **kwargs):
        if not met:
            met.append(True)
            barrier.wait(timeout=1800)  # hang guard, not a speed limit
        return real(*args, **kwargs)

    setattr(obj, name, wrapper)


@pytest.mark.parametrize(("pipeline", "meet"), RACES)
def test_two_overlapping_runs_do_not_double_send(pg_world, record, pipeline, meet):
    setup, run = PIPELINES[pipeline]
    setup(pg_world)
    pg_world.notes["intake_ran"] = pipeline == "intake"
    workers = [_worker_world(pg_world), _worker_world(pg_world)]
    barrier = threading.Barrier(2)
    for w in workers:
        _meet_at(w, meet, barrier)
    results, errors = [None, None], []

    def go(i):
        try:
            results[i] = run(workers[i], run_id=f"worker-{i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for w in workers:
        w.ledger.dispose()
    assert not errors, errors
    run(pg_world.fresh_hooks(), run_id="after")  # and a later run finds nothing left to do
    report = audit(pg_world)
    assert_clean(report)
    outcome = _loser(pipeline, results, report["totals"])
    record(f"two overlapping {pipeline} runs meeting at {meet} (PostgreSQL)", outcome, **report["totals"])


def _loser(pipeline: str, results: list, totals: dict) -> str:
    """Which worker did the work, and proof that the other one's step was a no-op."""
    if pipeline == "dispatch":
        sent = sorted(r["sent"] for r in results)
        assert sent[0] == 0 and sent[1] > 0, results
        return f"one worker claimed and sent {sent[1]}, the other claimed 0 and sent nothing"
    if pipeline == "reminders":
        reminded = sorted(r["reminded"] for r in results)
        assert reminded[0] == 0 and reminded[1] > 0, results
        return f"one worker reminded {reminded[1]}, the other claimed 0"
    if pipeline == "intake":
        created = sorted(opened.cases_created for _, opened in results)
        assert sum(created) == totals["cases"], results  # each Case created once, by one worker
        return f"Cases created {created[1]} + {created[0]} = {totals['cases']}: upserts by external id"
    sent = [r["progress"]["emails"].get("sent", 0) + (r["digest"]["outcome"] == "sent") for r in results]
    assert sum(sent) == totals["emails"], results  # each email went out from exactly one worker
    return f"emails split {sent} between the workers, {totals['emails']} in all: the intent row decides"
