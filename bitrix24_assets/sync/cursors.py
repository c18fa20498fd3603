"""Incremental cursors stated as data (style.md "What we take", item 7).

The stored cursor is the largest source timestamp seen, never ``now()``: a clock skew between us
and the portal can then only cause re-reads, not misses. The next read starts ``overlap`` before
it, because Bitrix24 compares ``>=CHANGED_DATE`` with one-second precision and a task saved in
the same second as the last one read would otherwise be skipped. The Bitrix24 client already
applies its own overlap to ``changed_since``, so ``CursorSpec.overlap`` defaults to zero here and
only adds to it when an entity needs more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class CursorSpec:
    """How an entity reads incrementally.

    Attributes:
        row_field: attribute of the mapped row holding the source change time.
        filter_key: the Bitrix24 filter the client applies (documentation; the client builds it).
        cursor_key: key of the value in the stored cursor dict.
        overlap: extra margin before the stored cursor (on top of the client's own overlap).
    """

    row_field: str
    filter_key: str
    cursor_key: str = "changed_since"
    overlap: timedelta = timedelta(0)


def next_cursor(
    spec: CursorSpec, rows: Iterable[Any], previous: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The cursor to store after a successful sync: max(source time of rows, previous cursor)."""
    latest = _stored(spec, previous)
    for row in rows:
        value = getattr(row, spec.row_field, None)
        if value is not None and (latest is None or value > latest):
            latest = value
    return None if latest is None else {spec.cursor_key: latest.isoformat()}


def read_since(spec: CursorSpec, cursor: Mapping[str, Any] | None) -> datetime | None:
    """Where the next incremental read starts, or None for a full read (no usable cursor)."""
    stored = _stored(spec, cursor)
    return None if stored is None else stored - spec.overlap


def _stored(spec: CursorSpec, cursor: Mapping[str, Any] | None) -> datetime | None:
    if not cursor or not isinstance(cursor.get(spec.cursor_key), str):
        return None
    try:
        value = datetime.fromisoformat(cursor[spec.cursor_key])
    except ValueError:
        return None
    return value if value.tzinfo is not None else None
