"""The events-inbox sensor: Bitrix24 outgoing events (stored by the receiver) become incremental runs.

Every tick (15 s) the sensor reads the unprocessed rows of ``core.integration_events`` and:

1. **Deletions at once.** ``ONTASKDELETE`` / ``ONCALENDARENTRYDELETE`` mark the Core rows deleted
   (``store.mark_deleted``) without a run; nightly reconciliation would find them only hours later.
2. **One run per account and job.** Other events are grouped per (account, job): task events ->
   ``bitrix24_tasks_job``, calendar events -> ``bitrix24_events_job``, ``ONUSERADD`` ->
   ``bitrix24_employees_job``. A task event never re-reads calendars. The run is an ordinary
   incremental run (no run config: ``full`` defaults to False), so it reads what changed since the
   last cursor, which covers every event in the group, however many.
3. **Debounce.** A group waits while *all* its events are younger than ``debounce_seconds`` (a burst
   is probably still arriving); as soon as its oldest event is older, the whole group - young
   events included - goes into one run. So a burst of 1,000 task updates becomes one run, and an
   event waits at most ``debounce_seconds`` + one tick interval, even under a steady stream.
4. **Coalescing.** If a run of the same job and account is still queued (not started), it will
   read these changes anyway: the events are marked processed without a second request.
5. The ``run_key`` is ``inbox:<job>:<account>:<max event id of the group>``; each event is processed
   once, so the key is unique per group and a repeated evaluation cannot start a second run.

**Nothing is lost between ticks.** State lives in Core (``processed_at``), not in the sensor cursor,
so a stopped daemon, a reset cursor or a failed evaluation leaves events pending for the next tick.
Events are marked processed as the last step of the evaluation that requests their run; if Core
fails before that, the evaluation fails and no run is requested (the events stay pending). The
daemon persists the run requests of a finished evaluation on the tick and resumes an interrupted
tick on restart (``dagster/_daemon/sensor.py``: ``reserved_run_ids`` / ``_resume_tick``), which
leaves only the moment between marking and the daemon receiving the result. Schedules still run
for that reason and because Bitrix24 itself never retries a lost event.

Events of accounts without a partition (not yet onboarded, or removed) are marked processed without
a run: the onboarding sensor's first full sync will include their changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from bitrix24_assets.bitrix24.events import Entity, EventName
from bitrix24_assets.core import CoreStore, InboxEvent
from bitrix24_assets.core.store import DeletableEntity
from bitrix24_assets.defs.fleet import busy_accounts
from bitrix24_assets.defs.jobs import ENTITY_JOBS
from bitrix24_assets.defs.partitions import ACCOUNTS_PARTITIONS_NAME
from bitrix24_assets.defs.resources import CoreResource
from bitrix24_assets.defs.tags import tags_by_account
from bitrix24_assets.pipeline import ENTITIES

__all__ = ["InboxPlan", "PlannedRun", "bitrix24_events_inbox_sensor", "build_inbox_sensor", "plan_inbox"]

DEBOUNCE_SECONDS = 10.0
TICK_SECONDS = 15
BATCH_SIZE = 5000
"""Events read per tick; a larger backlog drains over the next ticks (oldest first)."""

JOB_FOR_ENTITY: dict[Entity, str] = {
    e.event_entity: e.job_name for e in ENTITIES.values() if e.event_entity is not None
}
# the Core entity whose rows each deletion event (EventName.is_deletion) marks deleted
_DELETED_ENTITY: dict[EventName, DeletableEntity] = {
    EventName.ONTASKDELETE: "tasks",
    EventName.ONCALENDARENTRYDELETE: "calendar_events",
}
TRIGGER_TAG = "bitrix24/trigger"


@dataclass(frozen=True)
class PlannedRun:
    """One incremental run for one account and job, and the events it answers."""

    account_id: str
    job_name: str
    event_ids: tuple[str, ...]

    @property
    def run_key(self) -> str:
        return f"inbox:{self.job_name}:{self.account_id}:{max(self.event_ids)}"

    def run_request(self, account_tags: dict[str, str] | None = None) -> dg.RunRequest:
        """The run; ``account_tags`` name the portal (``bitrix24/account``, ``bitrix24/company``)."""
        return dg.RunRequest(
            job_name=self.job_name,
            partition_key=self.account_id,
            run_key=self.run_key,
            tags={
                TRIGGER_TAG: "webhook_events",
                "bitrix24/event_count": str(len(self.event_ids)),
                **(account_tags or {}),
            },
        )


@dataclass
class InboxPlan:
    """What one tick does with a batch of pending events (computed without I/O, so it is testable)."""

    runs: list[PlannedRun] = field(default_factory=list)
    deletions: dict[tuple[str, DeletableEntity], list[str]] = field(default_factory=dict)
    """(account id, "tasks" | "calendar_events") -> Bitrix ids to mark deleted."""
    deletion_event_ids: list[str] = field(default_factory=list)
    dropped_event_ids: list[str] = field(default_factory=list)
    """Unusable rows (unknown event, no id) and events of accounts without a partition."""
    waiting: int = 0
    """Events left pending for the debounce."""

    def processed_ids(self, runs: Sequence[PlannedRun]) -> list[str]:
        """Ids to mark processed once ``runs`` are requested (or coalesced) and deletions applied."""
        return [*self.deletion_event_ids, *self.dropped_event_ids, *(i for r in runs for i in r.event_ids)]


def plan_inbox(
    events: Sequence[InboxEvent], *, now: datetime, debounce: timedelta, known_accounts: set[str]
) -> InboxPlan:
    """Group pending events into deletions and one run per (account, job); see the module docstring."""
    plan = InboxPlan()
    deletions: dict[tuple[str, DeletableEntity], set[str]] = defaultdict(set)
    groups: dict[tuple[str, str], list[InboxEvent]] = defaultdict(list)
    for event in events:
        name = _event_name(event)
        object_id = event.payload.get("object_id")
        if name is None or not isinstance(object_id, str) or not object_id:
            plan.dropped_event_ids.append(event.id)
            continue
        account = event.integration_account_id
        if name.is_deletion:
            deletions[(account, _DELETED_ENTITY[name])].add(object_id)
            plan.deletion_event_ids.append(event.id)
        elif account not in known_accounts:
            plan.dropped_event_ids.append(event.id)
        else:
            groups[(account, JOB_FOR_ENTITY[name.entity])].append(event)
    plan.deletions = {key: sorted(ids, key=int) for key, ids in deletions.items()}
    for (account, job_name), group in sorted(groups.items()):
        oldest = min(e.received_at for e in group)
        if now - oldest < debounce:
            plan.waiting += len(group)
            continue
        plan.runs.append(PlannedRun(account, job_name, tuple(sorted(e.id for e in group))))
    return plan


def _event_name(event: InboxEvent) -> EventName | None:
    try:
        return EventName(event.event.upper())
    except ValueError:
        return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _already_queued(instance: dg.DagsterInstance, run: PlannedRun) -> bool:
    """A not-yet-started run of this job and account will read these changes anyway."""
    queued = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=run.job_name,
            tags={"dagster/partition": run.account_id},
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        ),
        limit=1,
    )
    return bool(queued)


def build_inbox_sensor(
    *,
    name: str = "bitrix24_events_inbox_sensor",
    debounce_seconds: float = DEBOUNCE_SECONDS,
    minimum_interval_seconds: int = TICK_SECONDS,
    batch_size: int = BATCH_SIZE,
    clock: Callable[[], datetime] = _utc_now,
) -> dg.SensorDefinition:
    """The inbox sensor; ``clock`` and ``debounce_seconds`` are injectable so tests need no sleeps."""

    @dg.sensor(
        name=name,
        jobs=list(ENTITY_JOBS.values()),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Turns Bitrix24 outgoing events stored by the webhook receiver into incremental "
        "runs (one per account and job per tick) and applies deletions at once.",
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, core: CoreResource) -> dg.SensorResult:
        with core.store() as store:
            return _evaluate(
                context,
                store,
                debounce=timedelta(seconds=debounce_seconds),
                batch_size=batch_size,
                now=clock(),
            )

    return inbox_sensor


def _evaluate(
    context: dg.SensorEvaluationContext,
    store: CoreStore,
    *,
    debounce: timedelta,
    batch_size: int,
    now: datetime,
) -> dg.SensorResult:
    events = store.pending_events(limit=batch_size)
    if not events:
        return dg.SensorResult(skip_reason="No pending Bitrix24 events.")
    known = set(context.instance.get_dynamic_partitions(ACCOUNTS_PARTITIONS_NAME))
    plan = plan_inbox(events, now=now, debounce=debounce, known_accounts=known)
    for (account, entity), ids in plan.deletions.items():
        changed = store.mark_deleted(account, entity, ids)
        context.log.info(f"Account {account}: {changed} of {len(ids)} deleted {entity} marked deleted.")
    # a portal inside a fleet run queued or in flight: its events wait for a later tick, since the
    # run queue's one-run-per-portal limit does not see fleet runs and two syncs would overlap
    in_fleet = busy_accounts(context.instance, fleet_only=True)
    runs = [run for run in plan.runs if run.account_id not in in_fleet]
    requested = [run for run in runs if not _already_queued(context.instance, run)]
    coalesced = len(runs) - len(requested)
    # Last step on purpose: if anything above failed, the events stay pending for the next tick.
    store.mark_events_processed(plan.processed_ids(runs))
    summary = (
        f"{len(events)} events: {len(requested)} runs requested, {coalesced} folded into queued runs, "
        f"{len(plan.runs) - len(runs)} held while their portal's fleet run is in flight, "
        f"{len(plan.deletion_event_ids)} deletions applied, {len(plan.dropped_event_ids)} dropped, "
        f"{plan.waiting} waiting for the debounce."
    )
    context.log.info(summary)
    if not requested:
        return dg.SensorResult(skip_reason=summary)
    names = tags_by_account(store)
    return dg.SensorResult(run_requests=[run.run_request(names.get(run.account_id)) for run in requested])


bitrix24_events_inbox_sensor = build_inbox_sensor()
