"""Raw records between the assets of an entity: no value is handed to Dagster; the read is kept in
a private file (0600) that a later step or run merges again, and retention deletes it."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource, RawStoreResource
from bitrix24_assets.pipeline import ENTITIES, RawStore
from bitrix24_assets.pipeline.raw_store import RawSpool, ReadEnding, ReadHeader
from bitrix24_assets.sandbox import SandboxHandle
from tests.defs.conftest import SANDBOX_TIME_SCALE, Runner, add_account


def meta(result: dg.ExecuteInProcessResult, asset: str, key: str) -> object:
    (mat,) = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(asset)
    ]
    return mat.metadata[key].value


def rerun(runner: Runner, account: str, *assets: str) -> dg.ExecuteInProcessResult:
    return runner.defs.resolve_job_def("bitrix24_tasks_job").execute_in_process(
        instance=runner.instance,
        partition_key=account,
        asset_selection=[dg.AssetKey(a) for a in assets],
        raise_on_error=False,
    )


def test_a_run_keeps_its_read_in_one_private_file_and_hands_no_value_to_dagster(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, tmp_path: Path
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    result = runner.run(account, "bitrix24_tasks_job", full=True)
    assert result.success
    folder = tmp_path / "storage" / "bitrix_tasks"
    assert [p.name for p in folder.iterdir()] == [f"{account}.jsonl"]  # no spool left, nothing else
    assert stat.S_IMODE((folder / f"{account}.jsonl").stat().st_mode) == 0o600
    stored = RawStore(tmp_path / "storage").load("bitrix_tasks", account)
    assert stored is not None and len(stored.records) == len(sandbox.state.tasks.rows)
    assert stored.header.run_id == result.run_id and stored.header.full
    assert stored.ending.verified  # a full keyset read proven complete
    assert not (tmp_path / "storage" / "mapped_tasks").exists()  # mapped rows are derived, not stored
    assert meta(result, "mapped_tasks", "mapped_while_reading") is True
    handled = [e for e in result.all_events if e.event_type == dg.DagsterEventType.HANDLED_OUTPUT]
    assert handled == []  # no value went through an IO manager


def test_the_merge_alone_in_a_new_run_merges_the_stored_read(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    assert runner.run(account, "bitrix24_full_sync_job").success
    again = rerun(runner, account, "core_tasks")
    assert again.success
    assert {e.asset_key.to_user_string() for e in again.get_asset_materialization_events()} == {"core_tasks"}
    assert meta(again, "core_tasks", "unchanged") == len(sandbox.state.tasks.rows)
    assert meta(again, "core_tasks", "sync_log_id") != ""


def test_mapped_alone_maps_the_stored_records_again(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    assert runner.run(account, "bitrix24_tasks_job", full=True).success
    again = rerun(runner, account, "mapped_tasks")
    assert again.success
    assert {e.asset_key.to_user_string() for e in again.get_asset_materialization_events()} == {
        "mapped_tasks"
    }
    assert meta(again, "mapped_tasks", "input_source") == "file"
    assert meta(again, "mapped_tasks", "dagster/row_count") == len(sandbox.state.tasks.rows)


def test_the_merge_alone_without_a_stored_read_fails_with_one_sentence(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, tmp_path: Path
) -> None:
    account = add_account(core_store, sandbox.webhook_url, name="Acme portal")
    assert runner.run(account, "bitrix24_tasks_job", full=True).success
    os.unlink(tmp_path / "storage" / "bitrix_tasks" / f"{account}.jsonl")
    again = rerun(runner, account, "core_tasks")
    assert not again.success
    (failure,) = [e for e in again.all_events if e.is_step_failure]
    assert f"Bitrix24 account 'Acme portal' ({account}): there is no stored read of bitrix_tasks" in str(
        failure.step_failure_data.error
    )


def test_a_read_that_fails_leaves_no_file_behind(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, tmp_path: Path, monkeypatch: Any
) -> None:
    import bitrix24_assets.sync.tasks as tasks_module

    def broken_row(**fields: Any) -> Any:
        raise KeyError("planted")

    account = add_account(core_store, sandbox.webhook_url)
    monkeypatch.setattr(tasks_module, "TaskRow", broken_row)  # fails in the middle of the read
    assert not runner.run(account, "bitrix24_tasks_job", full=True).success
    folder = tmp_path / "storage" / "bitrix_tasks"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_retry_after_a_failed_merge_merges_the_records_already_read(
    sandbox: SandboxHandle,
    core_store: CoreStore,
    core_resource: CoreResource,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read, map and merge share a step; when the merge fails for a transient reason (Core went
    away) the step's retry merges what this run read instead of reading the portal again."""
    import bitrix24_assets.defs.assets as assets_module
    from bitrix24_assets.core import PostgresStore
    from bitrix24_assets.pipeline.entity_sync import EntitySync

    account = add_account(core_store, sandbox.webhook_url)
    reads: list[str] = []
    real_read, real_merge = EntitySync.read, PostgresStore.merge_tasks

    def counting_read(self: EntitySync, account: Any, entity: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(entity.name)
        return real_read(self, account, entity, *args, **kwargs)

    def merge_fails_once(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        if not getattr(merge_fails_once, "failed", False):
            merge_fails_once.failed = True  # type: ignore[attr-defined]
            raise ConnectionResetError("Core closed the connection")
        return real_merge(self, *args, **kwargs)

    monkeypatch.setattr(EntitySync, "read", counting_read)
    monkeypatch.setattr(PostgresStore, "merge_tasks", merge_fails_once)
    # the shipped policy waits 5 s before retrying; the behaviour under test is the same at 0 s
    monkeypatch.setattr(assets_module, "TRANSIENT_RETRY", dg.RetryPolicy(max_retries=1))
    defs = dg.Definitions(
        assets=[assets_module.entity_assets(ENTITIES["tasks"])],
        jobs=[dg.define_asset_job("tasks", executor_def=dg.in_process_executor)],
        resources={
            "core": core_resource,
            "bitrix24": Bitrix24Resource(time_scale=SANDBOX_TIME_SCALE),
            "raw_store": RawStoreResource(base_dir=str(tmp_path / "storage")),
        },
    )
    instance.add_dynamic_partitions(integration_accounts.name, [account])
    result = defs.resolve_job_def("tasks").execute_in_process(
        instance=instance, partition_key=account, raise_on_error=False
    )
    assert result.success
    assert reads == ["tasks"]  # one read, although the step ran twice
    raw_reads = [
        e.step_materialization_data.materialization.metadata["read"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("bitrix_tasks")
    ]
    assert raw_reads == ["full", "this run's first try"]  # no cursor yet: the first read is full
    assert meta(result, "core_tasks", "inserted") == len(sandbox.state.tasks.rows)


@pytest.mark.parametrize("count", [0, 1, RawSpool.CHUNK, RawSpool.CHUNK * 2 + 7])
def test_a_read_written_while_it_arrives_loads_back_exactly(tmp_path: Path, count: int) -> None:
    store = RawStore(tmp_path)
    header = ReadHeader("tasks", "acc", "run", True, window={"date_from": "a", "date_to": "b"})
    records = [{"id": str(i), "title": f"t{i}\n\u00e9", "tags": [i]} for i in range(count)]
    spool = store.spool("bitrix_tasks", header)
    for record in records:
        spool.add(record)
    ending = ReadEnding(
        owners=[["user", "1"]], dropped={"repeated ID": 2}, verified=True, counted_total=count
    )
    spool.commit(ending)
    back = store.load("bitrix_tasks", "acc")
    assert back is not None and (back.header, back.ending, back.records) == (header, ending, records)
    final = store.path("bitrix_tasks", "acc")
    assert stat.S_IMODE(final.stat().st_mode) == 0o600 and list(final.parent.iterdir()) == [final]


def test_a_discarded_read_leaves_nothing_and_the_earlier_file_stays(tmp_path: Path) -> None:
    store = RawStore(tmp_path)
    first = store.spool("bitrix_tasks", ReadHeader("tasks", "acc", "run1", True))
    first.add({"id": "1"})
    first.commit()
    second = store.spool("bitrix_tasks", ReadHeader("tasks", "acc", "run2", True))
    second.add({"id": "2"})
    second.discard()
    back = store.load("bitrix_tasks", "acc")
    assert back is not None and back.header.run_id == "run1" and back.records == [{"id": "1"}]
    assert [p.name for p in (tmp_path / "bitrix_tasks").iterdir()] == ["acc.jsonl"]


def test_files_older_than_the_retention_are_swept_with_half_written_ones(tmp_path: Path) -> None:
    """Records are personal data: whatever is older than ``retention_hours`` goes, including files
    a killed process left half-written."""
    store = RawStore(tmp_path, retention_hours=24)
    old = time.time() - 25 * 3600
    stale = [tmp_path / "bitrix_users" / name for name in ("a.jsonl", "b.tmp", "c.spool")]
    kept = [tmp_path / "bitrix_users" / "fresh.jsonl", tmp_path / "bitrix_users" / "notes.txt"]
    for file in (*stale, *kept):
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"{}")
    for file in (*stale, kept[1]):
        os.utime(file, (old, old))
    assert store.sweep() == 3
    assert [f.exists() for f in stale] == [False, False, False]
    assert all(f.exists() for f in kept)  # fresh, or not a stored read
