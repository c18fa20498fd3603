"""Vendor exceptions become one-sentence CoreErrors at one boundary, and never carry secrets.

Like httpx's tests/test_exceptions.py: if psycopg, psycopg_pool, httpx, postgrest or supabase add
an exception class, ``test_every_vendor_exception_class_is_mapped`` fails until it is mapped.
"""

from __future__ import annotations

import inspect
import socket
from types import ModuleType

import httpx
import postgrest.exceptions
import psycopg
import psycopg_pool
import pytest
import supabase

from bitrix24_assets.core import (
    CoreConfigurationError,
    CoreDataError,
    CoreError,
    CoreSettings,
    CoreUnavailableError,
    PostgresStore,
    TaskRow,
)
from bitrix24_assets.core.embedded import EmbeddedPostgres
from bitrix24_assets.core.errors import (
    MASS_REMOVAL_SQLSTATE,
    VENDOR_ERRORS,
    MassRemovalError,
    translate_errors,
)
from bitrix24_assets.core.supabase import SupabaseStore

from .conftest import add_portal
from .postgrest_standin import running_standin

SUPABASE_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"


def _exception_classes(module: ModuleType) -> set[type[BaseException]]:
    return {
        obj
        for name, obj in inspect.getmembers(module, inspect.isclass)
        if not name.startswith("_")
        if issubclass(obj, Exception) and obj.__module__.split(".")[0] == module.__name__.split(".")[0]
    }


def test_every_vendor_exception_class_is_mapped() -> None:
    vendor = (
        {c for c in _exception_classes(psycopg) if issubclass(c, psycopg.Error)}
        | {
            c
            for c in vars(psycopg.errors).values()
            if isinstance(c, type)
            and issubclass(c, psycopg.Error)
            and not isinstance(getattr(c, "sqlstate", None), str)
            and not c.__name__.startswith("_")  # private helpers, never raised to us
        }
        | _exception_classes(psycopg_pool)
        | _exception_classes(httpx)
        | {postgrest.exceptions.APIError, supabase.SupabaseException}
    )
    unmapped = sorted(f"{c.__module__}.{c.__qualname__}" for c in vendor if c not in VENDOR_ERRORS)
    assert unmapped == []


def test_every_sqlstate_becomes_a_one_sentence_core_error() -> None:
    states = {
        c.sqlstate
        for c in vars(psycopg.errors).values()
        if isinstance(c, type) and isinstance(getattr(c, "sqlstate", None), str)
    }
    assert len(states) > 200
    for sqlstate in states:
        with pytest.raises(CoreError) as info, translate_errors("postgresql://core:***@db:5432/core"):
            raise psycopg.errors.lookup(sqlstate)("boom")
        assert "\n" not in str(info.value)


def test_unreachable_postgres_names_the_host_and_hides_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    dsn = f"postgresql://core:hunter2-secret@127.0.0.1:{port}/core"
    store = PostgresStore(dsn, timeout=1)
    with pytest.raises(CoreUnavailableError) as info:
        store.list_accounts()
    message = str(info.value)
    assert message.startswith(f"Core at postgresql://core:***@127.0.0.1:{port}/core is unreachable")
    assert "hunter2" not in message and "hunter2" not in repr(store)
    assert "CORE_DATABASE_URL" in message
    store.close()


def test_missing_database_is_a_configuration_error(core_server: EmbeddedPostgres) -> None:
    store = PostgresStore(core_server.dsn("no_such_db"), timeout=2)
    with pytest.raises(CoreConfigurationError, match="no such database"):
        store.migrate()
    store.close()


def test_unmigrated_core_says_to_migrate(core_server: EmbeddedPostgres) -> None:
    store = PostgresStore(core_server.dsn("postgres"), timeout=2)
    with pytest.raises(CoreConfigurationError, match="bitrix24-core migrate"):
        store.list_accounts()
    store.close()


def test_settings_repr_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_DATABASE_URL", "postgresql://core:hunter2@db:5432/core")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "eyJhbGciOi.secretpart.sig")
    settings = CoreSettings()
    assert "hunter2" not in repr(settings) and "secretpart" not in repr(settings)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY")
    assert CoreSettings().describe() == "Postgres at postgresql://core:***@db:5432/core"


def test_half_configured_supabase_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from bitrix24_assets.core import open_store

    monkeypatch.setenv("SUPABASE_URL", "https://proj.supabase.co")
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    with pytest.raises(CoreConfigurationError, match="SUPABASE_SERVICE_ROLE_KEY"):
        open_store()


def _translated(sqlstate: str) -> CoreError:
    with pytest.raises(CoreError) as info, translate_errors("postgresql://core:***@db:5432/core"):
        raise psycopg.errors.lookup(sqlstate)("boom")
    return info.value


def test_refused_data_is_never_retryable_and_only_unavailability_is() -> None:
    """SQLSTATE classes 22 (data exception) and 23 (integrity) fail the same way on every retry."""
    states = {
        c.sqlstate
        for c in vars(psycopg.errors).values()
        if isinstance(c, type) and isinstance(getattr(c, "sqlstate", None), str)
    }
    data = sorted(s for s in states if s[:2] in ("22", "23"))
    assert len(data) > 40
    for sqlstate in data:
        error = _translated(sqlstate)
        assert isinstance(error, CoreDataError), sqlstate
        assert not error.retryable, sqlstate
    for sqlstate in ("08006", "40001", "40P01", "53300", "57P01"):
        assert _translated(sqlstate).retryable, sqlstate
    for sqlstate in ("42501", "42P01", "P0002", "28P01"):
        assert not _translated(sqlstate).retryable, sqlstate


def test_mass_removal_sqlstate_becomes_mass_removal_error(core_dsn: str) -> None:
    """core.check_removal's RAISE, as psycopg sees it, carries the figures into the error."""
    with pytest.raises(MassRemovalError) as info, translate_errors("core"), psycopg.connect(core_dsn) as conn:
        conn.execute("select core.check_removal('tasks', 0, 3000, 3000, null)")
    error = info.value
    assert (error.entity, error.live, error.removing, error.max_share, error.min_rows) == (
        "tasks",
        3000,
        3000,
        0.2,
        10,
    )
    assert error.empty_batch and not error.retryable and error.code == MASS_REMOVAL_SQLSTATE
    assert str(error) == (
        "A full read of tasks returned no rows, so the merge would remove all 3,000 of 3,000 live rows; "
        "nothing was changed"
    )
    with pytest.raises(MassRemovalError) as info, translate_errors("core"), psycopg.connect(core_dsn) as conn:
        conn.execute("""select core.check_removal('employees', 90, 100, 30, '{"max_share": 0.25}')""")
    assert str(info.value) == (
        "A full merge of employees would remove 30 of 100 live rows, more than the 25 allowed "
        "(25% of them, at least 10); nothing was changed"
    )


def test_nul_byte_in_a_title_is_a_data_error_and_not_retried(
    core_store: PostgresStore, core_dsn: str
) -> None:
    """Core refuses text with NUL bytes (the mapper strips them; this is the net under it): a
    CoreDataError, not retryable, on both backends and both merge shapes."""
    portal = add_portal(core_store)
    bad = TaskRow(bitrix_id="1", title="before\x00after")
    for rows in ([bad], [TaskRow(bitrix_id="2"), bad]):  # the direct first load, then the staged merge
        with pytest.raises(CoreDataError) as info:
            core_store.merge_tasks(portal.id, rows, full=False)
        assert not info.value.retryable
        core_store.merge_tasks(portal.id, [TaskRow(bitrix_id="2")], full=False)
    with running_standin(core_dsn, SUPABASE_KEY) as (base_url, app):
        store = SupabaseStore(base_url, SUPABASE_KEY, backoff_seconds=0)
        with pytest.raises(CoreDataError) as info:
            store.merge_tasks(portal.id, [bad], full=False)
        assert not info.value.retryable
        assert [c["function"] for c in app.state.calls] == ["merge_tasks"]  # asked once, not retried
        store.close()
