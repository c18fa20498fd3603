"""Migrating a Core that already serves a platform must not change the platform's access.

A Core prepared like a Supabase project: roles ``anon``, ``authenticated`` and ``service_role``
(BYPASSRLS), the platform's own ``core.companies`` (no row-level security, readable by
``authenticated``) and ``core.employees`` (row-level security with a policy that lets
``authenticated`` read its company's employees), a platform function, and the default privileges
Supabase's guide sets for an exposed schema. The platform's reads are compared before and after
``migrate`` as ``authenticated`` with a JWT claim, the way PostgREST runs them.

Roles are cluster-wide, so these tests run on their own embedded server and drop the roles after
each test; each test creates the roles it needs (a plain Postgres has none).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bitrix24_assets.core import EmployeeRow, PostgresStore, TaskRow
from bitrix24_assets.core.embedded import FAST_SETTINGS, EmbeddedPostgres
from bitrix24_assets.core.migrator import apply_migrations
from bitrix24_assets.core.supabase import SupabaseStore

from .postgrest_standin import running_standin

ROLES = ("anon", "authenticated", "service_role")
PLATFORM_TABLES = ("core.companies", "core.employees")
INTEGRATION_TABLES = (
    "core.calendar_events",
    "core.integration_accounts",
    "core.integration_events",
    "core.integration_sync_logs",
    "core.schema_migrations",
    "core.tasks",
)
# tables later migrations create (0009 departments, 0010 commands): recorded as the integration's
# own like the others, but unknown to a Core migrated before records were kept
LATER_TABLES = (
    "core.departments",
    "core.employee_departments",
    "core.integration_commands",
    "core.confirmation_codes",
)
KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"

SUPABASE_ROLES = """
create role anon nologin;
create role authenticated nologin;
create role service_role nologin bypassrls;
"""

PLATFORM = """
create schema core;
grant usage on schema core to anon, authenticated, service_role;
-- what Supabase's guide for an exposed custom schema sets up
alter default privileges in schema core grant all on tables to anon, authenticated, service_role;
alter default privileges in schema core grant all on functions to anon, authenticated, service_role;

create table core.companies (id uuid primary key default gen_random_uuid(), name text not null, plan text);
create table core.employees (
    id uuid primary key default gen_random_uuid(),
    company_id uuid not null references core.companies (id),
    email text,
    full_name text
);
alter table core.employees enable row level security;
create policy employees_of_my_company on core.employees for select to authenticated
    using (company_id = (current_setting('request.jwt.claims', true)::jsonb ->> 'company_id')::uuid);
create function core.my_company() returns uuid language sql stable
    as $$ select (current_setting('request.jwt.claims', true)::jsonb ->> 'company_id')::uuid $$;

insert into core.companies (id, name, plan) values
    ('11111111-1111-1111-1111-111111111111', 'Acme', 'pro'),
    ('22222222-2222-2222-2222-222222222222', 'Globex', 'free');
insert into core.employees (company_id, email, full_name) values
    ('11111111-1111-1111-1111-111111111111', 'ann@acme.io', 'Ann'),
    ('22222222-2222-2222-2222-222222222222', 'bob@globex.io', 'Bob');
"""
ACME = "11111111-1111-1111-1111-111111111111"

_names = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("access")) / "pg", settings=FAST_SETTINGS)
    with server.running("postgres"):
        yield server


@pytest.fixture
def dsn(cluster: EmbeddedPostgres) -> Iterator[str]:
    """A fresh empty database on a cluster without the Supabase roles; they are dropped after."""
    name = f"access_{next(_names)}"
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield cluster.dsn(name)
    finally:
        with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))
            for role in ROLES:
                admin.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


def run(dsn: str, statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statements.encode())


def migrate(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return apply_migrations(conn)


def platform_reads(dsn: str) -> dict[str, Any]:
    """What the platform's signed-in user of Acme reads, as PostgREST would run it."""
    with psycopg.connect(dsn) as conn:
        conn.execute("set role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, false)", (f'{{"company_id": "{ACME}"}}',))
        return {
            "companies": conn.execute("select count(*) from core.companies").fetchone()[0],
            "employees": conn.execute("select count(*) from core.employees").fetchone()[0],
            "my_company": str(conn.execute("select core.my_company()").fetchone()[0]),
        }


def access_of(dsn: str, tables: tuple[str, ...]) -> dict[str, Any]:
    """Row-level security, policies and grants of these tables, as the catalogue has them."""
    with psycopg.connect(dsn) as conn:
        return {
            "rls": conn.execute(
                "select c.oid::regclass::text, c.relrowsecurity, c.relforcerowsecurity from pg_class c"
                " where c.oid::regclass::text = any(%s) order by 1",
                (list(tables),),
            ).fetchall(),
            "policies": conn.execute(
                "select schemaname, tablename, policyname, permissive, roles::text, cmd, qual, with_check"
                " from pg_policies where schemaname || '.' || tablename = any(%s) order by 1, 2, 3",
                (list(tables),),
            ).fetchall(),
            "grants": conn.execute(
                "select table_schema, table_name, grantee, privilege_type, is_grantable"
                " from information_schema.role_table_grants"
                " where table_schema || '.' || table_name = any(%s) order by 1, 2, 3, 4",
                (list(tables),),
            ).fetchall(),
            "function_acl": conn.execute(
                "select proacl::text from pg_proc where oid = to_regprocedure('core.my_company()')"
            ).fetchone(),
        }


def as_role(dsn: str, role: str, query: str) -> Any:
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
        return conn.execute(query).fetchone()[0]


def test_the_platform_reads_the_same_rows_and_keeps_its_access(dsn: str) -> None:
    run(dsn, SUPABASE_ROLES + PLATFORM)
    before, access_before = platform_reads(dsn), access_of(dsn, PLATFORM_TABLES)
    assert before == {"companies": 2, "employees": 1, "my_company": ACME}

    done = migrate(dsn)

    assert platform_reads(dsn) == before
    assert access_of(dsn, PLATFORM_TABLES) == access_before
    assert not any("core.companies" in line or "core.employees" in line for line in done if "enabled" in line)
    with psycopg.connect(dsn) as conn:
        rls = dict(
            conn.execute(
                "select c.oid::regclass::text, c.relrowsecurity from pg_class c"
                " where c.relnamespace = 'core'::regnamespace and c.relkind = 'r'"
            ).fetchall()
        )
        recorded = {
            n
            for (n,) in conn.execute(
                "select name from core.schema_migrations where kind = 'table'"
            ).fetchall()
        }
    assert recorded == {*INTEGRATION_TABLES, *LATER_TABLES}
    assert all(rls[t] for t in (*INTEGRATION_TABLES, *LATER_TABLES))
    assert not rls["core.companies"]  # the platform's choice, kept
    # the default privileges gave anon SELECT on the new accounts table; RLS without a policy hides the rows
    with PostgresStore(dsn) as owner:
        owner.add_account(ACME, "acme", {"webhook_url": "https://acme.bitrix24.ru/rest/1/t/"})
    assert as_role(dsn, "anon", "select count(*) from core.integration_accounts") == 0
    assert as_role(dsn, "service_role", "select count(*) from core.integration_accounts") == 1
    assert migrate(dsn) == []


def test_service_role_created_after_the_first_migrate_gets_access_on_the_next(dsn: str) -> None:
    assert migrate(dsn)
    run(dsn, "create role service_role nologin bypassrls")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(dsn, "service_role", "select count(*) from core.tasks")

    done = migrate(dsn)

    assert "granted service_role USAGE on schema core" in done
    assert any(line.startswith("granted service_role EXECUTE on ") for line in done)
    granted = next(line for line in done if line.startswith("granted service_role all privileges on "))
    assert all(t in granted for t in (*INTEGRATION_TABLES, *PLATFORM_TABLES))  # all created by migrate here
    assert as_role(dsn, "service_role", "select count(*) from core.tasks") == 0
    assert as_role(dsn, "service_role", "select count(*) from core.list_accounts()") == 0
    assert migrate(dsn) == []  # idempotent: nothing left to grant


def test_plain_postgres_without_supabase_roles(dsn: str) -> None:
    done = migrate(dsn)
    assert not any("service_role" in line for line in done)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "select count(*) from pg_roles where rolname = any(%s)", (list(ROLES),)
        ).fetchone() == (0,)
        off = conn.execute(
            "select count(*) from pg_class where relnamespace = 'core'::regnamespace and relkind = 'r'"
            " and not relrowsecurity"
        ).fetchone()[0]
        public_execute = conn.execute(
            "select count(*) from pg_proc where pronamespace = 'core'::regnamespace"
            " and has_function_privilege('public', oid, 'execute')"
        ).fetchone()[0]
    assert off == 0 and public_execute == 0
    assert migrate(dsn) == []


def test_platform_functions_keep_their_public_execute(dsn: str) -> None:
    run(dsn, "create schema core; create function core.platform_fn() returns int language sql as 'select 1'")
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "select has_function_privilege('public', 'core.platform_fn()', 'execute')"
        ).fetchone() == (True,)
        assert conn.execute(
            "select has_function_privilege('public', 'core.get_account(uuid)', 'execute')"
        ).fetchone() == (False,)


def test_missing_service_role_grants_on_a_platform_table_are_reported_not_changed(dsn: str) -> None:
    run(
        dsn,
        SUPABASE_ROLES
        + "create schema core; create table core.companies (id uuid primary key default gen_random_uuid(),"
        " name text not null); grant select on core.companies to service_role;",
    )
    before = access_of(dsn, ("core.companies",))
    done = migrate(dsn)
    (line,) = [line for line in done if line.startswith("core.companies")]
    assert (
        "service_role lacks INSERT on it" in line and "grant INSERT on core.companies to service_role" in line
    )
    assert access_of(dsn, ("core.companies",)) == before
    assert migrate(dsn) == [line]  # said again on every migrate until the platform grants it


def test_a_core_migrated_before_records_were_kept(dsn: str) -> None:
    """The first migrate of this version on such a Core records the integration's own tables and
    leaves companies/employees (possibly the platform's) as they are."""
    migrate(dsn)
    run(
        dsn,
        "delete from core.schema_migrations where kind in ('table', 'function') or name like 'sql/%';"
        " alter table core.employees disable row level security;",
    )
    done = migrate(dsn)
    assert (
        "recorded the tables earlier migrations created: "
        + ", ".join(INTEGRATION_TABLES)
        + "; core.companies,"
        " core.employees: treated as the platform's (row-level security, policies, grants left as they are)"
    ) in done
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "select relrowsecurity from pg_class where oid = 'core.employees'::regclass"
        ).fetchone() == (False,)
    assert migrate(dsn) == []


def test_service_role_syncs_through_the_rest_api_into_the_platforms_tables(dsn: str) -> None:
    """End to end as Supabase runs it: every RPC as service_role (the stand-in connects with that
    role), employees merged into the platform's table whose RLS and policy stay in force."""
    run(dsn, SUPABASE_ROLES + PLATFORM)
    migrate(dsn)
    with PostgresStore(dsn) as owner:
        account = owner.add_account(ACME, "acme", {"webhook_url": "https://acme.bitrix24.ru/rest/1/t/"})
    as_service_role = dsn + "?options=-c%20role%3Dservice_role"
    with running_standin(as_service_role, KEY) as (base_url, _):
        store = SupabaseStore(base_url, KEY)
        people = [
            EmployeeRow(bitrix_id="1", email="ann@acme.io", full_name="Ann"),
            EmployeeRow(bitrix_id="2"),
        ]
        counts = store.merge_employees(account.id, people, full=True)
        assert (counts.inserted, counts.updated) == (1, 1)
        tasks = [TaskRow(bitrix_id="5", title="T", responsible_bitrix_id="2")]
        assert store.merge_tasks(account.id, tasks, full=True).inserted == 1
        store.close()
    assert platform_reads(dsn)["employees"] == 2  # Ann (linked, not duplicated) and the new user
