"""Postgres backend: psycopg 3 with a connection pool; merges are COPY + one SQL function call.

Each merge is one transaction: create ``pg_temp.stage_*`` (ON COMMIT DROP), COPY the batch into
it, call ``core.merge_*_staged``, commit. The merge functions are the ones the Supabase backend
calls through RPC, so both backends behave the same.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from .errors import translate_errors
from .migrator import apply_migrations
from .models import InboxEvent, IntegrationAccount, MergeCounts, SyncLog
from .rows import CalendarEventRow, EmployeeRow, TaskRow
from .secrets import redact_dsn, redact_text
from .staging import EMPLOYEES, EVENTS, TASKS, Stage, last_wins
from .store import CoreStore, DeletableEntity, Entity, SyncStatus

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
            # no server-side prepared statements: they break behind transaction poolers (Supavisor)
            kwargs={"prepare_threshold": None, "connect_timeout": max(1, int(timeout))},
            name="bitrix24-core",
        )
        self._opened = False

    def __repr__(self) -> str:
        return f"PostgresStore({self.target!r})"

    # ---- plumbing ----------------------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        """A pooled connection inside one transaction (committed on success), errors translated."""
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

    def add_account(
        self,
        company_id: str,
        name: str,
        credentials: dict[str, Any],
        settings: dict[str, Any] | None = None,
        provider: str = "bitrix24",
    ) -> IntegrationAccount:
        account_id = self._scalar(
            "select core.add_account(%s::uuid, %s, %s, %s, %s)",
            (company_id, name, provider, Jsonb(credentials), Jsonb(settings or {})),
        )
        return self.get_account(str(account_id))

    def update_credentials(self, account_id: str, credentials: dict[str, Any]) -> None:
        self._call("select core.set_account_credentials(%s::uuid, %s)", (account_id, Jsonb(credentials)))

    # ---- merges --------------------------------------------------------------------------------------
    def merge_employees(self, account_id: str, rows: Sequence[EmployeeRow], *, full: bool) -> MergeCounts:
        return self._merge(EMPLOYEES, account_id, rows, [full])

    def merge_tasks(self, account_id: str, rows: Sequence[TaskRow], *, full: bool) -> MergeCounts:
        return self._merge(TASKS, account_id, rows, [full])

    def merge_events(
        self,
        account_id: str,
        rows: Sequence[CalendarEventRow],
        *,
        full: bool,
        window: tuple[datetime, datetime] | None = None,
    ) -> MergeCounts:
        start, end = window if window else (None, None)
        return self._merge(EVENTS, account_id, rows, [full, start, end])

    def _merge(self, stage: Stage, account_id: str, rows: Sequence[Any], args: list[Any]) -> MergeCounts:
        placeholders = ", ".join(["%s::uuid", *["%s"] * len(args)])
        with self._conn() as conn:
            conn.execute(f"create temp table {stage.table} of {stage.type_name} on commit drop")
            with conn.cursor() as cur:
                columns = ", ".join(("ord", *stage.columns))
                with cur.copy(f"copy pg_temp.{stage.table} ({columns}) from stdin (format binary)") as copy:
                    cur.adapters.register_dumper(_JsonbBytes, _JsonbBytesDumper)
                    copy.set_types(stage.pg_types)
                    for row in _copy_rows(stage, last_wins(rows)):
                        copy.write_row(row)
                cur.execute(f"select * from {stage.staged_function}({placeholders})", [account_id, *args])
                inserted, updated, unchanged, removed = cur.fetchone()  # type: ignore[misc]
        return MergeCounts(inserted=inserted, updated=updated, unchanged=unchanged, removed=removed)

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
    ) -> None:
        c = counts or MergeCounts()
        figures = (c.inserted, c.updated, c.unchanged, c.removed) if counts else (None,) * 4
        self._call(
            "select core.finish_sync(%s::uuid, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                sync_id,
                status,
                records_fetched,
                *figures,
                Jsonb(cursor) if cursor is not None else None,
                redact_text(error) if error else None,
            ),
        )

    def recent_syncs(self, account_id: str, entity: str | None = None, limit: int = 20) -> list[SyncLog]:
        rows = self._call("select * from core.recent_syncs(%s::uuid, %s, %s)", (account_id, entity, limit))
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
    def unresolved_task_people(self, account_id: str) -> int:
        return int(self._scalar("select core.unresolved_task_people(%s::uuid)", (account_id,)))

    def duplicate_bitrix_ids(self, account_id: str, entity: Entity) -> int:
        return int(self._scalar("select core.duplicate_bitrix_ids(%s::uuid, %s)", (account_id, entity)))

    def count_active_employees(self, account_id: str) -> int:
        return int(self._scalar("select core.count_active_employees(%s::uuid)", (account_id,)))

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False


class _JsonbBytes(bytes):
    """Already-encoded JSON, dumped as binary jsonb (version byte + text) without re-encoding."""


class _JsonbBytesDumper(Dumper):
    """Registered on the COPY cursor only, so it replaces the jsonb dumper just there."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj


def _copy_rows(stage: Stage, rows: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """Tuples in COPY column order. JSON columns are encoded by orjson (several times faster than
    json.dumps, which would otherwise dominate a 100k-row merge)."""
    get = operator.attrgetter(*stage.columns)
    positions = [i for i, c in enumerate(stage.columns) if c in stage.json_columns]
    dumps = orjson.dumps
    if positions == [len(stage.columns) - 1]:  # the common case: metadata is the last column
        head = operator.attrgetter(*stage.columns[:-1])
        last = stage.columns[-1]
        for ord_, row in enumerate(rows):
            yield (ord_, *head(row), _JsonbBytes(dumps(getattr(row, last))))
        return
    for ord_, row in enumerate(rows):
        values = list(get(row))
        for i in positions:
            values[i] = _JsonbBytes(dumps(values[i]))
        yield (ord_, *values)
