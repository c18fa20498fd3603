"""Sync logs and cursors, the event inbox, and accounts whose credentials stay secret."""

from __future__ import annotations

import psycopg
import pytest

from bitrix24_assets.core import AccountNotFoundError, MergeCounts, PostgresStore, seed_demo
from bitrix24_assets.core.config import DEFAULT_SANDBOX_WEBHOOK_URL

from .conftest import Portal

MISSING = "00000000-0000-0000-0000-000000000000"


def test_cursor_is_the_last_successful_syncs(core_store: PostgresStore, portal: Portal) -> None:
    assert core_store.get_cursor(portal.id, "tasks") is None
    first = core_store.start_sync(portal.id, "tasks", run_id="r1")
    core_store.finish_sync(
        first,
        status="success",
        records_fetched=3,
        counts=MergeCounts(inserted=3),
        cursor={"changed_since": "2025-01-01T00:00:00Z"},
    )
    failed = core_store.start_sync(portal.id, "tasks", run_id="r2")
    core_store.finish_sync(
        failed,
        status="failed",
        error="boom at https://acme.bitrix24.ru/rest/1/s3cr3tt0ken/x",
        cursor={"changed_since": "2099-01-01T00:00:00Z"},
    )
    assert core_store.get_cursor(portal.id, "tasks") == {"changed_since": "2025-01-01T00:00:00Z"}
    assert core_store.get_cursor(portal.id, "employees") is None
    latest, earlier = core_store.recent_syncs(portal.id, "tasks")
    assert (latest.status, latest.run_id, earlier.inserted, earlier.records_fetched) == ("failed", "r2", 3, 3)
    assert latest.error == "boom at https://acme.bitrix24.ru/rest/1/***/x"
    assert earlier.company_id == portal.company_id and earlier.finished_at is not None


def test_sync_log_of_unknown_account_is_a_clear_error(core_store: PostgresStore) -> None:
    with pytest.raises(AccountNotFoundError, match=f"integration account {MISSING} does not exist"):
        core_store.start_sync(MISSING, "tasks")


def test_inbox_dedupes_and_hands_out_pending_events_in_order(
    core_store: PostgresStore, portal: Portal
) -> None:
    assert core_store.put_event(portal.id, "ONTASKADD", {"data": {"FIELDS": {"ID": "1"}}}, "ONTASKADD:1:t1")
    assert not core_store.put_event(
        portal.id, "ONTASKADD", {"data": {"FIELDS": {"ID": "1"}}}, "ONTASKADD:1:t1"
    )
    assert core_store.put_event(
        portal.id, "ONTASKDELETE", {"data": {"FIELDS": {"ID": "1"}}}, "ONTASKDELETE:1:t2"
    )
    events = core_store.pending_events(limit=10)
    assert [e.event for e in events] == ["ONTASKADD", "ONTASKDELETE"]
    assert events[0].payload == {"data": {"FIELDS": {"ID": "1"}}}
    assert core_store.mark_events_processed([events[0].id]) == 1
    assert core_store.mark_events_processed([events[0].id]) == 0
    assert [e.event for e in core_store.pending_events()] == ["ONTASKDELETE"]


def test_account_credentials_never_show(core_store: PostgresStore, portal: Portal) -> None:
    account = core_store.get_account(portal.id)
    assert account.webhook_url == "https://acme.bitrix24.ru/rest/1/s3cr3tt0ken/"
    for text in (
        repr(account),
        str(account),
        account.model_dump_json(),
        str(account.model_dump(mode="json")),
    ):
        assert "s3cr3tt0ken" not in text
    assert account.portal == "https://acme.bitrix24.ru/rest/1/***/"


def test_status_and_credentials_updates(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    core_store.set_account_status(
        portal.id, "error", "token https://acme.bitrix24.ru/rest/1/s3cr3tt0ken/ revoked"
    )
    core_store.update_credentials(portal.id, {"application_token": "apptok"})
    account = core_store.get_account(portal.id)
    assert account.status == "error" and "s3cr3tt0ken" not in (account.status_message or "")
    assert account.application_token == "apptok" and account.webhook_url
    assert [a.id for a in core_store.list_accounts(active_only=True)] == []
    with pytest.raises(AccountNotFoundError):
        core_store.get_account(MISSING)


def test_demo_seed_creates_one_sandbox_account_once(core_store: PostgresStore) -> None:
    account_id = seed_demo(core_store)
    assert account_id and seed_demo(core_store) is None
    (account,) = core_store.list_accounts()
    assert account.webhook_url == DEFAULT_SANDBOX_WEBHOOK_URL and account.name == "Sandbox portal"
