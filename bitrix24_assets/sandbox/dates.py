"""Date input and output the way each Bitrix24 module does it (docs/bitrix24-rest-api.md §8).

Inputs go through PHP ``strtotime`` on the server; we accept the forms clients actually send:
ISO 8601 (with offset, ``Z`` or none -> portal zone), ``DD.MM.YYYY[ HH:MI[:SS]]`` (Russian site
format), ``MM/DD/YYYY hh:mi:ss am`` (English site format) and ``@unix``. Anything else is
unparseable, which makes a filter condition match nothing (as on a real portal).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

_RU = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_EN = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([aApP][mM])?)?$")


def parse_datetime(value: Any, tz: tzinfo) -> float | None:
    """``strtotime``-like: Unix seconds, or ``None`` when the value cannot be read."""
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if text.startswith("@") and text[1:].lstrip("-").isdigit():
        return float(int(text[1:]))
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(text.replace(" T", "T"))
    except ValueError:
        parsed = _site_format(text)
        if parsed is None:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.timestamp()


def _site_format(text: str) -> datetime | None:
    m = _RU.match(text)
    try:
        if m:
            d, mo, y, h, mi, s = m.groups()
            return datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
        m = _EN.match(text)
        if m:
            mo, d, y, h, mi, s, ampm = m.groups()
            hour = int(h or 0)
            if ampm:
                hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
            return datetime(int(y), int(mo), int(d), hour, int(mi or 0), int(s or 0))
    except ValueError:
        return None
    return None


def iso(ts: float | None, tz: tzinfo) -> str | None:
    """ISO 8601 with offset, no fractions (tasks, ``LAST_LOGIN``); ``None`` stays ``None``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), tz).isoformat()


def iso_date_shifted(day: str, tz: tzinfo) -> str:
    """``CRestUtil::ConvertDate``: a date at UTC midnight shown in the server zone.

    ``2023-08-24`` on a +03:00 server -> ``2023-08-24T03:00:00+03:00``; empty stays ``""``.
    """
    if not day:
        return ""
    midnight = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return midnight.astimezone(tz).isoformat()


def site_datetime(ts: float, tz: tzinfo, fmt: str) -> str:
    """Calendar culture format: ``ru`` ``11.12.2024 17:59:00``, ``en`` ``12/11/2024 05:59:00 pm``."""
    dt = datetime.fromtimestamp(int(ts), tz)
    if fmt == "en":
        return dt.strftime("%m/%d/%Y %I:%M:%S ") + ("pm" if dt.hour >= 12 else "am")
    return dt.strftime("%d.%m.%Y %H:%M:%S")


def site_date(ts: float, tz: tzinfo, fmt: str) -> str:
    dt = datetime.fromtimestamp(int(ts), tz)
    return dt.strftime("%m/%d/%Y") if fmt == "en" else dt.strftime("%d.%m.%Y")


def plain_datetime(ts: float, tz: tzinfo) -> str:
    """``YYYY-MM-DD HH:MI:SS`` without a zone (calendar sections, some user fields)."""
    return datetime.fromtimestamp(int(ts), tz).strftime("%Y-%m-%d %H:%M:%S")


def fixed_zone(hours: int) -> tzinfo:
    return timezone(timedelta(hours=hours))


DAY_SECONDS = 86400.0
