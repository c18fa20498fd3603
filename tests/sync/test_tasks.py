"""``tasks.task.list`` payload variants mapped to TaskRow.

Quirks pinned here: camelCase keys with string values, ``status`` is REAL_STATUS (1-7), dates
carry the caller's offset or are ``null``, ``groupId`` "0" and ``group: []`` mean "no group".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bitrix24_assets.sync import Rejection, to_task

BASE: dict[str, Any] = {
    "id": "8017",
    "title": "Task Example",
    "description": "",
    "status": "2",
    "subStatus": "-1",
    "responsibleId": "547",
    "createdBy": "503",
    "priority": "2",
    "deadline": "2025-10-24T19:00:00+02:00",
    "createdDate": "2025-06-04T16:15:55+02:00",
    "changedDate": "2025-06-05T09:00:00+02:00",
    "closedDate": None,
    "startDatePlan": None,
    "endDatePlan": None,
    "groupId": "0",
    "group": [],
    "responsible": {"id": "547", "name": "Maria"},
}


def task(**changes: Any) -> dict[str, Any]:
    record = {**BASE, **changes}
    return {k: v for k, v in record.items() if v is not ...}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # documented example; the +02:00 offset is kept as the same instant in UTC
        (
            task(),
            {
                "bitrix_id": "8017",
                "status": "pending",
                "status_code": 2,
                "priority": "high",
                "deadline": datetime(2025, 10, 24, 17, 0, tzinfo=UTC),
                "group_id": None,
                "responsible_bitrix_id": "547",
                "created_by_bitrix_id": "503",
                "description": None,
                "closed_at": None,
                "changed_at_source": datetime(2025, 6, 5, 7, 0, tzinfo=UTC),
            },
        ),
        (task(status="3"), {"status": "in_progress"}),
        (task(status="4"), {"status": "awaiting_control"}),
        (
            task(status="5", closedDate="2025-06-06T10:00:00+03:00"),
            {"status": "completed", "closed_at": datetime(2025, 6, 6, 7, 0, tzinfo=UTC)},
        ),
        (task(status="6"), {"status": "deferred"}),
        # legacy constants still seen on old portals
        (task(status="1"), {"status": "new"}),
        (task(status="7"), {"status": "declined"}),
        (task(priority="0"), {"priority": "low"}),
        (task(priority=...), {"priority": "medium"}),
        # a real group
        (task(groupId="12", group={"id": "12", "name": "Ops"}), {"group_id": "12"}),
        # empty dates come as null, "" or the zero date on some versions
        (task(deadline=""), {"deadline": None}),
        (task(deadline="0000-00-00 00:00:00"), {"deadline": None}),
        # UTC "Z" suffix
        (
            task(changedDate="2025-06-05T09:00:00Z"),
            {"changed_at_source": datetime(2025, 6, 5, 9, tzinfo=UTC)},
        ),
        # no responsible (deleted user): kept, the check counts it
        (task(responsibleId="0"), {"responsible_bitrix_id": None}),
        # numeric id
        (task(id=8017), {"bitrix_id": "8017"}),
        # UPPER_SNAKE keys (tasks.task.get with some selects)
        (
            {"ID": "5", "TITLE": "x", "STATUS": "5", "CHANGED_DATE": "2025-01-01T00:00:00+00:00"},
            {"bitrix_id": "5", "status": "completed"},
        ),
    ],
)
def test_task_variant_maps_to_expected_row(record: dict[str, Any], expected: dict[str, Any]) -> None:
    row = to_task(record)
    assert not isinstance(row, Rejection), row
    for field, value in expected.items():
        assert getattr(row, field) == value, field


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (task(id=...), "missing or invalid id"),
        (task(status="42"), "unknown status code"),
        (task(status=""), "unknown status code"),
        # without changedDate the incremental cursor would silently stall
        (task(changedDate=None), "missing changedDate"),
        # present but unreadable: said so, not hidden behind "missing"
        (task(changedDate="yesterday"), "changedDate: unparseable date"),
        ([], "record is not an object"),
    ],
)
def test_unusable_task_is_rejected_with_reason(record: Any, reason: str) -> None:
    result = to_task(record)
    assert isinstance(result, Rejection)
    assert result.reason == reason


def test_aware_datetimes_only() -> None:
    row = to_task(task(changedDate="2025-06-05T09:00:00"))  # no offset: read as UTC, never naive
    assert not isinstance(row, Rejection)
    assert row.changed_at_source is not None and row.changed_at_source.tzinfo is not None
