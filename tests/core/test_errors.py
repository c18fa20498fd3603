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
    CoreError,
    CoreSettings,
    CoreUnavailableError,
    PostgresStore,
)
from bitrix24_assets.core.embedded import EmbeddedPostgres
from bitrix24_assets.core.errors import VENDOR_ERRORS, translate_errors


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
