"""Fixtures for the Dagster layer: a real temp Dagster instance and the code location wired to
the test Core (embedded Postgres from tests/fixtures/core.py) and the sandbox portal over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.assets import ALL_ASSETS
from bitrix24_assets.defs.jobs import JOBS
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource, RawStoreResource
from bitrix24_assets.defs.schedules import events_sync, hourly_sync, nightly_full_sync
from bitrix24_assets.defs.sensors import accounts_sensor

SANDBOX_TIME_SCALE = 0.001


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def core_resource(core_dsn: str) -> CoreResource:
    return CoreResource(database_url=core_dsn)


@pytest.fixture
def test_defs(core_resource: CoreResource, tmp_path: Path) -> dg.Definitions:
    """The real assets, jobs, sensor and schedules with test resources."""
    return dg.Definitions(
        assets=ALL_ASSETS,
        jobs=JOBS,
        sensors=[accounts_sensor],
        schedules=[hourly_sync, events_sync, nightly_full_sync],
        resources={
            "core": core_resource,
            "bitrix24": Bitrix24Resource(time_scale=SANDBOX_TIME_SCALE),
            "raw_store": RawStoreResource(base_dir=str(tmp_path / "storage")),
        },
        executor=dg.in_process_executor,
    )


class Runner:
    """Runs jobs of ``test_defs`` for one partition on the test instance."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance = defs, instance

    def run(
        self,
        account_id: str,
        job: str = "bitrix24_sync_job",
        *,
        full: bool | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> dg.ExecuteInProcessResult:
        self.instance.add_dynamic_partitions(integration_accounts.name, [account_id])
        job_def = self.defs.resolve_job_def(job)
        config = run_config
        if full is not None:
            from bitrix24_assets.defs.config import read_config
            from bitrix24_assets.pipeline import ENTITIES

            entities = [e for e, s in ENTITIES.items() if job_def.asset_layer.has(dg.AssetKey(s.raw_key))]
            config = read_config(entities, full=full)
        return job_def.execute_in_process(
            instance=self.instance, partition_key=account_id, run_config=config, raise_on_error=False
        )


@pytest.fixture
def runner(test_defs: dg.Definitions, instance: dg.DagsterInstance) -> Runner:
    return Runner(test_defs, instance)


def add_account(
    store: CoreStore,
    webhook_url: str,
    company: str = "Acme",
    name: str = "Portal",
    settings: dict[str, Any] | None = None,
) -> str:
    company_id = store.create_company(company)
    return store.add_account(company_id, name, {"webhook_url": webhook_url}, settings=settings).id


def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
