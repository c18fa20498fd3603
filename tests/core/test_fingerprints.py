"""Per-row fingerprints (source_hash): equal hash -> no write, direct edits restored, the direct
first-load COPY stores what the staged SQL stores, and both backends compute the same hash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pytest

from bitrix24_assets.core import CalendarEventRow, EmployeeRow, MergeCounts, PostgresStore, TaskRow
from bitrix24_assets.core import postgres as postgres_backend
from bitrix24_assets.core.staging import EMPLOYEES, EVENTS, TASKS, Stage, fingerprint, json_rows
from bitrix24_assets.core.supabase import SupabaseStore

from .conftest import Portal, add_portal
from .postgrest_standin import running_standin

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"


def people() -> list[EmployeeRow]:
    return [
        EmployeeRow(bitrix_id=str(i), email=f"u{i}@acme.io", full_name=f"O'Neil {i} 🚀", departments=[1, i])
        for i in range(1, 4)
    ]


def tasks() -> list[TaskRow]:
    # people "1"-"3" exist, "9" does not (stays unresolved), "" means nobody
    return [
        TaskRow(
            bitrix_id=str(i),
            title=f"Task {i} 'quoted' -- 🎄",
            description=None if i % 2 else "d\\N\t",
            status="in_progress",
            status_code=3,
            priority="high",
            deadline=T0 + timedelta(days=i),
            responsible_bitrix_id=str(i % 4) if i % 4 else "9",
            created_by_bitrix_id="" if i == 2 else "1",
            group_id="5",
            metadata={"tags": ["x"], "b": 1, "a": None},
        )
        for i in range(1, 9)
    ]


def events() -> list[CalendarEventRow]:
    return [
        CalendarEventRow(
            bitrix_id=str(i),
            name=f"Meeting {i}",
            calendar_type="user",
            owner_bitrix_id=str(i),
            starts_at=T0 + timedelta(hours=i),
            ends_at=T0 + timedelta(hours=i + 1),
            created_by_bitrix_id="1",
            metadata={"k": i},
        )
        for i in range(1, 6)
    ]


def hashes(db: psycopg.Connection, table: str, account: str) -> dict[str, str | None]:
    key = "metadata->>'bitrix_id'" if table == "employees" else "bitrix_id"
    column = "metadata->>'integration_account_id'" if table == "employees" else "integration_account_id::text"
    rows = db.execute(f"select {key}, source_hash::text from core.{table} where {column} = %s", (account,))
    return dict(rows.fetchall())


def expected(stage: Stage, rows: list[Any]) -> dict[str, str]:
    return {r.bitrix_id: fingerprint(stage, r).hex() for r in rows}


def xmins(db: psycopg.Connection, table: str) -> list[str]:
    return [r[0] for r in db.execute(f"select xmin::text from core.{table} order by id").fetchall()]


def hex_hashes(db: psycopg.Connection, table: str, account: str) -> dict[str, str | None]:
    return {k: v.replace("-", "") if v else None for k, v in hashes(db, table, account).items()}


def merge_all(store: PostgresStore | SupabaseStore, account: str) -> list[MergeCounts]:
    return [
        store.merge_employees(account, people(), full=True),
        store.merge_tasks(account, tasks(), full=True),
        store.merge_events(account, events(), full=True),
    ]


TABLES = (("employees", EMPLOYEES, people), ("tasks", TASKS, tasks), ("calendar_events", EVENTS, events))
SIZES = (3, 8, 5)  # rows of each table, all live


def every_row(kind: str) -> list[MergeCounts]:
    """merge_all's counts when every row of each table was ``kind`` ("inserted", "unchanged")."""
    return [MergeCounts(**{kind: n}, rows_in_table=n, live_rows=n) for n in SIZES]


UNCHANGED = every_row("unchanged")
INSERTED = every_row("inserted")


def test_equal_fingerprints_write_nothing(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    merge_all(core_store, portal.id)
    for table, stage, rows in TABLES:
        assert hex_hashes(db, table, portal.id) == expected(stage, rows())
    before = {table: xmins(db, table) for table, _, _ in TABLES}
    assert merge_all(core_store, portal.id) == UNCHANGED
    assert {table: xmins(db, table) for table, _, _ in TABLES} == before


def test_a_direct_edit_in_core_is_restored_by_the_next_merge(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    merge_all(core_store, portal.id)
    db.execute("update core.tasks set title = 'edited in Core' where bitrix_id = '3'")
    db.execute("update core.calendar_events set starts_at = now() where bitrix_id = '2'")
    db.execute("update core.employees set position = 'CEO' where metadata->>'bitrix_id' = '1'")
    # the platform's own column changes do not drop an employee's fingerprint
    db.execute("update core.employees set updated_at = now() where metadata->>'bitrix_id' = '2'")
    assert hashes(db, "tasks", portal.id)["3"] is None
    assert hashes(db, "calendar_events", portal.id)["2"] is None
    employee_hashes = hashes(db, "employees", portal.id)
    assert employee_hashes["1"] is None and employee_hashes["2"] is not None

    assert merge_all(core_store, portal.id) == [
        MergeCounts(updated=1, unchanged=n - 1, rows_in_table=n, live_rows=n) for n in SIZES
    ]
    assert db.execute("select title from core.tasks where bitrix_id = '3'").fetchone()[0] == tasks()[2].title
    assert db.execute(
        "select position from core.employees where metadata->>'bitrix_id' = '1'"
    ).fetchone() == (None,)
    for table, stage, rows in TABLES:
        assert hex_hashes(db, table, portal.id) == expected(stage, rows())
    # mark_deleted is a direct edit too: the task comes back with the next merge
    assert core_store.mark_deleted(portal.id, "tasks", ["4"]) == 1
    assert core_store.merge_tasks(portal.id, tasks(), full=False) == MergeCounts(
        updated=1, unchanged=7, rows_in_table=8, live_rows=8
    )


def test_rows_without_a_fingerprint_are_compared_once_and_not_counted_as_changed(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    """What an existing Core looks like right after the migration added source_hash (all NULL)."""
    merge_all(core_store, portal.id)
    for table, _, _ in TABLES:
        db.execute(f"update core.{table} set source_hash = null")
    assert merge_all(core_store, portal.id) == UNCHANGED
    for table, stage, rows in TABLES:
        assert hex_hashes(db, table, portal.id) == expected(stage, rows())
    before = {table: xmins(db, table) for table, _, _ in TABLES}
    assert merge_all(core_store, portal.id) == UNCHANGED
    assert {table: xmins(db, table) for table, _, _ in TABLES} == before


COMPARED = {
    "employees": "metadata->>'bitrix_id', email, full_name, first_name, last_name, position, phone,"
    " is_active, metadata - 'integration_account_id', source_hash, company_id",
    "tasks": "bitrix_id, title, description, status, status_code, priority, deadline, start_date_plan,"
    " end_date_plan, closed_at, created_at_source, changed_at_source, responsible_id, created_by_id,"
    " responsible_bitrix_id, created_by_bitrix_id, group_id, is_deleted, metadata, source_hash, company_id,"
    " id = core.row_id(integration_account_id, bitrix_id)",
    "calendar_events": "bitrix_id, name, description, calendar_type, owner_bitrix_id, owner_id, starts_at,"
    " ends_at, all_day, location, created_by_bitrix_id, created_by_id, is_deleted, changed_at_source,"
    " metadata, source_hash, company_id, id = core.row_id(integration_account_id, bitrix_id)",
}


def stored_rows(db: psycopg.Connection, table: str, account: str) -> list[tuple[Any, ...]]:
    column = "metadata->>'integration_account_id'" if table == "employees" else "integration_account_id::text"
    people_ids = "(select e.metadata->>'bitrix_id' from core.employees e where e.id = {})"
    select = COMPARED[table]
    if table != "employees":  # employee ids differ per account: compare whom they point at
        for col in ("responsible_id", "created_by_id", "owner_id"):
            select = select.replace(f" {col},", f" {people_ids.format(col)},")
    return db.execute(
        f"select {select} from core.{table} where {column} = %s order by 1", (account,)
    ).fetchall()


def test_direct_first_load_stores_what_the_staged_merge_stores(
    core_store: PostgresStore, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct, staged = (
        add_portal(core_store, "Acme", "a.bitrix24.ru"),
        add_portal(core_store, "Acme", "b.bitrix24.ru"),
    )
    copies: list[str] = []
    real = postgres_backend._copy_direct

    def spy(cur: Any, stage: Stage, *args: Any) -> int:
        copies.append(stage.entity)
        return real(cur, stage, *args)

    monkeypatch.setattr(postgres_backend, "_copy_direct", spy)
    assert merge_all(core_store, direct.id) == INSERTED
    assert copies == ["employees", "tasks", "calendar_events"]
    # the staged SQL path, as the Supabase backend calls it (the RPC functions on JSON rows)
    for function, rows in (
        ("merge_employees", people()),
        ("merge_tasks", tasks()),
        ("merge_events", events()),
    ):
        db.execute(
            f"select * from core.{function}(%s::uuid, %s::jsonb, true)",
            (staged.id, orjson.dumps(json_rows(rows)).decode()),
        )
    for table, _, _ in TABLES:
        assert stored_rows(db, table, direct.id) == stored_rows(db, table, staged.id), table
    assert core_store.unresolved_task_people(direct.id) == core_store.unresolved_task_people(staged.id)
    assert core_store.unresolved_task_people(staged.id).unknown == 2
    assert merge_all(core_store, staged.id) == UNCHANGED


def test_first_load_links_employees_by_email_instead_of_copying(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    db.execute(
        "insert into core.employees (company_id, email, full_name)"
        " values (%s, 'U1@ACME.IO', 'Platform user')",
        (portal.company_id,),
    )
    assert core_store.merge_employees(portal.id, people(), full=True) == MergeCounts(
        inserted=2, updated=1, rows_in_table=3, live_rows=3
    )
    assert db.execute("select count(*) from core.employees").fetchone()[0] == 3


def test_supabase_path_sends_and_stores_the_same_fingerprints(
    core_store: PostgresStore, core_dsn: str, db: psycopg.Connection
) -> None:
    portal = add_portal(core_store)
    with running_standin(core_dsn, KEY) as (base_url, _app):
        store = SupabaseStore(base_url, KEY, chunk_rows=3)
        assert merge_all(store, portal.id) == INSERTED
        for table, stage, rows in TABLES:
            assert hex_hashes(db, table, portal.id) == expected(stage, rows())
        before = {table: xmins(db, table) for table, _, _ in TABLES}
        assert merge_all(store, portal.id) == UNCHANGED
        # the Postgres backend recognises the rows the Supabase backend wrote, and vice versa
        assert merge_all(core_store, portal.id) == UNCHANGED
        assert {table: xmins(db, table) for table, _, _ in TABLES} == before
        changed = [*tasks()[:-1], tasks()[-1].model_copy(update={"title": "new"})]
        table = {"rows_in_table": 8, "live_rows": 8}
        assert store.merge_tasks(portal.id, changed, full=True) == MergeCounts(
            updated=1, unchanged=7, **table
        )
        assert core_store.merge_tasks(portal.id, changed, full=True) == MergeCounts(unchanged=8, **table)


ODD_IDS = ["0", "7", "10000", "999999999999999999", "1000000000000000000", "07", "-1", "1e3", " 5", "abc"]
ODD_IDS += ["٣", ""]  # a non-ASCII digit, the empty id


def test_row_ids_made_in_python_equal_core_row_id(db: psycopg.Connection) -> None:
    """The first-load COPY makes ids in Python; any id it makes differently from core.row_id()
    would give one task two ids depending on which path inserted it."""
    account = "0b8f6a4e-3f5c-4d0a-9a55-1f2e3d4c5b6a"
    make_id = postgres_backend._row_ids(UUID(account))
    in_sql = db.execute(
        "select b, core.row_id(%s::uuid, b) from unnest(%s::text[]) b", (account, ODD_IDS)
    ).fetchall()
    assert {b: make_id(b) for b in ODD_IDS} == {b: uid.bytes for b, uid in in_sql}
    assert len({make_id(b) for b in ODD_IDS}) == len(ODD_IDS)  # canonical and odd forms never share an id
    # numeric ids of one account are ordered like the Bitrix ids (what makes the load an append)
    assert sorted(make_id(str(i)) for i in (3, 20, 100, 7)) == [make_id(str(i)) for i in (3, 7, 20, 100)]
