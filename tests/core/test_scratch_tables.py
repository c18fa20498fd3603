"""The merges' temp tables live for the session (``core.scratch``), not for one transaction.

Creating and dropping a dozen temp tables per portal was most of Core's CPU in a fleet cycle (see
bench/RESULTS.md), so a connection now makes each table once and every commit empties it. What must
still hold: a table is always empty when a step starts, a changed definition is honoured, a rolled
back transaction leaves the session usable, and every function reading such a table is planned per
call, so a plan made for a 20-row batch is never reused for a large one.
"""

from __future__ import annotations

import psycopg
import pytest

from bitrix24_assets.core import PostgresStore, TaskRow
from bitrix24_assets.core.errors import MassRemovalError

from .conftest import add_portal


def _oid(conn: psycopg.Connection, name: str) -> int | None:
    row = conn.execute("select to_regclass(%s)::oid", (f"pg_temp.{name}",)).fetchone()
    return row[0] if row else None


def test_a_scratch_table_is_made_once_per_session_and_always_starts_empty(core_dsn: str) -> None:
    with psycopg.connect(core_dsn) as conn:
        conn.execute("select core.scratch('t_keys', '(bitrix_id text, n int)')")
        first = _oid(conn, "t_keys")
        conn.execute("insert into pg_temp.t_keys values ('a', 1), ('b', 2)")
        # a second step of the same transaction gets it empty
        conn.execute("select core.scratch('t_keys', '(bitrix_id text, n int)')")
        assert conn.execute("select count(*) from pg_temp.t_keys").fetchone() == (0,)
        conn.execute("insert into pg_temp.t_keys values ('c', 3)")
        conn.commit()
        # the commit emptied it, the table itself stayed
        assert conn.execute("select count(*) from pg_temp.t_keys").fetchone() == (0,)
        conn.execute("select core.scratch('t_keys', '(bitrix_id text, n int)')")
        assert _oid(conn, "t_keys") == first
        conn.commit()


def test_a_changed_definition_makes_the_table_anew(core_dsn: str) -> None:
    with psycopg.connect(core_dsn) as conn:
        conn.execute("select core.scratch('t_shape', '(a text)')")
        conn.commit()
        conn.execute("select core.scratch('t_shape', '(a text, b uuid)')")
        columns = conn.execute(
            "select attname from pg_attribute where attrelid = 'pg_temp.t_shape'::regclass and attnum > 0 "
            "and not attisdropped order by attnum"
        ).fetchall()
        assert [c for (c,) in columns] == ["a", "b"]
        conn.commit()


def test_a_table_made_in_a_rolled_back_transaction_is_made_again(core_dsn: str) -> None:
    with psycopg.connect(core_dsn) as conn:
        conn.execute("select core.scratch('t_gone', '(a text)')")
        conn.rollback()
        assert _oid(conn, "t_gone") is None
        conn.execute("select core.scratch('t_gone', '(a text)')")
        conn.execute("insert into pg_temp.t_gone values ('x')")
        conn.commit()
        assert _oid(conn, "t_gone") is not None


def _tasks(n: int, title: str = "Task") -> list[TaskRow]:
    return [
        TaskRow(bitrix_id=str(i), title=f"{title} {i}", responsible_bitrix_id="1") for i in range(1, n + 1)
    ]


def test_merges_on_one_connection_reuse_the_tables_and_survive_a_refused_merge(core_dsn: str) -> None:
    with PostgresStore(core_dsn, max_size=1) as store:
        portal = add_portal(store)
        store.merge_tasks(portal.id, _tasks(50), full=True)  # first load: direct COPY
        store.merge_tasks(portal.id, _tasks(50, "Renamed"), full=True)
        # the pool has one connection, so this is the session the merges ran in
        (before,) = store._call("select to_regclass('pg_temp.stage_task_keys')::oid as oid")
        with pytest.raises(MassRemovalError):
            store.merge_tasks(portal.id, _tasks(5), full=True)  # would remove 45 of 50: refused
        counts = store.merge_tasks(portal.id, _tasks(50, "Again"), full=True)
        (after,) = store._call("select to_regclass('pg_temp.stage_task_keys')::oid as oid")
        assert (counts.updated, counts.removed, counts.rows_in_table, counts.live_rows) == (50, 0, 50, 50)
        # one incremental batch right after a full one in the same session sees only its own rows
        small = store.merge_tasks(portal.id, _tasks(2, "Small"), full=False)
        assert (small.updated, small.unchanged) == (2, 0)
    assert before["oid"] is not None and before == after


def test_every_function_reading_session_tables_is_planned_per_call(db: psycopg.Connection) -> None:
    functions = db.execute(
        "select p.proname, coalesce(p.proconfig @> '{plan_cache_mode=force_custom_plan}', false) "
        "from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = 'core' and p.prosrc like '%pg_temp.%' order by 1"
    ).fetchall()
    assert len(functions) >= 10  # the merges, their plans, removals, memberships, core.scratch
    assert [name for name, per_call in functions if not per_call] == []
