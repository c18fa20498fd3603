"""The accounts sensor (running by default): partitions follow ``core.integration_accounts``.

Each tick reads the Bitrix24 account rows once and diffs them against the instance's partition
keys: new or re-activated accounts get a partition and one full-sync run; accounts deleted or
set to any status other than ``active``/``error`` lose their partition (accounts in error keep
theirs, so they recover by themselves). The run key holds the account's ``updated_at``, so a
re-activated account is synced again (run keys dedupe forever per sensor). Work per tick is one
query plus two set differences, fine for thousands of accounts. More than
``BITRIX24_FLEET_ONBOARD_ALONE`` (10) new accounts in one tick get their first full syncs in fleet
batches (``bitrix24_fleet_job``, ``BITRIX24_FLEET_ONBOARD_PER_RUN`` = 100 each) instead of a run
each: a run costs Dagster ~7 CPU-s to start, so 5,000 portals arriving at once would otherwise
queue ~10 CPU-hours of run start-ups. Accounts that a Bitrix24
application's install creates (``webhooks/install.py``) are onboarded the same way, and its
uninstall disables the account, so the partition goes and the syncs stop.
"""

import dagster as dg

from bitrix24_assets.defs.fleet import FLEET_ENABLED, ONBOARD_ALONE, fleet_job, onboarding_requests
from bitrix24_assets.defs.jobs import bitrix24_full_sync_job
from bitrix24_assets.defs.partitions import ACCOUNTS_PARTITIONS_NAME, integration_accounts
from bitrix24_assets.defs.resources import CoreResource
from bitrix24_assets.defs.tags import TRIGGER_TAG, account_tags

PARTITIONED_STATUSES = frozenset({"active", "error"})
# Dagster applies at most 25k partition changes per evaluation; the rest follow next tick.
MAX_CHANGES_PER_TICK = 10_000


@dg.sensor(
    name="bitrix24_accounts_sensor",
    jobs=[bitrix24_full_sync_job, fleet_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition and requests a first full sync for each new or re-activated Bitrix24 "
    "account (a run each, or fleet batches when many arrive at once); removes partitions of deleted or "
    "disabled accounts.",
)
def accounts_sensor(
    context: dg.SensorEvaluationContext, core: CoreResource
) -> dg.SensorResult | dg.SkipReason:
    known = set(context.instance.get_dynamic_partitions(ACCOUNTS_PARTITIONS_NAME))
    with core.store() as store:
        accounts = {
            a.id: a for a in store.list_accounts(provider="bitrix24") if a.status in PARTITIONED_STATUSES
        }
        new = sorted(accounts.keys() - known)[:MAX_CHANGES_PER_TICK]
        companies = store.company_names() if new else {}
    gone = sorted(known - accounts.keys())[:MAX_CHANGES_PER_TICK]
    if not new and not gone:
        return dg.SkipReason(f"{len(known)} accounts, no changes")
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if new:
        requests.append(integration_accounts.build_add_request(new))
    if gone:
        requests.append(integration_accounts.build_delete_request(gone))
    context.log.info(
        f"Accounts: {len(new)} added, {len(gone)} removed, {len(known) + len(new) - len(gone)} total"
    )
    if FLEET_ENABLED and len(new) > ONBOARD_ALONE:  # many at once: batches (defs/fleet.py)
        stamps = {key: _stamp(accounts[key]) for key in new}
        batches = onboarding_requests(new, stamps)
        return dg.SensorResult(dynamic_partitions_requests=requests, run_requests=batches)
    runs = [
        dg.RunRequest(
            job_name=bitrix24_full_sync_job.name,
            partition_key=key,
            run_key=f"onboard:{key}:{_stamp(accounts[key])}",
            tags={
                TRIGGER_TAG: "onboarding",
                **account_tags(accounts[key], companies.get(accounts[key].company_id)),
            },
        )
        for key in new
    ]
    return dg.SensorResult(dynamic_partitions_requests=requests, run_requests=runs)


def _stamp(account: object) -> str:
    updated = getattr(account, "updated_at", None)
    return updated.isoformat() if updated else "first"
