"""The account, status, catalogue and retention methods on the Supabase backend: real HTTP to the
PostgREST stand-in (tests/core/postgrest_standin.py), which calls the same SQL functions on the
embedded Postgres. What the Postgres backend returns is the reference."""

from __future__ import annotations

import psycopg
import pytest

from bitrix24_assets.core import AccountNotFoundError, CoreDataError, MergeCounts, PostgresStore, TaskRow
from bitrix24_assets.core.supabase import SupabaseStore

from .postgrest_standin import running_standin

KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
HOOK = "https://acme.bitrix24.ru/rest/1/s3cr3tt0ken/"


def test_account_management_over_rpc(core_store: PostgresStore, core_dsn: str) -> None:
    company = core_store.create_company("Acme")
    with running_standin(core_dsn, KEY) as (base_url, app):
        store = SupabaseStore(base_url, KEY)
        account, created = store.upsert_account(company, "acme", {"webhook_url": HOOK}, settings={"a": 1})
        again, created_again = store.upsert_account(
            company, "Acme", {"webhook_url": "https://ACME.bitrix24.ru/rest/1/new/"}, settings={"b": 2}
        )
        assert (created, created_again, again.id) == (True, False, account.id)
        assert (
            again.settings == {"a": 1, "b": 2} and again.webhook_url == "https://ACME.bitrix24.ru/rest/1/new/"
        )
        assert store.add_account(company, "acme", {"webhook_url": HOOK}).id == account.id
        assert store.find_account(company, {"webhook_url": HOOK}) == core_store.get_account(account.id)
        assert store.find_account(company, {"webhook_url": "https://other/rest/1/x/"}) is None

        other = store.add_account(company, "b", {"webhook_url": "https://b.bitrix24.ru/rest/1/x/"})
        updated = store.update_account(other.id, name="B", settings={"entities": ["tasks"]})
        assert (updated.name, updated.settings) == ("B", {"entities": ["tasks"]})
        with pytest.raises(CoreDataError, match="already has portal"):
            store.update_account(other.id, credentials={"webhook_url": HOOK})

        store.disable_account(other.id)
        assert core_store.get_account(other.id).status == "disabled"
        store.enable_account(other.id)
        assert core_store.get_account(other.id).status == "active"

        assert store.duplicate_accounts() == core_store.duplicate_accounts() == []

        store.merge_tasks(other.id, [TaskRow(bitrix_id="1")], full=False)
        store.finish_sync(
            store.start_sync(other.id, "tasks"), status="success", counts=MergeCounts(inserted=1)
        )
        rows = {
            "tasks": 1,
            "calendar_events": 0,
            "integration_sync_logs": 1,
            "integration_events": 0,
            "employees": 0,
        }
        assert store.account_rows(other.id) == rows
        assert store.remove_account(other.id) == rows
        with pytest.raises(AccountNotFoundError):
            store.get_account(other.id)
        called = {c["function"] for c in app.state.calls}
        store.close()
    assert called >= {
        "upsert_account",
        "find_account",
        "update_account",
        "set_account_status",
        "account_rows",
        "remove_account",
        "duplicate_accounts",
    }


def test_duplicates_over_rpc(core_store: PostgresStore, core_dsn: str) -> None:
    company = core_store.create_company("Acme")
    first = core_store.add_account(company, "a", {"webhook_url": HOOK})
    with psycopg.connect(core_dsn, autocommit=True) as db:
        db.execute("drop index core.integration_accounts_portal")
        db.execute(
            "insert into core.integration_accounts (company_id, name, credentials) values (%s, 'twin', %s)",
            (company, psycopg.types.json.Jsonb({"webhook_url": "https://acme.bitrix24.ru/rest/1/x/"})),
        )
    with running_standin(core_dsn, KEY) as (base_url, _):
        store = SupabaseStore(base_url, KEY)
        groups = store.duplicate_accounts(company)
        store.close()
    assert groups == core_store.duplicate_accounts()
    assert [[a.name for a in g] for g in groups] == [["a", "twin"]] and groups[0][0].id == first.id


def test_status_catalogue_and_retention_over_rpc(core_store: PostgresStore, core_dsn: str) -> None:
    company = core_store.create_company("Acme")
    account = core_store.add_account(company, "acme", {"webhook_url": HOOK})
    core_store.finish_sync(core_store.start_sync(account.id, "tasks"), status="failed", error="boom")
    core_store.start_sync(account.id, "employees")
    core_store.put_event(account.id, "ONUSERADD", {"EMAIL": "ann@acme.io"}, "k1")
    core_store.mark_events_processed([e.id for e in core_store.pending_events()])
    with running_standin(core_dsn, KEY) as (base_url, _):
        store = SupabaseStore(base_url, KEY)
        assert store.latest_syncs(account.id) == core_store.latest_syncs(account.id)
        assert [(s.entity, s.status) for s in store.latest_syncs(account.id)] == [
            ("employees", "running"),
            ("tasks", "failed"),
        ]
        assert store.table_columns("core.tasks") == core_store.table_columns("core.tasks")
        assert ("deadline", "timestamptz") in store.table_columns("core.tasks")
        assert store.purge_personal_data(0, 0) == {"integration_events": 1, "integration_sync_logs": 1}
        store.close()
