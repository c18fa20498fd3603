"""Retention of personal data: a daily job deletes what no longer needs to be kept.

Core keeps the inbox of outgoing events (names and e-mails of new users) and the sync logs; both
grew forever. The job deletes processed inbox events older than ``BITRIX24_EVENTS_RETENTION_DAYS``
(default 30) and sync-log rows older than ``BITRIX24_SYNC_LOG_RETENTION_DAYS`` (default 90; the
latest successful row of each account and entity stays, it holds the cursor), and sweeps the raw
records kept on disk past their retention. An op job, not an asset: it changes no data the
platform reads.
"""

import os

import dagster as dg

from bitrix24_assets.defs.resources import CoreResource, RawStoreResource

EVENTS_DAYS = int(os.environ.get("BITRIX24_EVENTS_RETENTION_DAYS", "30"))
SYNC_LOG_DAYS = int(os.environ.get("BITRIX24_SYNC_LOG_RETENTION_DAYS", "90"))
RETENTION_CRON = os.environ.get("BITRIX24_RETENTION_CRON", "45 3 * * *")


class RetentionConfig(dg.Config):
    events_days: int = EVENTS_DAYS
    sync_logs_days: int = SYNC_LOG_DAYS


@dg.op(description="Delete processed inbox events and old sync logs from Core; sweep old raw records.")
def purge_personal_data(
    context: dg.OpExecutionContext, config: RetentionConfig, core: CoreResource, raw_store: RawStoreResource
) -> None:
    deleted = core.get_store().purge_personal_data(config.events_days, config.sync_logs_days)
    files = raw_store.get().sweep()
    context.log.info(f"Deleted {deleted} and {files} raw-record files past retention.")


@dg.job(
    name="bitrix24_retention_job",
    description="Deletes personal data past its retention period (inbox events, sync logs, raw records).",
    executor_def=dg.in_process_executor,
)
def bitrix24_retention_job() -> None:
    purge_personal_data()


bitrix24_retention = dg.ScheduleDefinition(
    name="bitrix24_retention",
    job=bitrix24_retention_job,
    cron_schedule=RETENTION_CRON,
    execution_timezone=os.environ.get("BITRIX24_SCHEDULE_TIMEZONE", "UTC"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily deletion of personal data past retention (cron from BITRIX24_RETENTION_CRON).",
)
