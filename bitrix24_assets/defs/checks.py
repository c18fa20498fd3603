"""Data checks evaluated by each core asset right after its merge, per account.

They run inside the core step (``check_specs``) rather than as separate ``@asset_check`` ops
because they query Core for *this* account, which needs the partition key; per-partition
standalone checks are still a preview feature in Dagster 1.13.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.batches import MappedBatch

Evaluate = Callable[[CoreStore, str, str, MappedBatch], dg.AssetCheckResult]
SYNC_ENTITY = {"employees": "employees", "tasks": "tasks", "events": "calendar_events"}


@dataclass(frozen=True)
class CoreCheck:
    """A check of ``core_<entity>`` for each entity in ``entities``."""

    suffix: str
    description: str
    evaluate: Evaluate
    entities: tuple[str, ...]

    def name(self, entity: str) -> str:
        return f"core_{entity}_{self.suffix}"


def _no_duplicates(store: CoreStore, account_id: str, entity: str, batch: MappedBatch) -> dg.AssetCheckResult:
    duplicates = store.duplicate_bitrix_ids(account_id, SYNC_ENTITY[entity])  # type: ignore[arg-type]
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_bitrix_ids": duplicates})


def _employee_count(
    store: CoreStore, account_id: str, entity: str, batch: MappedBatch
) -> dg.AssetCheckResult:
    in_core = store.count_active_employees(account_id)
    read = sum(1 for row in batch.rows if row.is_active)
    return dg.AssetCheckResult(
        passed=in_core == read, metadata={"active_in_core": in_core, "active_users_read": read}
    )


def _owners_resolved(
    store: CoreStore, account_id: str, entity: str, batch: MappedBatch
) -> dg.AssetCheckResult:
    unresolved = store.unresolved_task_people(account_id)
    return dg.AssetCheckResult(
        passed=unresolved == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"tasks_with_unknown_people": unresolved},
    )


CORE_CHECKS: tuple[CoreCheck, ...] = (
    CoreCheck(
        "no_duplicate_bitrix_ids",
        "Each Bitrix24 ID is stored at most once for the account.",
        _no_duplicates,
        ("employees", "tasks", "events"),
    ),
    CoreCheck(
        "count_matches_source",
        "Active employees in Core equal the active users read from Bitrix24 (users are always read in full).",
        _employee_count,
        ("employees",),
    ),
    CoreCheck(
        "owners_resolved",
        "Counts live tasks whose responsible person or creator is not a known "
        "employee (warns; extranet users and users removed in Bitrix24 end up here).",
        _owners_resolved,
        ("tasks",),
    ),
)


def checks_for(entity: str) -> list[CoreCheck]:
    """The checks of ``core_<entity>``."""
    return [check for check in CORE_CHECKS if entity in check.entities]


def evaluate_checks(
    store: CoreStore, account_id: str, entity: str, batch: MappedBatch
) -> list[dg.AssetCheckResult]:
    """Run the checks of ``core_<entity>``; a check that cannot run fails with the reason."""
    results = []
    for check in checks_for(entity):
        try:
            result = check.evaluate(store, account_id, entity, batch)
        except Exception as exc:
            result = dg.AssetCheckResult(passed=False, metadata={"error": type(exc).__name__})
        results.append(
            dg.AssetCheckResult(
                asset_key=f"core_{entity}",
                check_name=check.name(entity),
                passed=result.passed,
                metadata=result.metadata,
                severity=result.severity,
            )
        )
    return results


def mostly_valid(
    batch_rejected: dict[str, int], records_read: int, max_share: float = 0.2
) -> dg.AssetCheckResult:
    """Blocking: too many malformed records means the API changed under us; do not merge."""
    ignored = ("is not an employee", "repeated ID")
    invalid = sum(n for reason, n in batch_rejected.items() if not any(i in reason for i in ignored))
    share = invalid / records_read if records_read else 0.0
    return dg.AssetCheckResult(
        passed=share <= max_share,
        metadata={"invalid_records": invalid, "invalid_share": round(share, 4), "max_share": max_share},
    )
