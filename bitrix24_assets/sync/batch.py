"""Map a whole read: rows, rejections counted by reason, repeated IDs dropped.

Repeated IDs happen for real: a task edited while pages are being read can show up on two
pages, and a recurring calendar event is returned once per occurrence with the same ``ID``.
Core keys rows by (account, bitrix_id), so exactly one row per ID may reach the merge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bitrix24_assets.gc_pause import cyclic_gc_paused
from bitrix24_assets.sync.rejection import Rejection

RowT = TypeVar("RowT")

DUPLICATE_REASON = "repeated ID (recurring occurrence or page overlap), first kept"


@dataclass
class MappingResult(Generic[RowT]):
    """What a mapped asset returns and reports."""

    rows: list[RowT] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    records_read: int = 0

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
        included under ``DUPLICATE_REASON``) and the number of records read.
    """
    result: MappingResult[RowT] = MappingResult()
    seen: set[str] = set()
    with cyclic_gc_paused():  # a quarter of the mapping time otherwise: see bitrix24_assets.gc_pause
        for record in records:
            result.records_read += 1
            mapped = mapper(record)
            if isinstance(mapped, Rejection):
                result.rejected[mapped.reason] += 1
                continue
            key: str = mapped.bitrix_id  # type: ignore[attr-defined]
            if key in seen:
                result.rejected[DUPLICATE_REASON] += 1
                continue
            seen.add(key)
            result.rows.append(mapped)
    return result
