"""Departments in Dagster: the three assets exist with their lineage, the hourly and nightly jobs
include them, and materialising them for one partition fills Core (real Dagster instance, sandbox
over HTTP, embedded Postgres)."""

from __future__ import annotations

import dagster as dg

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.jobs import ENTITY_JOBS, bitrix24_full_sync_job, bitrix24_sync_job
from bitrix24_assets.sandbox import SandboxHandle
from tests.defs.conftest import Runner, add_account, query

KEYS = ("bitrix_departments", "mapped_departments", "core_departments")


def test_the_assets_have_lineage_and_are_in_the_hourly_and_nightly_jobs(test_defs: dg.Definitions) -> None:
    graph = test_defs.resolve_asset_graph()
    assert {dg.AssetKey(k) for k in KEYS} <= graph.get_all_asset_keys()
    assert graph.get(dg.AssetKey("mapped_departments")).parent_keys == {dg.AssetKey("bitrix_departments")}
    # heads are employees: the merge runs after the employees'
    assert graph.get(dg.AssetKey("core_departments")).parent_keys == {
        dg.AssetKey("mapped_departments"),
        dg.AssetKey("core_employees"),
    }
    for job in (bitrix24_sync_job, bitrix24_full_sync_job, ENTITY_JOBS["departments"]):
        job_def = test_defs.resolve_job_def(job.name)
        assert all(job_def.asset_layer.has(dg.AssetKey(k)) for k in KEYS), job.name
    checks = {key.name for key in graph.asset_check_keys}
    assert {"mapped_departments_mostly_valid", "core_departments_tree_resolved"} <= checks


def test_materialising_departments_for_one_partition_fills_core(
    runner: Runner, core_store: CoreStore, core_dsn: str, sandbox: SandboxHandle
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    result = runner.run(account, "bitrix24_sync_job")  # the hourly job: employees, tasks, departments
    assert result.success
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert set(KEYS) <= materialised
    (core_mat,) = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("core_departments")
    ]
    departments = len(sandbox.state.departments)
    assert core_mat.metadata["dagster/row_count"].value == departments
    assert core_mat.metadata["dagster/table_name"].value == "core.departments"
    assert core_mat.metadata["inserted"].value == departments
    assert core_mat.metadata["account"].value == "Portal"
    tree_check = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "core_departments_tree_resolved"
    ]
    assert [(c.passed, c.metadata["orphans"].value) for c in tree_check] == [(True, 0)]
    stored = query(
        core_dsn,
        "select count(*), count(parent_id) from core.departments where integration_account_id = %s::uuid",
        account,
    )
    roots = sum(1 for d in sandbox.state.departments.values() if d.parent is None)
    assert stored == [(departments, departments - roots)]
    (members,) = query(
        core_dsn,
        "select count(*) from core.employee_departments where integration_account_id = %s::uuid",
        account,
    )
    expected = sum(
        len({d for d in u.departments if d in sandbox.state.departments})  # a user may list one twice
        for u in sandbox.state.users.rows.values()
        if u.user_type == "employee"
    )
    assert members == (expected,) and expected > 0
    # the per-entity job re-syncs departments alone: nothing changed
    again = runner.run(account, "bitrix24_departments_job")
    assert again.success
    (mat,) = [
        e.step_materialization_data.materialization
        for e in again.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("core_departments")
    ]
    assert (mat.metadata["unchanged"].value, mat.metadata["updated"].value) == (departments, 0)
