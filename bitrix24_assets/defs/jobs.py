"""Jobs, generated from the entity registry: one per entity (the inbox sensor's incremental runs),
the hourly job, and the full reconciliation.

All jobs run their steps in one process (``in_process_executor``): the steps of one portal share
one rate-limit bucket, so running them in parallel would only make them wait on each other, and a
process per step would cost more than most incremental syncs. Portals run in parallel as
separate runs, at most one per portal at a time (``dagster_home/dagster.yaml``).
"""

import os

import dagster as dg

from bitrix24_assets.defs.config import read_config
from bitrix24_assets.pipeline import ENTITIES


def _selection(*entities: str) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*(key for e in entities for key in ENTITIES[e].keys))


ALL = tuple(ENTITIES)
# What the hourly job syncs: the registry's ``hourly`` entities. Calendar events are left out on
# purpose: calendar.event.get has no change filter, so every sync reads every calendar (one command
# per user: ~10k calls, ~400 s of server time on a 10k-user cloud portal, most of the method's 480 s
# per 10 minutes budget). They get their own 6-hourly schedule, the inbox sensor's event-driven runs
# and the nightly full sync.
HOURLY = tuple(name for name, entity in ENTITIES.items() if entity.hourly)

# When each cadence runs (cron in BITRIX24_SCHEDULE_TIMEZONE): the schedules give their own runs to
# the accounts bitrix24_fleet_sensor does not take, the sensor batches the others on the same cron.
INCREMENTAL_CRON = os.environ.get("BITRIX24_SYNC_CRON", "0 * * * *")
EVENTS_CRON = os.environ.get("BITRIX24_EVENTS_SYNC_CRON", "15 */6 * * *")
FULL_CRON = os.environ.get("BITRIX24_FULL_SYNC_CRON", "30 2 * * *")
SCHEDULE_TIMEZONE = os.environ.get("BITRIX24_SCHEDULE_TIMEZONE", "UTC")

ENTITY_JOBS = {
    name: dg.define_asset_job(
        entity.job_name,
        selection=_selection(name),
        executor_def=dg.in_process_executor,
        description=entity.job_description,
    )
    for name, entity in ENTITIES.items()
}
bitrix24_sync_job = dg.define_asset_job(
    "bitrix24_sync_job",
    selection=_selection(*HOURLY),
    executor_def=dg.in_process_executor,
    description=f"Hourly sync of one account: {', '.join(HOURLY)} (tasks: the changes since the last "
    "sync; the others read in full). Calendar events have their own schedule (`bitrix24_events_job`).",
)
bitrix24_full_sync_job = dg.define_asset_job(
    "bitrix24_full_sync_job",
    selection=_selection(*ALL),
    executor_def=dg.in_process_executor,
    config=read_config(list(ALL), full=True),
    description="Full reconciliation of one account: reads everything and marks what disappeared "
    "(nightly, and the first sync of a new account).",
)
bitrix24_employees_job = ENTITY_JOBS["employees"]
bitrix24_tasks_job = ENTITY_JOBS["tasks"]
bitrix24_events_job = ENTITY_JOBS["events"]

JOBS = [*ENTITY_JOBS.values(), bitrix24_sync_job, bitrix24_full_sync_job]
