"""``calendar.event.get`` payload variants mapped to CalendarEventRow.

Quirks pinned here: ``DATE_FROM``/``DATE_TO`` use the portal's locale ("12/11/2024 05:59:00 pm"
or "11.12.2024 17:59:00") as wall-clock time in ``TZ_FROM``; ``*_TS_UTC`` are the instants and
win; ``DELETED``/``DT_SKIP_TIME`` are "Y"/"N"; US-style slash dates are ambiguous.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bitrix24_assets.sync import Rejection, event_window, to_event

BASE: dict[str, Any] = {
    "ID": "1265",
    "PARENT_ID": "1265",
    "DELETED": "N",
    "CAL_TYPE": "user",
    "OWNER_ID": "1",
    "NAME": "Event Name",
    "DATE_FROM": "12/11/2024 05:59:00 pm",
    "DATE_TO": "12/11/2024 06:59:00 pm",
    "TZ_FROM": "Europe/Berlin",
    "TZ_TO": "Europe/Berlin",
    "TZ_OFFSET_FROM": "7200",
    "TZ_OFFSET_TO": "7200",
    "DATE_FROM_TS_UTC": "1733932740",
    "DATE_TO_TS_UTC": "1733936340",
    "DT_SKIP_TIME": "N",
    "DT_LENGTH": 3600,
    "CREATED_BY": "1",
    "DATE_CREATE": "12/05/2024 01:48:41 pm",
    "TIMESTAMP_X": "12/05/2024 01:48:41 pm",
    "DESCRIPTION": "",
    "IS_MEETING": False,
    "SECTION_ID": "4",
}
START = datetime(2024, 12, 11, 15, 59, tzinfo=UTC)


def event(**changes: Any) -> dict[str, Any]:
    record = {**BASE, **changes}
    return {k: v for k, v in record.items() if v is not ...}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # documented example: instants come from *_TS_UTC, not the locale text
        (
            event(),
            {
                "bitrix_id": "1265",
                "starts_at": START,
                "ends_at": datetime(2024, 12, 11, 16, 59, tzinfo=UTC),
                "calendar_type": "user",
                "owner_bitrix_id": "1",
                "all_day": False,
                "is_deleted": False,
                "description": None,
                "changed_at_source": None,
            },
        ),
        # Russian-locale dates are ignored while *_TS_UTC is present
        (event(DATE_FROM="11.12.2024 17:59:00"), {"starts_at": START}),
        # no *_TS_UTC: unambiguous DD.MM.YYYY in TZ_FROM is used
        (
            event(
                DATE_FROM_TS_UTC=...,
                DATE_TO_TS_UTC=...,
                DATE_FROM="11.12.2024 16:59:00",
                DATE_TO="11.12.2024 17:59:00",
            ),
            {"starts_at": START, "ends_at": datetime(2024, 12, 11, 16, 59, tzinfo=UTC)},
        ),
        # no TZ name: the offset in seconds places the wall clock
        (event(DATE_FROM_TS_UTC=..., TZ_FROM="", DATE_FROM="11.12.2024 17:59:00"), {"starts_at": START}),
        # missing end: start + DT_LENGTH
        (event(DATE_TO_TS_UTC=..., DATE_TO=""), {"ends_at": datetime(2024, 12, 11, 16, 59, tzinfo=UTC)}),
        # all-day event, group and company calendars, deleted flag
        (event(DT_SKIP_TIME="Y"), {"all_day": True}),
        (event(CAL_TYPE="group", OWNER_ID="7"), {"calendar_type": "group", "owner_bitrix_id": "7"}),
        (
            event(CAL_TYPE="company_calendar", OWNER_ID=""),
            {"calendar_type": "company_calendar", "owner_bitrix_id": None},
        ),
        (event(DELETED="Y"), {"is_deleted": True}),
        # ISO TIMESTAMP_X is the only form parsed into changed_at_source
        (
            event(TIMESTAMP_X="2024-12-05T13:48:41+00:00"),
            {"changed_at_source": datetime(2024, 12, 5, 13, 48, 41, tzinfo=UTC)},
        ),
    ],
)
def test_event_variant_maps_to_expected_row(record: dict[str, Any], expected: dict[str, Any]) -> None:
    row = to_event(record)
    assert not isinstance(row, Rejection), row
    for field, value in expected.items():
        assert getattr(row, field) == value, field


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (event(ID=...), "missing or invalid ID"),
        (event(CAL_TYPE="location"), "unknown calendar type"),
        # US slash date without *_TS_UTC: 12/11 could be 11 Dec or 12 Nov, so refuse to guess
        (event(DATE_FROM_TS_UTC=...), "start time missing or ambiguous"),
        (event(DATE_FROM_TS_UTC={}), "start time missing or ambiguous"),
    ],
)
def test_unusable_event_is_rejected_with_reason(record: Any, reason: str) -> None:
    result = to_event(record)
    assert isinstance(result, Rejection)
    assert result.reason == reason


def test_locale_timestamp_is_kept_raw_in_metadata() -> None:
    row = to_event(event())
    assert not isinstance(row, Rejection)
    assert row.metadata["timestamp_x"] == "12/05/2024 01:48:41 pm"


def test_window_defaults_and_account_override() -> None:
    now = datetime(2025, 3, 10, 14, 30, tzinfo=UTC)
    window = event_window(now)
    assert window.date_from == datetime(2025, 2, 8, tzinfo=UTC)
    assert window.date_to == datetime(2025, 6, 9, tzinfo=UTC)
    custom = event_window(now, {"calendar_days_back": 1, "calendar_days_ahead": 0})
    assert (custom.date_from, custom.date_to) == (
        datetime(2025, 3, 9, tzinfo=UTC),
        datetime(2025, 3, 11, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="must not be negative"):
        event_window(now, {"calendar_days_back": -1})
