"""The JSON-lines IO manager: values handed over in memory within a run, files still written
(0600) and read back whenever the memory copy is absent (a new run re-executing only the merge);
mapped rows are stored as a header and re-derived from the raw file of the same sync."""

from __future__ import annotations

import gc
import os
import stat
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.batches import (
    DERIVED,
    MappedBatch,
    RawBatch,
    RawSpool,
    SyncRun,
    dump_lines,
    load_lines,
    read_header,
)
from bitrix24_assets.defs.io_manager import JsonLinesIOManager
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource
from bitrix24_assets.sandbox import SandboxHandle
from tests.defs.conftest import SANDBOX_TIME_SCALE, Runner, add_account


def meta(result: dg.ExecuteInProcessResult, asset: str, key: str) -> object:
    (mat,) = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(asset)
    ]
    return mat.metadata[key].value


def test_run_hands_values_over_in_memory_and_still_writes_private_files(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, tmp_path: Path
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    result = runner.run(account, "bitrix24_tasks_job", full=True)
    assert result.success
    assert meta(result, "mapped_tasks", "input_source") == "memory"
    assert meta(result, "core_tasks", "input_source") == "memory"
    for asset in ("bitrix_tasks", "mapped_tasks"):
        path = tmp_path / "storage" / asset / f"{account}.jsonl"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert isinstance(meta(result, asset, "io_write_seconds"), float)
    assert isinstance(meta(result, "bitrix_tasks", "io_spool_seconds"), float)  # written while read
    assert sorted(p.name for p in (tmp_path / "storage" / "bitrix_tasks").iterdir()) == [f"{account}.jsonl"]
    raw = load_lines((tmp_path / "storage" / "bitrix_tasks" / f"{account}.jsonl").read_bytes())
    assert isinstance(raw, RawBatch) and len(raw.records) == len(sandbox.state.tasks.rows)
    # The mapped file is one header line: its rows are re-derived from the raw file when needed.
    mapped = (tmp_path / "storage" / "mapped_tasks" / f"{account}.jsonl").read_bytes()
    header = read_header(mapped)
    assert mapped.count(b"\n") == 1 and header["kind"] == DERIVED
    assert header["rows"] == meta(result, "mapped_tasks", "dagster/row_count")
    assert header["sync"] == {**header["sync"], "sync_id": raw.sync.sync_id}


def test_the_step_releases_its_records_when_it_is_done(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore
) -> None:
    """Dagster keeps output values referenced after a step from frames that only the cyclic
    collector frees, and that collector is paused during steps: the step drops its records
    itself, so none outlive it (the files keep them; see RawBatch.release)."""
    account = add_account(core_store, sandbox.webhook_url)
    result = runner.run(account, "bitrix24_tasks_job", full=True)
    assert result.success and meta(result, "core_tasks", "inserted") > 0
    holding = [
        o
        for o in gc.get_objects()
        if (isinstance(o, RawBatch) and o.records) or (isinstance(o, MappedBatch) and o.rows)
    ]
    assert holding == []
    assert result.output_for_node("bitrix_tasks", "bitrix_tasks").released


def test_merge_rerun_in_a_new_run_reads_the_file(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    assert runner.run(account, "bitrix24_full_sync_job").success
    job = runner.defs.resolve_job_def("bitrix24_tasks_job")
    # Only the merge, as a re-execution of a failed merge does: its input is not in memory.
    rerun = job.execute_in_process(
        instance=runner.instance,
        partition_key=account,
        asset_selection=[dg.AssetKey("core_tasks")],
        raise_on_error=False,
    )
    assert rerun.success
    assert meta(rerun, "core_tasks", "input_source") == "file"
    assert meta(rerun, "core_tasks", "unchanged") == len(sandbox.state.tasks.rows)
    assert meta(rerun, "core_tasks", "sync_log_id") != ""


def test_missing_file_fails_with_one_sentence(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, tmp_path: Path
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    assert runner.run(account, "bitrix24_tasks_job", full=True).success
    os.unlink(tmp_path / "storage" / "mapped_tasks" / f"{account}.jsonl")
    rerun = runner.defs.resolve_job_def("bitrix24_tasks_job").execute_in_process(
        instance=runner.instance,
        partition_key=account,
        asset_selection=[dg.AssetKey("core_tasks")],
        raise_on_error=False,
    )
    assert not rerun.success
    (failure,) = [e for e in rerun.all_events if e.is_step_failure]
    assert "No stored output of mapped_tasks" in str(failure.step_failure_data.error)


def test_merge_rerun_refuses_raw_records_of_a_later_sync(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, tmp_path: Path
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    assert runner.run(account, "bitrix24_tasks_job", full=True).success
    mapped_file = tmp_path / "storage" / "mapped_tasks" / f"{account}.jsonl"
    earlier = mapped_file.read_bytes()
    assert runner.run(account, "bitrix24_tasks_job").success  # a later sync overwrites both files
    mapped_file.write_bytes(earlier)  # the earlier mapped header, next to the later raw records
    rerun = runner.defs.resolve_job_def("bitrix24_tasks_job").execute_in_process(
        instance=runner.instance,
        partition_key=account,
        asset_selection=[dg.AssetKey("core_tasks")],
        raise_on_error=False,
    )
    assert not rerun.success
    (failure,) = [e for e in rerun.all_events if e.is_step_failure]
    assert "belong to a later sync than mapped_tasks" in str(failure.step_failure_data.error)


def test_stored_rows_read_back_equal_the_mapped_rows(sandbox: SandboxHandle) -> None:
    from bitrix24_assets.defs.batches import SyncRun
    from bitrix24_assets.sync import ENTITIES, map_records

    sync = SyncRun("tasks", "acc", "sync", "run", True)
    records = [
        {
            "id": str(t.id),
            "title": t.title,
            "status": str(t.status),
            "priority": "2",
            "changedDate": "2026-03-22T09:17:25+03:00",
            "deadline": "2026-04-01T18:00:00Z",
            "responsibleId": str(t.responsible_id or 0),
            "tags": ["a"],
        }
        for t in list(sandbox.state.tasks.rows.values())[:50]
    ]
    rows = map_records(records, ENTITIES["tasks"].mapper).rows
    batch = MappedBatch(sync, rows, len(records), {})
    back = load_lines(b"".join(dump_lines(batch)))
    assert isinstance(back, MappedBatch) and back.rows == rows and back.sync == sync


@pytest.mark.parametrize("count", [0, 1, RawSpool.CHUNK, RawSpool.CHUNK * 2 + 7])
def test_raw_file_written_during_the_read_is_byte_for_byte_the_dumped_one(tmp_path: Path, count: int) -> None:
    sync = SyncRun("tasks", "acc", "sync", "run", True)
    records = [{"id": str(i), "title": f"t{i}\n\u00e9", "tags": [i]} for i in range(count)]
    final = tmp_path / "bitrix_tasks" / "acc.jsonl"
    spool = RawSpool(final, sync)
    for record in records:
        spool.add(record)
    spool.finish()
    assert spool.commit(final)
    assert final.read_bytes() == b"".join(dump_lines(RawBatch(sync, records)))
    assert stat.S_IMODE(final.stat().st_mode) == 0o600
    assert list(final.parent.iterdir()) == [final]  # no spool file left


def test_a_spooled_file_is_committed_only_to_its_own_path_and_when_finished(tmp_path: Path) -> None:
    sync = SyncRun("tasks", "acc", "sync", "run", True)
    final = tmp_path / "bitrix_tasks" / "acc.jsonl"
    spool = RawSpool(final, sync)
    spool.add({"id": "1"})
    assert not spool.commit(final)  # not finished: nothing moved, the half-written file is gone
    assert not final.exists() and list(final.parent.iterdir()) == []
    spool = RawSpool(final, sync)
    spool.finish()
    assert not spool.commit(tmp_path / "bitrix_tasks" / "other.jsonl")
    assert not final.exists() and list(final.parent.iterdir()) == []


def test_a_spool_gone_before_the_output_is_stored_fails_with_one_sentence(tmp_path: Path) -> None:
    """The step keeps no copy of the records it spooled: their file is the only one."""
    sync = SyncRun("tasks", "acc", "sync", "run", True)
    manager = JsonLinesIOManager(base_dir=str(tmp_path))
    spool = manager.spool("bitrix_tasks", "acc", sync)
    spool.add({"id": "1"})
    spool.finish()
    for leftover in (tmp_path / "bitrix_tasks").iterdir():
        leftover.unlink()  # e.g. removed by hand while the run was reading
    context = dg.build_output_context(asset_key=dg.AssetKey("bitrix_tasks"), partition_key="acc")
    with pytest.raises(dg.Failure) as failure:
        manager.handle_output(context, RawBatch(sync, [], spool=spool))
    assert failure.value.description == (
        "Bitrix24 account acc: the file of bitrix_tasks written during the read is gone "
        "(deleted while the run was reading?); materialise it again."
    )


def test_a_read_keeps_no_records_in_memory(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, monkeypatch: Any
) -> None:
    """The raw asset's value points at its file; the records went through the mapper and the
    file one by one (a list of them cost ~190 MB and ~0.3 s to free on a cold run)."""
    held_at_the_end: list[int] = []
    release = RawBatch.release

    def counting_release(batch: RawBatch) -> None:
        held_at_the_end.append(len(batch.records))
        release(batch)

    monkeypatch.setattr(RawBatch, "release", counting_release)
    account = add_account(core_store, sandbox.webhook_url)
    result = runner.run(account, "bitrix24_tasks_job", full=True)
    raw = result.output_for_node("bitrix_tasks", "bitrix_tasks")
    assert result.success and held_at_the_end == [0] and raw.spool is not None
    tasks = len(sandbox.state.tasks.rows)
    assert raw.spool.count == tasks == meta(result, "bitrix_tasks", "dagster/row_count")
    assert meta(result, "core_tasks", "inserted") == len(sandbox.state.tasks.rows)


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


def test_raw_file_is_a_header_and_one_array_and_older_per_line_files_still_load() -> None:
    from bitrix24_assets.defs.batches import SyncRun

    sync = SyncRun("tasks", "acc", "sync", "run", True)
    records = [{"id": "1", "title": "a\nb"}, {"id": "2", "tags": [{"x": 1}, {"y": 2}]}]
    data = b"".join(dump_lines(RawBatch(sync, records)))
    assert data.count(b"\n") == 2 and read_header(data)["layout"] == "array"
    back = load_lines(data)
    assert isinstance(back, RawBatch) and back.records == records and back.sync == sync
    empty = load_lines(b"".join(dump_lines(RawBatch(sync, []))))
    assert isinstance(empty, RawBatch) and empty.records == []
    # the layout written before this change: a header without "layout", one record per line
    import orjson

    old = orjson.dumps({"kind": "raw", "sync": vars(sync)}) + b"\n"
    old += b"".join(orjson.dumps(r) + b"\n" for r in records)
    before = load_lines(old)
    assert isinstance(before, RawBatch) and before.records == records


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
    from bitrix24_assets.sync import ENTITIES

    account = add_account(core_store, sandbox.webhook_url)
    reads: list[str] = []
    real_read, real_merge = assets_module._read, PostgresStore.merge_tasks

    def counting_read(context: Any, spec: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(spec.entity)
        return real_read(context, spec, *args, **kwargs)

    def merge_fails_once(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        if not getattr(merge_fails_once, "failed", False):
            merge_fails_once.failed = True  # type: ignore[attr-defined]
            raise ConnectionResetError("Core closed the connection")
        return real_merge(self, *args, **kwargs)

    monkeypatch.setattr(assets_module, "_read", counting_read)
    monkeypatch.setattr(PostgresStore, "merge_tasks", merge_fails_once)
    # the shipped policy waits 5 s before retrying; the behaviour under test is the same at 0 s
    monkeypatch.setattr(assets_module, "TRANSIENT_RETRY", dg.RetryPolicy(max_retries=1))
    tasks_asset = assets_module._entity_asset(ENTITIES["tasks"])
    defs = dg.Definitions(
        assets=[tasks_asset],
        jobs=[dg.define_asset_job("tasks", executor_def=dg.in_process_executor)],
        resources={
            "core": core_resource,
            "bitrix24": Bitrix24Resource(time_scale=SANDBOX_TIME_SCALE),
            "io_manager": JsonLinesIOManager(base_dir=str(tmp_path / "storage")),
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
    assert meta(result, "core_tasks", "input_source") == "file"


def test_mapped_asset_alone_maps_the_stored_records_again(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    assert runner.run(account, "bitrix24_tasks_job", full=True).success
    rerun = runner.defs.resolve_job_def("bitrix24_tasks_job").execute_in_process(
        instance=runner.instance,
        partition_key=account,
        asset_selection=[dg.AssetKey("mapped_tasks")],
        raise_on_error=False,
    )
    assert rerun.success
    materialized = {e.asset_key.to_user_string() for e in rerun.get_asset_materialization_events()}
    assert materialized == {"mapped_tasks"}  # no read, no merge
    assert meta(rerun, "mapped_tasks", "input_source") == "file"
    assert meta(rerun, "mapped_tasks", "dagster/row_count") == len(sandbox.state.tasks.rows)


def test_outputs_older_than_the_retention_are_swept_with_half_written_ones(tmp_path: Path) -> None:
    """Records are personal data: whatever is older than ``retention_hours`` goes on the next write,
    including files a killed process left half-written."""
    manager = JsonLinesIOManager(base_dir=str(tmp_path), retention_hours=24)
    old = time.time() - 25 * 3600
    stale = [tmp_path / "bitrix_users" / name for name in ("a.jsonl", "b.tmp", "c.spool")]
    kept = [tmp_path / "bitrix_users" / "fresh.jsonl", tmp_path / "bitrix_users" / "notes.txt"]
    for file in (*stale, *kept):
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"{}")
    for file in (*stale, kept[1]):
        os.utime(file, (old, old))
    sync = SyncRun("tasks", "acc", "sync", "run", True)
    context = dg.build_output_context(asset_key=dg.AssetKey("bitrix_tasks"), partition_key="acc")
    manager.handle_output(context, RawBatch(sync, [{"id": "1"}]))
    assert [f.exists() for f in stale] == [False, False, False]
    assert all(f.exists() for f in kept)  # fresh, or not a stored output
    assert (tmp_path / "bitrix_tasks" / "acc.jsonl").exists()
