"""The accounts sensor and the fan-out schedules against a real instance and a real Core."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.fleet import FLEET_JOB, FLEET_OP, ONBOARD_ALONE
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import CoreResource
from bitrix24_assets.defs.schedules import events_sync, hourly_sync, nightly_full_sync
from bitrix24_assets.defs.sensors import accounts_sensor
from bitrix24_assets.defs.tags import TRIGGER_TAG
from bitrix24_assets.pipeline import ENTITIES
from tests.defs.conftest import add_account

HOOK = "http://127.0.0.1:9/rest/1/secret-token-1/"


def tick(instance: dg.DagsterInstance, core: CoreResource) -> dg.SensorResult | dg.SkipReason:
    """One sensor evaluation, with its partition requests applied as the daemon would."""
    with dg.build_sensor_context(instance=instance, resources={"core": core}) as ctx:
        result = accounts_sensor(ctx)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def keys(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_dynamic_partitions(integration_accounts.name))


def test_sensor_adds_removes_and_requests_across_ticks(
    instance: dg.DagsterInstance, core_resource: CoreResource, core_store: CoreStore
) -> None:
    a = add_account(core_store, HOOK, "Acme")
    b = add_account(core_store, HOOK, "Globex")

    first = tick(instance, core_resource)
    assert isinstance(first, dg.SensorResult)
    assert keys(instance) == {a, b}
    assert sorted(r.partition_key for r in first.run_requests) == sorted([a, b])
    assert {r.job_name for r in first.run_requests} <= {"bitrix24_full_sync_job", None}

    # nothing changed: no requests, no partition changes
    assert isinstance(tick(instance, core_resource), dg.SkipReason)

    # an account in error keeps its partition; a disabled one loses it
    core_store.set_account_status(a, "error", "Webhook revoked.")
    core_store.set_account_status(b, "disabled", None)
    third = tick(instance, core_resource)
    assert isinstance(third, dg.SensorResult)
    assert keys(instance) == {a}
    assert not third.run_requests

    # re-activation: partition back and a new first sync with a different run key
    core_store.set_account_status(b, "active", None)
    fourth = tick(instance, core_resource)
    assert isinstance(fourth, dg.SensorResult)
    assert keys(instance) == {a, b}
    assert [r.partition_key for r in fourth.run_requests] == [b]
    first_key = next(r.run_key for r in first.run_requests if r.partition_key == b)
    assert fourth.run_requests[0].run_key != first_key


def test_many_new_accounts_at_once_get_their_first_full_sync_in_fleet_batches(
    instance: dg.DagsterInstance, core_resource: CoreResource, core_store: CoreStore
) -> None:
    many = [add_account(core_store, HOOK, f"Co {i}", f"portal-{i}") for i in range(ONBOARD_ALONE + 2)]
    first = tick(instance, core_resource)
    assert isinstance(first, dg.SensorResult)
    assert keys(instance) == set(many)
    (batch,) = first.run_requests  # fewer than BITRIX24_FLEET_ONBOARD_PER_RUN: one batch
    config = batch.run_config["ops"][FLEET_OP]["config"]
    assert batch.job_name == FLEET_JOB and batch.tags[TRIGGER_TAG] == "onboarding"
    assert sorted(config["accounts"]) == sorted(many)
    assert (config["entities"], config["full"]) == (list(ENTITIES), True)

    # one re-activated account is onboarded alone, under a new run key
    core_store.set_account_status(many[0], "disabled", None)
    tick(instance, core_resource)
    core_store.set_account_status(many[0], "active", None)
    again = tick(instance, core_resource)
    assert isinstance(again, dg.SensorResult)
    (alone,) = again.run_requests
    assert (alone.job_name, alone.partition_key) == ("bitrix24_full_sync_job", many[0])


def test_sensor_ignores_other_providers(
    instance: dg.DagsterInstance, core_resource: CoreResource, core_store: CoreStore
) -> None:
    company = core_store.create_company("Initech")
    core_store.add_account(company, "Slack", {"token": "x"}, provider="slack")
    assert isinstance(tick(instance, core_resource), dg.SkipReason)
    assert keys(instance) == set()


def test_schedules_emit_one_request_per_account_with_per_tick_run_keys(
    instance: dg.DagsterInstance, core_resource: CoreResource, core_store: CoreStore
) -> None:
    company = core_store.create_company("Acme Ltd")
    a = core_store.add_account(
        company, "acme.bitrix24.ru", {"webhook_url": "https://acme.bitrix24.ru/rest/1/x/"}
    )
    b = core_store.add_account(company, "acme-2", {"webhook_url": "https://acme2.bitrix24.ru/rest/1/y/"})
    instance.add_dynamic_partitions(integration_accounts.name, [a.id, b.id])

    def evaluate(schedule: dg.ScheduleDefinition, when: datetime) -> Any:
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when, resources={"core": core_resource}
        ) as context:
            return schedule(context)

    t1, t2 = datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 11, tzinfo=UTC)
    first = evaluate(hourly_sync, t1)
    second = evaluate(hourly_sync, t2)
    assert isinstance(first, list) and isinstance(second, list)
    assert sorted(r.partition_key for r in first) == sorted([a.id, b.id])
    # runs name their portal and company: partitions are bare UUIDs
    tags = {r.partition_key: r.tags for r in first}
    assert (
        tags[a.id]["bitrix24/account"] == "acme.bitrix24.ru" and tags[a.id]["bitrix24/company"] == "Acme Ltd"
    )
    assert len({r.run_key for r in first + second}) == 4  # unique per account and per tick
    assert all(r.run_config["ops"]["bitrix_tasks"]["config"]["full"] is False for r in first)
    # the hourly job does not read calendars (too costly every hour): its config names no event op
    assert all(
        set(r.run_config["ops"]) == {"bitrix_users", "bitrix_tasks", "bitrix_departments"} for r in first
    )
    assert hourly_sync.job_name == "bitrix24_sync_job"

    events = evaluate(events_sync, t1)
    assert isinstance(events, list) and sorted(r.partition_key for r in events) == sorted([a.id, b.id])
    assert all(set(r.run_config["ops"]) == {"bitrix_events"} for r in events)
    assert events_sync.job_name == "bitrix24_events_job"
    assert events_sync.cron_schedule == "15 */6 * * *"
    assert not {r.run_key for r in events} & {r.run_key for r in first}

    nightly = evaluate(nightly_full_sync, t1)
    assert isinstance(nightly, list) and len(nightly) == 2
    assert all(r.run_config["ops"]["bitrix_tasks"]["config"]["full"] is True for r in nightly)
    assert all(r.run_config["ops"]["bitrix_events"]["config"]["full"] is True for r in nightly)


def test_hourly_job_reads_employees_and_tasks_and_events_have_their_own_job(
    test_defs: dg.Definitions,
) -> None:
    def raw_assets(job: str) -> set[str]:
        layer = test_defs.resolve_job_def(job).asset_layer
        return {k.to_user_string() for k in layer.executable_asset_keys if k.path[0].startswith("bitrix_")}

    assert raw_assets("bitrix24_sync_job") == {"bitrix_users", "bitrix_tasks", "bitrix_departments"}
    assert raw_assets("bitrix24_events_job") == {"bitrix_events"}
    assert raw_assets("bitrix24_full_sync_job") == {
        "bitrix_users",
        "bitrix_tasks",
        "bitrix_events",
        "bitrix_departments",
    }


def test_a_schedule_evaluated_without_a_tick_time_keys_its_runs_manual(
    instance: dg.DagsterInstance, core_resource: CoreResource
) -> None:
    instance.add_dynamic_partitions(integration_accounts.name, ["acc-1"])
    with dg.build_schedule_context(instance=instance, resources={"core": core_resource}) as context:
        (request,) = hourly_sync(context)
    assert request.run_key == "hourly:acc-1:manual"


def test_schedules_skip_without_accounts(instance: dg.DagsterInstance, core_resource: CoreResource) -> None:
    with dg.build_schedule_context(instance=instance, resources={"core": core_resource}) as context:
        assert isinstance(hourly_sync(context), dg.SkipReason)
        assert isinstance(events_sync(context), dg.SkipReason)
