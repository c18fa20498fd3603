"""An account's sync history as `status` shows it (latest row per entity) and the retention of
personal data: processed inbox events and old sync logs go, the cursor's row never does."""

from __future__ import annotations

import psycopg
import pytest

from bitrix24_assets.core import CoreDataError, MergeCounts, PostgresStore

from .conftest import Portal


def finished(
    store: PostgresStore, account_id: str, entity: str, status: str, cursor: str | None = None
) -> str:
    sync_id = store.start_sync(account_id, entity)
    store.finish_sync(
        sync_id,
        status=status,  # type: ignore[arg-type]
        counts=MergeCounts(inserted=1) if status == "success" else None,
        cursor={"changed_since": cursor} if cursor else None,
        error="boom" if status == "failed" else None,
    )
    return sync_id


def age(db: psycopg.Connection, sync_id: str, days: int) -> None:
    db.execute(
        "update core.integration_sync_logs set started_at = now() - make_interval(days => %s),"
        " finished_at = now() - make_interval(days => %s) + interval '1 minute' where id = %s",
        (days, days, sync_id),
    )


def test_latest_syncs_is_one_row_per_entity(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    """The last three rows could show one entity twice and another not at all; this cannot."""
    employees = finished(core_store, portal.id, "employees", "success")
    age(db, employees, 3)
    for status in ("success", "failed", "success", "failed"):
        finished(core_store, portal.id, "tasks", status)
    running = core_store.start_sync(portal.id, "calendar_events")
    latest = core_store.latest_syncs(portal.id)
    assert [(s.entity, s.status) for s in latest] == [
        ("calendar_events", "running"),
        ("employees", "success"),
        ("tasks", "failed"),
    ]
    assert latest[0].id == running and latest[1].id == employees
    assert core_store.latest_syncs("00000000-0000-0000-0000-000000000000") == []


def test_purge_deletes_old_personal_data_but_never_a_cursor(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    # sync logs: an old history of tasks, the newest success without a cursor
    with_cursor = finished(core_store, portal.id, "tasks", "success", cursor="2025-01-01T00:00:00Z")
    age(db, with_cursor, 200)
    older = finished(core_store, portal.id, "tasks", "success", cursor="2024-01-01T00:00:00Z")
    age(db, older, 300)
    old_failed = finished(core_store, portal.id, "tasks", "failed")
    age(db, old_failed, 150)
    latest_success = finished(core_store, portal.id, "tasks", "success")
    age(db, latest_success, 120)
    recent_failed = finished(core_store, portal.id, "tasks", "failed")
    age(db, recent_failed, 5)
    stuck = core_store.start_sync(portal.id, "employees")
    age(db, stuck, 400)
    only_employees_success = finished(core_store, portal.id, "employees", "success")
    age(db, only_employees_success, 365)
    cursor_before = core_store.get_cursor(portal.id, "tasks")

    # inbox: processed old, processed new, pending old
    for key in ("old", "new", "pending"):
        core_store.put_event(portal.id, "ONUSERADD", {"data": {"NAME": "Ann", "EMAIL": "ann@acme.io"}}, key)
    processed = [e.id for e in core_store.pending_events() if e.dedupe_key in ("old", "new")]
    core_store.mark_events_processed(processed)
    db.execute(
        "update core.integration_events set received_at = now() - interval '40 days'"
        " where dedupe_key in ('old', 'pending')"
    )

    assert core_store.purge_personal_data(events_days=30, sync_logs_days=90) == {
        "integration_events": 1,
        "integration_sync_logs": 2,  # the older cursor row and the old failure
    }
    left = {r[0] for r in db.execute("select id::text from core.integration_sync_logs").fetchall()}
    assert left == {with_cursor, latest_success, recent_failed, stuck, only_employees_success}
    assert (
        core_store.get_cursor(portal.id, "tasks")
        == cursor_before
        == {"changed_since": "2025-01-01T00:00:00Z"}
    )
    assert {r[0] for r in db.execute("select dedupe_key from core.integration_events").fetchall()} == {
        "new",
        "pending",
    }
    assert core_store.purge_personal_data(30, 90) == {"integration_events": 0, "integration_sync_logs": 0}


def test_purge_refuses_negative_ages(core_store: PostgresStore) -> None:
    with pytest.raises(CoreDataError, match="retention ages must be 0 days or more"):
        core_store.purge_personal_data(-1, 90)
