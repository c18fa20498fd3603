"""Supabase backend: supabase-py (PostgREST) with the service-role key, schema ``core``.

Every operation is an RPC of the same SQL functions the Postgres backend calls (shipped by the
migrations), so both backends merge identically. Bulk rows go as JSON arrays in chunks of
``chunk_rows`` (PostgREST and the Supabase gateway limit request size; one chunk = one
transaction). With ``full=True`` and several chunks, the removal is checked first (the
mass-removal guard, as a dry run), each chunk merges with ``p_full=false`` and one last call removes
what no chunk carried (the guard checked again), so an interrupted batch never removes rows and a
tripped guard changes nothing.

Transient failures (network errors, gateway 5xx, PostgREST pool errors) are retried with
exponential backoff by tenacity; everything else becomes a one-sentence CoreError.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import httpx
from supabase import Client, ClientOptions, create_client
from tenacity import Retrying as _Retrying
from tenacity import retry_if_exception, stop_after_attempt, wait_exponential

from .errors import CoreConfigurationError, is_transient_api_error, translate_errors
from .models import InboxEvent, IntegrationAccount, MergeCounts, RemovalGuard, SyncLog, UnresolvedPeople
from .rows import CalendarEventRow, DepartmentRow, EmployeeRow, TaskRow
from .secrets import redact_text
from .staging import EMPLOYEES, EVENTS, TASKS, Stage, guard_json, json_rows, merge_batch, owners_json
from .store import CoreStore, DeletableEntity, Entity, Owners, SyncStatus, group_by_portal

__all__ = ["SupabaseStore"]


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError) or is_transient_api_error(exc)


class SupabaseStore(CoreStore):
    """CoreStore over Supabase's REST API.

    Args:
        url: ``https://<project>.supabase.co``.
        service_role_key: the project's service_role key (bypasses RLS; never printed).
        chunk_rows: rows per merge RPC call.
        http_client: an ``httpx.Client`` to use (tests inject a transport); default: supabase-py's own.
        database_url: direct Postgres URL of the same project, only needed for :meth:`migrate`.
        attempts: tries per call for transient errors.
    """

    def __init__(
        self,
        url: str,
        service_role_key: str,
        *,
        chunk_rows: int = 5000,
        http_client: httpx.Client | None = None,
        database_url: str | None = None,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.target = url.rstrip("/")
        self._chunk_rows = max(1, chunk_rows)
        self._database_url = database_url
        self._retry = _Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=backoff_seconds, max=10),
            reraise=True,
        )
        options = ClientOptions(schema="core", postgrest_client_retry=False, httpx_client=http_client)
        with translate_errors(self.target):
            self._client: Client = create_client(url, service_role_key, options=options)

    def __repr__(self) -> str:
        return f"SupabaseStore({self.target!r})"

    # ---- plumbing ----------------------------------------------------------------------------------
    def _rpc(self, function: str, params: dict[str, Any]) -> Any:
        def call() -> Any:
            return self._client.rpc(function, params).execute().data

        with translate_errors(self.target):
            return self._retry(call)

    def _first(self, function: str, params: dict[str, Any]) -> Any:
        data = self._rpc(function, params)
        return data[0] if isinstance(data, list) else data

    # ---- schema --------------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """DDL cannot go through PostgREST: migrate over the project's direct database URL."""
        if not self._database_url:
            raise CoreConfigurationError(
                f"Supabase at {self.target} cannot be migrated over its REST API",
                hint="set CORE_DATABASE_URL to the project's database connection string and run "
                "`bitrix24-core migrate`, then reload the schema cache (NOTIFY pgrst, 'reload schema')",
            )
        from .postgres import PostgresStore

        with PostgresStore(self._database_url, max_size=1) as store:
            return store.migrate()

    # ---- accounts ------------------------------------------------------------------------------------
    def list_accounts(
        self, provider: str | None = "bitrix24", active_only: bool = False
    ) -> list[IntegrationAccount]:
        data = self._rpc("list_accounts", {"p_provider": provider, "p_active_only": active_only})
        return [IntegrationAccount.model_validate(r) for r in data]

    def get_account(self, account_id: str) -> IntegrationAccount:
        data = self._rpc("get_account", {"p_account": account_id})
        if not data:
            self._rpc("account_company", {"p_account": account_id})  # raises AccountNotFoundError
        return IntegrationAccount.model_validate(data[0])

    def set_account_status(self, account_id: str, status: str, message: str | None = None) -> None:
        self._rpc(
            "set_account_status",
            {
                "p_account": account_id,
                "p_status": status,
                "p_message": redact_text(message) if message else None,
            },
        )

    def create_company(self, name: str) -> str:
        return str(self._rpc("ensure_company", {"p_name": name}))

    def upsert_account(
        self,
        company_id: str,
        name: str,
        credentials: dict[str, Any],
        settings: dict[str, Any] | None = None,
        provider: str = "bitrix24",
    ) -> tuple[IntegrationAccount, bool]:
        row = self._first(
            "upsert_account",
            {
                "p_company": company_id,
                "p_name": name,
                "p_provider": provider,
                "p_credentials": credentials,
                "p_settings": settings or {},
            },
        )
        return self.get_account(str(row["account_id"])), bool(row["created"])

    def find_account(
        self, company_id: str, credentials: dict[str, Any], provider: str = "bitrix24"
    ) -> IntegrationAccount | None:
        data = self._rpc(
            "find_account", {"p_company": company_id, "p_provider": provider, "p_credentials": credentials}
        )
        return IntegrationAccount.model_validate(data[0]) if data else None

    def update_account(
        self,
        account_id: str,
        *,
        name: str | None = None,
        credentials: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> IntegrationAccount:
        self._rpc(
            "update_account",
            {"p_account": account_id, "p_name": name, "p_credentials": credentials, "p_settings": settings},
        )
        return self.get_account(account_id)

    def account_rows(self, account_id: str) -> dict[str, int]:
        return dict(self._first("account_rows", {"p_account": account_id}))

    def remove_account(self, account_id: str) -> dict[str, int]:
        return dict(self._first("remove_account", {"p_account": account_id}))

    def duplicate_accounts(self, company_id: str | None = None) -> list[list[IntegrationAccount]]:
        return group_by_portal(self._rpc("duplicate_accounts", {"p_company": company_id}))

    def update_credentials(self, account_id: str, credentials: dict[str, Any]) -> None:
        self._rpc("set_account_credentials", {"p_account": account_id, "p_credentials": credentials})

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
        scope: dict[str, Any] = {}
        if window:
            scope.update(p_from=window[0].isoformat(), p_to=window[1].isoformat())
        if owners is not None:
            scope["p_owners"] = owners_json(owners)
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
        """One RPC per chunk. A full merge of one chunk is one transaction (plan, guard, merge,
        removal). A full merge of several: the removal is checked first (``remove_missing`` as a dry
        run, so a tripped guard leaves Core untouched), the chunks merge as incremental ones, and
        ``remove_missing`` removes what no chunk carried, checking the guard again."""
        unique = merge_batch(rows, keep_ids)
        size = self._chunk_rows
        chunks = [unique[i : i + size] for i in range(0, len(unique), size)] or [[]]
        single = len(chunks) == 1
        keep = sorted(keep_ids) if full and keep_ids else None
        removal: dict[str, Any] = {}
        if full and not single:
            removal = {
                "p_account": account_id,
                "p_entity": stage.entity,
                "p_keep": [r.bitrix_id for r in unique] + (keep or []),
                **scope,
                "p_guard": guard_json(guard),
            }
            self._first("remove_missing", {**removal, "p_dry_run": True})
        total = MergeCounts()
        for n, chunk in enumerate(chunks):
            params: dict[str, Any] = {
                "p_account": account_id,
                "p_rows": json_rows(chunk, n * size),
                "p_full": full and single,
            }
            if full and single:
                params.update(scope, p_keep=keep, p_guard=guard_json(guard))
            if n < len(chunks) - 1 or removal:
                params["p_counts"] = False  # the table's figures come from the last call
            total = total + MergeCounts.model_validate(self._first(stage.rpc_function, params))
        if removal:
            after = self._first("remove_missing", removal)
            total = total + MergeCounts.model_validate(after)  # removed, rows_in_table, live_rows
        return total

    def merge_departments(
        self,
        account_id: str,
        rows: Sequence[DepartmentRow],
        *,
        full: bool,
        keep_ids: Collection[str] = (),
        guard: RemovalGuard | None = None,
    ) -> MergeCounts:
        """One RPC whatever ``chunk_rows`` says: a portal's departments are few (one JSON body of a
        few hundred kB at most), and one call is one transaction, so a full merge never removes
        anything from a batch it did not see whole."""
        params = {
            "p_account": account_id,
            "p_rows": [row.merge_json(i) for i, row in enumerate(merge_batch(rows, keep_ids))],
            "p_full": full,
            "p_keep": sorted(keep_ids) if full and keep_ids else None,
            "p_guard": guard_json(guard),
        }
        return MergeCounts.model_validate(self._first("merge_departments", params))

    def link_employee_departments(self, account_id: str) -> int:
        return int(self._rpc("link_employee_departments", {"p_account": account_id}))

    def mark_deleted(self, account_id: str, entity: DeletableEntity, bitrix_ids: Sequence[str]) -> int:
        return int(
            self._rpc(
                "mark_deleted",
                {"p_account": account_id, "p_entity": entity, "p_bitrix_ids": [str(i) for i in bitrix_ids]},
            )
        )

    # ---- sync logs -------------------------------------------------------------------------------------
    def get_cursor(self, account_id: str, entity: str) -> dict[str, Any] | None:
        return self._rpc("get_cursor", {"p_account": account_id, "p_entity": entity})

    def start_sync(self, account_id: str, entity: str, run_id: str | None = None) -> str:
        return str(self._rpc("start_sync", {"p_account": account_id, "p_entity": entity, "p_run_id": run_id}))

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
        figures: dict[str, int | None] = (
            {
                "p_inserted": counts.inserted,
                "p_updated": counts.updated,
                "p_unchanged": counts.unchanged,
                "p_removed": counts.removed,
            }
            if counts
            else {}
        )
        self._rpc(
            "finish_sync",
            {
                "p_sync": sync_id,
                "p_status": status,
                "p_records_fetched": records_fetched,
                **figures,
                "p_cursor": cursor,
                "p_error": redact_text(error) if error else None,
                "p_rejected": rejected or None,
            },
        )

    def recent_syncs(self, account_id: str, entity: str | None = None, limit: int = 20) -> list[SyncLog]:
        data = self._rpc("recent_syncs", {"p_account": account_id, "p_entity": entity, "p_limit": limit})
        return [SyncLog.model_validate(r) for r in data]

    def company_names(self) -> dict[str, str]:
        return {str(r["id"]): r["name"] for r in self._rpc("company_names", {}) or []}

    def latest_syncs(self, account_id: str) -> list[SyncLog]:
        return [SyncLog.model_validate(r) for r in self._rpc("latest_syncs", {"p_account": account_id})]

    def abandon_syncs(self, run_id: str, message: str) -> int:
        return int(self._rpc("abandon_syncs", {"p_run_id": run_id, "p_message": redact_text(message)}))

    def stale_syncs(self, older_than_seconds: int, limit: int = 500) -> list[SyncLog]:
        data = self._rpc("stale_syncs", {"p_older_than_seconds": older_than_seconds, "p_limit": limit})
        return [SyncLog.model_validate(r) for r in data]

    # ---- inbox -----------------------------------------------------------------------------------------
    def put_event(self, account_id: str, event: str, payload: dict[str, Any], dedupe_key: str) -> bool:
        return bool(
            self._rpc(
                "put_event",
                {"p_account": account_id, "p_event": event, "p_payload": payload, "p_dedupe_key": dedupe_key},
            )
        )

    def pending_events(self, limit: int = 100) -> list[InboxEvent]:
        return [InboxEvent.model_validate(r) for r in self._rpc("pending_events", {"p_limit": limit})]

    def mark_events_processed(self, ids: Sequence[str]) -> int:
        return int(self._rpc("mark_events_processed", {"p_ids": list(ids)}))

    # ---- health ----------------------------------------------------------------------------------------
    def unresolved_task_people(
        self, account_id: str, non_employee_ids: Sequence[str] = ()
    ) -> UnresolvedPeople:
        data = self._first(
            "unresolved_task_people",
            {"p_account": account_id, "p_non_employees": [str(i) for i in non_employee_ids]},
        )
        return UnresolvedPeople.model_validate(data)

    def duplicate_bitrix_ids(self, account_id: str, entity: Entity) -> int:
        return int(self._rpc("duplicate_bitrix_ids", {"p_account": account_id, "p_entity": entity}))

    def count_active_employees(self, account_id: str) -> int:
        return int(self._rpc("count_active_employees", {"p_account": account_id}))

    def department_problems(self, account_id: str) -> dict[str, int]:
        return dict(self._first("department_problems", {"p_account": account_id}))

    # ---- catalogue and retention -------------------------------------------------------------------------
    def table_columns(self, table: str) -> list[tuple[str, str]]:
        return [(r["column_name"], r["data_type"]) for r in self._rpc("table_columns", {"p_table": table})]

    def purge_personal_data(self, events_days: int, sync_logs_days: int) -> dict[str, int]:
        return dict(
            self._first(
                "purge_personal_data", {"p_events_days": events_days, "p_sync_logs_days": sync_logs_days}
            )
        )

    def close(self) -> None:
        with translate_errors(self.target):
            self._client.postgrest.aclose()
