"""The CoreStore interface: everything the layers above need from Core, backend-agnostic.

Two implementations run the same SQL functions (shipped by the migrations):
:class:`~bitrix24_assets.core.postgres.PostgresStore` (psycopg, COPY + one merge call) and
:class:`~bitrix24_assets.core.supabase.SupabaseStore` (supabase-py, RPC with JSON rows).
All methods raise :class:`~bitrix24_assets.core.errors.CoreError` subclasses only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from itertools import groupby
from typing import Any, Literal

from .models import InboxEvent, IntegrationAccount, MergeCounts, RemovalGuard, SyncLog, UnresolvedPeople
from .rows import CalendarEventRow, DepartmentRow, EmployeeRow, TaskRow

__all__ = ["CoreStore", "DeletableEntity", "Entity", "Owners", "SyncStatus", "group_by_portal"]

Entity = Literal["employees", "tasks", "calendar_events", "departments"]
DeletableEntity = Literal["tasks", "calendar_events"]
SyncStatus = Literal["running", "success", "failed", "skipped", "abandoned"]
Owners = Collection[tuple[str, str]]
"""Calendars a read covered: ``(calendar_type, owner id)``, "0" for the company calendar."""


class CoreStore(ABC):
    """Core, as the sync sees it. Use as a context manager or call :meth:`close`."""

    # ---- schema ----------------------------------------------------------------------------------
    @abstractmethod
    def migrate(self) -> list[str]:
        """Apply pending migrations; return what was done (empty when up to date)."""

    # ---- accounts ----------------------------------------------------------------------------------
    @abstractmethod
    def list_accounts(
        self, provider: str | None = "bitrix24", active_only: bool = False
    ) -> list[IntegrationAccount]:
        """Integration accounts with their credentials (secret), oldest first."""

    @abstractmethod
    def get_account(self, account_id: str) -> IntegrationAccount:
        """One account; raises AccountNotFoundError if it does not exist."""

    @abstractmethod
    def set_account_status(self, account_id: str, status: str, message: str | None = None) -> None:
        """Record an account's health ("active", "error", ...) with a one-sentence message."""

    @abstractmethod
    def create_company(self, name: str) -> str:
        """Id of the company with this name, created if absent."""

    def add_account(
        self,
        company_id: str,
        name: str,
        credentials: dict[str, Any],
        settings: dict[str, Any] | None = None,
        provider: str = "bitrix24",
    ) -> IntegrationAccount:
        """Register a portal for a company; the company's account of that portal if it has one
        (updated as :meth:`upsert_account` says). One portal never gets two accounts in a company."""
        return self.upsert_account(company_id, name, credentials, settings, provider)[0]

    @abstractmethod
    def upsert_account(
        self,
        company_id: str,
        name: str,
        credentials: dict[str, Any],
        settings: dict[str, Any] | None = None,
        provider: str = "bitrix24",
    ) -> tuple[IntegrationAccount, bool]:
        """Add a portal, or update the company's account of that portal: the name is replaced,
        credentials and settings are merged, the status is kept. Returns (account, created).

        A portal is the webhook's host and user id, or an OAuth account's member_id (else domain);
        see migration 0006."""

    @abstractmethod
    def find_account(
        self, company_id: str, credentials: dict[str, Any], provider: str = "bitrix24"
    ) -> IntegrationAccount | None:
        """The company's account of the portal these credentials reach, or None."""

    @abstractmethod
    def update_account(
        self,
        account_id: str,
        *,
        name: str | None = None,
        credentials: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> IntegrationAccount:
        """Rename an account and/or merge credentials and settings into it; CoreDataError when the
        new credentials name a portal another account of the company has."""

    def disable_account(self, account_id: str, message: str | None = None) -> None:
        """Stop syncing an account; its rows stay in Core."""
        self.set_account_status(account_id, "disabled", message)

    def enable_account(self, account_id: str) -> None:
        """Sync an account again (status active, message cleared)."""
        self.set_account_status(account_id, "active", None)

    @abstractmethod
    def account_rows(self, account_id: str) -> dict[str, int]:
        """Rows the account has in Core: ``tasks``, ``calendar_events``, ``integration_sync_logs``,
        ``integration_events`` (all deleted with it) and ``employees`` (linked; kept)."""

    @abstractmethod
    def remove_account(self, account_id: str) -> dict[str, int]:
        """Delete an account. Its tasks and calendar events (trigger), sync logs and inbox events
        (foreign keys) go with it; its employees stay, still naming it in their metadata. Returns
        :meth:`account_rows` as they were."""

    @abstractmethod
    def duplicate_accounts(self, company_id: str | None = None) -> list[list[IntegrationAccount]]:
        """Groups of accounts of one company that share a portal (oldest first); empty when none."""

    @abstractmethod
    def update_credentials(self, account_id: str, credentials: dict[str, Any]) -> None:
        """Merge new credential fields into the account (e.g. refreshed OAuth tokens)."""

    # ---- merges ------------------------------------------------------------------------------------
    @abstractmethod
    def merge_employees(
        self,
        account_id: str,
        rows: Sequence[EmployeeRow],
        *,
        full: bool,
        keep_ids: Collection[str] = (),
        guard: RemovalGuard | None = None,
    ) -> MergeCounts:
        """Merge users of one account; with ``full`` the absent ones become inactive.

        ``keep_ids``: users read but rejected by the mapper: never deactivated, never changed (a
        row of the batch with such an id is left out). ``guard`` (default :class:`RemovalGuard`)
        refuses a full merge that would deactivate too many: :class:`MassRemovalError`, nothing
        changed.
        """

    @abstractmethod
    def merge_tasks(
        self,
        account_id: str,
        rows: Sequence[TaskRow],
        *,
        full: bool,
        keep_ids: Collection[str] = (),
        guard: RemovalGuard | None = None,
    ) -> MergeCounts:
        """Merge tasks of one account; with ``full`` the absent ones are marked deleted
        (``keep_ids`` and ``guard`` as in :meth:`merge_employees`)."""

    @abstractmethod
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
        """Merge calendar events; with ``full`` the absent ones the read covered are marked deleted:
        those overlapping ``window`` and, when ``owners`` is given, of those calendars only (a
        calendar that was not read says nothing about its events). ``keep_ids`` and ``guard`` as in
        :meth:`merge_employees`; the guard counts the live events the read covered."""

    @abstractmethod
    def merge_departments(
        self,
        account_id: str,
        rows: Sequence[DepartmentRow],
        *,
        full: bool,
        keep_ids: Collection[str] = (),
        guard: RemovalGuard | None = None,
    ) -> MergeCounts:
        """Merge departments of one account (one transaction); with ``full`` the absent ones are
        marked deleted (``keep_ids`` and ``guard`` as in :meth:`merge_employees`). Parents and heads
        are resolved and the employees' memberships (``core.employee_departments``) relinked."""

    @abstractmethod
    def link_employee_departments(self, account_id: str) -> int:
        """Bring ``core.employee_departments`` of the account in line with its employees' Bitrix24
        department lists; the pipeline's employees sync runs it after every employees merge (a bare
        :meth:`merge_employees` does not). Returns memberships added + removed."""

    @abstractmethod
    def mark_deleted(self, account_id: str, entity: DeletableEntity, bitrix_ids: Sequence[str]) -> int:
        """Mark rows deleted (e.g. from an ONTASKDELETE event); returns how many changed."""

    # ---- sync logs and cursors -----------------------------------------------------------------------
    @abstractmethod
    def get_cursor(self, account_id: str, entity: str) -> dict[str, Any] | None:
        """Cursor of the last successful sync of this entity, or None before the first one."""

    @abstractmethod
    def start_sync(self, account_id: str, entity: str, run_id: str | None = None) -> str:
        """Open a sync-log row (status running); returns its id."""

    @abstractmethod
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
        """Close a sync-log row. ``error`` is redacted before it is stored; ``rejected`` holds the
        records read but not merged, by reason (rejected by a mapper, dropped by the client)."""

    @abstractmethod
    def recent_syncs(self, account_id: str, entity: str | None = None, limit: int = 20) -> list[SyncLog]:
        """Latest sync-log rows of an account, newest first."""

    @abstractmethod
    def company_names(self) -> dict[str, str]:
        """Names of the companies that have integration accounts, by company id."""

    @abstractmethod
    def latest_syncs(self, account_id: str) -> list[SyncLog]:
        """The latest sync-log row of each entity of an account (whatever its status), by entity."""

    @abstractmethod
    def abandon_syncs(self, run_id: str, message: str) -> int:
        """Close the run's sync-log rows that are still ``running`` as ``abandoned`` with ``message``
        (redacted): the run stopped before its steps could close them. Idempotent; how many."""

    @abstractmethod
    def stale_syncs(self, older_than_seconds: int, limit: int = 500) -> list[SyncLog]:
        """Rows still ``running``, with a run id, started over ``older_than_seconds`` ago; oldest first."""

    # ---- inbox ---------------------------------------------------------------------------------------
    @abstractmethod
    def put_event(self, account_id: str, event: str, payload: dict[str, Any], dedupe_key: str) -> bool:
        """Store an outgoing event; False if one with this dedupe key is already there."""

    @abstractmethod
    def pending_events(self, limit: int = 100) -> list[InboxEvent]:
        """Unprocessed events, oldest first."""

    @abstractmethod
    def mark_events_processed(self, ids: Sequence[str]) -> int:
        """Mark events processed; returns how many were pending."""

    # ---- health figures for asset checks ---------------------------------------------------------------
    @abstractmethod
    def unresolved_task_people(
        self, account_id: str, non_employee_ids: Sequence[str] = ()
    ) -> UnresolvedPeople:
        """Live tasks whose responsible or creator is not (yet) a known employee, split into those
        with someone unknown and those whose people are all in ``non_employee_ids`` (e.g. extranet
        users)."""

    @abstractmethod
    def duplicate_bitrix_ids(self, account_id: str, entity: Entity) -> int:
        """Bitrix ids stored more than once for this account (should be 0)."""

    @abstractmethod
    def count_active_employees(self, account_id: str) -> int:
        """Active employees linked to this account."""

    @abstractmethod
    def department_problems(self, account_id: str) -> dict[str, int]:
        """Live departments of the account whose parent is not a live department (``orphans``) and
        whose head is not one of its employees (``heads_not_employees``)."""

    # ---- catalogue and retention -----------------------------------------------------------------------
    @abstractmethod
    def table_columns(self, table: str) -> list[tuple[str, str]]:
        """(column, type) of a Core table (``"core.tasks"``) as the catalogue has it, e.g.
        ``("deadline", "timestamptz")``, in table order."""

    @abstractmethod
    def purge_personal_data(self, events_days: int, sync_logs_days: int) -> dict[str, int]:
        """Delete processed inbox events older than ``events_days`` and sync logs older than
        ``sync_logs_days`` (never an account+entity's latest successful row: it holds the cursor).
        Returns rows deleted by table: ``integration_events``, ``integration_sync_logs``."""

    # ---- lifecycle -------------------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> CoreStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def group_by_portal(rows: Iterable[dict[str, Any]]) -> list[list[IntegrationAccount]]:
    """Rows of ``core.duplicate_accounts`` (ordered by company, provider, portal) as groups."""
    return [
        [IntegrationAccount.model_validate(r) for r in group]
        for _, group in groupby(rows, key=lambda r: (str(r["company_id"]), r["provider"], r["portal_key"]))
    ]
