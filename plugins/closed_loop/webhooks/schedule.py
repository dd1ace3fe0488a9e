"""response_intake's schedule: polling by default; with webhooks, the webhook asset OR reconciliation.

The asset is watched by the triggerer through ``MessageQueueTrigger(scheme="redis+pubsub")`` on the
channel the receiver publishes to (providers redis + common-messaging). Several messages while a run is
active make one more run: asset-triggered DAGs at ``max_active_runs`` are deferred by the scheduler and
the queued events are consumed together.
"""

from __future__ import annotations

from closed_loop.webhooks import settings

WEBHOOK_ASSET_NAME = "surveymonkey_response_webhooks"
POLL_INTERVAL_SECONDS = 0.5  # how often the trigger looks at its pub/sub subscription


def webhook_asset():
    """The asset a SurveyMonkey webhook updates (through the receiver, Redis and the triggerer)."""
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import Asset, AssetWatcher

    trigger = MessageQueueTrigger(
        scheme="redis+pubsub",
        channels=[settings.channel()],
        redis_conn_id=settings.redis_conn_id(),
        poll_interval=POLL_INTERVAL_SECONDS,
    )
    return Asset(
        name=WEBHOOK_ASSET_NAME, watchers=[AssetWatcher(name="surveymonkey_webhooks", trigger=trigger)]
    )


def intake_schedule(polling: str, reconcile: str):
    """``polling`` (a cron) unless ``CLOSED_LOOP_INTAKE_TRIGGER=events``; then the webhook asset or the
    ``reconcile`` cron, whichever comes first."""
    if not settings.events_enabled():
        return polling
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(reconcile, timezone="UTC"), assets=[webhook_asset()]
    )
