"""Migrations: idempotent, recorded, and safe on a Core that already has some of the tables."""

from __future__ import annotations

import psycopg
from psycopg import sql

from bitrix24_assets.core import PostgresStore
from bitrix24_assets.core.embedded import EmbeddedPostgres
from bitrix24_assets.core.migrator import function_files, migration_files

TABLES = {
    "companies",
    "integration_accounts",
    "employees",
    "tasks",
    "calendar_events",
    "integration_sync_logs",
    "integration_events",
    "schema_migrations",
    "departments",  # 0009
    "employee_departments",  # 0009
    "integration_commands",  # 0010
    "confirmation_codes",  # 0010
}


def _fresh_empty_db(server: EmbeddedPostgres, name: str) -> str:
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server.dsn(name)


def test_migrate_twice_applies_once_then_nothing(core_server: EmbeddedPostgres) -> None:
    dsn = _fresh_empty_db(core_server, "mig_twice")
    with PostgresStore(dsn) as store:
        first = store.migrate()
        second = store.migrate()
    assert first[: len(migration_files()) + len(function_files())] == [
        f"applied {f.name}" for f in migration_files()
    ] + [f"updated functions from sql/{f.name}" for f in function_files()]
    # then what every migrate checks: the accounts' unique key and access to what it created
    assert first[-3:-1] == [
        "created the unique key integration_accounts_portal (one account per portal and company)",
        "enabled row-level security on " + ", ".join(f"core.{t}" for t in sorted(TABLES)),
    ]
    assert first[-1].startswith("revoked EXECUTE from PUBLIC on ")
    assert second == []
    with psycopg.connect(dsn) as conn:
        tables = {
            r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'core'").fetchall()
        }
        rls = dict(
            conn.execute(
                "select relname, relrowsecurity from pg_class where relnamespace = 'core'::regnamespace"
                " and relkind = 'r'"
            ).fetchall()
        )
    assert tables >= TABLES
    assert all(rls[t] for t in TABLES), "RLS must be enabled on every table"


def test_migrate_on_a_core_that_already_has_platform_tables(core_server: EmbeddedPostgres) -> None:
    dsn = _fresh_empty_db(core_server, "mig_existing")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create schema core")
        conn.execute(
            "create table core.companies (id uuid primary key default gen_random_uuid(), name text not null,"
            " plan text default 'pro')"
        )
        conn.execute(
            "create table core.employees (id uuid primary key default gen_random_uuid(),"
            " company_id uuid not null references core.companies(id), email text, hired_on date)"
        )
        company = conn.execute(
            "insert into core.companies (name) values ('Existing') returning id"
        ).fetchone()[0]
        conn.execute(
            "insert into core.employees (company_id, email, hired_on) values (%s, 'ann@x.io', '2020-01-01')",
            (company,),
        )
    with PostgresStore(dsn) as store:
        assert store.migrate()
        assert store.migrate() == []
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select email, hired_on, is_active, metadata from core.employees").fetchone()
        plan = conn.execute("select plan from core.companies").fetchone()[0]
    assert row[0] == "ann@x.io" and str(row[1]) == "2020-01-01" and row[2] is True and row[3] == {}
    assert plan == "pro"


def test_grants_go_to_service_role_when_it_exists(core_server: EmbeddedPostgres) -> None:
    dsn = _fresh_empty_db(core_server, "mig_grants")
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_roles where rolname = 'service_role'").fetchone():
            conn.execute("create role service_role nologin bypassrls")
    with PostgresStore(dsn) as store:
        store.migrate()
    with psycopg.connect(dsn) as conn:
        can = conn.execute(
            "select has_table_privilege('service_role', 'core.tasks', 'insert'),"
            " has_function_privilege('service_role', 'core.get_account(uuid)', 'execute'),"
            " has_function_privilege('public', 'core.get_account(uuid)', 'execute')"
        ).fetchone()
    assert can == (True, True, False)


def test_embedded_server_runs_with_the_shipped_wal_buffers(db: psycopg.Connection) -> None:
    """DEFAULT_SETTINGS reach the server even when a caller passes its own settings (the tests'
    FAST_SETTINGS): a first load's WAL otherwise overflows the 4 MB default and the loading
    backend writes it out 8 kB at a time."""
    assert db.execute("show wal_buffers").fetchone() == ("32MB",)
    assert db.execute("show fsync").fetchone() == ("off",)  # the caller's settings still apply
