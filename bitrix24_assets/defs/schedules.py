"""Schedules (running by default): hourly incremental sync and nightly full reconciliation.

Dynamic partitions cannot use ``build_schedule_from_partitioned_job``, so each schedule fans out
by hand: one ``RunRequest`` per account partition, with a run key holding the tick time so a
retried tick never requests twice. Partitions are read from the instance (no Core query per
tick); accounts in ``error`` keep their partition and are retried, so a fixed webhook recovers
on its own. Cron expressions come from the environment.
"""

import os

import dagster as dg

from bitrix24_assets.defs.config import read_config
from bitrix24_assets.defs.jobs import ALL, bitrix24_full_sync_job, bitrix24_sync_job
from bitrix24_assets.defs.partitions import integration_accounts

INCREMENTAL_CRON = os.environ.get("BITRIX24_SYNC_CRON", "0 * * * *")
FULL_CRON = os.environ.get("BITRIX24_FULL_SYNC_CRON", "30 2 * * *")
SCHEDULE_TIMEZONE = os.environ.get("BITRIX24_SCHEDULE_TIMEZONE", "UTC")


def _fan_out(
    context: dg.ScheduleEvaluationContext, prefix: str, *, full: bool
) -> list[dg.RunRequest] | dg.SkipReason:
    keys = context.instance.get_dynamic_partitions(integration_accounts.name)
    if not keys:
        return dg.SkipReason(
            "No Bitrix24 accounts yet; the accounts sensor adds them from core.integration_accounts."
        )
    tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
    return [
        dg.RunRequest(
            partition_key=key,
            run_key=f"{prefix}:{key}:{tick}",
            run_config=read_config(list(ALL), full=full),
            tags={"bitrix24/trigger": prefix},
        )
        for key in sorted(keys)
    ]


@dg.schedule(
    name="bitrix24_hourly_sync",
    cron_schedule=INCREMENTAL_CRON,
    job=bitrix24_sync_job,
    execution_timezone=SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Incremental sync of every account (cron from BITRIX24_SYNC_CRON).",
)
def hourly_sync(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    return _fan_out(context, "hourly", full=False)


@dg.schedule(
    name="bitrix24_nightly_full_sync",
    cron_schedule=FULL_CRON,
    job=bitrix24_full_sync_job,
    execution_timezone=SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Full reconciliation of every account: marks deleted tasks and events, deactivated "
    "employees (cron from BITRIX24_FULL_SYNC_CRON).",
)
def nightly_full_sync(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    return _fan_out(context, "nightly", full=True)
