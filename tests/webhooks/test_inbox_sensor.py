"""The inbox sensor turns stored events into runs: real Core (embedded Postgres), real Dagster instance.

The debounce is driven by an injected clock (``received_at`` comes from Core's ``now()``), so no
test waits for wall-clock time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg

from bitrix24_assets.bitrix24.events import EventName, parse_event, parse_form
from bitrix24_assets.core import CalendarEventRow, CoreStore, InboxEvent, TaskRow
from bitrix24_assets.defs.inbox import build_inbox_sensor, plan_inbox
from bitrix24_assets.defs.jobs import bitrix24_tasks_job
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import CoreResource

from .conftest import Accounts, event_body

LATER = timedelta(minutes=1)


def later() -> datetime:
    return datetime.now(UTC) + LATER


def put(store: CoreStore, account: str, name: str, object_id: str | int, ts: int = 1766047124) -> None:
    """Store an event exactly as the receiver does (same parser, payload and dedupe key)."""
    event = parse_event(parse_form(event_body(name, str(object_id), ts=str(ts))))
    store.put_event(account, event.event.value, event.inbox_payload(), event.dedupe_key)


def evaluate(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, core: CoreResource
) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, resources={"core": core}) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def onboard(instance: dg.DagsterInstance, *accounts: str) -> None:
    instance.add_dynamic_partitions(integration_accounts.name, list(accounts))


def test_burst_of_1000_task_updates_becomes_one_run_request(
    core_store: CoreStore, accounts: Accounts, instance: dg.DagsterInstance, core: CoreResource
) -> None:
    onboard(instance, accounts.a)
    for task_id in range(1, 1001):
        put(core_store, accounts.a, "ONTASKUPDATE", task_id)
    result = evaluate(build_inbox_sensor(clock=later), instance, core)
    [request] = result.run_requests or []
    assert request.job_name == bitrix24_tasks_job.name
    assert request.partition_key == accounts.a
    assert request.run_key and request.run_key.startswith(f"inbox:bitrix24_tasks_job:{accounts.a}:")
    assert request.tags["bitrix24/event_count"] == "1000"
    # the run names its portal: partitions are bare UUIDs
    assert request.tags["bitrix24/account"] == "portal A"
    assert request.tags["bitrix24/company"] == "Webhooks test company"
    assert not request.run_config  # an ordinary incremental run: `full` keeps its default (False)
    assert core_store.pending_events(limit=5000) == []
    # the next tick finds nothing to do
    assert evaluate(build_inbox_sensor(clock=later), instance, core).skip_reason is not None


def test_events_request_only_the_jobs_they_touch_per_account(
    core_store: CoreStore, accounts: Accounts, instance: dg.DagsterInstance, core: CoreResource
) -> None:
    onboard(instance, accounts.a, accounts.b)
    put(core_store, accounts.a, "ONTASKADD", 1)
    put(core_store, accounts.a, "ONTASKUPDATE", 2)
    put(core_store, accounts.a, "ONCALENDARENTRYUPDATE", 3)
    put(core_store, accounts.b, "ONUSERADD", 4)
    requests = evaluate(build_inbox_sensor(clock=later), instance, core).run_requests or []
    assert sorted((r.partition_key, r.job_name) for r in requests) == sorted(
        [
            (accounts.a, "bitrix24_tasks_job"),
            (accounts.a, "bitrix24_events_job"),  # a task event never re-reads calendars, and vice versa
            (accounts.b, "bitrix24_employees_job"),
        ]
    )


def test_a_fresh_burst_waits_for_the_debounce_and_nothing_is_lost(
    core_store: CoreStore, accounts: Accounts, instance: dg.DagsterInstance, core: CoreResource
) -> None:
    onboard(instance, accounts.a)
    for task_id in range(1, 51):
        put(core_store, accounts.a, "ONTASKUPDATE", task_id)
    now = build_inbox_sensor(debounce_seconds=3600)  # every event is "young"
    waiting = evaluate(now, instance, core)
    assert not waiting.run_requests
    assert "50 waiting" in str(waiting.skip_reason)
    assert len(core_store.pending_events(limit=100)) == 50  # still pending: a later tick picks them up
    assert len(evaluate(build_inbox_sensor(clock=later), instance, core).run_requests or []) == 1


def test_deletion_events_mark_rows_deleted_at_once_without_a_run(
    core_store: CoreStore, core_dsn: str, accounts: Accounts, instance: dg.DagsterInstance, core: CoreResource
) -> None:
    onboard(instance, accounts.a)
    core_store.merge_tasks(
        accounts.a, [TaskRow(bitrix_id=str(i), title=f"t{i}") for i in (1, 2, 3)], full=False
    )
    core_store.merge_events(
        accounts.a, [CalendarEventRow(bitrix_id=str(i), name=f"e{i}") for i in (7, 8)], full=False
    )
    put(core_store, accounts.a, "ONTASKDELETE", 2)
    put(core_store, accounts.a, "ONCALENDARENTRYDELETE", 8)
    result = evaluate(
        build_inbox_sensor(debounce_seconds=3600), instance, core
    )  # deletions skip the debounce
    assert not result.run_requests
    with psycopg.connect(core_dsn) as conn:
        tasks = dict(conn.execute("select bitrix_id, is_deleted from core.tasks").fetchall())
        events = dict(conn.execute("select bitrix_id, is_deleted from core.calendar_events").fetchall())
    assert tasks == {"1": False, "2": True, "3": False}
    assert events == {"7": False, "8": True}
    assert core_store.pending_events(limit=10) == []


def test_events_of_an_account_without_partition_are_dropped_not_run(
    core_store: CoreStore, accounts: Accounts, instance: dg.DagsterInstance, core: CoreResource
) -> None:
    # not onboarded yet: the onboarding sensor's first full sync will include this change
    put(core_store, accounts.a, "ONTASKUPDATE", 1)
    result = evaluate(build_inbox_sensor(clock=later), instance, core)
    assert not result.run_requests
    assert "1 dropped" in str(result.skip_reason)
    assert core_store.pending_events(limit=10) == []


def test_a_queued_run_absorbs_new_events(
    core_store: CoreStore,
    accounts: Accounts,
    instance: dg.DagsterInstance,
    core: CoreResource,
    code_location: dg.Definitions,
) -> None:
    onboard(instance, accounts.a)
    job = code_location.resolve_job_def(bitrix24_tasks_job.name)
    # a created, not yet started run (QUEUED needs a code-server origin; both count as "not started")
    instance.create_run_for_job(
        job, status=dg.DagsterRunStatus.NOT_STARTED, tags={"dagster/partition": accounts.a}
    )
    put(core_store, accounts.a, "ONTASKUPDATE", 1)
    result = evaluate(build_inbox_sensor(clock=later), instance, core)
    assert not result.run_requests
    assert "1 folded into queued runs" in str(result.skip_reason)
    assert core_store.pending_events(limit=10) == []


def test_events_of_a_portal_in_a_fleet_run_wait_until_it_ends(
    core_store: CoreStore, accounts: Accounts, instance: dg.DagsterInstance, core: CoreResource
) -> None:
    """A fleet run holds no per-portal tag, so the run queue would let an inbox run of the same portal
    sync beside it: the sensor holds the portal's events (pending, not lost) until the fleet run ends."""
    from dagster._core.test_utils import create_run_for_test

    from bitrix24_assets.defs.fleet import FLEET_JOB, FLEET_OP

    onboard(instance, accounts.a, accounts.b)
    fleet = create_run_for_test(
        instance,
        job_name=FLEET_JOB,
        run_config={"ops": {FLEET_OP: {"config": {"accounts": [accounts.a]}}}},
        status=dg.DagsterRunStatus.STARTED,
    )
    put(core_store, accounts.a, "ONTASKUPDATE", 1)
    put(core_store, accounts.b, "ONTASKUPDATE", 2)
    result = evaluate(build_inbox_sensor(clock=later), instance, core)
    assert [r.partition_key for r in result.run_requests or []] == [accounts.b]
    assert [e.integration_account_id for e in core_store.pending_events(limit=10)] == [accounts.a]
    instance.report_run_canceled(fleet)
    result = evaluate(build_inbox_sensor(clock=later), instance, core)
    assert [r.partition_key for r in result.run_requests or []] == [accounts.a]
    assert core_store.pending_events(limit=10) == []


# ---- the planner alone (pure): the debounce rule and run keys ---------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def inbox_event(
    event_id: str, seconds: float, name: str = "ONTASKUPDATE", account: str = "acc"
) -> InboxEvent:
    return InboxEvent(
        id=event_id,
        integration_account_id=account,
        event=name,
        payload={"object_id": event_id[-1]},
        received_at=T0 + timedelta(seconds=seconds),
    )


def test_an_old_event_takes_the_young_ones_of_its_group_along() -> None:
    # debounce 10 s at T0+30: the 25 s-old event is due, so the 1 s-old one rides along in the same run
    events = [inbox_event("e1", 5), inbox_event("e2", 29)]
    plan = plan_inbox(
        events, now=T0 + timedelta(seconds=30), debounce=timedelta(seconds=10), known_accounts={"acc"}
    )
    [run] = plan.runs
    assert run.event_ids == ("e1", "e2") and plan.waiting == 0


def test_groups_are_debounced_independently() -> None:
    events = [inbox_event("e1", 5), inbox_event("e2", 29, name="ONCALENDARENTRYADD")]
    plan = plan_inbox(
        events, now=T0 + timedelta(seconds=30), debounce=timedelta(seconds=10), known_accounts={"acc"}
    )
    assert [r.job_name for r in plan.runs] == ["bitrix24_tasks_job"]
    assert plan.waiting == 1
    assert plan.processed_ids(plan.runs) == ["e1"]


def test_run_key_is_derived_from_the_events_and_stable() -> None:
    events = [inbox_event("e1", 0), inbox_event("e3", 1), inbox_event("e2", 2)]
    now, debounce = T0 + timedelta(minutes=1), timedelta(seconds=10)
    first = plan_inbox(events, now=now, debounce=debounce, known_accounts={"acc"}).runs[0]
    again = plan_inbox(list(reversed(events)), now=now, debounce=debounce, known_accounts={"acc"}).runs[0]
    assert first.run_key == again.run_key == "inbox:bitrix24_tasks_job:acc:e3"


def test_unusable_rows_are_dropped_rather_than_blocking_the_inbox() -> None:
    events = [
        inbox_event("e1", 0, name="ONCRMDEALADD"),
        InboxEvent(id="e2", integration_account_id="acc", event="ONTASKUPDATE", payload={}, received_at=T0),
    ]
    plan = plan_inbox(events, now=T0 + timedelta(minutes=1), debounce=timedelta(0), known_accounts={"acc"})
    assert plan.runs == [] and plan.dropped_event_ids == ["e1", "e2"]


def test_every_deletion_event_marks_rows_of_its_own_entity() -> None:
    # the inbox maps deletion events to Core's deletable entities itself: it must agree with EventName
    for name in EventName:
        event = inbox_event("e1", 0, name=name.value)
        plan = plan_inbox([event], now=T0 + timedelta(1), debounce=timedelta(0), known_accounts={"acc"})
        expected = {("acc", name.entity.value): ["1"]} if name.is_deletion else {}
        assert plan.deletions == expected, name
