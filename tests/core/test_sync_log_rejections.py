"""A sync-log row records what was read but not merged, by reason, on both backends (the Supabase
path over real HTTP to the PostgREST stand-in, tests/core/postgrest_standin.py)."""

from __future__ import annotations

from bitrix24_assets.core import MergeCounts, PostgresStore
from bitrix24_assets.core.supabase import SupabaseStore

from .postgrest_standin import running_standin
from .test_accounts_supabase import HOOK, KEY


def test_rejected_records_are_kept_with_the_sync_log_row(core_store: PostgresStore, core_dsn: str) -> None:
    account = core_store.add_account(core_store.create_company("Acme"), "acme", {"webhook_url": HOOK}).id
    rejected = {"unknown status code": 2, "dropped by the client: repeated ID": 1}
    sync = core_store.start_sync(account, "tasks", "run-1")
    core_store.finish_sync(
        sync, status="success", records_fetched=10, counts=MergeCounts(), rejected=rejected
    )
    with running_standin(core_dsn, KEY) as (base_url, _):
        store = SupabaseStore(base_url, KEY)
        other = store.start_sync(account, "employees", "run-2")
        store.finish_sync(
            other, status="failed", error="too many malformed", rejected={"ACTIVE: not a boolean": 9}
        )
        store.close()
    logs = {log.entity: log for log in core_store.latest_syncs(account)}
    assert logs["tasks"].rejected == rejected and logs["tasks"].records_fetched == 10
    assert logs["employees"].rejected == {"ACTIVE: not a boolean": 9}
    clean = core_store.start_sync(account, "tasks", "run-3")
    core_store.finish_sync(clean, status="success", counts=MergeCounts())
    assert core_store.latest_syncs(account)[-1].rejected is None  # nothing rejected: no map at all
