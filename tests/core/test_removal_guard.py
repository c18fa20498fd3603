"""Full merges only remove what a read proved gone: the mass-removal guard, kept ids, calendar owners
and the table counts, for every entity, through the Postgres backend and the Supabase backend (one
RPC per merge, and chunked: a dry-run check, chunks merged as incremental ones, one removal call).

The guard is decided in SQL in the merge's transaction, so a tripped guard must leave every row as
it was: each test compares (bitrix id, xmin, live) of the account's rows before and after.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitrix24_assets.core import CalendarEventRow, CoreStore, EmployeeRow, MergeCounts, PostgresStore, TaskRow
from bitrix24_assets.core.errors import MassRemovalError
from bitrix24_assets.core.models import RemovalGuard
from bitrix24_assets.core.supabase import SupabaseStore

from .conftest import Portal, add_portal
from .postgrest_standin import running_standin

KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ALLOW = RemovalGuard(allow=True)


@dataclass(frozen=True)
class Kind:
    """One entity as these tests drive it: rows, the merge call and where its rows live."""

    entity: str
    make: Callable[..., Any]  # (bitrix id as int, **changes) -> row
    merge: Callable[..., MergeCounts]  # (store, account, rows, **kw) -> counts
    table: str
    key: str
    live: str
    account: str


def _employee(i: int, **kw: Any) -> EmployeeRow:
    return EmployeeRow(**{"bitrix_id": str(i), "email": f"u{i}@acme.io", "full_name": f"User {i}", **kw})


def _task(i: int, **kw: Any) -> TaskRow:
    return TaskRow(**{"bitrix_id": str(i), "title": f"Task {i}", "responsible_bitrix_id": "1", **kw})


def _event(i: int, **kw: Any) -> CalendarEventRow:
    start = T0 + timedelta(hours=i)
    base = {"bitrix_id": str(i), "name": f"Meeting {i}", "calendar_type": "user", "owner_bitrix_id": "1"}
    return CalendarEventRow(**{**base, "starts_at": start, "ends_at": start + timedelta(hours=1), **kw})


KINDS = {
    "employees": Kind(
        "employees",
        _employee,
        lambda store, account, rows, **kw: store.merge_employees(account, rows, **kw),
        "employees",
        "metadata->>'bitrix_id'",
        "is_active",
        "metadata->>'integration_account_id'",
    ),
    "tasks": Kind(
        "tasks",
        _task,
        lambda store, account, rows, **kw: store.merge_tasks(account, rows, **kw),
        "tasks",
        "bitrix_id",
        "not is_deleted",
        "integration_account_id::text",
    ),
    "calendar_events": Kind(
        "calendar_events",
        _event,
        lambda store, account, rows, **kw: store.merge_events(account, rows, **kw),
        "calendar_events",
        "bitrix_id",
        "not is_deleted",
        "integration_account_id::text",
    ),
}


def snapshot(db: psycopg.Connection, kind: Kind, account: str) -> list[tuple[Any, ...]]:
    """(bitrix id, xmin, live) of the account's rows: a row rewritten by any UPDATE gets a new xmin."""
    return db.execute(
        f"select {kind.key}, xmin::text, {kind.live} from core.{kind.table}"
        f" where {kind.account} = %s order by ({kind.key})::bigint",
        (account,),
    ).fetchall()


def truth(db: psycopg.Connection, kind: Kind, account: str) -> tuple[int, int]:
    """(rows_in_table, live_rows) counted in Core."""
    return db.execute(
        f"select count(*), count(*) filter (where {kind.live}) from core.{kind.table}"
        f" where {kind.account} = %s",
        (account,),
    ).fetchone()  # type: ignore[return-value]


@pytest.fixture(params=["postgres", "supabase", "supabase-chunked"])
def store(request: pytest.FixtureRequest, core_store: PostgresStore, core_dsn: str) -> Iterator[CoreStore]:
    """The same merges through each path: PostgresStore; SupabaseStore through the PostgREST
    stand-in with one RPC per merge; and with 7-row chunks (a full merge of several chunks)."""
    if request.param == "postgres":
        yield core_store
        return
    with running_standin(core_dsn, KEY) as (base_url, _app):
        supabase = SupabaseStore(base_url, KEY, chunk_rows=7 if request.param == "supabase-chunked" else 5000)
        try:
            yield supabase
        finally:
            supabase.close()


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return KINDS[request.param]


def seed(store: CoreStore, kind: Kind, account: str, n: int) -> list[Any]:
    rows = [kind.make(i) for i in range(n)]
    counts = kind.merge(store, account, rows, full=True)
    assert counts == MergeCounts(inserted=n, rows_in_table=n, live_rows=n)
    return rows


def test_share_exceeded_changes_nothing(
    store: CoreStore, kind: Kind, portal: Portal, db: psycopg.Connection
) -> None:
    rows = seed(store, kind, portal.id, 100)
    before = snapshot(db, kind, portal.id)
    # 30 of 100 live rows missing (limit: 20% of 100), one row changed and one new in the same read
    batch = [*rows[30:], kind.make(50, metadata={"changed": True}), kind.make(1000)]
    with pytest.raises(MassRemovalError) as info:
        kind.merge(store, portal.id, batch, full=True)
    error = info.value
    assert (error.entity, error.live, error.removing, error.max_share, error.empty_batch) == (
        kind.entity,
        100,
        30,
        0.2,
        False,
    )
    assert not error.retryable and not error.is_configuration_error
    assert kind.entity.replace("_", " ") in str(error) and "30 of 100" in str(error)
    assert snapshot(db, kind, portal.id) == before  # not even the changed or the new row


def test_empty_batch_with_live_rows_changes_nothing(
    store: CoreStore, kind: Kind, portal: Portal, db: psycopg.Connection
) -> None:
    seed(store, kind, portal.id, 3)  # fewer than min_rows: only the empty read trips the guard
    before = snapshot(db, kind, portal.id)
    with pytest.raises(MassRemovalError) as info:
        kind.merge(store, portal.id, [], full=True)
    assert (info.value.live, info.value.removing, info.value.empty_batch) == (3, 3, True)
    assert "no rows" in str(info.value)
    assert snapshot(db, kind, portal.id) == before
    # an empty incremental merge removes nothing and so is never refused
    assert kind.merge(store, portal.id, [], full=False) == MergeCounts(rows_in_table=3, live_rows=3)


def test_allow_lets_a_confirmed_removal_through(
    store: CoreStore, kind: Kind, portal: Portal, db: psycopg.Connection
) -> None:
    rows = seed(store, kind, portal.id, 100)
    counts = kind.merge(store, portal.id, rows[30:], full=True, guard=ALLOW)
    assert counts == MergeCounts(unchanged=70, removed=30, rows_in_table=100, live_rows=70)
    assert truth(db, kind, portal.id) == (100, 70)
    assert kind.merge(store, portal.id, [], full=True, guard=ALLOW).removed == 70
    assert truth(db, kind, portal.id) == (100, 0)


def test_removals_up_to_the_limit_pass(
    store: CoreStore, kind: Kind, portal: Portal, db: psycopg.Connection
) -> None:
    rows = seed(store, kind, portal.id, 100)
    with pytest.raises(MassRemovalError):  # 21 > 20% of 100
        kind.merge(store, portal.id, rows[21:], full=True)
    assert kind.merge(store, portal.id, rows[20:], full=True).removed == 20  # 20% exactly
    guard = RemovalGuard(max_share=0.5, min_rows=0)
    assert kind.merge(store, portal.id, rows[60:], full=True, guard=guard).removed == 40  # half of 80
    # few live rows left: min_rows (10) lets 10 of 40 go although 20% of 40 is 8, not 11
    assert kind.merge(store, portal.id, rows[70:], full=True).removed == 10
    with pytest.raises(MassRemovalError):
        kind.merge(store, portal.id, rows[81:], full=True)
    assert truth(db, kind, portal.id) == (100, 30)


def test_kept_ids_are_neither_removed_nor_changed(
    store: CoreStore, kind: Kind, portal: Portal, db: psycopg.Connection
) -> None:
    rows = seed(store, kind, portal.id, 40)
    before = dict((k, (x, live)) for k, x, live in snapshot(db, kind, portal.id))
    kept = ["3", "30", "31", "32"]
    # rows 30-39 are missing from the read: 30-32 were read but rejected, 33-39 are gone; a row for
    # kept id 3 in the same read is not written (its record was also rejected)
    batch = [*rows[:30], kind.make(3, metadata={"changed": True})]
    counts = kind.merge(store, portal.id, batch, full=True, keep_ids=kept)
    assert counts == MergeCounts(unchanged=29, removed=7, rows_in_table=40, live_rows=33)
    after = dict((k, (x, live)) for k, x, live in snapshot(db, kind, portal.id))
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    assert [k for k in after if not after[k][1]] == [str(i) for i in range(33, 40)]


def test_events_are_removed_only_from_the_calendars_read(
    store: CoreStore, portal: Portal, db: psycopg.Connection
) -> None:
    kind = KINDS["calendar_events"]
    calendars = [("user", "1"), ("user", "2"), ("company_calendar", "0"), ("group", "5")]
    rows = [
        _event(n * 4 + i, calendar_type=kind_, owner_bitrix_id=owner)
        for n, (kind_, owner) in enumerate(calendars)
        for i in range(4)
    ]
    assert store.merge_events(portal.id, rows, full=True).inserted == 16
    # the read opened only user 1's and the company calendar; each lost 2 events, and the events of
    # user 2 (deactivated: not read) and group 5 are all absent from it
    read = frozenset({("user", "1"), ("company_calendar", "0")})
    batch = [r for r in rows if int(r.bitrix_id) in (0, 1, 8, 9)]
    before = snapshot(db, kind, portal.id)
    # the guard compares with the 8 live events of the calendars read, not all 16: 4 > 30% of 8
    with pytest.raises(MassRemovalError) as info:
        store.merge_events(
            portal.id, batch, full=True, owners=read, guard=RemovalGuard(max_share=0.3, min_rows=0)
        )
    assert (info.value.live, info.value.removing) == (8, 4)
    assert snapshot(db, kind, portal.id) == before
    counts = store.merge_events(portal.id, batch, full=True, owners=read)
    assert counts == MergeCounts(unchanged=4, removed=4, rows_in_table=16, live_rows=12)
    deleted = [k for k, _, live in snapshot(db, kind, portal.id) if not live]
    assert deleted == ["2", "3", "10", "11"]
    # a read that opened no calendar covers no event
    assert store.merge_events(portal.id, [], full=True, owners=frozenset()).removed == 0
    assert truth(db, kind, portal.id) == (16, 12)


def test_counts_follow_revivals_deletions_and_links(
    store: CoreStore, kind: Kind, portal: Portal, db: psycopg.Connection
) -> None:
    """rows_in_table and live_rows after each kind of write, full and incremental."""
    rows = seed(store, kind, portal.id, 12)

    def check(counts: MergeCounts) -> None:
        assert (counts.rows_in_table, counts.live_rows) == truth(db, kind, portal.id)

    check(kind.merge(store, portal.id, rows[:8], full=True))  # 4 removed
    check(kind.merge(store, portal.id, [rows[9], kind.make(20)], full=False))  # one back, one new
    check(kind.merge(store, portal.id, [*rows[:10], kind.make(20), kind.make(21)], full=True))
    if kind.entity == "employees":
        # a platform employee linked by e-mail joins the account's rows
        db.execute(
            "insert into core.employees (company_id, email) values (%s, 'new@acme.io')", (portal.company_id,)
        )
        check(kind.merge(store, portal.id, [kind.make(30, email="NEW@acme.io")], full=False))
        check(kind.merge(store, portal.id, [kind.make(1, is_active=False)], full=False))
    if kind.entity == "calendar_events":
        check(kind.merge(store, portal.id, [kind.make(1, is_deleted=True)], full=False))
        batch = [kind.make(1), kind.make(2, is_deleted=True)]
        check(kind.merge(store, portal.id, batch, full=True, guard=ALLOW))
    assert truth(db, kind, portal.id)[0] > truth(db, kind, portal.id)[1]  # some rows were removed


def test_mass_removal_error_survives_pickling() -> None:
    """Run workers may ship exceptions between processes: the figures must survive."""
    error = MassRemovalError("tasks", live=3000, removing=3000, max_share=0.2, min_rows=10, empty_batch=True)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.entity, copy.live, copy.removing, copy.empty_batch, str(copy)) == (
        "tasks",
        3000,
        3000,
        True,
        str(error),
    )


# ---- counts under any sequence of merges (Postgres backend) -------------------------------------------
_STEP = st.tuples(
    st.booleans(),  # full
    st.dictionaries(st.integers(0, 11), st.tuples(st.integers(0, 1), st.booleans()), max_size=12),
    st.frozensets(st.integers(0, 11), max_size=3),  # kept ids
)


@pytest.mark.parametrize("entity", list(KINDS))
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])  # DB round trips
@given(steps=st.lists(_STEP, min_size=1, max_size=5))
def test_counts_equal_the_table_after_any_merge_sequence(
    core_store: PostgresStore, db: psycopg.Connection, entity: str, steps: list[Any]
) -> None:
    """rows {id: (version, live)} merged full or not, with kept ids: rows_in_table and live_rows
    always equal what Core holds (a fresh account per example)."""
    kind = KINDS[entity]
    portal = add_portal(core_store, company="Acme", name=f"p{next(_accounts)}.bitrix24.ru")
    for full, batch, kept in steps:
        rows = [
            kind.make(i, metadata={"v": version}, **_live_field(kind, live))
            for i, (version, live) in sorted(batch.items())
        ]
        keep = [str(i) for i in kept]
        counts = kind.merge(core_store, portal.id, rows, full=full, keep_ids=keep, guard=ALLOW)
        assert (counts.rows_in_table, counts.live_rows) == truth(db, kind, portal.id)


def _live_field(kind: Kind, live: bool) -> dict[str, bool]:
    if kind.entity == "employees":
        return {"is_active": live}
    if kind.entity == "calendar_events":
        return {"is_deleted": not live}
    return {}


_accounts = iter(range(10**6))
