"""Schedules (running by default): hourly sync of employees and tasks, calendar events every 6 hours,
nightly full reconciliation of everything. Each gives one run to the accounts the fleet does not
take (new, failing or large portals; every account with BITRIX24_FLEET=off); the fleet sensor
syncs the others in batches on the same crons (``defs/fleet.py``).

Events are not in the hourly job: reading every calendar of a 10k-user portal costs ~10k
``calendar.event.get`` calls (the method has no change filter), ~400 s of server time on a cloud
portal, more than the method's operating budget (480 s per 10 minutes). Between the 6-hourly
reads, the inbox sensor syncs events of portals that send calendar events.

Dynamic partitions cannot use ``build_schedule_from_partitioned_job``, so each schedule fans out
by hand: one ``RunRequest`` per account partition, with a run key holding the tick time so a
retried tick never requests twice. Partitions are read from the instance (no Core query per
tick); accounts in ``error`` keep their partition and are retried, so a fixed webhook recovers
on its own. Cron expressions come from the environment.
"""

import dagster as dg

from bitrix24_assets.defs.config import read_config
from bitrix24_assets.defs.fleet import EVENTS_PASS, HOURLY_PASS, NIGHTLY_PASS, FleetPass, own_run_accounts
from bitrix24_assets.defs.jobs import (
    EVENTS_CRON,
    FULL_CRON,
    INCREMENTAL_CRON,
    SCHEDULE_TIMEZONE,
    bitrix24_events_job,
    bitrix24_full_sync_job,
    bitrix24_sync_job,
)
from bitrix24_assets.defs.partitions import ACCOUNTS_PARTITIONS_NAME
from bitrix24_assets.defs.resources import CoreResource
from bitrix24_assets.defs.tags import TRIGGER_TAG, tags_by_account


def _fan_out(
    context: dg.ScheduleEvaluationContext, core: CoreResource, prefix: str, cadence: FleetPass
) -> list[dg.RunRequest] | dg.SkipReason:
    keys = context.instance.get_dynamic_partitions(ACCOUNTS_PARTITIONS_NAME)
    if not keys:
        return dg.SkipReason(
            "No Bitrix24 accounts yet; the accounts sensor adds them from core.integration_accounts."
        )
    try:
        with core.store() as store:
            names = tags_by_account(store)
            # the others ride bitrix24_fleet_sensor's batches of this cadence (defs/fleet.py)
            keys = own_run_accounts(context.instance, store, keys, cadence)
    except Exception:  # Core down: the runs fail with the reason; the tick still requests them
        names = {}
    if not keys:
        return dg.SkipReason("Every account is synced by bitrix24_fleet_sensor or has a run in flight.")
    tick = _tick(context)
    return [
        dg.RunRequest(
            partition_key=key,
            run_key=f"{prefix}:{key}:{tick}",
            run_config=read_config(list(cadence.entities), full=cadence.full),
            tags={TRIGGER_TAG: prefix, **names.get(key, {})},
        )
        for key in sorted(keys)
    ]


def _tick(context: dg.ScheduleEvaluationContext) -> str:
    """The tick's time for run keys; "manual" for an evaluation without one (Dagster's property
    raises then instead of returning None)."""
    try:
        return context.scheduled_execution_time.isoformat()
    except Exception:
        return "manual"


@dg.schedule(
    name="bitrix24_hourly_sync",
    cron_schedule=INCREMENTAL_CRON,
    job=bitrix24_sync_job,
    execution_timezone=SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Employees and the tasks changed since the last sync, one run per account the fleet "
    "does not take (new, failing or large portals; every account with BITRIX24_FLEET=off); cron from "
    "BITRIX24_SYNC_CRON.",
)
def hourly_sync(
    context: dg.ScheduleEvaluationContext, core: CoreResource
) -> list[dg.RunRequest] | dg.SkipReason:
    return _fan_out(context, core, "hourly", HOURLY_PASS)


@dg.schedule(
    name="bitrix24_events_sync",
    cron_schedule=EVENTS_CRON,
    job=bitrix24_events_job,
    execution_timezone=SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Calendar events (the configured window), one run per account the fleet does not take "
    "(cron from BITRIX24_EVENTS_SYNC_CRON); reading every calendar is too costly for every hour.",
)
def events_sync(
    context: dg.ScheduleEvaluationContext, core: CoreResource
) -> list[dg.RunRequest] | dg.SkipReason:
    return _fan_out(context, core, "events", EVENTS_PASS)


@dg.schedule(
    name="bitrix24_nightly_full_sync",
    cron_schedule=FULL_CRON,
    job=bitrix24_full_sync_job,
    execution_timezone=SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Full reconciliation: marks deleted tasks and events, deactivated employees; one run per "
    "account the fleet does not take (cron from BITRIX24_FULL_SYNC_CRON).",
)
def nightly_full_sync(
    context: dg.ScheduleEvaluationContext, core: CoreResource
) -> list[dg.RunRequest] | dg.SkipReason:
    return _fan_out(context, core, "nightly", NIGHTLY_PASS)
