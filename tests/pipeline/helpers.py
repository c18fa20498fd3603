"""Helpers for entity-sync tests: an EntitySync on the test Core, and Core vs portal comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core import CoreStore, IntegrationAccount
from bitrix24_assets.pipeline import Entity, EntitySync, RawStore
from bitrix24_assets.sandbox import SandboxHandle
from bitrix24_assets.sync.events import EventWindow

TIME_SCALE = 0.001


def account_for(
    store: CoreStore,
    webhook_url: str,
    *,
    company: str = "Acme",
    name: str = "Portal",
    settings: dict[str, Any] | None = None,
) -> str:
    return store.add_account(
        store.create_company(company), name, {"webhook_url": webhook_url}, settings=settings
    ).id


def entity_sync(store: CoreStore, tmp_path: Path, run_id: str = "test-run") -> EntitySync:
    """One "run": a client per account (built from Core's credentials), raw reads under tmp_path."""
    clients: dict[str, Bitrix24Client] = {}

    def client_for(account: IntegrationAccount) -> Bitrix24Client:
        if account.id not in clients:
            assert account.webhook_url
            clients[account.id] = Bitrix24Client(webhook_url=account.webhook_url, time_scale=TIME_SCALE)
        return clients[account.id]

    return EntitySync(store, client_for, RawStore(tmp_path / "raw"), run_id)


_KEY = {"employees": "metadata->>'bitrix_id'", "tasks": "bitrix_id", "calendar_events": "bitrix_id"}
_TABLE = {"employees": "core.employees", "tasks": "core.tasks", "calendar_events": "core.calendar_events"}
_ACCOUNT = {
    "employees": "metadata->>'integration_account_id' = %s",
    "tasks": "integration_account_id = %s::uuid",
    "calendar_events": "integration_account_id = %s::uuid",
}


def core_rows(dsn: str, entity: Entity, account: str) -> dict[str, dict[str, Any]]:
    """The account's rows of the entity's table by Bitrix ID (timestamps of the row left out)."""
    core = entity.core_entity
    sql = f"select {_KEY[core]} as key, * from {_TABLE[core]} where {_ACCOUNT[core]}"
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        rows = conn.execute(sql, (account,)).fetchall()  # type: ignore[arg-type]
    return {
        str(r["key"]): {
            k: v for k, v in r.items() if k not in ("key", "updated_at", "created_at", "source_hash")
        }
        for r in rows
    }


def live_ids(dsn: str, entity: Entity, account: str) -> set[str]:
    """Active employees, or tasks/events not marked deleted."""
    rows = core_rows(dsn, entity, account)
    if entity.core_entity == "employees":
        return {k for k, r in rows.items() if r["is_active"]}
    return {k for k, r in rows.items() if not r["is_deleted"]}


def portal_ids(portal: SandboxHandle, entity: Entity, window: EventWindow | None = None) -> set[str]:
    """What a complete sync must leave live in Core: active employees, every task, every event
    of the calendars a sync reads (company, groups, active users) that overlaps the window."""
    state = portal.state
    if entity.core_entity == "employees":
        return {str(u.id) for u in state.users.rows.values() if u.user_type == "employee" and u.active}
    if entity.core_entity == "tasks":
        return {str(t.id) for t in state.tasks.rows.values()}
    active = {u.id for u in state.users.rows.values() if u.active}
    low = window.date_from.timestamp() if window else float("-inf")
    high = window.date_to.timestamp() if window else float("inf")
    return {
        str(e.id)
        for e in state.events.rows.values()
        if (e.cal_type != "user" or e.owner_id in active) and e.date_from <= high and e.date_to >= low
    }


def sync_logs(dsn: str, account: str) -> list[tuple[str, str, str | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select entity, status, error from core.integration_sync_logs "
            "where integration_account_id = %s::uuid order by started_at, id",
            (account,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]
