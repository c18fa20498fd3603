"""``calendar.event.get`` record -> ``CalendarEventRow`` (reference 6.7), and the read window.

Payload facts: calendar dates (``DATE_FROM``, ``DATE_TO``, ``TIMESTAMP_X``) use the portal's
locale format ("12/11/2024 05:59:00 pm", "11.12.2024 17:59:00") as wall-clock time in
``TZ_FROM``/``TZ_TO``; ``DATE_FROM_TS_UTC``/``DATE_TO_TS_UTC`` are Unix seconds as strings and
are the only unambiguous instants, so they win. ``DELETED`` and ``DT_SKIP_TIME`` are "Y"/"N".
The method has no pagination and no change filter: a sync reads a bounded window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bitrix24_assets.core.rows import CalendarEventRow
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.values import (
    bitrix_id,
    flag,
    iso_datetime,
    local_datetime,
    text,
    unix_seconds,
    zone,
)

# calendar.event.get has no ``select``; these are the fields the mapper reads (for the README).
EVENT_FIELDS: tuple[str, ...] = (
    "ID",
    "NAME",
    "DESCRIPTION",
    "CAL_TYPE",
    "OWNER_ID",
    "DATE_FROM_TS_UTC",
    "DATE_TO_TS_UTC",
    "DATE_FROM",
    "DATE_TO",
    "TZ_FROM",
    "TZ_TO",
    "TZ_OFFSET_FROM",
    "TZ_OFFSET_TO",
    "DT_SKIP_TIME",
    "DT_LENGTH",
    "LOCATION",
    "CREATED_BY",
    "DELETED",
    "TIMESTAMP_X",
    "PARENT_ID",
    "SECTION_ID",
    "IS_MEETING",
    "RRULE",
)

CALENDAR_TYPES = {
    "user": "user",
    "group": "group",
    "company_calendar": "company_calendar",
    "company": "company_calendar",
}

DEFAULT_DAYS_BACK = 30
DEFAULT_DAYS_AHEAD = 90


@dataclass(frozen=True, slots=True)
class EventWindow:
    """The calendar window one sync reads: events starting in [date_from, date_to)."""

    date_from: datetime
    date_to: datetime

    def as_cursor(self) -> dict[str, str]:
        return {"date_from": self.date_from.isoformat(), "date_to": self.date_to.isoformat()}


def event_window(
    now: datetime,
    settings: dict[str, Any] | None = None,
    *,
    days_back: int = DEFAULT_DAYS_BACK,
    days_ahead: int = DEFAULT_DAYS_AHEAD,
) -> EventWindow:
    """The window around ``now``; per-account ``settings`` override the run's defaults.

    ``settings`` may hold ``calendar_days_back`` / ``calendar_days_ahead`` (the account row's
    ``settings`` column). Days are whole days from midnight UTC so that two runs on one day read
    the same window and an unchanged calendar merges as unchanged.
    """
    settings = settings or {}
    back = int(settings.get("calendar_days_back", days_back))
    ahead = int(settings.get("calendar_days_ahead", days_ahead))
    if back < 0 or ahead < 0:
        raise ValueError("calendar_days_back and calendar_days_ahead must not be negative")
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return EventWindow(midnight - timedelta(days=back), midnight + timedelta(days=ahead + 1))


def _instant(event: dict[str, Any], side: str) -> datetime | None:
    """UTC instant of ``FROM``/``TO``: ``*_TS_UTC`` first, the locale date only as a fallback."""
    exact = unix_seconds(event.get(f"DATE_{side}_TS_UTC"))
    if exact is not None:
        return exact
    tz = zone(event.get(f"TZ_{side}"), event.get(f"TZ_OFFSET_{side}"))
    return local_datetime(event.get(f"DATE_{side}"), tz)


def to_event(event: Any) -> CalendarEventRow | Rejection:
    """Map one ``calendar.event.get`` record to a ``CalendarEventRow``, or say why not.

    Returns a ``Rejection`` for a missing ID, an unknown calendar type, or a start that cannot be
    placed in time (no ``DATE_FROM_TS_UTC`` and an ambiguous locale date). A missing end becomes
    start + ``DT_LENGTH`` (or the start itself). ``changed_at_source`` is only set when
    ``TIMESTAMP_X`` is ISO; locale text is kept raw in metadata instead of being guessed.
    """
    if not isinstance(event, dict):
        return Rejection("record is not an object")
    event_id = bitrix_id(event.get("ID"))
    if event_id is None:
        return Rejection("missing or invalid ID")
    cal_type = CALENDAR_TYPES.get((text(event.get("CAL_TYPE")) or "").lower())
    if cal_type is None:
        return Rejection("unknown calendar type", event_id)
    starts_at = _instant(event, "FROM")
    if starts_at is None:
        return Rejection("start time missing or ambiguous", event_id)
    ends_at = _instant(event, "TO")
    if ends_at is None or ends_at < starts_at:
        length = text(event.get("DT_LENGTH"))
        seconds = int(length) if length is not None and length.isdigit() else 0
        ends_at = starts_at + timedelta(seconds=seconds)

    metadata: dict[str, Any] = {"bitrix_id": event_id}
    for key, meta_key in (("PARENT_ID", "parent_id"), ("SECTION_ID", "section_id")):
        value = bitrix_id(event.get(key))
        if value is not None:
            metadata[meta_key] = value
    for key, meta_key in (("TZ_FROM", "tz_from"), ("TIMESTAMP_X", "timestamp_x")):
        value = text(event.get(key))
        if value is not None:
            metadata[meta_key] = value
    if flag(event.get("IS_MEETING")):
        metadata["is_meeting"] = True
    if isinstance(event.get("RRULE"), dict) and event["RRULE"]:
        metadata["rrule"] = event["RRULE"]

    return CalendarEventRow(
        bitrix_id=event_id,
        name=text(event.get("NAME")) or "",
        description=text(event.get("DESCRIPTION")),
        calendar_type=cal_type,
        owner_bitrix_id=bitrix_id(event.get("OWNER_ID")),
        starts_at=starts_at,
        ends_at=ends_at,
        all_day=flag(event.get("DT_SKIP_TIME")),
        location=text(event.get("LOCATION")),
        created_by_bitrix_id=bitrix_id(event.get("CREATED_BY")),
        is_deleted=flag(event.get("DELETED")),
        changed_at_source=iso_datetime(event.get("TIMESTAMP_X"))
        if "T" in str(event.get("TIMESTAMP_X"))
        else None,
        metadata=metadata,
    )
