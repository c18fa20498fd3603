"""Which Core to use, from the environment, and ``open_store()`` to get it.

* ``SUPABASE_URL`` + ``SUPABASE_SERVICE_ROLE_KEY`` -> :class:`SupabaseStore` (schema ``core``)
* ``CORE_DATABASE_URL``                             -> :class:`PostgresStore`
* nothing                                           -> embedded Postgres under ``$DAGSTER_HOME/core_pg``
  (``./dagster_home/core_pg``), started on demand, migrated, seeded with a demo company and one
  Bitrix24 account pointing at the local sandbox portal.

``open_existing_store()`` is the same choice for commands that must not create anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .embedded import EmbeddedPostgres, default_data_dir
from .errors import CoreConfigurationError
from .postgres import PostgresStore
from .secrets import redact_dsn
from .store import CoreStore

__all__ = [
    "DEFAULT_SANDBOX_PORT",
    "DEFAULT_SANDBOX_WEBHOOK_URL",
    "DEMO_ACCOUNT_NAME",
    "DEMO_COMPANY_NAME",
    "CoreSettings",
    "open_existing_store",
    "open_store",
    "seed_demo",
]

DEMO_COMPANY_NAME = "Demo company"
DEMO_ACCOUNT_NAME = "Sandbox portal"
DEFAULT_SANDBOX_PORT = 8765
# Deterministic so the sandbox CLI (bitrix24-sandbox --port 8765 --webhook-token <this>) and the
# seeded account agree without configuration. It only opens the local sandbox, never a real portal.
DEMO_WEBHOOK_TOKEN = hashlib.sha256(b"bitrix24_assets demo webhook").hexdigest()[:16]
DEFAULT_SANDBOX_WEBHOOK_URL = f"http://127.0.0.1:{DEFAULT_SANDBOX_PORT}/rest/1/{DEMO_WEBHOOK_TOKEN}/"


class CoreSettings(BaseSettings):
    """Core connection settings (env vars in brackets). Secrets are SecretStr: repr shows ``**********``."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    core_database_url: SecretStr | None = None  # CORE_DATABASE_URL
    supabase_url: str | None = None  # SUPABASE_URL
    supabase_service_role_key: SecretStr | None = None  # SUPABASE_SERVICE_ROLE_KEY
    core_pool_max_size: int = 10  # CORE_POOL_MAX_SIZE: connections per process
    core_connect_timeout: float = 10.0  # CORE_CONNECT_TIMEOUT: seconds
    core_supabase_chunk_rows: int = 5000  # CORE_SUPABASE_CHUNK_ROWS: rows per RPC call
    core_embedded_dir: Path | None = None  # CORE_EMBEDDED_DIR (default $DAGSTER_HOME/core_pg)
    core_embedded_port: int = 0  # CORE_EMBEDDED_PORT (0: a free port, remembered)
    bitrix24_sandbox_webhook_url: SecretStr | None = None  # BITRIX24_SANDBOX_WEBHOOK_URL (demo account)

    @property
    def backend(self) -> Literal["supabase", "postgres", "embedded"]:
        if self.supabase_url or self.supabase_service_role_key:
            return "supabase"
        return "postgres" if self.core_database_url else "embedded"

    def describe(self) -> str:
        """Where Core is, safe to print."""
        if self.backend == "supabase":
            return f"Supabase at {self.supabase_url}"
        if self.backend == "postgres" and self.core_database_url:  # the backend implies the URL
            return f"Postgres at {redact_dsn(self.core_database_url.get_secret_value())}"
        return f"embedded Postgres in {self.core_embedded_dir or default_data_dir()}"


def open_store(settings: CoreSettings | None = None, *, migrate: bool | None = None) -> CoreStore:
    """The configured CoreStore.

    ``migrate`` defaults to True for the embedded Core (it is ours to manage) and False otherwise
    (a shared Core is migrated deliberately with ``bitrix24-core migrate``).
    """
    settings = settings or CoreSettings()
    if settings.backend == "supabase":
        from .supabase import SupabaseStore

        if not (settings.supabase_url and settings.supabase_service_role_key):
            raise CoreConfigurationError(
                "Supabase Core is half-configured",
                hint="set both SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY (or neither)",
            )
        store: CoreStore = SupabaseStore(
            settings.supabase_url,
            settings.supabase_service_role_key.get_secret_value(),
            chunk_rows=settings.core_supabase_chunk_rows,
            database_url=settings.core_database_url.get_secret_value()
            if settings.core_database_url
            else None,
        )
        if migrate:
            store.migrate()
        return store
    if settings.backend == "postgres" and settings.core_database_url:  # the backend implies the URL
        store = PostgresStore(
            settings.core_database_url.get_secret_value(),
            max_size=settings.core_pool_max_size,
            timeout=settings.core_connect_timeout,
        )
        if migrate:
            store.migrate()
        return store
    server = EmbeddedPostgres(
        settings.core_embedded_dir or default_data_dir(), port=settings.core_embedded_port
    )
    store = PostgresStore(
        server.start(), max_size=settings.core_pool_max_size, timeout=settings.core_connect_timeout
    )
    if migrate is not False:
        store.migrate()
        webhook = settings.bitrix24_sandbox_webhook_url
        seed_demo(store, webhook.get_secret_value() if webhook else DEFAULT_SANDBOX_WEBHOOK_URL)
    return store


@contextmanager
def open_existing_store(settings: CoreSettings | None = None) -> Iterator[CoreStore]:
    """The configured Core for commands that read it or change rows already there (status, accounts
    list/update/remove): never creates, migrates or seeds a Core. An embedded Core that is not
    running is started for the block and stopped after it; one that does not exist is an error
    naming where it was looked for (:meth:`EmbeddedPostgres.existing`)."""
    settings = settings or CoreSettings()
    if settings.backend != "embedded":
        with open_store(settings, migrate=False) as store:
            yield store
        return
    data_dir = settings.core_embedded_dir or default_data_dir()
    server = EmbeddedPostgres(data_dir, port=settings.core_embedded_port)
    pool_size, timeout = settings.core_pool_max_size, settings.core_connect_timeout
    with server.existing() as dsn, PostgresStore(dsn, max_size=pool_size, timeout=timeout) as store:
        yield store


def seed_demo(store: CoreStore, webhook_url: str = DEFAULT_SANDBOX_WEBHOOK_URL) -> str | None:
    """Create the demo company and its sandbox account unless any Bitrix24 account exists.

    Returns the new account id, or None when there was already an account (never overwritten).
    """
    if store.list_accounts(provider="bitrix24"):
        return None
    company_id = store.create_company(DEMO_COMPANY_NAME)
    account = store.add_account(
        company_id,
        DEMO_ACCOUNT_NAME,
        {"webhook_url": webhook_url},
        settings={"entities": ["employees", "tasks", "calendar_events"], "demo": True},
    )
    return account.id
