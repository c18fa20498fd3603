"""``calendar.event.get`` record -> ``CalendarEventRow``, and the read window.

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

from bitrix24_assets.core.rows import CalendarEventRow, CalendarType
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.values import (
    DATE_OUT_OF_RANGE,
    NUMBER_OUT_OF_RANGE,
    OFFSET_OUT_OF_RANGE,
    Issues,
    bitrix_id,
    clean_json,
    flag,
    iso_datetime,
    local_datetime,
    small_int,
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

CALENDAR_TYPES: dict[str, CalendarType] = {
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


# The fields of each side, spelled once (the hot path builds no names per record).
_SIDES = {
    side: (f"DATE_{side}_TS_UTC", f"TZ_{side}", f"TZ_OFFSET_{side}", f"DATE_{side}")
    for side in ("FROM", "TO")
}
# Reasons that explain a start that cannot be placed better than "missing or ambiguous".
_RANGE_REASONS = (DATE_OUT_OF_RANGE, OFFSET_OUT_OF_RANGE)

END_BEFORE_START = "before the start"


def _instant(event: dict[str, Any], side: str, issues: Issues) -> datetime | None:
    """UTC instant of ``FROM``/``TO``: ``*_TS_UTC`` first, the locale date only as a fallback."""
    ts_key, tz_key, offset_key, date_key = _SIDES[side]
    exact = unix_seconds(event.get(ts_key), issues, ts_key)
    if exact is not None:
        return exact
    tz = zone(event.get(tz_key), event.get(offset_key), issues, tz_key, offset_key)
    return local_datetime(event.get(date_key), tz, issues, date_key)


def _start_rejection(issues: Issues) -> str:
    """Why the start cannot be placed: a range problem of one of its fields, else missing/ambiguous."""
    for key in _SIDES["FROM"]:
        if issues.get(key) in _RANGE_REASONS:
            return f"start time: {issues[key]}"
    return "start time missing or ambiguous"


def _end(event: dict[str, Any], starts_at: datetime, issues: Issues) -> datetime:
    """The end: ``DATE_TO*`` when it is not before the start, else start + ``DT_LENGTH`` (or the start)."""
    ends_at = _instant(event, "TO", issues)
    if ends_at is not None and ends_at >= starts_at:
        return ends_at
    if ends_at is not None:
        issues["DATE_TO"] = END_BEFORE_START
    seconds = small_int(event.get("DT_LENGTH"), issues, "DT_LENGTH", digits=18)
    if seconds is None:
        return starts_at
    if seconds < 0:
        issues["DT_LENGTH"] = NUMBER_OUT_OF_RANGE
        return starts_at
    try:
        return starts_at + timedelta(seconds=seconds)
    except OverflowError:  # beyond timedelta's or datetime's range
        issues["DT_LENGTH"] = NUMBER_OUT_OF_RANGE
        return starts_at


def to_event(event: Any) -> CalendarEventRow | Rejection:
    """Map one ``calendar.event.get`` record to a ``CalendarEventRow``, or say why not.

    Returns a ``Rejection`` for a missing ID, an unknown calendar type, a ``DELETED`` that is not
    a boolean (guessing would delete or revive the event), or a start that cannot be placed in time
    (no usable ``DATE_FROM_TS_UTC`` and an ambiguous locale date, or a date or offset out of range).
    A missing end becomes start + ``DT_LENGTH`` (or the start itself). ``changed_at_source`` is
    only set when ``TIMESTAMP_X`` is ISO; locale text is kept raw in metadata instead of being
    guessed. Present but unreadable optional fields are NULL with a reason in
    ``metadata["field_issues"]``.
    """
    if not isinstance(event, dict):
        return Rejection("record is not an object")
    event_id = bitrix_id(event.get("ID"))
    if event_id is None:
        return Rejection("missing or invalid ID")
    cal_type = CALENDAR_TYPES.get((text(event.get("CAL_TYPE")) or "").lower())
    if cal_type is None:
        return Rejection("unknown calendar type", event_id)
    issues: Issues = {}
    deleted = flag(event.get("DELETED"), issues, "DELETED")
    if deleted is None:
        return Rejection("DELETED: not a boolean", event_id)
    starts_at = _instant(event, "FROM", issues)
    if starts_at is None:
        return Rejection(_start_rejection(issues), event_id)
    ends_at = _end(event, starts_at, issues)

    metadata: dict[str, Any] = {"bitrix_id": event_id}
    for key, meta_key in (("PARENT_ID", "parent_id"), ("SECTION_ID", "section_id")):
        value = bitrix_id(event.get(key), issues, key)
        if value is not None:
            metadata[meta_key] = value
    tz_from = text(event.get("TZ_FROM"), issues, "TZ_FROM")
    if tz_from is not None:
        metadata["tz_from"] = tz_from
    raw_changed = event.get("TIMESTAMP_X")
    changed_at = None
    if type(raw_changed) is str and "T" in raw_changed:
        changed_at = iso_datetime(raw_changed, issues, "TIMESTAMP_X")
    timestamp_x = text(raw_changed, issues, "TIMESTAMP_X")
    if timestamp_x is not None and not timestamp_x.startswith("0000-00-00"):
        metadata["timestamp_x"] = timestamp_x
    if flag(event.get("IS_MEETING"), issues, "IS_MEETING"):
        metadata["is_meeting"] = True
    rrule = event.get("RRULE")
    if type(rrule) is dict and rrule:
        metadata["rrule"] = clean_json(rrule, issues, "RRULE")
    all_day = flag(event.get("DT_SKIP_TIME"), issues, "DT_SKIP_TIME")
    name = text(event.get("NAME"), issues, "NAME") or ""
    description = text(event.get("DESCRIPTION"), issues, "DESCRIPTION")
    owner = bitrix_id(event.get("OWNER_ID"), issues, "OWNER_ID")
    location = text(event.get("LOCATION"), issues, "LOCATION")
    created_by = bitrix_id(event.get("CREATED_BY"), issues, "CREATED_BY")
    if issues:
        metadata["field_issues"] = issues

    return CalendarEventRow(
        bitrix_id=event_id,
        name=name,
        description=description,
        calendar_type=cal_type,
        owner_bitrix_id=owner,
        starts_at=starts_at,
        ends_at=ends_at,
        all_day=all_day is True,
        location=location,
        created_by_bitrix_id=created_by,
        is_deleted=deleted,
        changed_at_source=changed_at,
        metadata=metadata,
    )
