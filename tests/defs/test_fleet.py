"""The fleet under a real Dagster instance: one run syncs a batch of portals from the sandbox over
HTTP into embedded Postgres, records per-partition materializations and checks, fails only for
the portal that failed, and a re-execution syncs only that one. The sensor's spread, batching and
dedup are checked against a real instance and Core."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.assets import ALL_ASSETS
from bitrix24_assets.defs.fleet import (
    EVENTS_PASS,
    FLEET_JOB,
    FLEET_OP,
    HOURLY_PASS,
    NIGHTLY_PASS,
    SLOTS,
    batches,
    fleet_job,
    fleet_refusal,
    hourly_entities,
    own_run_accounts,
    plan_tick,
    windows,
)
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource, RawStoreResource
from bitrix24_assets.pipeline import ENTITIES
from bitrix24_assets.pipeline.fleet import slot_of
from bitrix24_assets.sandbox import SandboxHandle
from tests.defs.conftest import SANDBOX_TIME_SCALE, add_account, query

HOURLY = hourly_entities()  # the registry's hourly entities, whatever they are


def _defs(core: CoreResource, tmp_path: Path) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        jobs=[fleet_job],
        resources={
            "core": core,
            "bitrix24": Bitrix24Resource(time_scale=SANDBOX_TIME_SCALE),
            "raw_store": RawStoreResource(base_dir=str(tmp_path / "storage")),
        },
    )


def _one_portal_fleet(
    sandbox: SandboxHandle,
    core: CoreResource,
    store: CoreStore,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    name: str,
) -> tuple[str, dg.JobDefinition]:
    """One sandbox portal with its partition, and the fleet job to sync it."""
    account = add_account(store, sandbox.webhook_url, f"{name} Co", name)
    instance.add_dynamic_partitions(integration_accounts.name, [account])
    return account, _defs(core, tmp_path).resolve_job_def(FLEET_JOB)


def _materialized(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, dg.AssetMaterialization]]:
    out: dict[str, dict[str, dg.AssetMaterialization]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = entry.dagster_event
        assert event is not None
        mat = event.event_specific_data.materialization  # type: ignore[union-attr]
        assert mat.partition is not None
        out.setdefault(mat.partition, {})[mat.asset_key.to_user_string()] = mat
    return out


def test_a_fleet_run_materialises_each_portal_and_a_reexecution_syncs_only_the_failed_one(
    sandbox: SandboxHandle,
    core_resource: CoreResource,
    core_store: CoreStore,
    core_dsn: str,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    good = [add_account(core_store, sandbox.webhook_url, f"Co {i}", f"portal-{i}") for i in range(3)]
    revoked_url = sandbox.webhook_url.replace("/rest/1/", "/rest/1/x")
    revoked = add_account(core_store, revoked_url, "Revoked Co", "revoked-portal")
    instance.add_dynamic_partitions(integration_accounts.name, [*good, revoked])
    job = _defs(core_resource, tmp_path).resolve_job_def(FLEET_JOB)
    config = {"ops": {FLEET_OP: {"config": {"accounts": [*good, revoked], "workers": 3, "events": "full"}}}}

    first = job.execute_in_process(instance=instance, run_config=config, raise_on_error=False)

    assert not first.success
    (failure,) = [e for e in first.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    text = str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert "1 of 4 portals failed" in text and "revoked-portal" in text
    assert revoked_url.rstrip("/").rsplit("/", 1)[-1] not in text  # the secret never shows
    materialized = _materialized(instance, first.run_id)
    assert set(materialized) == set(good)  # the failed portal has none
    keys = {key for e in HOURLY for key in e.keys}
    for account in good:
        assert set(materialized[account]) == keys
        core_tasks = materialized[account]["core_tasks"].metadata
        rows = query(core_dsn, "select count(*) from core.tasks where integration_account_id = %s", account)
        assert core_tasks["dagster/row_count"].value == rows[0][0] == len(sandbox.state.tasks.rows)
        assert core_tasks["account"].value == f"portal-{good.index(account)}"
        assert {"company", "portal", "inserted", "dagster/table_name"} <= set(core_tasks)
        assert "dagster/row_count" in materialized[account]["bitrix_users"].metadata
    # checks are stored per partition
    check = dg.AssetCheckKey(dg.AssetKey("core_employees"), "core_employees_count_matches_source")
    records = instance.event_log_storage.get_asset_check_execution_history(check, limit=10)
    assert {r.partition for r in records} == set(good)  # type: ignore[attr-defined]
    assert all(r.status.value == "SUCCEEDED" for r in records)

    # fix the webhook and re-execute: only the failed portal is synced again
    core_store.update_account(revoked, credentials={"webhook_url": sandbox.webhook_url})
    second = job.execute_in_process(
        instance=instance,
        run_config=config,
        tags={"dagster/parent_run_id": first.run_id, "dagster/root_run_id": first.run_id},
    )
    assert second.success
    again = _materialized(instance, second.run_id)
    assert set(again) == {revoked} and set(again[revoked]) == keys
    logs = query(
        core_dsn,
        "select integration_account_id::text, run_id, status from core.integration_sync_logs "
        "order by started_at",
    )
    assert {(a, r) for a, r, _ in logs if a in good} == {(a, first.run_id) for a in good}
    revoked_logs = [(r, s) for a, r, s in logs if a == revoked]
    assert {s for r, s in revoked_logs if r == first.run_id} == {"failed"}
    assert [s for r, s in revoked_logs if r == second.run_id] == ["success"] * len(HOURLY)


def test_windows_cut_the_hour_into_batches_and_every_account_lands_in_one() -> None:
    assert [(w.first_slot, w.end_slot, w.offset) for w in windows(200, 500, 3600)] == [(0, SLOTS, 0.0)]
    plan = windows(1_200, 500, 3600)
    assert [(w.first_slot, w.end_slot, w.offset) for w in plan] == [
        (0, 20, 0.0),
        (20, 40, 1200.0),
        (40, 60, 2400.0),
    ]
    accounts = [f"00000000-0000-0000-0000-{i:012d}" for i in range(1_200)]
    placed = [a for w in plan for batch in batches(accounts, w, 500) for a in batch]
    assert sorted(placed) == sorted(accounts)  # each exactly once
    assert all(len(b) <= 500 for w in plan for b in batches(accounts, w, 500))
    halves = batches(accounts, windows(1, 500, 0)[0], 700)  # 1,200 over a limit of 700: two of 600
    assert [len(b) for b in halves] == [600, 600]
    assert windows(40_000, 500, 3600)[-1].end_slot == SLOTS and len(windows(40_000, 500, 3600)) == SLOTS
    assert all(slot_of(a, SLOTS) < 20 for a in batches(accounts, plan[0], 10_000)[0])


def _history(store: CoreStore, account: str, records: int = 10, status: str = "success") -> None:
    for entity in HOURLY:
        sync = store.start_sync(account, entity.core_entity, "earlier-run")
        store.finish_sync(sync, status=status, records_fetched=records)  # type: ignore[arg-type]


def test_the_sensor_batches_small_healthy_portals_and_leaves_the_rest_their_own_runs(
    core_resource: CoreResource, core_store: CoreStore, instance: dg.DagsterInstance
) -> None:
    small = [add_account(core_store, "http://127.0.0.1:9/rest/1/t/", f"Small {i}", f"s{i}") for i in range(5)]
    large = add_account(core_store, "http://127.0.0.1:9/rest/1/t/", "Large", "large")
    new = add_account(core_store, "http://127.0.0.1:9/rest/1/t/", "New", "new")
    busy = small[0]
    for account in small:
        _history(core_store, account)
    _history(core_store, large, records=100_000)
    instance.add_dynamic_partitions(integration_accounts.name, [*small, large, new])
    create_run_for_test(
        instance,
        job_name="bitrix24_sync_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": busy},
    )
    assert (
        fleet_refusal(core_store.latest_syncs(large), HOURLY)
        == "latest employees read was large (100,000 records)"
    )
    assert fleet_refusal([], HOURLY) == "no employees sync yet"

    now = 1_800_000_000.0  # the cycle of this hour; spread over the hour, one window when few accounts
    with dg.build_sensor_context(instance=instance, resources={"core": core_resource}) as context:
        result = plan_tick(context, core_resource, now)
        (request,) = result.run_requests or []
        assert sorted(request.run_config["ops"][FLEET_OP]["config"]["accounts"]) == sorted(small[1:])
        assert request.tags["bitrix24/fleet_cycle"].startswith("2027-01-15T08:00")
        # the same cycle's next tick requests nothing again
        context.update_cursor(result.cursor)
        again = plan_tick(context, core_resource, now + 60)
        assert not again.run_requests

    with core_resource.store() as store:
        own = own_run_accounts(instance, store, [*small, large, new])
    assert sorted(own) == sorted([large, new])  # the busy one is not queued twice either


def test_the_compact_events_carry_the_figures_of_all_three_assets_on_the_core_asset(
    sandbox: SandboxHandle,
    core_resource: CoreResource,
    core_store: CoreStore,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    account, job = _one_portal_fleet(sandbox, core_resource, core_store, instance, tmp_path, "compact-portal")
    config = {"ops": {FLEET_OP: {"config": {"accounts": [account], "events": "core"}}}}
    stale = dg.AssetCheckEvaluation(  # an earlier failure of a check that passes now
        asset_key=dg.AssetKey("core_tasks"),
        check_name="core_tasks_no_duplicate_bitrix_ids",
        passed=False,
        partition=account,
    )
    instance.report_runless_asset_event(stale)
    result = job.execute_in_process(instance=instance, run_config=config)
    (materialized,) = _materialized(instance, result.run_id).values()
    assert set(materialized) == {e.core_key for e in HOURLY}
    tasks = materialized["core_tasks"].metadata
    assert tasks["records_read"].value == len(sandbox.state.tasks.rows)  # the read's figure
    assert "rejected_by_reason" in tasks and tasks["read"].value == "full"  # the mapping's, the read's
    assert tasks["dagster/row_count"].value == len(sandbox.state.tasks.rows)  # the table's rows
    verdicts = tasks["checks"].value
    assert isinstance(verdicts, dict) and verdicts["core_tasks_no_duplicate_bitrix_ids"] == "passed"
    evaluations = [e for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    failing = {
        name
        for m in materialized.values()
        for name, verdict in m.metadata["checks"].value.items()  # type: ignore[union-attr]
        if verdict != "passed"
    }
    recorded = {e.event_specific_data.check_name: e.event_specific_data.passed for e in evaluations}  # type: ignore[union-attr]
    # the checks that did not pass, and the pass that clears the earlier failure
    assert set(recorded) == failing | {"core_tasks_no_duplicate_bitrix_ids"}
    assert recorded["core_tasks_no_duplicate_bitrix_ids"] is True


def _history_of(store: CoreStore, account: str, entities: list[str]) -> None:
    for name in entities:
        sync = store.start_sync(account, ENTITIES[name].core_entity, "earlier-run")
        store.finish_sync(sync, status="success", records_fetched=10)


def _accounts(request: dg.RunRequest) -> list[str]:
    return sorted(request.run_config["ops"][FLEET_OP]["config"]["accounts"])


def test_events_and_the_nightly_full_sync_ride_the_fleet_on_their_crons_from_their_next_tick(
    core_resource: CoreResource, core_store: CoreStore, instance: dg.DagsterInstance
) -> None:
    riders = [add_account(core_store, "http://127.0.0.1:9/rest/1/t/", f"Co {i}", f"p{i}") for i in range(3)]
    for account in riders:
        _history_of(core_store, account, list(ENTITIES))
    no_events = add_account(core_store, "http://127.0.0.1:9/rest/1/t/", "Hourly only", "hourly-only")
    _history(core_store, no_events)  # never had its calendar read: its own run for events and nightly
    instance.add_dynamic_partitions(integration_accounts.name, [*riders, no_events])
    day = 1_800_000_000.0 - 8 * 3600  # 2027-01-15T00:00Z
    with dg.build_sensor_context(instance=instance, resources={"core": core_resource}) as context:
        deployed = plan_tick(context, core_resource, day + 3 * 3600)  # 03:00, after the 02:30 tick
        by_pass: dict[str, list[dg.RunRequest]] = {}
        for request in deployed.run_requests or []:
            by_pass.setdefault(request.tags["bitrix24/fleet_pass"], []).append(request)
        assert set(by_pass) == {"hourly"}  # no full reconciliation of every portal at deploy time
        context.update_cursor(deployed.cursor)

        # the 6-hourly events pass at 06:15 and the next night's pass at 02:30 (+ its 4 h spread)
        events = plan_tick(context, core_resource, day + 6 * 3600 + 15 * 60 + 1)
        (request,) = [r for r in events.run_requests or [] if r.tags["bitrix24/fleet_pass"] == "events"]
        config = request.run_config["ops"][FLEET_OP]["config"]
        assert (config["entities"], config["full"]) == (["events"], False)
        assert _accounts(request) == sorted(riders)
        context.update_cursor(events.cursor)
        night = plan_tick(context, core_resource, day + 86400 + 2.5 * 3600 + 4 * 3600)
        (request,) = [r for r in night.run_requests or [] if r.tags["bitrix24/fleet_pass"] == "nightly"]
        config = request.run_config["ops"][FLEET_OP]["config"]
        assert (config["entities"], config["full"]) == (list(ENTITIES), True)
        assert _accounts(request) == sorted(riders)

    with core_resource.store() as store:
        assert own_run_accounts(instance, store, [*riders, no_events], NIGHTLY_PASS) == [no_events]
        assert own_run_accounts(instance, store, [*riders, no_events], EVENTS_PASS) == [no_events]
        assert own_run_accounts(instance, store, [*riders, no_events]) == []  # hourly: all ride


def test_an_account_busy_when_its_window_comes_waits_and_joins_a_later_batch(
    core_resource: CoreResource, core_store: CoreStore, instance: dg.DagsterInstance
) -> None:
    accounts = [add_account(core_store, "http://127.0.0.1:9/rest/1/t/", f"Co {i}", f"w{i}") for i in range(3)]
    for account in accounts:
        _history(core_store, account)
    instance.add_dynamic_partitions(integration_accounts.name, accounts)
    busy = accounts[0]
    inbox_run = create_run_for_test(
        instance,
        job_name="bitrix24_tasks_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": busy},
    )
    now = 1_800_000_000.0
    with dg.build_sensor_context(instance=instance, resources={"core": core_resource}) as context:
        first = plan_tick(context, core_resource, now, [HOURLY_PASS])
        (request,) = first.run_requests or []
        assert _accounts(request) == sorted(accounts[1:])
        context.update_cursor(first.cursor)
        still = plan_tick(context, core_resource, now + 30, [HOURLY_PASS])
        assert not still.run_requests  # still busy: still waiting, not dropped
        context.update_cursor(still.cursor)
        instance.report_run_canceled(inbox_run)
        later = plan_tick(context, core_resource, now + 60, [HOURLY_PASS])
        (late,) = later.run_requests or []
        assert _accounts(late) == [busy] and late.tags["bitrix24/fleet_batch"].startswith("late.")
        context.update_cursor(later.cursor)
        assert not plan_tick(context, core_resource, now + 90, [HOURLY_PASS]).run_requests


def test_a_nightly_fleet_run_reads_every_entity_in_full(
    sandbox: SandboxHandle,
    core_resource: CoreResource,
    core_store: CoreStore,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    account, job = _one_portal_fleet(sandbox, core_resource, core_store, instance, tmp_path, "night-portal")
    config = {"accounts": [account], "entities": list(NIGHTLY_PASS.entities), "full": True}
    result = job.execute_in_process(instance=instance, run_config={"ops": {FLEET_OP: {"config": config}}})
    (materialized,) = _materialized(instance, result.run_id).values()
    assert set(materialized) == {ENTITIES[name].core_key for name in NIGHTLY_PASS.entities}
    assert {m.metadata["full"].value for m in materialized.values()} == {True}
    bad = {"accounts": [account], "entities": ["employees", "invoices"]}
    failed = job.execute_in_process(
        instance=instance, run_config={"ops": {FLEET_OP: {"config": bad}}}, raise_on_error=False
    )
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "Unknown entities ['invoices']" in str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
