"""The daily retention job deletes personal data past its age, through the real job and the test
Core: processed inbox events older than the configured days, old sync logs (never an entity's
latest successful row, which holds the cursor), and raw-record files past their retention."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from bitrix24_assets.core import CoreStore, MergeCounts
from bitrix24_assets.defs.resources import CoreResource, RawStoreResource
from bitrix24_assets.defs.retention import bitrix24_retention, bitrix24_retention_job
from tests.defs.conftest import add_account, query


def test_the_retention_job_deletes_what_is_past_its_age_and_keeps_the_cursor(
    core_store: CoreStore, core_dsn: str, core_resource: CoreResource, tmp_path: Path
) -> None:
    account = add_account(core_store, "https://acme.bitrix24.ru/rest/1/s3cr3tt0ken/")
    core_store.put_event(account, "ONUSERADD", {"EMAIL": "old@acme.ru"}, "old")
    core_store.put_event(account, "ONUSERADD", {"EMAIL": "new@acme.ru"}, "new")
    core_store.put_event(account, "ONUSERADD", {"EMAIL": "pending@acme.ru"}, "pending")
    core_store.mark_events_processed([e.id for e in core_store.pending_events() if e.dedupe_key != "pending"])
    cursor = {"changed_since": "2026-01-01T00:00:00+00:00"}
    for status in ("success", "failed", "success"):
        sync = core_store.start_sync(account, "tasks", "run")
        core_store.finish_sync(sync, status=status, counts=MergeCounts(), cursor=cursor, error=None)
    query(
        core_dsn,
        "update core.integration_events set received_at = now() - interval '40 days' "
        "where dedupe_key in ('old', 'pending') returning id",
    )
    query(
        core_dsn,
        "update core.integration_sync_logs set started_at = started_at - interval '100 days', "
        "finished_at = finished_at - interval '100 days' returning id",  # (their order kept)
    )
    stale = tmp_path / "raw" / "bitrix_users" / f"{account}.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"{}\n[]\n")
    old = time.time() - 25 * 3600
    os.utime(stale, (old, old))

    result = bitrix24_retention_job.execute_in_process(
        resources={"core": core_resource, "raw_store": RawStoreResource(base_dir=str(tmp_path / "raw"))},
        run_config={"ops": {"purge_personal_data": {"config": {"events_days": 30, "sync_logs_days": 90}}}},
    )
    assert result.success
    keys = {k for (k,) in query(core_dsn, "select dedupe_key from core.integration_events")}
    assert keys == {"new", "pending"}  # a pending event is still to be synced, whatever its age
    logs = query(core_dsn, "select status, cursor from core.integration_sync_logs")
    assert logs == [("success", cursor)]  # the latest success holds the cursor the next read starts from
    assert core_store.get_cursor(account, "tasks") == cursor
    assert not stale.exists()


def test_the_retention_schedule_runs_the_job_daily() -> None:
    assert bitrix24_retention.job_name == bitrix24_retention_job.name
    assert bitrix24_retention.cron_schedule == "45 3 * * *"
    assert bitrix24_retention.default_status == dg.DefaultScheduleStatus.RUNNING
