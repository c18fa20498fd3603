"""Postgres backend: psycopg 3 with a connection pool; merges are COPY + one SQL function call.

Each merge is one transaction: empty the session's ``pg_temp.stage_*`` (``core.scratch``: made once
per connection, emptied at every commit), COPY the batch into it, call ``core.merge_*_staged``,
commit. The merge functions are the ones the Supabase backend calls through RPC, so both backends
behave the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg.types.string import BytesBinaryDumper
from psycopg_pool import ConnectionPool, PoolTimeout

from bitrix24_assets.gc_pause import cyclic_gc_paused

from .errors import translate_errors
from .migrator import apply_migrations, one_row
from .models import InboxEvent, IntegrationAccount, MergeCounts, RemovalGuard, SyncLog, UnresolvedPeople
from .rows import CalendarEventRow, DepartmentRow, EmployeeRow, TaskRow
from .secrets import redact_dsn, redact_text
from .staging import (
    EMPLOYEES,
    EVENTS,
    FINGERPRINT_OPTION,
    TASKS,
    Stage,
    fingerprint_digest,
    fingerprints,
    guard_json,
    live_in_batch,
    merge_batch,
    owners_json,
)
from .store import CoreStore, DeletableEntity, Entity, Owners, SyncStatus, group_by_portal

__all__ = ["PostgresStore"]


class PostgresStore(CoreStore):
    """CoreStore over a direct Postgres connection (``CORE_DATABASE_URL`` or embedded).

    Args:
        dsn: libpq connection string or ``postgresql://`` URL (the password is never displayed).
        max_size: pool size; one connection per concurrent merge/run in this process.
        timeout: seconds to wait for a connection before reporting Core as unreachable.
    """

    def __init__(self, dsn: str, *, min_size: int = 0, max_size: int = 10, timeout: float = 10.0) -> None:
        self._dsn = dsn
        self.target = redact_dsn(dsn)
        self._timeout = timeout
        self._pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            # no server-side prepared statements: they break behind transaction poolers (Supavisor).
            # autocommit: most calls are one statement (one function call), which then costs one
            # round trip instead of three (BEGIN, the call, COMMIT); merges open their transaction.
            kwargs={"prepare_threshold": None, "connect_timeout": max(1, int(timeout)), "autocommit": True},
            name="bitrix24-core",
        )
        self._opened = False

    def __repr__(self) -> str:
        return f"PostgresStore({self.target!r})"

    # ---- plumbing ----------------------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in autocommit mode (a statement is its own transaction; callers that
        need more open ``conn.transaction()``), errors translated."""
        with translate_errors(self.target):
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True
            try:
                with self._pool.connection() as conn:
                    yield conn
            except PoolTimeout:
                self._raise_connect_reason()
                raise

    def _raise_connect_reason(self) -> None:
        """The pool only says "timeout"; one direct attempt tells the user why (refused, bad password)."""
        with psycopg.connect(self._dsn, connect_timeout=3):
            pass

    def _call(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._call(sql, params)
        return next(iter(rows[0].values())) if rows else None

    # ---- schema --------------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        with self._conn() as conn:
            return apply_migrations(conn)

    # ---- accounts ------------------------------------------------------------------------------------
    def list_accounts(
        self, provider: str | None = "bitrix24", active_only: bool = False
    ) -> list[IntegrationAccount]:
        rows = self._call("select * from core.list_accounts(%s, %s)", (provider, active_only))
        return [IntegrationAccount.model_validate(r) for r in rows]

    def get_account(self, account_id: str) -> IntegrationAccount:
        rows = self._call("select * from core.get_account(%s::uuid)", (account_id,))
        if not rows:
            self._call("select core.account_company(%s::uuid)", (account_id,))  # raises AccountNotFoundError
        return IntegrationAccount.model_validate(rows[0])

    def set_account_status(self, account_id: str, status: str, message: str | None = None) -> None:
        self._call(
            "select core.set_account_status(%s::uuid, %s, %s)",
            (account_id, status, redact_text(message) if message else None),
        )

    def create_company(self, name: str) -> str:
        return str(self._scalar("select core.ensure_company(%s)", (name,)))

    def upsert_account(
        self,
        company_id: str,
        name: str,
        credentials: dict[str, Any],
        settings: dict[str, Any] | None = None,
        provider: str = "bitrix24",
    ) -> tuple[IntegrationAccount, bool]:
        (row,) = self._call(
            "select * from core.upsert_account(%s::uuid, %s, %s, %s, %s)",
            (company_id, name, provider, Jsonb(credentials), Jsonb(settings or {})),
        )
        return self.get_account(str(row["account_id"])), bool(row["created"])

    def find_account(
        self, company_id: str, credentials: dict[str, Any], provider: str = "bitrix24"
    ) -> IntegrationAccount | None:
        rows = self._call(
            "select * from core.find_account(%s::uuid, %s, %s)", (company_id, provider, Jsonb(credentials))
        )
        return IntegrationAccount.model_validate(rows[0]) if rows else None

    def update_account(
        self,
        account_id: str,
        *,
        name: str | None = None,
        credentials: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> IntegrationAccount:
        self._call(
            "select core.update_account(%s::uuid, %s, %s, %s)",
            (
                account_id,
                name,
                Jsonb(credentials) if credentials is not None else None,
                Jsonb(settings) if settings is not None else None,
            ),
        )
        return self.get_account(account_id)

    def account_rows(self, account_id: str) -> dict[str, int]:
        return dict(self._call("select * from core.account_rows(%s::uuid)", (account_id,))[0])

    def remove_account(self, account_id: str) -> dict[str, int]:
        return dict(self._call("select * from core.remove_account(%s::uuid)", (account_id,))[0])

    def duplicate_accounts(self, company_id: str | None = None) -> list[list[IntegrationAccount]]:
        return group_by_portal(self._call("select * from core.duplicate_accounts(%s::uuid)", (company_id,)))

    def update_credentials(self, account_id: str, credentials: dict[str, Any]) -> None:
        self._call("select core.set_account_credentials(%s::uuid, %s)", (account_id, Jsonb(credentials)))

    # ---- merges --------------------------------------------------------------------------------------
    def merge_employees(
        self,
        account_id: str,
        rows: Sequence[EmployeeRow],
        *,
        full: bool,
        keep_ids: Collection[str] = (),
        guard: RemovalGuard | None = None,
    ) -> MergeCounts:
        return self._merge(EMPLOYEES, account_id, rows, full, keep_ids, guard, {})

    def merge_tasks(
        self,
        account_id: str,
        rows: Sequence[TaskRow],
        *,
        full: bool,
        keep_ids: Collection[str] = (),
        guard: RemovalGuard | None = None,
    ) -> MergeCounts:
        return self._merge(TASKS, account_id, rows, full, keep_ids, guard, {})

    def merge_events(
        self,
        account_id: str,
        rows: Sequence[CalendarEventRow],
        *,
        full: bool,
        window: tuple[datetime, datetime] | None = None,
        owners: Owners | None = None,
        keep_ids: Collection[str] = (),
        guard: RemovalGuard | None = None,
    ) -> MergeCounts:
        start, end = window if window else (None, None)
        covered = owners_json(owners)
        scope = {"p_from": start, "p_to": end, "p_owners": Jsonb(covered) if covered is not None else None}
        return self._merge(EVENTS, account_id, rows, full, keep_ids, guard, scope)

    def _merge(
        self,
        stage: Stage,
        account_id: str,
        rows: Sequence[Any],
        full: bool,
        keep_ids: Collection[str],
        guard: RemovalGuard | None,
        scope: dict[str, Any],
    ) -> MergeCounts:
        """One transaction: an account without rows gets a direct COPY into the table; otherwise
        the fingerprints go first (plan, which also decides the mass-removal guard) and full rows
        follow only for what the plan asks for."""
        plan_args = {
            "p_account": account_id,
            "p_full": full,
            **scope,
            "p_keep": sorted(keep_ids) if full and keep_ids else None,
            "p_guard": Jsonb(guard_json(guard)),
        }
        plan_sql = f"select * from {stage.plan_function}({_named(plan_args)})"
        staged_sql = f"select * from {stage.staged_function}(%(p_account)s::uuid, %(p_full)s)"
        # a loop over every row while all of them are alive: see bitrix24_assets.gc_pause
        with cyclic_gc_paused(), self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            # bytea by oid means psycopg's C bytes dumper on this cursor (globally, psycopg's dbapi
            # Binary dumper, written in Python, takes that oid): see _wire_types
            cur.adapters.register_dumper(bytes, BytesBinaryDumper)
            unique = merge_batch(rows, keep_ids)
            company_id, _has_rows, direct = one_row(
                cur.execute("select * from core.begin_merge(%s::uuid, %s)", (account_id, stage.entity)),
                "core.begin_merge",
            )
            if direct:  # hashes are made in the COPY loop, overlapping with the server's ingest
                # no stored rows: nothing to remove or keep, and the counts are the batch's own
                inserted = _copy_direct(cur, stage, account_id, company_id, unique)
                live = live_in_batch(stage, unique)
                return MergeCounts(inserted=inserted, rows_in_table=inserted, live_rows=live)
            hashes = fingerprints(stage, unique)
            # the session's staging tables (core.scratch: created once per connection, emptied here)
            cur.execute(
                "select core.scratch(%s, '(bitrix_id text, source_hash uuid)'), core.scratch(%s, %s)",
                (stage.keys_table, stage.table, f"of {stage.type_name}"),
            )
            with cur.copy(
                f"copy pg_temp.{stage.keys_table} (bitrix_id, source_hash) from stdin (format binary)"
            ) as copy:
                copy.set_types(_wire_types(("text", "uuid")))
                for row, digest in zip(unique, hashes, strict=True):
                    copy.write_row((row.bitrix_id, digest))
            cur.execute(plan_sql, plan_args)
            wanted = {bitrix_id for (bitrix_id,) in cur.fetchall()}
            if wanted:
                send = [i for i, row in enumerate(unique) if row.bitrix_id in wanted]
                columns = ", ".join(("ord", *stage.columns, "source_hash"))
                with cur.copy(f"copy pg_temp.{stage.table} ({columns}) from stdin (format binary)") as copy:
                    copy.set_types(_wire_types(stage.pg_types))
                    for row in _copy_rows(stage, [unique[i] for i in send], [hashes[i] for i in send]):
                        copy.write_row(row)
            cur.execute(staged_sql, plan_args)
            inserted, updated, unchanged, removed, in_table, live = one_row(cur, stage.staged_function)
        return MergeCounts(
            inserted=inserted,
            updated=updated,
            unchanged=unchanged,
            removed=removed,
            rows_in_table=in_table,
            live_rows=live,
        )

    def merge_departments(
        self,
        account_id: str,
        rows: Sequence[DepartmentRow],
        *,
        full: bool,
        keep_ids: Collection[str] = (),
        guard: RemovalGuard | None = None,
    ) -> MergeCounts:
        (row,) = self._call(
            "select * from core.merge_departments(%s::uuid, %s, %s, %s::text[], %s)",
            (
                account_id,
                Jsonb([row.merge_json(i) for i, row in enumerate(merge_batch(rows, keep_ids))]),
                full,
                sorted(keep_ids) if full and keep_ids else None,
                Jsonb(guard_json(guard)),
            ),
        )
        return MergeCounts.model_validate(row)

    def link_employee_departments(self, account_id: str) -> int:
        return int(self._scalar("select core.link_employee_departments(%s::uuid)", (account_id,)))

    def mark_deleted(self, account_id: str, entity: DeletableEntity, bitrix_ids: Sequence[str]) -> int:
        return int(
            self._scalar(
                "select core.mark_deleted(%s::uuid, %s, %s::text[])",
                (account_id, entity, [str(i) for i in bitrix_ids]),
            )
        )

    # ---- sync logs -------------------------------------------------------------------------------------
    def get_cursor(self, account_id: str, entity: str) -> dict[str, Any] | None:
        return self._scalar("select core.get_cursor(%s::uuid, %s)", (account_id, entity))

    def start_sync(self, account_id: str, entity: str, run_id: str | None = None) -> str:
        return str(self._scalar("select core.start_sync(%s::uuid, %s, %s)", (account_id, entity, run_id)))

    def finish_sync(
        self,
        sync_id: str,
        *,
        status: SyncStatus,
        records_fetched: int | None = None,
        counts: MergeCounts | None = None,
        cursor: dict[str, Any] | None = None,
        error: str | None = None,
        rejected: dict[str, int] | None = None,
    ) -> None:
        c = counts or MergeCounts()
        figures = (c.inserted, c.updated, c.unchanged, c.removed) if counts else (None,) * 4
        self._call(
            "select core.finish_sync(%s::uuid, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                sync_id,
                status,
                records_fetched,
                *figures,
                Jsonb(cursor) if cursor is not None else None,
                redact_text(error) if error else None,
                Jsonb(rejected) if rejected else None,
            ),
        )

    def recent_syncs(self, account_id: str, entity: str | None = None, limit: int = 20) -> list[SyncLog]:
        rows = self._call("select * from core.recent_syncs(%s::uuid, %s, %s)", (account_id, entity, limit))
        return [SyncLog.model_validate(r) for r in rows]

    def company_names(self) -> dict[str, str]:
        return {str(r["id"]): r["name"] for r in self._call("select * from core.company_names()")}

    def latest_syncs(self, account_id: str) -> list[SyncLog]:
        rows = self._call("select * from core.latest_syncs(%s::uuid)", (account_id,))
        return [SyncLog.model_validate(r) for r in rows]

    def abandon_syncs(self, run_id: str, message: str) -> int:
        return int(self._scalar("select core.abandon_syncs(%s, %s)", (run_id, redact_text(message))))

    def stale_syncs(self, older_than_seconds: int, limit: int = 500) -> list[SyncLog]:
        rows = self._call("select * from core.stale_syncs(%s, %s)", (older_than_seconds, limit))
        return [SyncLog.model_validate(r) for r in rows]

    # ---- inbox -----------------------------------------------------------------------------------------
    def put_event(self, account_id: str, event: str, payload: dict[str, Any], dedupe_key: str) -> bool:
        return bool(
            self._scalar(
                "select core.put_event(%s::uuid, %s, %s, %s)", (account_id, event, Jsonb(payload), dedupe_key)
            )
        )

    def pending_events(self, limit: int = 100) -> list[InboxEvent]:
        return [
            InboxEvent.model_validate(r)
            for r in self._call("select * from core.pending_events(%s)", (limit,))
        ]

    def mark_events_processed(self, ids: Sequence[str]) -> int:
        return int(self._scalar("select core.mark_events_processed(%s::uuid[])", (list(ids),)))

    # ---- health ----------------------------------------------------------------------------------------
    def unresolved_task_people(
        self, account_id: str, non_employee_ids: Sequence[str] = ()
    ) -> UnresolvedPeople:
        (row,) = self._call(
            "select * from core.unresolved_task_people(%s::uuid, %s::text[])",
            (account_id, [str(i) for i in non_employee_ids]),
        )
        return UnresolvedPeople.model_validate(row)

    def duplicate_bitrix_ids(self, account_id: str, entity: Entity) -> int:
        return int(self._scalar("select core.duplicate_bitrix_ids(%s::uuid, %s)", (account_id, entity)))

    def count_active_employees(self, account_id: str) -> int:
        return int(self._scalar("select core.count_active_employees(%s::uuid)", (account_id,)))

    def department_problems(self, account_id: str) -> dict[str, int]:
        return dict(self._call("select * from core.department_problems(%s::uuid)", (account_id,))[0])

    # ---- catalogue and retention -------------------------------------------------------------------------
    def table_columns(self, table: str) -> list[tuple[str, str]]:
        rows = self._call("select * from core.table_columns(%s)", (table,))
        return [(r["column_name"], r["data_type"]) for r in rows]

    def purge_personal_data(self, events_days: int, sync_logs_days: int) -> dict[str, int]:
        rows = self._call("select * from core.purge_personal_data(%s, %s)", (events_days, sync_logs_days))
        return dict(rows[0])

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False


def _named(args: dict[str, Any]) -> str:
    """``p_x => %(p_x)s, ...`` for a function call with named arguments (typed where SQL cannot
    tell: NULL, arrays)."""
    casts = {
        "p_account": "::uuid",
        "p_keep": "::text[]",
        "p_from": "::timestamptz",
        "p_to": "::timestamptz",
        "p_owners": "::jsonb",
        "p_guard": "::jsonb",
    }
    return ", ".join(f"{name} => %({name})s{casts.get(name, '')}" for name in args)


# Binary COPY of uuid and jsonb fields given as bytes already in the wire format: in a binary
# COPY the server decodes every field with its column's own type, psycopg only encodes, so a
# 16-byte uuid or a jsonb value (version byte 1 + JSON text, encoded once by orjson) typed
# ``bytea`` is sent as it is by psycopg's C bytes dumper: no uuid.UUID object, no Python dumper
# call and no wrapper object per field (four per task row; 12% of a first load's client CPU).
_JSONB_VERSION = b"\x01"


def _wire_types(pg_types: Sequence[str]) -> tuple[str, ...]:
    """COPY types for psycopg: uuid and jsonb fields are given as wire-format bytes (see above)."""
    return tuple("bytea" if t in ("uuid", "jsonb") else t for t in pg_types)


def _copy_rows(stage: Stage, rows: Sequence[Any], hashes: Sequence[bytes]) -> Iterator[tuple[Any, ...]]:
    """Tuples in COPY column order (``ord``, the stage columns, ``source_hash``). JSON columns are
    encoded by orjson (several times faster than json.dumps, which would otherwise dominate a
    100k-row merge). ``ord`` only orders duplicates, which ``last_wins`` already removed."""
    positions = [i for i, c in enumerate(stage.columns) if c in stage.json_columns]
    dumps = orjson.dumps
    for ord_, (row, digest) in enumerate(zip(rows, hashes, strict=True)):
        values = list(stage.values(row))
        for i in positions:
            values[i] = _JSONB_VERSION + dumps(values[i])
        yield (ord_, *values, digest)


# ---- first load: straight into the table ---------------------------------------------------------
# An account with no stored rows has nothing to compare, remove or link (begin_merge checks that
# under the merge lock), so its rows are COPYed into the table itself: ids and people are resolved
# here, and the server's ingest overlaps with building the next rows (psycopg sends the COPY in
# ~32 kB pieces as rows are written). The rows are the ones merge_*_staged would insert
# (tests/core/test_fingerprints.py compares both paths).
_PEOPLE = {
    "tasks": (("responsible_bitrix_id", "responsible_id"), ("created_by_bitrix_id", "created_by_id")),
    "calendar_events": (("owner_bitrix_id", "owner_id"), ("created_by_bitrix_id", "created_by_id")),
}


def _row_ids(account: UUID) -> Callable[[str], bytes]:
    """``core.row_id(account, ·)`` computed here: a canonical numeric Bitrix id (no sign, no
    leading zero, below 10^18) gives md5(account)[:8] + the id as 8 big-endian bytes, so an
    account's rows are ordered by Bitrix id in the primary key; anything else md5(account/id)."""
    text = str(account)
    head = hashlib.md5(text.encode()).digest()[:8]
    prefix = f"{text}/".encode()
    md5, from_int = hashlib.md5, int.to_bytes

    def make_id(bitrix_id: str) -> bytes:
        if (
            bitrix_id.isdigit()
            and bitrix_id.isascii()
            and len(bitrix_id) <= 18
            and (bitrix_id[0] != "0" or bitrix_id == "0")
        ):
            return head + from_int(int(bitrix_id), 8, "big")
        return md5(prefix + bitrix_id.encode()).digest()

    return make_id


def _copy_direct(
    cur: psycopg.Cursor[Any],
    stage: Stage,
    account_id: str,
    company_id: UUID,
    rows: Sequence[Any],
) -> int:
    account = UUID(str(account_id))
    if stage.entity == "employees":
        return _copy_employees(cur, account, company_id, rows)
    people_cols = _PEOPLE[stage.entity]
    people = {
        bitrix_id: uid.bytes
        for bitrix_id, uid in cur.execute("select * from core.account_people(%s)", (account,)).fetchall()
    }
    # the hot loop of a first load (~5 µs/row of Python CPU before this shape): one attrgetter per
    # row (the fingerprint's input, = staging.fingerprint), metadata (the one JSON column, last)
    # and the people looked up apart, and one tuple per row, no intermediate list
    *plain, json_column = stage.columns
    assert stage.json_columns == {json_column}, stage.entity
    (responsible_col, responsible_id), (creator_col, creator_id) = people_cols
    columns = (
        *("id", "company_id", "integration_account_id"),
        *plain,
        *(responsible_id, creator_id, "source_hash", json_column),
    )
    types = _wire_types(("uuid", "uuid", "uuid", *stage.pg_types[1:-2], "uuid", "uuid", "uuid", "jsonb"))
    read, last = stage.values, len(plain)
    responsible_at, creator_at = plain.index(responsible_col), plain.index(creator_col)
    company, account_b = company_id.bytes, account.bytes
    make_id, dumps, get_person = _row_ids(account), orjson.dumps, people.get
    jsonb, digest, sort = _JSONB_VERSION, fingerprint_digest, FINGERPRINT_OPTION
    with cur.copy(f"copy core.{stage.entity} ({', '.join(columns)}) from stdin (format binary)") as copy:
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            values = read(row)
            write(
                (
                    make_id(values[0]),
                    company,
                    account_b,
                    *values[:last],
                    get_person(values[responsible_at]),
                    get_person(values[creator_at]),
                    digest(dumps(values, option=sort)),
                    jsonb + dumps(values[last]),
                )
            )
    return len(rows)


def _copy_employees(cur: psycopg.Cursor[Any], account: UUID, company_id: UUID, rows: Sequence[Any]) -> int:
    """Employees as merge_employees_staged inserts them: metadata gets the Bitrix link keys."""
    columns = (
        "id",
        "company_id",
        "email",
        "full_name",
        "first_name",
        "last_name",
        "position",
        "phone",
        "is_active",
        "metadata",
        "source_hash",
    )
    types = _wire_types(
        ("uuid", "uuid", "text", "text", "text", "text", "text", "text", "bool", "jsonb", "uuid")
    )
    company, account_s, dumps = company_id.bytes, str(account), orjson.dumps
    read, digest, sort = EMPLOYEES.values, fingerprint_digest, FINGERPRINT_OPTION
    jsonb = _JSONB_VERSION
    with cur.copy(f"copy core.employees ({', '.join(columns)}) from stdin (format binary)") as copy:
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            values = read(row)  # the fingerprint's input (= staging.fingerprint), read once
            bitrix_id, *plain, is_active, departments, metadata = values
            link = {
                **metadata,
                "bitrix_id": bitrix_id,
                "integration_account_id": account_s,
                "bitrix_departments": departments,
                "bitrix_active": is_active,
            }
            write(
                (
                    uuid4().bytes,  # what gen_random_uuid() gives, at a tenth of its cost
                    company,
                    *plain,  # email, full_name, first_name, last_name, position, phone
                    is_active,
                    jsonb + dumps(link),
                    digest(dumps(values, option=sort)),
                )
            )
    return len(rows)
