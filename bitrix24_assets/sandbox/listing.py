"""One paging routine for every list method (docs/bitrix24-rest-api.md §2): 50 rows, ``start``, ``next``,
``total``.

* ``start >= 0`` counts every match (the ``COUNT(*)`` the cost model prices by matching rows) and
  skips ``start`` rows (priced by offset);
* ``start = -1`` counts nothing and returns the first 50 matches;
* ordered by ``ID`` the scan walks the id-sorted index from the filter's id bound, so a keyset
  page (``>ID`` + ``start=-1``) touches ~50 rows however big the portal is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .costs import Work
from .filters import CompiledFilter
from .store import IdIndex

PAGE_SIZE = 50


@dataclass
class Page:
    rows: list[Any]
    total: int | None  # None when not counted (start=-1)
    next: int | None
    work: Work


def list_page(
    index: IdIndex,
    compiled: CompiledFilter,
    *,
    start: int,
    order: list[tuple[Callable[[Any], Any], bool]] | None,
    id_descending: bool = False,
    extra_rows: Iterable[Any] | None = None,
) -> Page:
    """One page of ``index`` rows matching ``compiled``.

    ``order`` is a list of (key, descending) for non-ID orders; ``None`` means order by ID
    (``id_descending`` picks the direction).
    """
    counting = start >= 0
    offset = max(start, 0)
    if compiled.impossible:
        return Page([], 0 if counting else None, None, Work(list_page=True))
    matches: Iterable[Any] = (
        row
        for row in index.scan(
            compiled.id_low, compiled.id_high, descending=id_descending if order is None else False
        )
        if compiled.matches(row)
    )
    if order is None:
        rows: list[Any] = []
        if not counting:
            for row in matches:
                rows.append(row)
                if len(rows) == PAGE_SIZE:
                    break
            return Page(rows, None, None, Work(list_page=True))
        total = 0
        end = offset + PAGE_SIZE
        for position, row in enumerate(matches):
            if offset <= position < end:
                rows.append(row)
            total = position + 1
    else:
        everything = list(matches)
        for key, descending in reversed(order):
            everything.sort(key=_nulls_first_by(key), reverse=descending)
        total = len(everything)
        if not counting:
            return Page(everything[:PAGE_SIZE], None, None, Work(list_page=True))
        rows = everything[offset : offset + PAGE_SIZE]
    next_start = offset + len(rows) if offset + len(rows) < total else None
    return Page(rows, total, next_start, Work(list_page=True, counted_rows=total, offset=offset))


def _nulls_first_by(key: Callable[[Any], Any]) -> Callable[[Any], tuple[int, Any]]:
    return lambda row: _null_first(key(row))


def _null_first(value: Any) -> tuple[int, Any]:
    if value is None or value == "":
        return (0, 0)
    return (1, value)
