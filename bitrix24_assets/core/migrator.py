"""Apply Core's SQL: numbered migrations once each, the function files when they change, and
access every time.

* ``migrations/NNNN_*.sql`` run once, in order, and are recorded in ``core.schema_migrations``
  with a checksum. They are written to be idempotent anyway
  (IF NOT EXISTS everywhere), so a half-migrated or pre-existing Core is safe.
* ``sql/*.sql`` define functions with CREATE OR REPLACE (the merges both backends call) and are
  re-applied when their checksum changes, like Flyway's repeatable migrations.
* Every migrate then runs ``core.ensure_account_identity()`` (the unique key on accounts' portals,
  left out while duplicates exist) and ``core.apply_access()`` (``sql/grants.sql``): row-level
  security and grants, idempotent, so a ``service_role`` created after the first migrate gets access.

Access is changed only on what the integration created. The migrator records, in the same
transaction that creates them, the tables that did not exist before (kind ``table``) and the
functions its SQL wrote (kind ``function``); ``apply_access`` reads those records. A table the
platform had before (``companies``, ``employees`` with their own policies) keeps its row-level
security, policies and grants. A Core migrated by a version that kept no records: the tables only
the integration defines are recorded as its own, ``companies`` and ``employees`` as the platform's.

Everything runs in one transaction (Postgres DDL is transactional: a failed run leaves nothing
half-done), under an advisory lock that serialises concurrent ``migrate`` calls (two Dagster
processes starting at once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import psycopg

from .errors import CoreConfigurationError

__all__ = ["SqlFile", "apply_migrations", "function_files", "migration_files", "one_row"]

_LOCK_KEY = 0x0B17_C0DE  # advisory lock id for migrations
_REPEATABLE_ORDER = ("accounts.sql", "sync_logs.sql", "inbox.sql")  # helpers the merges call come first
_GRANTS = "grants.sql"
# run by every migrate, each returning one line per change it made
_EVERY_MIGRATE = ("select * from core.ensure_account_identity()", "select * from core.apply_access()")
# A Core migrated before tables were recorded: tables only the integration defines are its own;
# companies and employees may have been the platform's, so they are left alone.
_INTEGRATION_TABLES = (
    "core.integration_accounts",
    "core.tasks",
    "core.calendar_events",
    "core.integration_sync_logs",
    "core.integration_events",
    "core.schema_migrations",
)
_PLATFORM_TABLES = ("core.companies", "core.employees")


def one_row(cursor: psycopg.Cursor[Any], what: str) -> tuple[Any, ...]:
    """The row of a statement that always returns exactly one (``what`` names it for the error)."""
    row = cursor.fetchone()
    if row is None:
        raise CoreConfigurationError(f"{what} returned no row", hint="run `bitrix24-core migrate`")
    return tuple(row)


@dataclass(frozen=True)
class SqlFile:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def _read(folder: Traversable) -> list[SqlFile]:
    return [
        SqlFile(f.name, f.read_text(encoding="utf-8")) for f in folder.iterdir() if f.name.endswith(".sql")
    ]


def migration_files() -> list[SqlFile]:
    """Numbered migrations in the order they apply."""
    return sorted(_read(resources.files(__package__) / "migrations"), key=lambda f: f.name)


def function_files() -> list[SqlFile]:
    """Function files (``sql/``) in apply order: helpers, merges, then grants."""
    files = {f.name: f for f in _read(resources.files(__package__) / "sql")}
    first = [files.pop(n) for n in _REPEATABLE_ORDER if n in files]
    grants = files.pop(_GRANTS)
    return [*first, *sorted(files.values(), key=lambda f: f.name), grants]


def apply_migrations(conn: psycopg.Connection) -> list[str]:
    """Apply what is missing and return what was done, e.g. ``["applied 0001_tables.sql", ...]``.

    Returns an empty list when the Core is already up to date (and its access in place).
    """
    done: list[str] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("create schema if not exists core")
        tables_before = _tables(conn)
        conn.execute(
            "create table if not exists core.schema_migrations ("
            " name text primary key, checksum text not null, kind text not null default 'migration',"
            " applied_at timestamptz not null default now())"
        )
        functions_before = _functions(conn)
        applied: dict[str, str] = dict(
            conn.execute("select name, checksum from core.schema_migrations").fetchall()
        )
        for f in migration_files():
            if f.name not in applied:
                conn.execute(f.sql.encode())
                conn.execute(
                    "insert into core.schema_migrations (name, checksum, kind) values (%s, %s, 'migration')",
                    (f.name, f.checksum),
                )
                done.append(f"applied {f.name}")
        functions = function_files()
        changed = [f for f in functions if applied.get(f"sql/{f.name}") != f.checksum]
        if changed:
            # re-create all function files (cheap) so they always match each other
            for f in functions:
                conn.execute(f.sql.encode())
                conn.execute(
                    "insert into core.schema_migrations (name, checksum, kind) values (%s, %s, 'functions')"
                    " on conflict (name) do update set checksum = excluded.checksum, applied_at = now()",
                    (f"sql/{f.name}", f.checksum),
                )
            done.extend(f"updated functions from sql/{f.name}" for f in changed)
        done.extend(_record_tables(conn, tables_before))
        written = [
            name
            for oid, (name, xmin) in _functions(conn).items()
            if functions_before.get(oid) != (name, xmin)
        ]
        _record(conn, "function", written)
        for query in _EVERY_MIGRATE:
            done.extend(line for (line,) in conn.execute(query).fetchall())
    return done


def _tables(conn: psycopg.Connection) -> set[str]:
    """Tables in schema core, as ``core.<name>`` (quoted where needed)."""
    rows = conn.execute(
        "select format('%I.%I', n.nspname, c.relname) from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'core' and c.relkind in ('r', 'p')"
    ).fetchall()
    return {name for (name,) in rows}


def _functions(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """Functions in schema core: oid -> (signature, xmin). CREATE OR REPLACE rewrites a function's
    catalogue row even when nothing changed, so one written in this transaction has a new xmin.
    Signatures are spelled with an empty search_path (fully qualified, as to_regprocedure reads them
    inside ``core.apply_access``)."""
    (path,) = one_row(conn.execute("select current_setting('search_path')"), "current_setting")
    conn.execute("select set_config('search_path', '', true)")
    try:
        rows = conn.execute(
            "select p.oid::int8, p.oid::regprocedure::text, p.xmin::text from pg_catalog.pg_proc p"
            " where p.pronamespace = 'core'::regnamespace"
        ).fetchall()
    finally:
        conn.execute("select set_config('search_path', %s, true)", (path,))
    return {oid: (name, xmin) for oid, name, xmin in rows}


def _record(conn: psycopg.Connection, kind: str, names: Iterable[str]) -> None:
    """Remember objects the integration created (read by ``core.apply_access``)."""
    with conn.cursor() as cur:
        cur.executemany(
            "insert into core.schema_migrations (name, checksum, kind) values (%s, '', %s)"
            " on conflict (name) do nothing",
            [(name, kind) for name in sorted(names)],
        )


def _record_tables(conn: psycopg.Connection, before: set[str]) -> list[str]:
    """Record the tables this migrate created; adopt the tables of a Core migrated before records
    were kept (those only the integration defines; never companies or employees)."""
    created = _tables(conn) - before
    legacy = (
        "core.schema_migrations" in before
        and not conn.execute("select 1 from core.schema_migrations where kind = 'table' limit 1").fetchone()
    )
    _record(conn, "table", created)
    if not legacy:
        return []
    adopted = sorted(_tables(conn) & set(_INTEGRATION_TABLES))
    _record(conn, "table", adopted)
    line = f"recorded the tables earlier migrations created: {', '.join(adopted)}"
    platform = ", ".join(t for t in _PLATFORM_TABLES if t in _tables(conn))
    if platform:
        line += (
            f"; {platform}: treated as the platform's (row-level security, policies, grants left as they are)"
        )
    return [line]
