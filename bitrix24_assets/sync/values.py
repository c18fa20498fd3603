"""Tolerant readers for Bitrix24's JSON quirks (reference sections 1.4 and 8).

Bitrix24 is PHP: IDs arrive as strings, an empty map arrives as ``[]``, some timestamps arrive
as ``{}``, empty text as ``""`` and empty task dates as ``null``. These helpers turn all of those
into ``None`` or a proper Python value so mappers read like the Core schema.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def is_blank(value: Any) -> bool:
    """True for every "no value" spelling Bitrix24 uses: None, "", "0000...", [], {}."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == "" or value.startswith("0000-00-00")
    return isinstance(value, list | dict) and not value


def text(value: Any) -> str | None:
    """A stripped string, or None when blank or not a scalar (``{}``/``[]`` placeholders)."""
    if type(value) is str:  # the common case first: mapping 100k records calls this ~1M times
        return None if value.startswith("0000-00-00") else value.strip() or None
    if is_blank(value) or isinstance(value, list | dict):
        return None
    return str(value).strip() or None


def bitrix_id(value: Any) -> str | None:
    """A Bitrix ID as text ("17" and 17 are the same ID); None for blank, ``0`` or non-numeric."""
    if type(value) is str and value.isascii() and value.isdigit() and value[0] != "0":
        return value  # already canonical (the common case; the general path gives the same)
    if isinstance(value, bool) or is_blank(value) or isinstance(value, list | dict):
        return None
    raw = str(value).strip()
    if not raw.isdigit() or int(raw) == 0:
        return None
    return str(int(raw))


def flag(value: Any, *, default: bool = False) -> bool:
    """Bitrix booleans: JSON true/false, "Y"/"N", 1/0, "1"/"0"; blank gives ``default``."""
    if isinstance(value, bool):
        return value
    if is_blank(value):
        return default
    if isinstance(value, int | float):
        return value != 0
    return str(value).strip().upper() in {"Y", "1", "TRUE"}


def int_list(value: Any) -> list[int]:
    """``UF_DEPARTMENT``-style lists: ints or numeric strings; ``[]``/``false``/absent give []."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        value = [value] if bitrix_id(value) else []
    return [int(v) for v in (bitrix_id(item) for item in value) if v is not None]


def iso_datetime(value: Any) -> datetime | None:
    """An ISO 8601 datetime as an aware UTC datetime; blank/unparseable -> None.

    Task dates carry the calling user's offset (reference 6.4). A value without an offset is read
    as UTC rather than guessed in some server zone; callers keep the raw text in metadata.
    """
    if value is None:  # most task dates (deadline, plan, closed) are null
        return None
    parsed = None
    if type(value) is str:
        try:  # fast path: a clean ISO string (3.11 reads "Z" too)
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raw = text(value)
        if raw is None:
            return None
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def unix_seconds(value: Any) -> datetime | None:
    """``DATE_FROM_TS_UTC``-style Unix seconds (string or number) as an aware UTC datetime."""
    if isinstance(value, bool) or is_blank(value) or isinstance(value, list | dict):
        return None
    try:
        return datetime.fromtimestamp(float(str(value).strip()), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


# Locale formats that cannot be misread. Slash dates ("12/11/2024") are deliberately absent:
# US portals write MM/DD, others DD/MM, and the record does not say which.
_UNAMBIGUOUS_LOCAL_FORMATS = (
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
)


def zone(name: Any, offset_seconds: Any) -> timezone | ZoneInfo | None:
    """The time zone of a calendar wall-clock value: IANA ``TZ_FROM`` first, then the offset."""
    zone_name = text(name)
    if zone_name:
        try:
            return ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raw = text(offset_seconds)
    if raw is not None and raw.lstrip("-").isdigit():
        return timezone(timedelta(seconds=int(raw)))
    return None


def local_datetime(value: Any, tz: timezone | ZoneInfo | None) -> datetime | None:
    """A portal-locale wall-clock date in zone ``tz`` as aware UTC; None when ambiguous.

    Only a fallback for calendar records that lack ``*_TS_UTC``; without a zone it gives None.
    """
    raw = text(value)
    if raw is None or tz is None:
        return None
    for fmt in _UNAMBIGUOUS_LOCAL_FORMATS:
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=tz).astimezone(UTC)
        except ValueError:
            continue
    parsed = iso_datetime(raw) if "T" in raw else None
    return parsed
