"""Data checks of one account's entity, without Dagster: each gives a verdict and its figures.

``mostly_valid`` runs before the merge and stops it (the API probably changed shape); the others
run right after a merge and query Core for this account. The Dagster layer turns each
:class:`CheckOutcome` into an ``AssetCheckResult`` of the same name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bitrix24_assets.core import CoreStore
from bitrix24_assets.core.store import Entity as CoreEntity

__all__ = ["CORE_CHECKS", "CheckOutcome", "CoreCheck", "PostMerge", "checks_for", "evaluate", "mostly_valid"]

Severity = Literal["error", "warn"]

# Rejections that are not malformed data: people who are not employees, and repeated IDs.
NOT_MALFORMED = ("is not an employee", "repeated ID")


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "error"


@dataclass(frozen=True)
class PostMerge:
    """What the post-merge checks may look at besides Core."""

    account_id: str
    company_id: str | None = None  # narrows the company-wide checks to the account's company
    active_read: int | None = None  # employees: active users in the read
    non_employee_ids: Sequence[str] = ()  # Bitrix users known not to be employees (extranet, ...)


@dataclass(frozen=True)
class CoreCheck:
    """A check of ``core_<entity>`` for each registry entity that lists ``suffix`` in its ``checks``."""

    suffix: str
    description: str
    evaluate: Callable[[CoreStore, CoreEntity, PostMerge], tuple[bool, dict[str, Any], Severity]]

    def name(self, entity: str) -> str:
        return f"core_{entity}_{self.suffix}"


def _no_duplicates(
    store: CoreStore, core_entity: CoreEntity, ctx: PostMerge
) -> tuple[bool, dict[str, Any], Severity]:
    duplicates = store.duplicate_bitrix_ids(ctx.account_id, core_entity)
    return duplicates == 0, {"duplicate_bitrix_ids": duplicates}, "error"


def _employee_count(
    store: CoreStore, core_entity: CoreEntity, ctx: PostMerge
) -> tuple[bool, dict[str, Any], Severity]:
    in_core = store.count_active_employees(ctx.account_id)
    read = ctx.active_read
    return in_core == read, {"active_in_core": in_core, "active_users_read": read}, "error"


def _one_account_per_portal(
    store: CoreStore, core_entity: CoreEntity, ctx: PostMerge
) -> tuple[bool, dict[str, Any], Severity]:
    groups = [g for g in store.duplicate_accounts(ctx.company_id) if ctx.account_id in {a.id for a in g}]
    others = sorted(a.id for g in groups for a in g if a.id != ctx.account_id)
    return not others, {"other_accounts_for_this_portal": ", ".join(others) or "none"}, "error"


def _owners_resolved(
    store: CoreStore, core_entity: CoreEntity, ctx: PostMerge
) -> tuple[bool, dict[str, Any], Severity]:
    people = store.unresolved_task_people(ctx.account_id, ctx.non_employee_ids)
    return (
        people.unknown == 0,
        {"tasks_with_unknown_people": people.unknown, "tasks_of_non_employees": people.non_employees},
        "warn",
    )


def _tree_resolved(
    store: CoreStore, core_entity: CoreEntity, ctx: PostMerge
) -> tuple[bool, dict[str, Any], Severity]:
    problems = store.department_problems(ctx.account_id)
    return problems.get("orphans", 0) == 0, problems, "warn"


CORE_CHECKS: tuple[CoreCheck, ...] = (
    CoreCheck(
        "no_duplicate_bitrix_ids",
        "Each Bitrix24 ID is stored at most once for the account.",
        _no_duplicates,
    ),
    CoreCheck(
        "count_matches_source",
        "Active employees in Core equal the active users of a read proven complete (users are always "
        "read in full).",
        _employee_count,
    ),
    CoreCheck(
        "one_account_per_portal",
        "No other integration account of the company syncs the same portal (it would store every "
        "person twice).",
        _one_account_per_portal,
    ),
    CoreCheck(
        "owners_resolved",
        "Counts live tasks whose responsible person or creator is not a known employee (warns); tasks "
        "of people known not to be employees (extranet guests) are counted apart and do not fail it.",
        _owners_resolved,
    ),
    CoreCheck(
        "tree_resolved",
        "Every live department's parent is a live department of the account (warns); heads who are not "
        "employees of the account are counted and do not fail it.",
        _tree_resolved,
    ),
)


def checks_for(entity: str) -> list[CoreCheck]:
    """The checks of ``core_<entity>``: those its registry entry lists (``Entity.checks``)."""
    from bitrix24_assets.pipeline.entities import ENTITIES

    wanted = ENTITIES[entity].checks if entity in ENTITIES else ()
    return [check for check in CORE_CHECKS if check.suffix in wanted]


def evaluate(store: CoreStore, entity: str, core_entity: CoreEntity, ctx: PostMerge) -> list[CheckOutcome]:
    """Run the checks of ``core_<entity>``; a check that cannot run fails with the reason."""
    outcomes = []
    for check in checks_for(entity):
        try:
            passed, metadata, severity = check.evaluate(store, core_entity, ctx)
        except Exception as exc:
            passed, metadata, severity = False, {"error": type(exc).__name__}, "error"
        outcomes.append(CheckOutcome(check.name(entity), passed, metadata, severity))
    return outcomes


def mostly_valid(name: str, rejected: Mapping[str, int], records_read: int, max_share: float) -> CheckOutcome:
    """Blocking: too many malformed records means the API changed under us; do not merge."""
    invalid = sum(n for reason, n in rejected.items() if not any(i in reason for i in NOT_MALFORMED))
    share = invalid / records_read if records_read else 0.0
    return CheckOutcome(
        name,
        passed=share <= max_share,
        metadata={"invalid_records": invalid, "invalid_share": round(share, 4), "max_share": max_share},
    )
