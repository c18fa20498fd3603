"""Resources, all in one place: Core (where rows go), Bitrix24 (a client per account, built from
Core) and the raw-record store (where each read is kept for a day).

Secrets never enter Dagster config: the Core DSN / Supabase key come from ``dg.EnvVar`` (resolved
at launch, hidden in the UI) and each portal's webhook URL or OAuth tokens are read from
``core.integration_accounts.credentials`` at run time and live only inside the client object.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr, SecretStr

from bitrix24_assets.bitrix24 import Bitrix24Client, OAuthCredentials
from bitrix24_assets.core import CoreSettings, CoreStore, IntegrationAccount, open_store
from bitrix24_assets.pipeline import RawStore
from bitrix24_assets.pipeline.raw_store import DEFAULT_RETENTION_HOURS


class CoreResource(dg.ConfigurableResource):
    """The Core database. Which backend is used is decided by what is set:

    ``supabase_url`` + ``supabase_service_role_key`` -> Supabase; ``database_url`` -> Postgres;
    nothing -> the embedded Postgres under ``$DAGSTER_HOME/core_pg`` (local development).
    """

    database_url: str | None = None
    supabase_url: str | None = None
    supabase_service_role_key: str | None = None

    _store: CoreStore | None = PrivateAttr(default=None)

    def get_store(self) -> CoreStore:
        """The store for this run or tick, opened on first use and reused afterwards."""
        if self._store is None:
            self._store = open_store(self.settings())
        return self._store

    def settings(self) -> CoreSettings:
        """Core settings from this resource's fields; other CORE_* tuning still comes from env."""
        return CoreSettings(
            core_database_url=_secret(self.database_url),
            supabase_url=self.supabase_url,
            supabase_service_role_key=_secret(self.supabase_service_role_key),
        )

    @contextmanager
    def store(self) -> Iterator[CoreStore]:
        """A store closed on exit (sensors and schedules, which have no teardown hook)."""
        store = open_store(self.settings())
        try:
            yield store
        finally:
            store.close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class Bitrix24Resource(dg.ConfigurableResource):
    """Builds a Bitrix24 client for one integration account from the credentials stored in Core.

    ``time_scale`` is only for the sandbox portal (its rate-limit clock runs faster in tests);
    ``timeout_seconds`` bounds each HTTP request.
    """

    time_scale: float = 1.0
    timeout_seconds: float = 60.0

    # account id -> the client shared by the steps of this run; see ``run_client``.
    _clients: dict[str, Bitrix24Client] = PrivateAttr(default_factory=dict)

    def run_client(self, account: IntegrationAccount, core: CoreStore) -> Bitrix24Client:
        """The account's client for this run, built on first use and closed at the end of the run:
        one rate-limit bucket per portal within the run, and no new HTTP client per step."""
        client = self._clients.get(account.id)
        if client is None:
            client = self._clients[account.id] = self.client_for(account, core)
        return client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def client_for(self, account: IntegrationAccount, core: CoreStore) -> Bitrix24Client:
        """A ``Bitrix24Client`` for ``account``; raises ``MissingCredentialsError`` without any.

        OAuth tokens refreshed by the client are written back to the account row, so the next run
        starts from the fresh refresh token.
        """
        if account.webhook_url:
            return Bitrix24Client(
                webhook_url=account.webhook_url, time_scale=self.time_scale, timeout=self.timeout_seconds
            )
        oauth = account.oauth
        if oauth:

            def persist(tokens: dict[str, Any]) -> None:
                core.update_credentials(account.id, tokens)

            return Bitrix24Client(
                oauth=OAuthCredentials(**oauth),
                time_scale=self.time_scale,
                timeout=self.timeout_seconds,
                on_token_refresh=persist,
            )
        raise MissingCredentialsError()


class MissingCredentialsError(Exception):
    """The account row has neither a webhook URL nor OAuth tokens (a configuration error)."""

    is_configuration_error = True
    hint = "store the inbound webhook URL"

    def __init__(self) -> None:
        super().__init__(
            "it has no credentials: store its inbound webhook URL (scopes user, task, calendar, im) with "
            "`bitrix24-core accounts update`, or in credentials.webhook_url of its row in "
            "core.integration_accounts"
        )


class RawStoreResource(dg.ConfigurableResource):
    """Where the latest read of each (entity, account) is kept: personal data, ``0600`` files,
    deleted after ``retention_hours`` (swept once per run)."""

    base_dir: str
    retention_hours: float = DEFAULT_RETENTION_HOURS

    @classmethod
    def from_env(cls) -> RawStoreResource:
        return cls(
            base_dir=os.environ.get("BITRIX24_STORAGE_DIR") or default_storage_dir(),
            retention_hours=float(
                os.environ.get("BITRIX24_STORAGE_RETENTION_HOURS", DEFAULT_RETENTION_HOURS)
            ),
        )

    def get(self) -> RawStore:
        return RawStore(self.base_dir, self.retention_hours)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.get().sweep()


def default_storage_dir() -> str:
    home = os.environ.get("DAGSTER_HOME") or str(Path("dagster_home").resolve())
    return str(Path(home) / "storage" / "bitrix24")


def _secret(value: str | None) -> SecretStr | None:
    """A configured secret as CoreSettings holds it (what its validation would make of the string)."""
    return SecretStr(value) if value is not None else None


def _env_or_none(name: str) -> Any:
    """``dg.EnvVar(name)`` when the variable is set at load time, else None.

    EnvVar keeps the value out of the UI and the stored run config; an unset optional variable
    must not become a launch-time error, so it is simply not configured.
    """
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_resources() -> dict[str, Any]:
    """Resource instances keyed by the parameter names the assets, sensors and schedules use."""
    core = CoreResource(
        database_url=_env_or_none("CORE_DATABASE_URL"),
        supabase_url=_env_or_none("SUPABASE_URL"),
        supabase_service_role_key=_env_or_none("SUPABASE_SERVICE_ROLE_KEY"),
    )
    bitrix24 = Bitrix24Resource(
        time_scale=float(os.environ.get("BITRIX24_TIME_SCALE", "1.0")),
        timeout_seconds=float(os.environ.get("BITRIX24_TIMEOUT_SECONDS", "60")),
    )
    return {"core": core, "bitrix24": bitrix24, "raw_store": RawStoreResource.from_env()}


@dg.definitions
def resources() -> dg.Definitions:
    # One process per run also for UI "Materialize" clicks: see jobs.py for why.
    return dg.Definitions(resources=build_resources(), executor=dg.in_process_executor)
