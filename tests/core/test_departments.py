"""Departments in Core: the merge (tree, heads, removal under the guard), the employees'
memberships (``core.employee_departments``), the hierarchy query, and both backends.

Real embedded Postgres; the Supabase backend talks HTTP to ``postgrest_standin`` (PostgREST itself
cannot run here: the stand-in executes the same RPC calls on the real database).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from bitrix24_assets.core import CoreStore, DepartmentRow, EmployeeRow, MergeCounts, PostgresStore
from bitrix24_assets.core.errors import MassRemovalError
from bitrix24_assets.core.models import RemovalGuard
from bitrix24_assets.core.supabase import SupabaseStore

from .conftest import Portal, add_portal
from .postgrest_standin import running_standin

KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"


def tree_rows() -> list[DepartmentRow]:
    """Company (head 1) > Sales (head 2) > Sales East; Company > IT (head 9, not synced yet)."""
    return [
        DepartmentRow(bitrix_id="1", name="Company", sort=500, head_bitrix_id="1"),
        DepartmentRow(bitrix_id="2", name="Sales", sort=100, parent_bitrix_id="1", head_bitrix_id="2"),
        DepartmentRow(bitrix_id="3", name="Sales East", sort=100, parent_bitrix_id="2"),
        DepartmentRow(bitrix_id="4", name="IT", sort=200, parent_bitrix_id="1", head_bitrix_id="9"),
    ]


def people(departments: dict[str, list[int]]) -> list[EmployeeRow]:
    return [
        EmployeeRow(bitrix_id=uid, full_name=f"User {uid}", departments=depts)
        for uid, depts in departments.items()
    ]


def departments(db: psycopg.Connection, account: str) -> dict[str, dict[str, Any]]:
    rows = db.execute(
        "select d.bitrix_id, d.name, d.sort, d.is_deleted, p.bitrix_id as parent,"
        "       e.metadata ->> 'bitrix_id' as head, d.head_bitrix_id"
        " from core.departments d"
        " left join core.departments p on p.id = d.parent_id"
        " left join core.employees e on e.id = d.head_id"
        " where d.integration_account_id = %s",
        (account,),
    ).fetchall()
    return {
        r[0]: dict(zip(("name", "sort", "deleted", "parent", "head", "head_bitrix_id"), r[1:], strict=True))
        for r in rows
    }


def memberships(db: psycopg.Connection, account: str) -> set[tuple[str, str]]:
    rows = db.execute(
        "select e.metadata ->> 'bitrix_id', d.bitrix_id from core.employee_departments m"
        " join core.employees e on e.id = m.employee_id join core.departments d on d.id = m.department_id"
        " where m.integration_account_id = %s",
        (account,),
    ).fetchall()
    return {(u, d) for u, d in rows}


def test_merge_builds_the_tree_resolves_heads_and_is_unchanged_on_rerun(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    core_store.merge_employees(portal.id, people({"1": [1], "2": [2, 3]}), full=True)
    counts = core_store.merge_departments(portal.id, tree_rows(), full=True)
    assert counts == MergeCounts(inserted=4, rows_in_table=4, live_rows=4)
    stored = departments(db, portal.id)
    assert {k: (v["parent"], v["head"]) for k, v in stored.items()} == {
        "1": (None, "1"),
        "2": ("1", "2"),
        "3": ("2", None),
        "4": ("1", None),  # head 9 is not an employee (yet): its Bitrix id is kept
    }
    assert stored["4"]["head_bitrix_id"] == "9"
    assert core_store.department_problems(portal.id) == {"orphans": 0, "heads_not_employees": 1}
    assert memberships(db, portal.id) == {("1", "1"), ("2", "2"), ("2", "3")}
    assert core_store.merge_departments(portal.id, tree_rows(), full=True) == MergeCounts(
        unchanged=4, rows_in_table=4, live_rows=4
    )
    # the head arrives: the next employees sync links the membership, the next merge the head
    core_store.merge_employees(portal.id, people({"1": [1], "2": [2, 3], "9": [4]}), full=True)
    assert core_store.link_employee_departments(portal.id) == 1
    assert core_store.merge_departments(portal.id, tree_rows(), full=False).unchanged == 4
    assert departments(db, portal.id)["4"]["head"] == "9"
    assert ("9", "4") in memberships(db, portal.id)


def test_the_hierarchy_is_queryable_with_depth_and_path(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    loop = [
        DepartmentRow(bitrix_id="7", name="Loop A", parent_bitrix_id="8"),
        DepartmentRow(bitrix_id="8", name="Loop B", parent_bitrix_id="7"),
    ]
    core_store.merge_employees(portal.id, people({"2": [2], "3": [3], "5": [4]}), full=True)
    core_store.merge_departments(portal.id, [*tree_rows(), *loop], full=True)
    tree = db.execute(
        "select bitrix_id, depth, path from core.department_tree(%s::uuid)", (portal.id,)
    ).fetchall()
    # roots first, children by SORT; a loop in the parents ends the walk instead of recursing forever
    assert tree == [
        ("1", 0, ["Company"]),
        ("2", 1, ["Company", "Sales"]),
        ("3", 2, ["Company", "Sales", "Sales East"]),
        ("4", 1, ["Company", "IT"]),
    ]
    # the usual question: everyone in a department and below it
    (members,) = db.execute(
        "with recursive sub as (select id from core.departments where integration_account_id = %s::uuid"
        "   and bitrix_id = '2' union select d.id from core.departments d join sub on d.parent_id = sub.id)"
        " select count(distinct m.employee_id) from core.employee_departments m"
        " join sub on sub.id = m.department_id",
        (portal.id,),
    ).fetchone()
    assert members == 2  # users 2 (Sales) and 3 (Sales East); user 5 is in IT


def test_full_merge_marks_missing_departments_deleted_and_drops_their_memberships(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    core_store.merge_employees(portal.id, people({"1": [1], "2": [2, 3]}), full=True)
    core_store.merge_departments(portal.id, tree_rows(), full=True)
    renamed = [
        r.model_copy(update={"name": "Sales & Marketing"}) if r.bitrix_id == "2" else r for r in tree_rows()
    ]
    without_east = [r for r in renamed if r.bitrix_id != "3"]
    counts = core_store.merge_departments(portal.id, without_east, full=True)
    assert counts == MergeCounts(updated=1, unchanged=2, removed=1, rows_in_table=4, live_rows=3)
    stored = departments(db, portal.id)
    assert stored["3"]["deleted"] and stored["2"]["name"] == "Sales & Marketing"
    assert core_store.department_problems(portal.id)["orphans"] == 0
    assert memberships(db, portal.id) == {("1", "1"), ("2", "2")}
    # incremental merges never remove; a department that comes back is live again
    assert core_store.merge_departments(portal.id, tree_rows()[:1], full=False).removed == 0
    assert core_store.merge_departments(portal.id, tree_rows(), full=True).updated == 2
    assert not departments(db, portal.id)["3"]["deleted"]
    assert ("2", "3") in memberships(db, portal.id)


def test_a_live_department_under_a_missing_or_deleted_parent_is_an_orphan(
    core_store: PostgresStore, portal: Portal
) -> None:
    """What the core_departments_tree_resolved check counts: the tree is broken where a live
    department's parent is deleted or was never read (here: incremental merges that say so)."""
    core_store.merge_departments(portal.id, tree_rows(), full=True)
    assert core_store.department_problems(portal.id)["orphans"] == 0
    allow = RemovalGuard(allow=True)
    core_store.merge_departments(
        portal.id, [r for r in tree_rows() if r.bitrix_id != "2"], full=True, guard=allow
    )
    assert core_store.department_problems(portal.id)["orphans"] == 1  # Sales East under deleted Sales
    core_store.merge_departments(portal.id, [DepartmentRow(bitrix_id="5", parent_bitrix_id="77")], full=False)
    assert core_store.department_problems(portal.id)["orphans"] == 2  # a parent never read
    core_store.merge_departments(portal.id, [DepartmentRow(bitrix_id="77", name="Found")], full=False)
    assert core_store.department_problems(portal.id)["orphans"] == 1  # resolved by the next merge


def test_rejected_ids_are_kept_and_the_guard_refuses_mass_removal(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    many = [DepartmentRow(bitrix_id=str(i), name=f"D{i}") for i in range(1, 31)]
    core_store.merge_departments(portal.id, many, full=True)
    before = departments(db, portal.id)
    # an empty read of an account with live departments changes nothing
    with pytest.raises(MassRemovalError) as empty:
        core_store.merge_departments(portal.id, [], full=True)
    assert (empty.value.entity, empty.value.live, empty.value.removing) == ("departments", 30, 30)
    # more than max(20% of 30, 10) = 10 gone: refused, nothing written
    with pytest.raises(MassRemovalError):
        core_store.merge_departments(portal.id, many[:19], full=True)
    assert departments(db, portal.id) == before
    # rejected IDs count as seen: 11 missing, 2 of them rejected, so 9 removed, under the limit
    counts = core_store.merge_departments(portal.id, many[:19], full=True, keep_ids=["20", "21"])
    assert counts.removed == 9 and counts.live_rows == 21
    assert not departments(db, portal.id)["20"]["deleted"]
    # confirmed: allowed
    allow = RemovalGuard(allow=True)
    assert core_store.merge_departments(portal.id, many[:1], full=True, guard=allow).removed == 20


def test_removing_the_account_removes_its_departments_and_memberships(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    other = add_portal(core_store, "Acme", "other.bitrix24.ru")
    for account in (portal.id, other.id):
        core_store.merge_employees(account, people({"1": [1]}), full=True)
        core_store.merge_departments(account, tree_rows(), full=True)
    core_store.remove_account(portal.id)
    (left,) = db.execute("select count(*) from core.departments").fetchone()
    (members,) = db.execute("select count(*) from core.employee_departments").fetchone()
    assert (left, members) == (4, 1)  # the other account's rows only
    assert memberships(db, other.id) == {("1", "1")}


def _scenario(store: CoreStore, account: str) -> list[MergeCounts]:
    out = [store.merge_departments(account, tree_rows(), full=True)]
    store.merge_employees(account, people({"1": [1], "2": [2, 3], "9": [4]}), full=True)
    store.link_employee_departments(account)
    out.append(store.merge_departments(account, [r for r in tree_rows() if r.bitrix_id != "3"], full=True))
    out.append(store.merge_departments(account, tree_rows(), full=True, keep_ids=["9"]))
    return out


def test_supabase_backend_merges_departments_like_postgres(
    core_store: PostgresStore, core_dsn: str, db: psycopg.Connection
) -> None:
    direct = add_portal(core_store, "Acme", "a.bitrix24.ru")
    rest = add_portal(core_store, "Acme", "b.bitrix24.ru")
    with running_standin(core_dsn, KEY) as (base_url, app):
        store = SupabaseStore(base_url, KEY, chunk_rows=2)  # departments go in one call regardless
        assert _scenario(store, rest.id) == _scenario(core_store, direct.id)
        assert store.department_problems(rest.id) == core_store.department_problems(direct.id)
        store.close()
    assert departments(db, rest.id) == departments(db, direct.id)
    assert (
        memberships(db, rest.id)
        == memberships(db, direct.id)
        == {
            ("1", "1"),
            ("2", "2"),
            ("2", "3"),
            ("9", "4"),
        }
    )
    calls = [c["function"] for c in app.state.calls if c["function"] == "merge_departments"]
    assert len(calls) == 3
