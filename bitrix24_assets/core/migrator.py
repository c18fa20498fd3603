"""Apply Core's SQL: numbered migrations once each, then the function files every time.

* ``migrations/NNNN_*.sql`` run once, in order, and are recorded in ``core.schema_migrations``
  with a checksum. They are written to be idempotent anyway
  (IF NOT EXISTS everywhere), so a half-migrated or pre-existing Core is safe.
* ``sql/*.sql`` define functions with CREATE OR REPLACE (the merges both backends call) and are
  re-applied when their checksum changes, like Flyway's repeatable migrations; ``grants.sql``
  runs last because re-created functions need their grants again.

Everything runs in one transaction (Postgres DDL is transactional: a failed run leaves nothing
half-done), under an advisory lock that serialises concurrent ``migrate`` calls (two Dagster
processes starting at once).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg

__all__ = ["SqlFile", "apply_migrations", "function_files", "migration_files"]

_LOCK_KEY = 0x0B17_C0DE  # advisory lock id for migrations
_REPEATABLE_ORDER = ("accounts.sql", "sync_logs.sql", "inbox.sql")  # helpers the merges call come first
_GRANTS = "grants.sql"


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

    Returns an empty list when the Core is already up to date.
    """
    done: list[str] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("create schema if not exists core")
        conn.execute(
            "create table if not exists core.schema_migrations ("
            " name text primary key, checksum text not null, kind text not null default 'migration',"
            " applied_at timestamptz not null default now())"
        )
        applied = dict(conn.execute("select name, checksum from core.schema_migrations").fetchall())
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
            # re-create all function files (cheap) so grants.sql always follows the latest functions
            for f in functions:
                conn.execute(f.sql.encode())
                conn.execute(
                    "insert into core.schema_migrations (name, checksum, kind) values (%s, %s, 'functions')"
                    " on conflict (name) do update set checksum = excluded.checksum, applied_at = now()",
                    (f"sql/{f.name}", f.checksum),
                )
            done.extend(f"updated functions from sql/{f.name}" for f in changed)
    return done
