"""Jobs, by name: the inbox sensor (``inbox.py``) and the schedules target these names.

All jobs run their steps in one process (``in_process_executor``): the steps of one portal share
one rate-limit bucket, so running them in parallel would only make them wait on each other, and a
process per step would cost more than most incremental syncs. Portals run in parallel as
separate runs, at most one per portal at a time (``dagster_home/dagster.yaml``).
"""

import dagster as dg

from bitrix24_assets.defs.config import read_config
from bitrix24_assets.sync import ENTITIES


def _selection(*entities: str) -> dg.AssetSelection:
    keys = []
    for entity in entities:
        spec = ENTITIES[entity]
        keys += [f"bitrix_{spec.raw_name}", f"mapped_{entity}", f"core_{entity}"]
    return dg.AssetSelection.assets(*keys)


ALL = tuple(ENTITIES)
# What the hourly job syncs. Calendar events are left out on purpose: calendar.event.get has no
# change filter, so every sync reads every calendar (one command per user: ~10k calls, ~500 s of
# server time on a 10k-user cloud portal, over the method's 480 s per 10 minutes budget). They get
# their own 6-hourly schedule, the inbox sensor's event-driven runs and the nightly full sync.
HOURLY = ("employees", "tasks")

bitrix24_employees_job = dg.define_asset_job(
    "bitrix24_employees_job",
    selection=_selection("employees"),
    executor_def=dg.in_process_executor,
    description="Sync employees of one account (users are always read in full).",
)
bitrix24_tasks_job = dg.define_asset_job(
    "bitrix24_tasks_job",
    selection=_selection("tasks"),
    executor_def=dg.in_process_executor,
    description="Sync tasks of one account: changes since the last sync unless `full` is set.",
)
bitrix24_events_job = dg.define_asset_job(
    "bitrix24_events_job",
    selection=_selection("events"),
    executor_def=dg.in_process_executor,
    description="Sync calendar events of one account over the configured window (every 6 hours, "
    "and on calendar events from the inbox).",
)
bitrix24_sync_job = dg.define_asset_job(
    "bitrix24_sync_job",
    selection=_selection(*HOURLY),
    executor_def=dg.in_process_executor,
    description="Hourly sync of one account: employees (read in full) and the tasks changed since the "
    "last sync. Calendar events have their own schedule (`bitrix24_events_job`).",
)
bitrix24_full_sync_job = dg.define_asset_job(
    "bitrix24_full_sync_job",
    selection=_selection(*ALL),
    executor_def=dg.in_process_executor,
    config=read_config(list(ALL), full=True),
    description="Full reconciliation of one account: reads everything and marks what disappeared "
    "(nightly, and the first sync of a new account).",
)

JOBS = [
    bitrix24_employees_job,
    bitrix24_tasks_job,
    bitrix24_events_job,
    bitrix24_sync_job,
    bitrix24_full_sync_job,
]
JOBS_BY_ENTITY = {
    "employees": bitrix24_employees_job,
    "tasks": bitrix24_tasks_job,
    "events": bitrix24_events_job,
}
