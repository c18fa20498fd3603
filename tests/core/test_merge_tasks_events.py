"""Task and calendar-event merges: people resolved per account, only changes written, deletions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bitrix24_assets.core import CalendarEventRow, EmployeeRow, MergeCounts, PostgresStore, TaskRow
from bitrix24_assets.core.errors import MassRemovalError
from bitrix24_assets.core.models import RemovalGuard, UnresolvedPeople

from .conftest import Portal, add_portal

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def task(bitrix_id: str, **kw: object) -> TaskRow:
    base: dict[str, object] = {
        "title": f"Task {bitrix_id}",
        "status": "in_progress",
        "status_code": 3,
        "priority": "high",
        "deadline": T0,
        "responsible_bitrix_id": "1",
        "created_by_bitrix_id": "2",
        "metadata": {"tags": ["x"]},
    }
    base.update(kw)
    return TaskRow(bitrix_id=bitrix_id, **base)  # type: ignore[arg-type]


def event(bitrix_id: str, start: datetime = T0, **kw: object) -> CalendarEventRow:
    base: dict[str, object] = {
        "name": f"Meeting {bitrix_id}",
        "calendar_type": "user",
        "owner_bitrix_id": "1",
        "starts_at": start,
        "ends_at": start + timedelta(hours=1),
    }
    base.update(kw)
    return CalendarEventRow(bitrix_id=bitrix_id, **base)  # type: ignore[arg-type]


def xmins(db: psycopg.Connection, table: str) -> dict[str, str]:
    return dict(db.execute(f"select bitrix_id, xmin::text from core.{table}").fetchall())


def test_tasks_resolve_people_of_the_same_account(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    other = core_store.add_account(portal.company_id, "b.bitrix24.ru", {"webhook_url": "https://b/rest/1/x/"})
    core_store.merge_employees(portal.id, [EmployeeRow(bitrix_id="1"), EmployeeRow(bitrix_id="2")], full=True)
    core_store.merge_employees(other.id, [EmployeeRow(bitrix_id="1", email="other@b.io")], full=True)
    core_store.merge_tasks(portal.id, [task("10")], full=False)
    resolved = db.execute(
        "select e1.metadata->>'integration_account_id', e2.metadata->>'bitrix_id'"
        " from core.tasks t"
        " join core.employees e1 on e1.id = t.responsible_id"
        " join core.employees e2 on e2.id = t.created_by_id"
    ).fetchone()
    assert resolved == (portal.id, "2")
    assert core_store.unresolved_task_people(portal.id) == UnresolvedPeople(unknown=0, non_employees=0)


def test_unknown_people_are_counted_and_resolved_by_a_later_merge(
    core_store: PostgresStore, portal: Portal
) -> None:
    core_store.merge_tasks(portal.id, [task("10")], full=False)
    assert core_store.unresolved_task_people(portal.id) == UnresolvedPeople(unknown=1)
    core_store.merge_employees(portal.id, [EmployeeRow(bitrix_id="1"), EmployeeRow(bitrix_id="2")], full=True)
    assert core_store.merge_tasks(portal.id, [task("10")], full=False) == MergeCounts(
        updated=1, rows_in_table=1, live_rows=1
    )
    assert core_store.unresolved_task_people(portal.id) == UnresolvedPeople()


def test_rerun_writes_nothing_and_one_change_writes_one_row(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    rows = [task(str(i)) for i in range(100)]
    table = {"rows_in_table": 100, "live_rows": 100}
    assert core_store.merge_tasks(portal.id, rows, full=True) == MergeCounts(inserted=100, **table)
    before = xmins(db, "tasks")
    assert core_store.merge_tasks(portal.id, rows, full=True) == MergeCounts(unchanged=100, **table)
    assert xmins(db, "tasks") == before
    rows[7] = task("7", status="completed", status_code=5)
    assert core_store.merge_tasks(portal.id, rows, full=True) == MergeCounts(updated=1, unchanged=99, **table)
    after = xmins(db, "tasks")
    assert {k for k in after if after[k] != before[k]} == {"7"}


def test_full_task_merge_marks_missing_deleted_and_revives_returning(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    core_store.merge_tasks(portal.id, [task("1"), task("2")], full=True)
    assert core_store.merge_tasks(portal.id, [task("1")], full=True) == MergeCounts(
        unchanged=1, removed=1, rows_in_table=2, live_rows=1
    )
    assert db.execute("select is_deleted from core.tasks where bitrix_id = '2'").fetchone()[0] is True
    assert core_store.merge_tasks(portal.id, [task("2")], full=False) == MergeCounts(
        updated=1, rows_in_table=2, live_rows=2
    )
    assert core_store.mark_deleted(portal.id, "tasks", ["1", "404"]) == 1
    assert core_store.mark_deleted(portal.id, "tasks", ["1"]) == 0


def test_duplicate_tasks_in_a_batch_last_wins(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    assert (
        core_store.merge_tasks(
            portal.id, [task("1", title="old"), task("1", title="new")], full=False
        ).inserted
        == 1
    )
    assert db.execute("select title from core.tasks").fetchone()[0] == "new"
    assert core_store.duplicate_bitrix_ids(portal.id, "tasks") == 0


def test_duplicate_check_counts_when_no_unique_index_guards_the_table(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    """With the unique index the check trusts it; a Core without it (a platform-made table, an
    index dropped or invalid) gets the rows counted, so planted duplicates are found."""
    core_store.merge_tasks(portal.id, [task("1"), task("2")], full=True)
    assert db.execute("select core.bitrix_id_is_unique('tasks')").fetchone()[0] is True
    db.execute("drop index core.tasks_account_bitrix_key")
    assert db.execute("select core.bitrix_id_is_unique('tasks')").fetchone()[0] is False
    assert core_store.duplicate_bitrix_ids(portal.id, "tasks") == 0
    db.execute(
        "insert into core.tasks (company_id, integration_account_id, bitrix_id)"
        " select company_id, integration_account_id, bitrix_id from core.tasks where bitrix_id = '1'"
    )
    assert core_store.duplicate_bitrix_ids(portal.id, "tasks") == 1
    # a unique index on other columns proves nothing about (account, bitrix id)
    db.execute("create unique index tasks_odd on core.tasks (id, bitrix_id)")
    assert core_store.duplicate_bitrix_ids(portal.id, "tasks") == 1


def test_same_bitrix_ids_in_two_companies_stay_apart(
    core_store: PostgresStore, db: psycopg.Connection
) -> None:
    acme = add_portal(core_store, "Acme", "a.bitrix24.ru")
    other = add_portal(core_store, "Other", "o.bitrix24.ru")
    core_store.merge_tasks(acme.id, [task("1", title="acme")], full=True)
    core_store.merge_tasks(other.id, [task("1", title="other")], full=True)
    with pytest.raises(MassRemovalError):  # an empty full read needs confirmation
        core_store.merge_tasks(other.id, [], full=True)
    core_store.merge_tasks(other.id, [], full=True, guard=RemovalGuard(allow=True))
    rows = dict(db.execute("select title, (company_id::text, is_deleted) from core.tasks").fetchall())
    assert rows["acme"] == (acme.company_id, "f")
    assert rows["other"] == (other.company_id, "t")


def test_events_merge_and_windowed_full_sync_only_removes_inside_the_window(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    rows = [event("1", T0), event("2", T0 + timedelta(days=40)), event("3", T0 + timedelta(days=1))]
    assert core_store.merge_events(portal.id, rows, full=True) == MergeCounts(
        inserted=3, rows_in_table=3, live_rows=3
    )
    window = (T0 - timedelta(days=1), T0 + timedelta(days=7))
    # a read of the first week that no longer returns event 3; event 2 lies outside the window
    counts = core_store.merge_events(portal.id, [event("1", T0)], full=True, window=window)
    assert counts == MergeCounts(unchanged=1, removed=1, rows_in_table=3, live_rows=2)
    deleted = dict(db.execute("select bitrix_id, is_deleted from core.calendar_events").fetchall())
    assert deleted == {"1": False, "2": False, "3": True}
    assert core_store.merge_events(portal.id, [event("1", T0, is_deleted=True)], full=False).updated == 1


def test_event_text_with_sql_characters_and_emoji(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    name = "Stand-up 'daily'; -- 🗓️ \\N NULL"
    core_store.merge_events(portal.id, [event("1", name=name, location='Room "B"\t2')], full=False)
    assert db.execute("select name, location from core.calendar_events").fetchone() == (name, 'Room "B"\t2')


def test_unresolved_people_split_unknown_from_known_non_employees(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    """Tasks of extranet users (known non-employees) are counted apart, so only the unknown fail a
    check; the count still reads the partial index tasks_unresolved_people, not the account's tasks."""
    core_store.merge_employees(portal.id, [EmployeeRow(bitrix_id="1"), EmployeeRow(bitrix_id="2")], full=True)
    rows = [task(str(i)) for i in range(3000)]  # resolved people
    rows[10] = task("10", responsible_bitrix_id="70")  # an extranet user
    rows[11] = task("11", responsible_bitrix_id="70", created_by_bitrix_id="71")  # two of them
    rows[12] = task("12", responsible_bitrix_id="70", created_by_bitrix_id="99")  # one unknown
    rows[13] = task("13", created_by_bitrix_id="99")
    core_store.merge_tasks(portal.id, rows, full=True)
    assert core_store.unresolved_task_people(portal.id) == UnresolvedPeople(unknown=4)
    assert core_store.unresolved_task_people(portal.id, ["70", "71"]) == UnresolvedPeople(
        unknown=2, non_employees=2
    )
    core_store.mark_deleted(portal.id, "tasks", ["13"])
    assert core_store.unresolved_task_people(portal.id, ["70", "71"]) == UnresolvedPeople(
        unknown=1, non_employees=2
    )
    db.execute("analyze core.tasks")

    def index_scans() -> int:
        db.execute("select pg_stat_clear_snapshot()")
        (scans,) = db.execute(
            "select idx_scan from pg_stat_user_indexes where indexrelname = 'tasks_unresolved_people'"
        ).fetchone()
        return int(scans)

    with db.transaction():  # this backend's counters reach pg_stat when the transaction ends
        db.execute("select pg_stat_force_next_flush()")
    before = index_scans()
    with db.transaction():
        db.execute("select * from core.unresolved_task_people(%s, '{70,71}')", (portal.id,))
        db.execute("select pg_stat_force_next_flush()")
    assert index_scans() == before + 1


def test_sync_log_takes_every_status(core_store: PostgresStore, portal: Portal) -> None:
    for status in ("success", "failed", "skipped", "abandoned"):
        sync_id = core_store.start_sync(portal.id, "tasks", run_id=status)
        core_store.finish_sync(sync_id, status=status, error=None if status == "success" else "why")
    assert [s.status for s in core_store.recent_syncs(portal.id, "tasks")] == [
        "abandoned",
        "skipped",
        "failed",
        "success",
    ]
