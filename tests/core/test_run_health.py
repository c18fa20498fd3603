"""``core.abandon_syncs`` and ``core.stale_syncs`` on the embedded Postgres, through both backends:
the Postgres store and the Supabase store over HTTP (the PostgREST stand-in runs the same SQL).

A run that stopped before its steps closed their sync-log rows (worker killed, run canceled, Core
down when the step failed) must not leave them ``running`` forever."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from bitrix24_assets.core import CoreStore, PostgresStore
from bitrix24_assets.core.supabase import SupabaseStore

from .conftest import Portal, add_portal
from .postgrest_standin import running_standin

KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
MESSAGE = "Bitrix24 account 'acme' (x): run r1 stopped before this sync finished; the next run syncs again."


@pytest.fixture(params=["postgres", "supabase"])
def store(request: pytest.FixtureRequest, core_store: PostgresStore, core_dsn: str) -> Iterator[CoreStore]:
    if request.param == "postgres":
        yield core_store
        return
    with running_standin(core_dsn, KEY) as (base_url, _):
        supabase = SupabaseStore(base_url, KEY)
        try:
            yield supabase
        finally:
            supabase.close()


@pytest.fixture
def acme(core_store: PostgresStore) -> Portal:
    return add_portal(core_store)


def _age(db: psycopg.Connection, sync_id: str, minutes: int) -> None:
    db.execute(
        "update core.integration_sync_logs set started_at = now() - make_interval(mins => %s) where id = %s",
        (minutes, sync_id),
    )


def test_abandon_closes_only_the_runs_running_rows_once(
    store: CoreStore, core_store: PostgresStore, acme: Portal, db: psycopg.Connection
) -> None:
    users = core_store.start_sync(acme.id, "employees", "r1")
    core_store.finish_sync(users, status="success", records_fetched=3)
    tasks = core_store.start_sync(acme.id, "tasks", "r1")
    events = core_store.start_sync(acme.id, "calendar_events", "r1")
    other_run = core_store.start_sync(acme.id, "tasks", "r2")

    assert store.abandon_syncs("r1", MESSAGE) == 2
    assert store.abandon_syncs("r1", MESSAGE) == 0  # idempotent
    assert store.abandon_syncs("never-ran", MESSAGE) == 0

    by_id = {log.id: log for log in core_store.recent_syncs(acme.id)}
    assert by_id[users].status == "success" and by_id[users].error is None
    for sync_id in (tasks, events):
        assert by_id[sync_id].status == "abandoned"
        assert by_id[sync_id].error == MESSAGE
        assert by_id[sync_id].finished_at is not None
    assert by_id[other_run].status == "running" and by_id[other_run].finished_at is None


def test_abandon_redacts_the_message(store: CoreStore, core_store: PostgresStore, acme: Portal) -> None:
    sync_id = core_store.start_sync(acme.id, "tasks", "r1")
    store.abandon_syncs("r1", "Account at https://acme.bitrix24.ru/rest/1/s3cr3tt0ken stopped.")
    (log,) = [s for s in core_store.recent_syncs(acme.id) if s.id == sync_id]
    assert log.error is not None and "s3cr3tt0ken" not in log.error


def test_stale_syncs_lists_old_running_rows_with_a_run_oldest_first(
    store: CoreStore, core_store: PostgresStore, acme: Portal, db: psycopg.Connection
) -> None:
    oldest = core_store.start_sync(acme.id, "tasks", "r1")
    old = core_store.start_sync(acme.id, "employees", "r2")
    fresh = core_store.start_sync(acme.id, "calendar_events", "r3")
    no_run = core_store.start_sync(acme.id, "tasks", None)
    closed = core_store.start_sync(acme.id, "employees", "r4")
    core_store.finish_sync(closed, status="failed", error="x")
    _age(db, oldest, 60)
    _age(db, old, 30)
    _age(db, no_run, 60)
    _age(db, closed, 60)

    stale = store.stale_syncs(600)
    assert [(s.id, s.run_id, s.integration_account_id) for s in stale] == [
        (oldest, "r1", acme.id),
        (old, "r2", acme.id),
    ]
    assert [s.id for s in store.stale_syncs(600, limit=1)] == [oldest]
    assert [s.id for s in store.stale_syncs(45 * 60)] == [oldest]
    assert [s.id for s in store.stale_syncs(0)] == [oldest, old, fresh]


def test_running_rows_are_found_through_the_partial_index(db: psycopg.Connection) -> None:
    """Both look-ups stay cheap however long the sync history grows: the planner can answer them
    from the index of `running` rows alone."""
    (indexdef,) = db.execute(
        "select indexdef from pg_indexes where schemaname = 'core' and indexname = %s",
        ("integration_sync_logs_running",),
    ).fetchone()  # type: ignore[misc]
    assert "WHERE (status = 'running'::text)" in indexdef
    db.execute("set enable_seqscan = off")
    plan = "\n".join(
        r[0]
        for r in db.execute(
            "explain select * from core.integration_sync_logs where status = 'running' and run_id = 'r1'"
        ).fetchall()
    )
    assert "integration_sync_logs_running" in plan
