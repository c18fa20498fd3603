"""What a data engineer reads in the Dagster UI is true, checked through the webserver's GraphQL
API (a real ``dagster-webserver`` on the same instance the runs wrote to):

- ``dagster/row_count`` of ``core_*`` is the rows the account has in the Core table after the merge,
  also after an incremental run that changed two rows;
- ``dagster/column_schema`` is the Core table as the catalogue has it (every column, real types);
- runs carry the account's name and company as tags; materializations name the account;
- check results are stored for the partition they checked, and name it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import psycopg
import pytest

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.sensors import accounts_sensor
from bitrix24_assets.sandbox import SandboxHandle
from tests.defs.conftest import add_account
from tests.defs.test_cli_and_webserver import start_webserver

ASSET = """query ($key: [String!]!, $partition: String!) {
  assetNodeOrError(assetKey: {path: $key}) { ... on AssetNode {
    assetMaterializations(partitions: [$partition], limit: 1) { runId metadataEntries { label
      ... on IntMetadataEntry { intValue }
      ... on TextMetadataEntry { text }
      ... on TableSchemaMetadataEntry { schema { columns { name type } } } } } } } }"""
CHECK = """query ($key: [String!]!, $name: String!) {
  assetCheckExecutions(assetKey: {path: $key}, checkName: $name, limit: 5) {
    partition evaluation { partition success
      metadataEntries { label ... on TextMetadataEntry { text } } } } }"""
RUNS = """query ($value: String!) { runsOrError(filter: {tags: [{key: "bitrix24/account", value: $value}]}) {
  ... on Runs { results { runId tags { key value } } } } }"""


def graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    answer = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30).json()
    assert "errors" not in answer, answer
    return answer["data"]


def entries(materialization: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in materialization["metadataEntries"]:
        out[entry["label"]] = entry.get("intValue", entry.get("text", entry.get("schema")))
    return out


def catalogue(dsn: str, table: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select a.attname, t.typname from pg_attribute a join pg_type t on t.oid = a.atttypid "
            "where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum",
            (table,),
        ).fetchall()


@pytest.mark.timeout(300)
def test_row_counts_schema_tags_and_check_partitions_are_true_in_the_webserver(
    sandbox_factory: Any, core_store: CoreStore, core_dsn: str, tmp_path: Path, test_defs: dg.Definitions
) -> None:
    portal: SandboxHandle = sandbox_factory(users=12, tasks=40, events=10, seed=4)
    account = add_account(core_store, portal.webhook_url, company="Acme Ltd", name="acme.bitrix24.ru")
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # onboarding as the sensor requests it: its run carries the account's tags
        with dg.build_sensor_context(
            instance=instance, resources={"core": test_defs.resources["core"]}
        ) as ctx:
            result = accounts_sensor(ctx)
        (request,) = result.run_requests
        instance.add_dynamic_partitions(integration_accounts.name, [account])
        full = test_defs.resolve_job_def(request.job_name or "bitrix24_full_sync_job").execute_in_process(
            instance=instance, partition_key=account, tags=request.tags
        )
        assert full.success
        some = sorted(portal.state.tasks.rows)[:2]
        for task_id in some:
            portal.admin.update_task(task_id, TITLE=f"Changed {task_id}")
        portal.admin.advance(5)
        hourly = test_defs.resolve_job_def("bitrix24_tasks_job").execute_in_process(
            instance=instance, partition_key=account, tags=request.tags
        )
        assert hourly.success

    with start_webserver(home) as url:
        data = graphql(url, ASSET, key=["core_tasks"], partition=account)
        (latest,) = data["assetNodeOrError"]["assetMaterializations"]
        assert latest["runId"] == hourly.run_id
        meta = entries(latest)
        in_table = len(portal.state.tasks.rows)
        assert meta["updated"] == 2 and meta["dagster/row_count"] == in_table  # not 2: the table's rows
        assert meta["account"] == "acme.bitrix24.ru" and meta["company"] == "Acme Ltd"
        columns = [(c["name"], c["type"]) for c in meta["dagster/column_schema"]["columns"]]
        assert columns == catalogue(core_dsn, "core.tasks")
        assert ("changed_at_source", "timestamptz") in columns and len(columns) > 20

        runs = graphql(url, RUNS, value="acme.bitrix24.ru")["runsOrError"]["results"]
        assert {r["runId"] for r in runs} == {full.run_id, hourly.run_id}
        for run in runs:
            tags = {t["key"]: t["value"] for t in run["tags"]}
            assert tags["bitrix24/company"] == "Acme Ltd" and tags["dagster/partition"] == account

        executions = graphql(url, CHECK, key=["core_tasks"], name="core_tasks_owners_resolved")
        (latest_check, *_) = executions["assetCheckExecutions"]
        assert latest_check["partition"] == account
        check_meta = {e["label"]: e.get("text") for e in latest_check["evaluation"]["metadataEntries"]}
        assert check_meta["partition"] == account and check_meta["account"] == "acme.bitrix24.ru"
