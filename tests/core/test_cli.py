"""``bitrix24-core``: commands that read create nothing, status tells the truth, accounts are managed.

Run through Typer's CliRunner in this process, against the tests' embedded Postgres
(``CORE_DATABASE_URL``) or an embedded Core of their own in a temp directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from bitrix24_assets.core import MergeCounts, PostgresStore
from bitrix24_assets.core.cli import app
from bitrix24_assets.core.embedded import FAST_SETTINGS, EmbeddedPostgres
from bitrix24_assets.core.migrator import apply_migrations

TOKEN = "s3cr3tt0ken"
HOOK = f"https://acme.bitrix24.ru/rest/1/{TOKEN}/"
CORE_ENV = (
    "CORE_DATABASE_URL",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "CORE_EMBEDDED_DIR",
    "DAGSTER_HOME",
)


@pytest.fixture(autouse=True)
def no_core_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CORE_ENV:
        monkeypatch.delenv(name, raising=False)


def cli(*args: str, input: str | None = None, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), input=input, env=env)


@pytest.fixture
def on_core(core_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The commands talk to the test database; its server trusts local logins, so the password in
    the URL is ignored by the server and only shows whether the CLI masks it."""
    dsn = core_dsn.replace("postgres@", "postgres:hunter2@")
    monkeypatch.setenv("CORE_DATABASE_URL", dsn)
    return dsn


def test_read_only_commands_create_nothing_outside_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run where there is no Core: each says where it looked and how to make one, and leaves no
    directory, database or server behind (status used to create ./dagster_home/core_pg, seed a demo
    account and leave Postgres running)."""
    monkeypatch.chdir(tmp_path)
    where = str(tmp_path / "dagster_home" / "core_pg")
    some_id = "00000000-0000-0000-0000-000000000000"
    for args in (
        ["status"],
        ["accounts", "list"],
        ["accounts", "update", some_id, "--name", "x"],
        ["accounts", "disable", some_id],
        ["accounts", "enable", some_id],
        ["accounts", "remove", some_id, "--yes"],
    ):
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert f"There is no embedded Core in {where}" in result.output and "make dev" in result.output
    stop = cli("stop-embedded")
    assert stop.exit_code == 0 and f"There is no embedded Core in {where}: nothing to stop." in stop.output
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def stopped_core(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """An embedded Core that exists, migrated but with no accounts, and is not running."""
    server = EmbeddedPostgres(tmp_path / "core_pg", settings=FAST_SETTINGS)
    with psycopg.connect(server.start()) as conn:
        apply_migrations(conn)
    server.stop()
    yield server
    server.stop()


def test_status_of_a_stopped_embedded_core_starts_it_for_the_command_only(
    stopped_core: EmbeddedPostgres,
) -> None:
    env = {"CORE_EMBEDDED_DIR": str(stopped_core.data_dir)}
    result = cli("status", **env)
    assert result.exit_code == 0, result.output
    assert f"DSN:  postgresql://postgres@127.0.0.1:{stopped_core.port}/core" in result.output
    assert "No accounts" in result.output  # nothing seeded
    assert cli("accounts", "list", **env).output.startswith("No accounts")
    assert not stopped_core.is_running()
    with stopped_core.running() as dsn, PostgresStore(dsn) as store:
        assert store.list_accounts(provider=None) == []


def test_status_leaves_a_running_embedded_core_running(stopped_core: EmbeddedPostgres) -> None:
    stopped_core.start()
    assert cli("status", CORE_EMBEDDED_DIR=str(stopped_core.data_dir)).exit_code == 0
    assert stopped_core.is_running()


def test_status_shows_the_latest_sync_of_each_entity_and_a_masked_dsn(on_core: str, core_dsn: str) -> None:
    with PostgresStore(core_dsn) as store:
        account = store.add_account(store.create_company("Acme"), "Acme portal", {"webhook_url": HOOK})
        for status in ("success", "success", "failed"):
            sync = store.start_sync(account.id, "tasks")
            store.finish_sync(
                sync, status=status, records_fetched=3, error="read timed out" if status == "failed" else None
            )  # type: ignore[arg-type]
        sync = store.start_sync(account.id, "employees")
        store.finish_sync(
            sync, status="success", records_fetched=192, counts=MergeCounts(unchanged=191, updated=1)
        )
    result = cli("status")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "hunter2" not in out and TOKEN not in out
    assert f"DSN:  {on_core.replace('hunter2', '***')}" in out
    assert f"Account {account.id}  active  Acme portal  https://acme.bitrix24.ru/rest/1/***/" in out
    lines = [
        line.split()[0]
        for line in out.splitlines()
        if line.startswith("    ") and not line.startswith("      ")
    ]
    assert lines == ["employees", "tasks", "calendar_events"]  # one line each, in this order
    assert (
        "employees        success" in out
        and "read 192  0 inserted, 1 updated, 191 unchanged, 0 removed" in out
    )
    assert "tasks            failed" in out and "      read timed out" in out
    assert "calendar_events  never synced" in out


def test_accounts_add_twice_updates_and_list_has_headers(on_core: str) -> None:
    added = cli(
        "accounts", "add", "--name", "acme", "--company", "Acme", "--webhook-url-env", "HOOK", HOOK=HOOK
    )
    assert added.exit_code == 0 and added.output.startswith("Added account ")
    again = cli(
        "accounts",
        "add",
        "--name",
        "Acme portal",
        "--company",
        "Acme",
        "--webhook-url-env",
        "HOOK",
        HOOK="https://ACME.bitrix24.ru/rest/1/n3wt0ken/",
    )
    assert again.exit_code == 0, again.output
    assert again.output.startswith("Updated account ") and "already had this portal" in again.output
    assert added.output.split()[2] == again.output.split()[2]  # the same account id

    listed = cli("accounts", "list")
    header, *rows = listed.output.splitlines()
    assert header.split() == ["ID", "COMPANY", "PROVIDER", "STATUS", "NAME", "PORTAL"]
    (row,) = rows
    assert row.startswith(added.output.split()[2]) and "Acme portal" in row
    assert row.endswith("https://ACME.bitrix24.ru/rest/1/***/") and "n3wt0ken" not in listed.output
    assert header.index("STATUS") == row.index("active")  # columns line up


def test_accounts_update_disable_enable_remove(on_core: str, core_dsn: str) -> None:
    with PostgresStore(core_dsn) as store:
        company = store.create_company("Acme")
        account = store.add_account(company, "acme", {"webhook_url": HOOK})
        other = store.add_account(company, "b", {"webhook_url": "https://b.bitrix24.ru/rest/1/x/"})
        store.merge_tasks(account.id, [], full=False)

    updated = cli(
        "accounts",
        "update",
        account.id,
        "--name",
        "Acme HQ",
        "--setting",
        'entities=["tasks"]',
        "--setting",
        "note=hello",
        "--prompt-webhook-url",
        input="https://acme.bitrix24.ru/rest/1/n3w/\n",
    )
    assert updated.exit_code == 0, updated.output
    assert "n3w" not in updated.output and "Updated account" in updated.output
    with PostgresStore(core_dsn) as store:
        changed = store.get_account(account.id)
    assert (changed.name, changed.settings, changed.webhook_url) == (
        "Acme HQ",
        {"entities": ["tasks"], "note": "hello"},
        "https://acme.bitrix24.ru/rest/1/n3w/",
    )
    clash = cli("accounts", "update", other.id, "--webhook-url-env", "HOOK", HOOK=HOOK)
    assert clash.exit_code == 2 and f"account {account.id} (Acme HQ," in clash.output
    assert "already has that portal" in clash.output
    assert cli("accounts", "update", account.id).exit_code == 2  # nothing to update

    disabled = cli("accounts", "disable", account.id)
    assert disabled.exit_code == 0 and "its rows stay in Core" in disabled.output
    assert " disabled " in cli("accounts", "list").output
    assert cli("accounts", "enable", account.id).exit_code == 0
    assert " disabled " not in cli("accounts", "list").output

    declined = cli("accounts", "remove", account.id, input="n\n")
    assert declined.exit_code == 1 and "Nothing removed." in declined.output
    assert "employees stay in core.employees" in declined.output and "accounts disable" in declined.output
    removed = cli("accounts", "remove", account.id, input="y\n")
    assert removed.exit_code == 0, removed.output
    assert (
        f"Removed account {account.id}: deleted 0 tasks, 0 calendar events, 0 sync-log rows" in removed.output
    )
    assert account.id not in cli("accounts", "list").output
    assert cli("accounts", "remove", other.id, "--yes").exit_code == 0
    assert cli("accounts", "list").output.startswith("No accounts")
    assert os.environ.get("CORE_DATABASE_URL") == on_core
