"""End to end through the real assets: sandbox portal over HTTP -> client -> mappers -> embedded
Postgres Core, on a real Dagster instance. Core is compared with the sandbox's own state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from bitrix24_assets.core import CoreStore
from bitrix24_assets.sandbox import SandboxHandle
from tests.defs.conftest import Runner, add_account, query


def core_counts(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, int]:
    (mat,) = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: mat.metadata[k].value for k in ("inserted", "updated", "unchanged", "removed")}  # type: ignore[misc]


def employees(dsn: str, account: str) -> dict[str, tuple[Any, ...]]:
    rows = query(
        dsn,
        "select metadata->>'bitrix_id', email, first_name, last_name, is_active from core.employees "
        "where metadata->>'integration_account_id' = %s",
        account,
    )
    return {r[0]: r[1:] for r in rows}


def tasks(dsn: str, account: str) -> dict[str, tuple[Any, ...]]:
    rows = query(
        dsn,
        "select bitrix_id, title, status_code, responsible_bitrix_id, changed_at_source, is_deleted "
        "from core.tasks where integration_account_id = %s",
        account,
    )
    return {r[0]: r[1:] for r in rows}


def events(dsn: str, account: str) -> dict[str, tuple[Any, ...]]:
    rows = query(
        dsn,
        "select bitrix_id, name, starts_at, ends_at, is_deleted from core.calendar_events "
        "where integration_account_id = %s",
        account,
    )
    return {r[0]: r[1:] for r in rows}


def ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def expected_employees(portal: SandboxHandle) -> dict[str, tuple[Any, ...]]:
    return {
        str(u.id): (u.email.lower() or None, u.name or None, u.last_name or None, u.active)
        for u in portal.state.users.rows.values()
        if u.user_type == "employee"
    }


def expected_tasks(portal: SandboxHandle) -> dict[str, tuple[Any, ...]]:
    return {
        str(t.id): (
            t.title,
            t.status,
            str(t.responsible_id) if t.responsible_id else None,
            ts(int(t.changed_date)),
            False,
        )
        for t in portal.state.tasks.rows.values()
    }


def test_full_sync_matches_sandbox_exactly_and_second_run_writes_nothing(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, core_dsn: str
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    first = runner.run(account, "bitrix24_full_sync_job")
    assert first.success
    assert employees(core_dsn, account) == expected_employees(sandbox)
    assert tasks(core_dsn, account) == expected_tasks(sandbox)
    stored_events = events(core_dsn, account)
    assert stored_events and all(not deleted for *_, deleted in stored_events.values())
    for bitrix_id, (name, starts_at, ends_at, _) in stored_events.items():
        source = sandbox.state.events.get(int(bitrix_id))
        assert (name, starts_at, ends_at) == (source.name, ts(source.date_from), ts(source.date_to))
    assert all(
        c.passed for c in first.get_asset_check_evaluations() if c.severity == dg.AssetCheckSeverity.ERROR
    )

    logs = {
        (r[0], r[1])
        for r in query(
            core_dsn, "select entity, status from core.integration_sync_logs where run_id = %s", first.run_id
        )
    }
    assert logs == {
        ("employees", "success"),
        ("tasks", "success"),
        ("calendar_events", "success"),
        ("departments", "success"),
    }

    second = runner.run(account, "bitrix24_sync_job")  # hourly: employees, tasks, departments
    events_again = runner.run(account, "bitrix24_events_job")  # 6-hourly: the calendar window
    assert second.success and events_again.success
    for result, asset in (
        (second, "core_employees"),
        (second, "core_tasks"),
        (second, "core_departments"),
        (events_again, "core_events"),
    ):
        counts = core_counts(result, asset)
        assert (counts["inserted"], counts["updated"], counts["removed"]) == (0, 0, 0), asset
    hourly = {e.asset_key.to_user_string() for e in second.get_asset_materialization_events() if e.asset_key}
    assert hourly == {
        "bitrix_users",
        "mapped_employees",
        "core_employees",
        "bitrix_tasks",
        "mapped_tasks",
        "core_tasks",
        "bitrix_departments",
        "mapped_departments",
        "core_departments",
    }


def test_incremental_run_applies_exactly_the_changes_and_full_run_marks_deletions(
    sandbox_factory: Callable[..., SandboxHandle], runner: Runner, core_store: CoreStore, core_dsn: str
) -> None:
    portal = sandbox_factory(users=20, tasks=60, events=30, seed=11)
    account = add_account(core_store, portal.webhook_url)
    assert runner.run(account, "bitrix24_full_sync_job").success
    before = tasks(core_dsn, account)

    some = sorted(portal.state.tasks.rows)[:2]
    portal.admin.update_task(some[0], TITLE="Renamed by the test")
    portal.admin.deactivate_user(3)
    portal.admin.advance(5)  # the modelled clock moves on; changedDate of the edit is later
    incremental = runner.run(account, "bitrix24_sync_job")
    assert incremental.success
    assert core_counts(incremental, "core_tasks")["updated"] == 1
    assert core_counts(incremental, "core_tasks")["inserted"] == 0
    after = tasks(core_dsn, account)
    assert after[str(some[0])][0] == "Renamed by the test"
    assert {k: v for k, v in after.items() if k != str(some[0])} == {
        k: v for k, v in before.items() if k != str(some[0])
    }
    assert core_counts(incremental, "core_employees")["updated"] == 1
    assert employees(core_dsn, account)["3"][3] is False

    portal.admin.delete_task(some[1])
    # incremental reads cannot see a deletion; the full run (nightly) marks it
    assert runner.run(account, "bitrix24_tasks_job").success
    assert tasks(core_dsn, account)[str(some[1])][4] is False
    full = runner.run(account, "bitrix24_tasks_job", full=True)
    assert full.success
    assert core_counts(full, "core_tasks")["removed"] == 1
    assert tasks(core_dsn, account)[str(some[1])][4] is True


def test_two_accounts_of_two_companies_stay_separate(
    sandbox_factory: Callable[..., SandboxHandle], runner: Runner, core_store: CoreStore, core_dsn: str
) -> None:
    one, two = (
        sandbox_factory(users=10, tasks=20, events=5, seed=1),
        sandbox_factory(users=12, tasks=25, events=5, seed=2),
    )
    a = add_account(core_store, one.webhook_url, "Acme")
    b = add_account(core_store, two.webhook_url, "Globex")
    assert runner.run(a, "bitrix24_full_sync_job").success
    assert runner.run(b, "bitrix24_full_sync_job").success
    assert employees(core_dsn, a) == expected_employees(one)
    assert employees(core_dsn, b) == expected_employees(two)
    assert tasks(core_dsn, a) == expected_tasks(one)
    assert tasks(core_dsn, b) == expected_tasks(two)
    # both portals use user ids 1..n: each account's tasks point at its own company's employees
    mixed = query(
        core_dsn,
        "select count(*) from core.tasks t join core.employees e on e.id = t.responsible_id "
        "where t.company_id <> e.company_id",
    )
    assert mixed == [(0,)]
