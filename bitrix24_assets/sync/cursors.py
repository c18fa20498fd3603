"""The incremental cursor: stated as data per entity, advanced by one rule (the only cursor module).

The stored cursor is the largest source timestamp seen, never ``now()``: a clock skew between us
and the portal can then only cause re-reads, not misses. The next read starts ``overlap`` before
it, because Bitrix24 compares ``>=CHANGED_DATE`` with one-second precision and a task saved in
the same second as the last one read would otherwise be skipped. The Bitrix24 client already
applies its own overlap to ``changed_since``, so ``CursorSpec.overlap`` defaults to zero here and
only adds to it when an entity needs more.

A record dated after the moment the read started (a portal clock running ahead, or a record
edited with a future date) must not carry the cursor past that moment: every change saved
between the read and that future date would then be skipped. So the cursor is capped at the
portal's own time when the read began (``server.time``), which costs one re-read at worst.
A stored value before 2000 (a record dated in year 1 that became the cursor, a hand-edited row)
is no cursor at all: the next read is a full one rather than a date the client cannot subtract
its overlap from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    spec: CursorSpec,
    rows: Iterable[Any],
    previous: Mapping[str, Any] | None,
    *,
    read_started_at: datetime | None = None,
) -> dict[str, Any] | None:
    """The cursor to store after a successful sync.

    Args:
        spec: the entity's cursor spec.
        rows: the mapped rows of this read.
        previous: the cursor the read started from (it never moves backwards, except down to
            ``read_started_at`` when it was stored ahead of the portal's clock).
        read_started_at: the portal's clock when the read began; source times after it are capped
            to it (see the module docstring). None: no cap.

    Returns:
        ``{cursor_key: iso timestamp}``, or None when nothing was ever read.
    """
    times = (getattr(row, spec.row_field, None) for row in rows)
    seen = max((t for t in times if t is not None), default=None)
    latest = advance_cursor(_stored(spec, previous), seen, read_started_at)
    return None if latest is None else {spec.cursor_key: latest.isoformat()}


def read_since(spec: CursorSpec, cursor: Mapping[str, Any] | None) -> datetime | None:
    """Where the next incremental read starts, or None for a full read (no usable cursor)."""
    stored = _stored(spec, cursor)
    return None if stored is None else stored - spec.overlap


def advance_cursor(
    previous: datetime | None, seen: datetime | None, read_started_at: datetime | None
) -> datetime | None:
    """The cursor to store after a read: ``max(previous, seen)``, never past ``read_started_at``.

    Args:
        previous: the cursor the read started from (None before the first sync).
        seen: the largest source change time read (None when nothing was read).
        read_started_at: the portal's clock when the read began; None means no cap.

    Returns:
        The new cursor, or None when there was none and nothing was read.
    """
    latest = max((v for v in (previous, seen) if v is not None), default=None)
    if latest is not None and read_started_at is not None and latest > read_started_at:
        latest = read_started_at.astimezone(latest.tzinfo)
    return latest


_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def _stored(spec: CursorSpec, cursor: Mapping[str, Any] | None) -> datetime | None:
    if not cursor or not isinstance(cursor.get(spec.cursor_key), str):
        return None
    try:
        value = datetime.fromisoformat(cursor[spec.cursor_key])
    except ValueError:
        return None
    if value.tzinfo is None or value < _EARLIEST:
        return None
    return value
