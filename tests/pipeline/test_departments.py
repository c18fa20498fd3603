"""Departments end to end without Dagster: the sandbox portal over HTTP, the client's counted
``department.get`` read, the mapper and embedded Postgres. A full sync builds the tree and the
employees' memberships; a department gone from a complete read is marked deleted; an incomplete
read or one that would remove too much removes nothing; a webhook without the scope skips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bitrix24_assets.core import CoreStore
from bitrix24_assets.pipeline import ENTITIES, Skipped, SyncFailed, SyncOptions
from bitrix24_assets.sandbox import SandboxHandle
from tests.pipeline.helpers import account_for, entity_sync, sync_logs

EMPLOYEES, DEPARTMENTS = ENTITIES["employees"], ENTITIES["departments"]
FULL = SyncOptions(full=True)


def stored_tree(dsn: str, account: str) -> dict[str, tuple[Any, ...]]:
    """bitrix id -> (name, sort, parent's bitrix id, head's bitrix id, deleted), links as resolved."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select d.bitrix_id, d.name, d.sort, p.bitrix_id, e.metadata ->> 'bitrix_id', d.is_deleted"
            " from core.departments d left join core.departments p on p.id = d.parent_id"
            " left join core.employees e on e.id = d.head_id where d.integration_account_id = %s::uuid",
            (account,),
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def stored_memberships(dsn: str, account: str) -> set[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select e.metadata ->> 'bitrix_id', d.bitrix_id from core.employee_departments m"
            " join core.employees e on e.id = m.employee_id join core.departments d on d.id = m.department_id"
            " where m.integration_account_id = %s::uuid",
            (account,),
        ).fetchall()
    return {(u, d) for u, d in rows}


def portal_tree(portal: SandboxHandle) -> dict[str, tuple[Any, ...]]:
    employees = {u.id for u in portal.state.users.rows.values() if u.user_type == "employee"}
    return {
        str(d.id): (
            d.name,
            d.sort,
            str(d.parent) if d.parent is not None else None,
            str(d.head) if d.head in employees else None,  # extranet guests are no employees
            False,
        )
        for d in portal.state.departments.values()
    }


def portal_memberships(portal: SandboxHandle) -> set[tuple[str, str]]:
    return {
        (str(u.id), str(d))
        for u in portal.state.users.rows.values()
        if u.user_type == "employee"
        for d in u.departments
        if d in portal.state.departments
    }


def test_a_full_sync_builds_the_tree_and_the_memberships(
    sandbox: SandboxHandle, core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    account = account_for(core_store, sandbox.webhook_url)
    sync = entity_sync(core_store, tmp_path)
    departments = sync.run(account, DEPARTMENTS, FULL)  # before the employees: heads unknown yet
    assert departments.read is not None and departments.read.ending.verified  # counted, proven
    assert stored_memberships(core_dsn, account) == set()
    sync.run(account, EMPLOYEES, FULL)  # the employees merge links the memberships
    assert stored_memberships(core_dsn, account) == portal_memberships(sandbox) != set()
    outcome = sync.run(account, DEPARTMENTS, FULL)  # and the departments merge resolves the heads
    assert outcome.merge is not None
    assert stored_tree(core_dsn, account) == portal_tree(sandbox)
    counts = outcome.merge.counts
    assert (counts.unchanged, counts.removed) == (len(sandbox.state.departments), 0)
    assert counts.live_rows == counts.rows_in_table == len(sandbox.state.departments)
    (check,) = outcome.merge.checks
    assert (check.name, check.passed, check.metadata["orphans"]) == (
        "core_departments_tree_resolved",
        True,
        0,
    )
    with psycopg.connect(core_dsn) as conn:
        depth = dict(
            conn.execute("select bitrix_id, depth from core.department_tree(%s::uuid)", (account,)).fetchall()
        )
    assert depth["1"] == 0 and len(depth) == len(sandbox.state.departments)
    assert all(
        depth[k] == depth[str(d.parent)] + 1
        for k, d in ((str(i), d) for i, d in sandbox.state.departments.items())
        if d.parent
    )
    assert [(e, s) for e, s, _ in sync_logs(core_dsn, account)] == [
        ("departments", "success"),
        ("employees", "success"),
        ("departments", "success"),
    ]


def test_a_department_removed_in_bitrix24_is_marked_deleted_after_a_full_read(
    sandbox_factory: Callable[..., SandboxHandle], core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    portal = sandbox_factory(users=150, tasks=0, events=0, seed=11)
    account = account_for(core_store, portal.webhook_url)
    sync = entity_sync(core_store, tmp_path)
    sync.run(account, EMPLOYEES, FULL)
    sync.run(account, DEPARTMENTS, FULL)
    parents = {d.parent for d in portal.state.departments.values()}
    leaf = max(i for i in portal.state.departments if i not in parents)
    members = {u for u, d in stored_memberships(core_dsn, account) if d == str(leaf)}
    # Bitrix24 deletes a department only when it is empty: its people move to the parent first
    del portal.state.departments[leaf]
    for user in portal.state.users.rows.values():
        user.departments = [d for d in user.departments if d != leaf] or [1]

    sync.run(account, EMPLOYEES, FULL)
    outcome = sync.run(account, DEPARTMENTS, FULL)
    assert outcome.merge is not None and outcome.merge.counts.removed == 1
    tree = stored_tree(core_dsn, account)
    assert tree[str(leaf)][-1] is True  # marked deleted, never deleted
    assert {k: v for k, v in tree.items() if k != str(leaf)} == portal_tree(portal)
    assert stored_memberships(core_dsn, account) == portal_memberships(portal)
    assert not any(d == str(leaf) for _, d in stored_memberships(core_dsn, account))
    assert members  # the leaf had people: their memberships moved with them (the equality above)


def test_an_incomplete_read_removes_nothing(
    sandbox_factory: Callable[..., SandboxHandle], core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    """Every answer to the department read is broken (a batch command missing from it): the client
    retries, then gives up with INCOMPLETE_READ; the sync fails retryable and Core is unchanged."""
    portal = sandbox_factory(users=150, tasks=0, events=0, seed=11)
    account = account_for(core_store, portal.webhook_url)
    sync = entity_sync(core_store, tmp_path)
    sync.run(account, DEPARTMENTS, FULL)
    before = stored_tree(core_dsn, account)
    portal.admin.set_faults(rate=1.0, kinds=["missing_key"], methods=["batch"])
    with pytest.raises(SyncFailed) as failed:
        entity_sync(core_store, tmp_path, run_id="broken").run(account, DEPARTMENTS, FULL)
    assert "INCOMPLETE_READ" in str(failed.value) and failed.value.retryable
    assert portal.webhook_url.rstrip("/").rsplit("/", 1)[1] not in str(failed.value)  # the secret
    assert stored_tree(core_dsn, account) == before
    assert sync_logs(core_dsn, account)[-1][:2] == ("departments", "failed")


def test_a_read_that_would_remove_most_departments_is_refused(
    sandbox_factory: Callable[..., SandboxHandle], core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    """The account's webhook now reaches a portal with 4 of the 16 departments (as an emptied or cut
    answer would look): over max(20%, 10) would go, so nothing is merged until confirmed."""
    big = sandbox_factory(users=400, tasks=0, events=0, seed=5)
    small = sandbox_factory(users=8, tasks=0, events=0, seed=5)
    account = account_for(core_store, big.webhook_url, name="Big portal")
    entity_sync(core_store, tmp_path).run(account, DEPARTMENTS, FULL)
    before = stored_tree(core_dsn, account)
    assert len(before) == len(big.state.departments) == 16
    core_store.update_credentials(account, {"webhook_url": small.webhook_url})
    with pytest.raises(SyncFailed) as failed:
        entity_sync(core_store, tmp_path, run_id="small").run(account, DEPARTMENTS, FULL)
    assert "allow_mass_removal" in str(failed.value) and "Big portal" in str(failed.value)
    assert all(p.webhook_url.rstrip("/").rsplit("/", 1)[1] not in str(failed.value) for p in (big, small))
    assert not failed.value.retryable
    assert stored_tree(core_dsn, account) == before


def test_a_webhook_without_the_department_scope_skips_departments(
    sandbox_factory: Callable[..., SandboxHandle], core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    portal = sandbox_factory(users=30, tasks=0, events=0)
    hook = portal.admin.create_webhook(scopes=["user", "im"])
    account = account_for(core_store, hook["webhook_url"])
    outcome = entity_sync(core_store, tmp_path).run(account, DEPARTMENTS, FULL)
    assert isinstance(outcome.skipped, Skipped) and "scope 'department'" in outcome.skipped.reason
    assert sync_logs(core_dsn, account)[-1][:2] == ("departments", "skipped")
    assert stored_tree(core_dsn, account) == {}


def test_an_account_whose_settings_leave_departments_out_skips_them(
    sandbox: SandboxHandle, core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    """``settings.entities`` knows departments through the registry alone (no list to update)."""
    account = account_for(core_store, sandbox.webhook_url, settings={"entities": {"departments": False}})
    outcome = entity_sync(core_store, tmp_path).run(account, DEPARTMENTS, FULL)
    assert isinstance(outcome.skipped, Skipped) and "turned off" in outcome.skipped.reason
    assert stored_tree(core_dsn, account) == {}
    employees = entity_sync(core_store, tmp_path).run(account, EMPLOYEES, FULL)
    assert employees.merge is not None and stored_memberships(core_dsn, account) == set()
