"""Both instance configs load: local (SQLite) and production (Postgres via dagster-postgres).

The production one is loaded against a real Postgres (the embedded test server) and creates
Dagster's storage there, which is what the first start on a production host does. It also runs a
job there: writing run events is what broke when SQLAlchemy 2.1 made psycopg 3 its default
Postgres driver (dagster-postgres' ``NOTIFY run_events, %(id)s`` needs psycopg2), which
pyproject.toml now rules out."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from bitrix24_assets.core.embedded import EmbeddedPostgres

HOME = Path(__file__).resolve().parents[2] / "dagster_home"


@dg.asset
def _probe() -> int:
    return 1


def test_local_instance_config_loads_with_per_portal_limit(tmp_path: Path) -> None:
    shutil.copy(HOME / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    finally:
        instance.dispose()


def test_production_instance_config_loads_on_postgres(
    tmp_path: Path, core_server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(core_server.dsn("postgres"), autocommit=True) as admin:
        admin.execute("drop database if exists dagster_prod_test with (force)")
        admin.execute("create database dagster_prod_test")
    monkeypatch.setenv("DAGSTER_PG_URL", core_server.dsn("dagster_prod_test"))
    shutil.copy(HOME / "dagster.production.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions("integration_accounts", ["acc-1"])
        assert instance.get_dynamic_partitions("integration_accounts") == ["acc-1"]
        result = dg.materialize([_probe], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
        assert instance.all_logs(result.run_id)
    finally:
        instance.dispose()
