"""Tolerant readers for Bitrix24's JSON quirks, that never raise and never hide a bad value.

Bitrix24 is PHP: IDs arrive as strings, an empty map arrives as ``[]``, some timestamps arrive
as ``{}``, empty text as ``""`` or ``false`` and empty task dates as ``null``. These helpers turn
all of those into ``None`` or a proper Python value so mappers read like the Core schema.

Every reader accepts any JSON value and never raises. A value that is present but cannot be read
(``"²"`` as an ID, ``"maybe"`` as a boolean, a date in year 0) gives ``None`` like a blank one,
and when the caller passes an ``issues`` dict the reader writes ``issues[field] = <reason>`` (one
of the fixed phrases below), so the mapper can reject the record or keep the reason in the row's
``metadata["field_issues"]`` instead of storing a silent ``NULL``.

Hot path: mapping 100k tasks calls these ~1.5M times while the client is still reading, so each
reader tries the common shape first (a clean string, ``null``) and only then the general path;
``issues`` is only touched when something is wrong.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

Issues = dict[str, str]
"""Per-field problems of one record: Bitrix field name -> one of the fixed reasons below."""

# Fixed reasons (no record values in them: they are counted and shown in Dagster metadata).
NOT_AN_ID = "not an ID"
NOT_A_BOOLEAN = "not a boolean"
NOT_A_NUMBER = "not a number"
NOT_A_TEXT = "not a text"
NOT_A_LIST = "not a list"
UNPARSEABLE_DATE = "unparseable date"
DATE_OUT_OF_RANGE = "date out of range"
OFFSET_OUT_OF_RANGE = "UTC offset out of range"
UNKNOWN_TIME_ZONE = "unknown time zone"
NUL_REMOVED = "NUL bytes removed"
NUMBER_OUT_OF_RANGE = "number out of range"
TOO_DEEP = "nested too deeply"

# RRULE and the like are a level or two deep; deeper JSON is not a Bitrix24 value and could
# exhaust the recursion limit of whatever walks it later.
MAX_DEPTH = 16

# Bitrix IDs are MySQL integers far below this; 18 digits always fit the signed 64-bit integers
# that Core's jsonb, orjson (the row files) and Postgres bigint handle, so a 5,000-digit "ID"
# can never reach int() (Python refuses more than 4,300 digits) or the merge.
MAX_ID_DIGITS = 18
_ID_LIMIT = 10**MAX_ID_DIGITS
_INT64 = 2**63

# The widest UTC offset in use is +14:00 (Kiribati); Python accepts up to 24 h, Bitrix never sends it.
MAX_OFFSET = timedelta(hours=14)
_MIN_OFFSET = -MAX_OFFSET
_MAX_OFFSET_SECONDS = 14 * 3600


def is_blank(value: Any) -> bool:
    """True for every "no value" spelling Bitrix24 uses: None, false, "", "0000-00-00...", [], {}."""
    if value is None or value is False:
        return True
    if isinstance(value, str):
        return value.strip() == "" or value.startswith("0000-00-00")
    return isinstance(value, list | dict) and not value


def _empty_container(value: Any) -> bool:
    return type(value) in (list, dict) and not value


def text(value: Any, issues: Issues | None = None, field: str = "") -> str | None:
    """A stripped string without NUL bytes, or None when blank.

    Numbers become their decimal text. NUL bytes are removed (Postgres refuses them in text and
    jsonb, and one would fail the whole merge) and noted; ``true``, non-empty lists and objects
    are not text and are noted.
    """
    if type(value) is str:  # the common case first: mapping 100k records calls this ~1M times
        if "\x00" in value:
            value = value.replace("\x00", "")
            if issues is not None:
                issues[field] = NUL_REMOVED
        return value.strip() or None
    if value is None or value is False or _empty_container(value):
        return None
    if type(value) is int or type(value) is float:
        try:
            return str(value)
        except ValueError:  # an int of more than 4,300 digits
            pass
    if issues is not None:
        issues[field] = NOT_A_TEXT
    return None


def bitrix_id(value: Any, issues: Issues | None = None, field: str = "") -> str | None:
    """A Bitrix ID as canonical text ("17", " 017" and 17 are the same ID).

    Only ASCII digits are IDs (``"²".isdigit()`` is true, but it is no ID), at most
    ``MAX_ID_DIGITS`` of them. Blank, ``false`` and ``0`` mean "nobody" and give None silently;
    anything else that is not an ID gives None and is noted.
    """
    if type(value) is str:
        if value.isascii() and value.isdigit():
            if value[0] != "0":
                if len(value) <= MAX_ID_DIGITS:
                    return value  # already canonical: the common case
            else:
                value = value.lstrip("0")
                if not value:
                    return None  # "0": nobody (groupId of a task without a group)
                if len(value) <= MAX_ID_DIGITS:
                    return value
        else:
            raw = value.strip()
            if not raw:
                return None
            if raw != value:
                return bitrix_id(raw, issues, field)
    elif type(value) is int:
        if 0 < value < _ID_LIMIT:
            return str(value)
        if value == 0:
            return None
    elif value is None or value is False or _empty_container(value):
        return None
    if issues is not None:
        issues[field] = NOT_AN_ID
    return None


def small_int(value: Any, issues: Issues | None = None, field: str = "", *, digits: int = 9) -> int | None:
    """A code or count (``status`` "2", ``subStatus`` "-1", ``DT_LENGTH`` 3600) as an int.

    ASCII digits with an optional sign; blank gives None silently. More than ``digits`` digits
    gives None, noted as out of range; anything else None, noted as not a number.
    """
    if type(value) is int:
        if -(10**digits) < value < 10**digits:
            return value
        reason = NUMBER_OUT_OF_RANGE
    elif type(value) is str:
        raw = value.strip()
        body = raw[1:] if raw[:1] in ("-", "+") else raw
        if body.isascii() and body.isdigit():
            if len(body) <= digits:
                return int(raw)
            reason = NUMBER_OUT_OF_RANGE
        elif not raw:
            return None
        else:
            reason = NOT_A_NUMBER
    elif value is None or value is False or _empty_container(value):
        return None
    else:
        reason = NOT_A_NUMBER
    if issues is not None:
        issues[field] = reason
    return None


_FLAGS = {"Y": True, "N": False, "1": True, "0": False, "TRUE": True, "FALSE": False}


def flag(value: Any, issues: Issues | None = None, field: str = "", default: bool = False) -> bool | None:
    """Bitrix booleans: JSON true/false, "Y"/"N", 1/0, "1"/"0", "true"/"false"; blank gives ``default``.

    Anything else (``"maybe"``, 2, a list) is not a boolean: None, and noted. Callers decide
    whether that rejects the record (``ACTIVE``) or only the field.
    """
    if value is True or value is False:
        return value
    if type(value) is str:
        known = _FLAGS.get(value)
        if known is not None:
            return known
        raw = value.strip()
        if not raw:
            return default
        known = _FLAGS.get(raw.upper())
        if known is not None:
            return known
    elif type(value) is int:
        if value == 0 or value == 1:
            return value == 1
    elif value is None or _empty_container(value):
        return default
    if issues is not None:
        issues[field] = NOT_A_BOOLEAN
    return None


def int_list(value: Any, issues: Issues | None = None, field: str = "") -> list[int]:
    """``UF_DEPARTMENT``-style lists: ints or numeric strings; ``[]``/``false``/absent give [].

    Items that are not IDs are left out and noted.
    """
    if type(value) is dict:
        value = list(value.values())
    elif type(value) is not list:
        single = bitrix_id(value, issues, field)
        return [int(single)] if single is not None else []
    ids: list[int] = []
    for item in value:
        if type(item) is int and 0 < item < _ID_LIMIT:
            ids.append(item)  # the documented shape: a list of ints
            continue
        parsed = bitrix_id(item, issues, field)
        if parsed is not None:
            ids.append(int(parsed))
    return ids


def iso_datetime(value: Any, issues: Issues | None = None, field: str = "") -> datetime | None:
    """An ISO 8601 datetime as an aware UTC datetime; blank -> None; unreadable -> None, noted.

    Task dates carry the calling user's offset (Bitrix24 REST docs, ``tasks.task.list``). A value
    without an offset is read as UTC rather than guessed in some server zone. An offset beyond
    ±14 h, or an instant outside what Python (and so Postgres) can hold in UTC, is not a date.
    """
    if value is None:  # most task dates (deadline, plan, closed) are null
        return None
    if type(value) is str:
        try:  # fast path: a clean ISO string (3.11 reads "Z" too)
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raw = value.strip()
            if not raw or raw.startswith("0000-00-00"):
                return None
            try:
                parsed = datetime.fromisoformat(raw)
            except ValueError:
                if issues is not None:
                    issues[field] = UNPARSEABLE_DATE
                return None
        offset = parsed.utcoffset()
        if offset is None:
            parsed = parsed.replace(tzinfo=UTC)
        elif not _MIN_OFFSET <= offset <= MAX_OFFSET:
            if issues is not None:
                issues[field] = OFFSET_OUT_OF_RANGE
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+03:00 is in year 0 in UTC
            if issues is not None:
                issues[field] = DATE_OUT_OF_RANGE
            return None
    if value is False or _empty_container(value):
        return None
    if issues is not None:
        issues[field] = UNPARSEABLE_DATE
    return None


def unix_seconds(value: Any, issues: Issues | None = None, field: str = "") -> datetime | None:
    """``DATE_FROM_TS_UTC``-style Unix seconds (string or number) as an aware UTC datetime."""
    seconds: float | int
    if type(value) is str:
        try:
            seconds = float(value) if value.isascii() else math.nan  # float() reads "١٧" too
        except ValueError:
            seconds = math.nan
        if seconds != seconds:  # NaN: not a number at all
            if not value.strip():
                return None
            if issues is not None:
                issues[field] = UNPARSEABLE_DATE
            return None
    elif type(value) is int or type(value) is float:
        seconds = value
        if seconds != seconds:
            if issues is not None:
                issues[field] = UNPARSEABLE_DATE
            return None
    else:
        if not (value is None or value is False or _empty_container(value)) and issues is not None:
            issues[field] = UNPARSEABLE_DATE
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        if issues is not None:
            issues[field] = DATE_OUT_OF_RANGE
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


@functools.lru_cache(maxsize=512)
def _named_zone(name: str) -> ZoneInfo | None:
    """An IANA zone, or None: failed look-ups are cached too (each one touches the file system)."""
    if len(name) > 64 or not name.isascii():
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # unknown key, a directory, a name too long for a path
        return None


def zone(
    name: Any,
    offset_seconds: Any,
    issues: Issues | None = None,
    name_field: str = "",
    offset_field: str = "",
) -> timezone | ZoneInfo | None:
    """The time zone of a calendar wall-clock value: IANA ``TZ_FROM`` first, then the offset.

    An unknown zone name or an offset beyond ±14 h gives no zone from that field, noted.
    """
    zone_name = text(name)
    if zone_name:
        named = _named_zone(zone_name)
        if named is not None:
            return named
        if issues is not None:
            issues[name_field] = UNKNOWN_TIME_ZONE
    seconds = small_int(offset_seconds, issues, offset_field, digits=18)
    if seconds is None:
        if issues is not None and issues.get(offset_field) == NUMBER_OUT_OF_RANGE:
            issues[offset_field] = OFFSET_OUT_OF_RANGE
        return None
    if -_MAX_OFFSET_SECONDS <= seconds <= _MAX_OFFSET_SECONDS:
        return timezone(timedelta(seconds=seconds))
    if issues is not None:
        issues[offset_field] = OFFSET_OUT_OF_RANGE
    return None


def local_datetime(
    value: Any, tz: timezone | ZoneInfo | None, issues: Issues | None = None, field: str = ""
) -> datetime | None:
    """A portal-locale wall-clock date in zone ``tz`` as aware UTC; None when ambiguous.

    Only a fallback for calendar records that lack ``*_TS_UTC``; without a zone it gives None.
    A present value in no unambiguous format (a US slash date, garbage) is noted as unparseable.
    """
    raw = text(value)
    if raw is None or tz is None or raw.startswith("0000-00-00"):
        return None
    for fmt in _UNAMBIGUOUS_LOCAL_FORMATS:
        try:
            wall = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        try:
            return wall.replace(tzinfo=tz).astimezone(UTC)
        except (OverflowError, ValueError):
            if issues is not None:
                issues[field] = DATE_OUT_OF_RANGE
            return None
    if "T" in raw:
        return iso_datetime(raw, issues, field)
    if issues is not None:
        issues[field] = UNPARSEABLE_DATE
    return None


def text_list(value: Any, issues: Issues | None = None, field: str = "") -> list[str]:
    """A list of short texts (task ``tags``); items that are not text are left out and noted."""
    if type(value) is not list:
        if not (value is None or value is False or _empty_container(value)) and issues is not None:
            issues[field] = NOT_A_LIST
        return []
    texts = []
    for item in value:
        item_text = text(item, issues, field)
        if item_text is not None:
            texts.append(item_text)
    return texts


def clean_json(value: Any, issues: Issues | None = None, field: str = "", _depth: int = 0) -> Any:
    """A copy of a JSON value from the record that Core can store in jsonb (``RRULE``).

    NUL bytes are removed from strings and keys; numbers Postgres or the row files cannot hold
    (NaN, infinities, integers beyond 64 bits) and anything nested deeper than ``MAX_DEPTH``
    become null; each is noted.
    """
    if type(value) is str:
        return text_raw(value, issues, field)
    if type(value) is dict or type(value) is list:
        if _depth >= MAX_DEPTH:
            if issues is not None:
                issues[field] = TOO_DEEP
            return None
        if type(value) is dict:
            return {
                text_raw(k, issues, field): clean_json(v, issues, field, _depth + 1) for k, v in value.items()
            }
        return [clean_json(v, issues, field, _depth + 1) for v in value]
    if (type(value) is float and not math.isfinite(value)) or (
        type(value) is int and not -_INT64 <= value < _INT64
    ):
        if issues is not None:
            issues[field] = NUMBER_OUT_OF_RANGE
        return None
    return value


def text_raw(value: str, issues: Issues | None = None, field: str = "") -> str:
    """``value`` without NUL bytes (noted), otherwise unchanged (not stripped, blank kept)."""
    if "\x00" in value:
        if issues is not None:
            issues[field] = NUL_REMOVED
        return value.replace("\x00", "")
    return value
