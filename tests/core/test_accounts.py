"""Accounts are managed, not duplicated: one account per portal and company, updated in place,
disabled, enabled and removed (with what removal does to the synced rows, checked row by row)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from bitrix24_assets.core import (
    AccountNotFoundError,
    CalendarEventRow,
    CoreDataError,
    EmployeeRow,
    PostgresStore,
    TaskRow,
)
from bitrix24_assets.core.migrator import apply_migrations

from .conftest import Portal, add_portal

MISSING = "00000000-0000-0000-0000-000000000000"
HOOK = "https://acme.bitrix24.ru/rest/1/s3cr3tt0ken/"


def webhook(url: str) -> dict[str, Any]:
    return {"webhook_url": url}


def test_adding_a_portal_again_updates_its_account(core_store: PostgresStore, db: psycopg.Connection) -> None:
    company = core_store.create_company("Acme")
    first, created = core_store.upsert_account(
        company, "acme", webhook("https://Acme.Bitrix24.ru/rest/1/old/"), settings={"a": 1, "b": 1}
    )
    again, created_again = core_store.upsert_account(
        company, "Acme portal", {**webhook("https://acme.bitrix24.ru/rest/1/new/"), "x": 1}, settings={"b": 2}
    )
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert again.name == "Acme portal"
    assert (
        again.webhook_url == "https://acme.bitrix24.ru/rest/1/new/"
    )  # the re-created webhook replaces the old
    assert again.credentials.get_secret_value()["x"] == 1  # credentials merged
    assert again.settings == {"a": 1, "b": 2}  # settings merged
    # add_account keeps its signature and meaning for every caller: the account of that portal
    assert core_store.add_account(company, "acme", webhook(HOOK)).id == first.id
    assert db.execute("select count(*) from core.integration_accounts").fetchone() == (1,)


def test_status_survives_a_re_add(core_store: PostgresStore, portal: Portal) -> None:
    core_store.disable_account(portal.id)
    account, created = core_store.upsert_account(portal.company_id, "acme", webhook(HOOK))
    assert not created and account.status == "disabled"


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        (
            webhook("https://acme.bitrix24.ru/rest/1/a/"),
            webhook("HTTPS://ACME.Bitrix24.RU.:443/rest/1/b/x"),
            True,
        ),
        (webhook("http://127.0.0.1:8765/rest/1/a/"), webhook("http://127.0.0.1:8765/rest/1/b/"), True),
        (webhook("https://acme.bitrix24.ru/rest/1/a/"), webhook("https://acme.bitrix24.ru/rest/7/a/"), False),
        (
            webhook("https://acme.bitrix24.ru/rest/1/a/"),
            webhook("https://globex.bitrix24.ru/rest/1/a/"),
            False,
        ),
        (webhook("http://127.0.0.1:8765/rest/1/a/"), webhook("http://127.0.0.1:8766/rest/1/a/"), False),
        ({"member_id": "ABC", "access_token": "1"}, {"member_id": "abc", "access_token": "2"}, True),
        ({"member_id": "abc"}, {"member_id": "abd"}, False),
        ({"client_endpoint": "https://acme.ru/rest/", "access_token": "1"}, {"domain": "ACME.ru"}, True),
        ({"application_token": "t"}, {"application_token": "t"}, False),  # no portal: never matched
        ({}, {}, False),
    ],
)
def test_what_identifies_a_portal(
    core_store: PostgresStore, first: dict[str, Any], second: dict[str, Any], same: bool
) -> None:
    company = core_store.create_company("Acme")
    a = core_store.add_account(company, "a", first)
    b = core_store.add_account(company, "b", second)
    assert (a.id == b.id) is same
    assert (core_store.find_account(company, second) == core_store.get_account(a.id)) is same


def test_the_same_portal_in_two_companies_or_providers_is_two_accounts(core_store: PostgresStore) -> None:
    acme, globex = core_store.create_company("Acme"), core_store.create_company("Globex")
    a = core_store.add_account(acme, "a", webhook(HOOK))
    assert core_store.add_account(globex, "a", webhook(HOOK)).id != a.id
    assert core_store.add_account(acme, "a", webhook(HOOK), provider="other").id != a.id
    assert core_store.find_account(globex, webhook("https://nowhere/rest/1/x/")) is None


def test_the_unique_key_refuses_a_second_account_for_a_portal(portal: Portal, db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            "insert into core.integration_accounts (company_id, name, credentials) values (%s, 'dup', %s)",
            (portal.company_id, psycopg.types.json.Jsonb(webhook("https://ACME.bitrix24.ru/rest/1/other/"))),
        )


def test_concurrent_adds_of_one_portal_make_one_account(core_dsn: str, db: psycopg.Connection) -> None:
    """Serialised by a lock, not only by the unique key (which a Core with duplicates lacks). The
    pool's connections are open before the threads start, so the adds really overlap (without the
    lock this made up to 7 accounts of 8 adds)."""
    db.execute("drop index core.integration_accounts_portal")
    with PostgresStore(core_dsn, min_size=8, max_size=8) as store:
        company = store.create_company("Acme")
        store._pool.wait()
        for _ in range(5):
            db.execute("delete from core.integration_accounts")
            start = threading.Barrier(8)
            ids: list[str] = []

            def add(i: int, start: threading.Barrier = start, ids: list[str] = ids) -> None:
                start.wait()
                url = f"https://acme.bitrix24.ru/rest/1/t{i}/"
                ids.append(store.add_account(company, f"n{i}", webhook(url)).id)

            threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(ids) == 8 and len(set(ids)) == 1
            assert db.execute("select count(*) from core.integration_accounts").fetchone() == (1,)


def test_duplicates_from_before_leave_the_key_out_until_they_are_gone(
    core_store: PostgresStore, core_dsn: str, db: psycopg.Connection
) -> None:
    """A Core that already has two accounts for one portal keeps migrating; migrate names them,
    duplicate_accounts() returns them, and the key is created once one is removed."""
    db.execute("drop index core.integration_accounts_portal")
    first = add_portal(core_store)
    second = core_store.create_company("Globex")
    twin = db.execute(
        "insert into core.integration_accounts (company_id, name, credentials)"
        " values (%s, 'twin', %s) returning id",
        (first.company_id, psycopg.types.json.Jsonb(webhook("https://acme.bitrix24.ru/rest/1/other/"))),
    ).fetchone()[0]
    core_store.add_account(second, "globex", webhook(HOOK))  # same portal, other company: fine

    with psycopg.connect(core_dsn) as conn:
        done = apply_migrations(conn)
    assert done == [
        "left out the unique key integration_accounts_portal: company"
        f" {first.company_id} has 2 accounts for portal webhook:acme.bitrix24.ru/1 ({first.id}, {twin});"
        " keep one account per portal (bitrix24-core accounts remove <id>) and migrate again"
    ]
    (group,) = core_store.duplicate_accounts()
    assert [a.id for a in group] == [first.id, str(twin)]  # oldest first
    assert core_store.duplicate_accounts(second) == []
    assert core_store.duplicate_accounts(first.company_id) == [group]
    # adding the portal again updates the oldest of them, never a third
    assert core_store.add_account(first.company_id, "again", webhook(HOOK)).id == first.id

    core_store.remove_account(str(twin))
    with psycopg.connect(core_dsn) as conn:
        assert apply_migrations(conn) == [
            "created the unique key integration_accounts_portal (one account per portal and company)"
        ]
        assert apply_migrations(conn) == []
    assert core_store.duplicate_accounts() == []


def test_update_account_renames_replaces_the_webhook_and_merges_settings(
    core_store: PostgresStore, portal: Portal
) -> None:
    core_store.update_account(portal.id, settings={"entities": ["tasks"], "demo": True})
    account = core_store.update_account(
        portal.id,
        name="Acme HQ",
        credentials=webhook("https://acme.bitrix24.ru/rest/1/n3wt0ken/"),
        settings={"demo": False},
    )
    assert account.name == "Acme HQ"
    assert account.webhook_url == "https://acme.bitrix24.ru/rest/1/n3wt0ken/"
    assert account.settings == {"entities": ["tasks"], "demo": False}
    assert core_store.update_account(portal.id).name == "Acme HQ"  # nothing given: nothing changes


def test_update_account_refuses_another_accounts_portal(core_store: PostgresStore, portal: Portal) -> None:
    other = core_store.add_account(portal.company_id, "b", webhook("https://b.bitrix24.ru/rest/1/x/"))
    with pytest.raises(CoreDataError, match=f"account {portal.id} of the same company already has portal"):
        core_store.update_account(other.id, credentials=webhook("https://acme.bitrix24.ru/rest/1/y/"))
    assert core_store.get_account(other.id).webhook_url == "https://b.bitrix24.ru/rest/1/x/"


def test_disable_and_enable(core_store: PostgresStore, portal: Portal) -> None:
    core_store.set_account_status(portal.id, "error", "Webhook revoked.")
    core_store.disable_account(portal.id)
    assert core_store.get_account(portal.id).status == "disabled"
    assert core_store.list_accounts(active_only=True) == []
    core_store.enable_account(portal.id)
    account = core_store.get_account(portal.id)
    assert (account.status, account.status_message) == ("active", None)


def test_unknown_accounts_are_a_clear_error(core_store: PostgresStore) -> None:
    for call in (
        lambda: core_store.update_account(MISSING, name="x"),
        lambda: core_store.disable_account(MISSING),
        lambda: core_store.account_rows(MISSING),
        lambda: core_store.remove_account(MISSING),
    ):
        with pytest.raises(AccountNotFoundError, match=f"integration account {MISSING} does not exist"):
            call()


def _sync_everything(store: PostgresStore, account_id: str) -> None:
    people = [
        EmployeeRow(bitrix_id="1", email="ann@acme.io"),
        EmployeeRow(bitrix_id="2", email="bob@acme.io"),
    ]
    store.merge_employees(account_id, people, full=True)
    store.merge_tasks(
        account_id, [TaskRow(bitrix_id=str(i), responsible_bitrix_id="1") for i in range(3)], full=True
    )
    start = datetime(2025, 1, 1, tzinfo=UTC)
    store.merge_events(account_id, [CalendarEventRow(bitrix_id="9", starts_at=start)], full=False)
    store.finish_sync(store.start_sync(account_id, "tasks"), status="success")
    store.put_event(account_id, "ONTASKADD", {"id": 1}, f"k-{account_id}")


def test_remove_deletes_what_the_account_synced_but_keeps_its_employees(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    other = core_store.add_account(portal.company_id, "b", webhook("https://b.bitrix24.ru/rest/1/x/"))
    _sync_everything(core_store, portal.id)
    _sync_everything(core_store, other.id)
    expected = {
        "tasks": 3,
        "calendar_events": 1,
        "integration_sync_logs": 1,
        "integration_events": 1,
        "employees": 2,
    }
    assert core_store.account_rows(portal.id) == expected

    assert core_store.remove_account(portal.id) == expected

    def rows(table: str, account_column: str = "integration_account_id") -> int:
        return db.execute(
            f"select count(*) from core.{table} where {account_column} = %s", (portal.id,)
        ).fetchone()[0]

    assert [rows(t) for t in ("tasks", "calendar_events", "integration_sync_logs", "integration_events")] == [
        0
    ] * 4
    kept = db.execute(
        "select metadata->>'bitrix_id', is_active from core.employees"
        " where metadata->>'integration_account_id' = %s order by 1",
        (portal.id,),
    ).fetchall()
    assert kept == [("1", True), ("2", True)]  # still linked to the removed account's id, still active
    assert core_store.account_rows(other.id) == expected  # the other portal of the company is untouched
    with pytest.raises(AccountNotFoundError):
        core_store.get_account(portal.id)

    # what the CLI warns about: the portal added again is a new account, and its users are inserted anew
    people = db.execute("select count(*) from core.employees").fetchone()[0]
    again = core_store.add_account(portal.company_id, "acme", webhook(HOOK))
    assert again.id != portal.id
    users = [EmployeeRow(bitrix_id="1", email="ann@acme.io"), EmployeeRow(bitrix_id="2", email="bob@acme.io")]
    assert core_store.merge_employees(again.id, users, full=True).inserted == 2
    assert db.execute("select count(*) from core.employees").fetchone()[0] == people + 2
