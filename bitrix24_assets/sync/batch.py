"""Map a whole read: rows, rejections counted by reason, repeated IDs dropped, what was seen.

Repeated IDs happen for real: a task edited while pages are being read can show up on two
pages, and a recurring calendar event is returned once per occurrence with the same ``ID``.
Core keys rows by (account, bitrix_id), so exactly one row per ID may reach the merge.

A rejected record was still *seen*: its ID goes into ``rejected_ids`` so a full merge keeps the
row Core already has (its last good values) instead of removing it because this copy was
malformed. A rejected record without a readable ID is only counted (``unidentified``): nothing
says which row it was, so a full merge cannot prove that any row disappeared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bitrix24_assets.core.rows import CoreRow
from bitrix24_assets.gc_pause import cyclic_gc_paused
from bitrix24_assets.sync.rejection import Rejection

RowT = TypeVar("RowT", bound=CoreRow)

DUPLICATE_REASON = "repeated ID (recurring occurrence or page overlap), first kept"


@dataclass
class MappingResult(Generic[RowT]):
    """What a mapped asset returns and reports.

    Attributes:
        rows: one row per Bitrix ID, in read order.
        rejected: rejected records by fixed reason (repeated IDs under ``DUPLICATE_REASON``).
        records_read: every record the mapper was given.
        rejected_ids: IDs of rejected records: seen in the read, so never removed by a full merge.
        unidentified: rejected records without a readable ID.
        field_issues: per-field problems of the rows kept, keyed ``"<Bitrix field>: <reason>"``
            (each row's own are in its ``metadata["field_issues"]``).
    """

    rows: list[RowT] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    records_read: int = 0
    rejected_ids: set[str] = field(default_factory=set)
    unidentified: int = 0
    field_issues: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def map_records(records: Iterable[Any], mapper: Callable[[Any], RowT | Rejection]) -> MappingResult[RowT]:
    """Apply ``mapper`` to every record; keep the first row per ``bitrix_id``.

    Args:
        records: raw Bitrix24 records in the order they were read.
        mapper: one of ``to_employee``/``to_task``/``to_event``.

    Returns:
        ``MappingResult`` with the rows, ``rejected`` counts keyed by reason (duplicates
        included under ``DUPLICATE_REASON``), the IDs of rejected records, the number of rejected
        records without an ID, the rows' field issues and the number of records read.
    """
    result: MappingResult[RowT] = MappingResult()
    rows, rejected, rejected_ids, field_issues = (
        result.rows,
        result.rejected,
        result.rejected_ids,
        result.field_issues,
    )
    seen: set[str] = set()
    read = unidentified = 0
    with cyclic_gc_paused():  # a quarter of the mapping time otherwise: see bitrix24_assets.gc_pause
        for record in records:
            read += 1
            mapped = mapper(record)
            if isinstance(mapped, Rejection):
                rejected[mapped.reason] += 1
                if mapped.bitrix_id is None:
                    unidentified += 1
                else:
                    rejected_ids.add(mapped.bitrix_id)
                continue
            key = mapped.bitrix_id
            if key in seen:
                rejected[DUPLICATE_REASON] += 1
                continue
            seen.add(key)
            rows.append(mapped)
            issues = mapped.metadata.get("field_issues")
            if issues:
                for name, reason in issues.items():
                    field_issues[f"{name}: {reason}"] += 1
    result.records_read, result.unidentified = read, unidentified
    return result
