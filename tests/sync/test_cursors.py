"""The incremental cursor stated as data: the largest source time read, never "now", never past
the portal's clock when the read began, and never a date no portal can have."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bitrix24_assets.pipeline import ENTITIES
from bitrix24_assets.sync import next_cursor, read_since
from bitrix24_assets.sync.cursors import CursorSpec

SPEC = ENTITIES["tasks"].cursor
assert isinstance(SPEC, CursorSpec)


@dataclass
class Row:
    changed_at_source: datetime | None


def test_cursor_is_largest_source_time_never_now() -> None:
    t1, t2 = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    assert next_cursor(SPEC, [Row(t2), Row(None), Row(t1)], None) == {"changed_since": t2.isoformat()}
    # nothing read: the previous cursor stays
    assert next_cursor(SPEC, [], {"changed_since": t2.isoformat()}) == {"changed_since": t2.isoformat()}
    # an older row never moves the cursor back
    assert next_cursor(SPEC, [Row(t1)], {"changed_since": t2.isoformat()}) == {
        "changed_since": t2.isoformat()
    }
    assert next_cursor(SPEC, [], None) is None
    assert read_since(SPEC, {"changed_since": t2.isoformat()}) == t2  # the client adds its overlap
    assert read_since(SPEC, {"changed_since": "garbage"}) is None


def test_cursor_never_passes_the_portal_time_the_read_started() -> None:
    # a task dated in the future (clock skew, hand-edited date) must not make later edits invisible
    started = datetime(2025, 3, 1, 12, tzinfo=UTC)
    future, past = datetime(2025, 3, 1, 14, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    capped = next_cursor(SPEC, [Row(future), Row(past)], None, read_started_at=started)
    assert capped == {"changed_since": started.isoformat()}
    uncapped = next_cursor(SPEC, [Row(past)], None, read_started_at=started)
    assert uncapped == {"changed_since": past.isoformat()}
    # a cursor stored ahead of the portal's clock (before this cap existed) heals itself
    healed = next_cursor(SPEC, [], {"changed_since": future.isoformat()}, read_started_at=started)
    assert healed == {"changed_since": started.isoformat()}


def test_a_cursor_from_a_record_dated_in_year_one_means_a_full_read() -> None:
    """``changedDate 0001-01-01T03:00:00+03:00`` is a valid instant: as the stored cursor it would
    make the client subtract its overlap from year 1 (OverflowError) on every later read."""
    year_one = {"changed_since": "0001-01-01T00:00:00+00:00"}
    assert read_since(SPEC, year_one) is None
    later = datetime(2025, 2, 1, tzinfo=UTC)
    assert next_cursor(SPEC, [Row(later)], year_one) == {"changed_since": later.isoformat()}
