"""Typed views of raw Bitrix24 records that accept every shape Bitrix24's REST docs show.

The portal is PHP and inconsistent: IDs are strings (``"ID": "1"``), numbers sometimes ints,
``ACTIVE`` is a JSON bool in ``user.get`` but ``"Y"``/``"N"`` or ``1`` elsewhere, empty maps arrive as
``[]``, ``TIMESTAMP_X`` may be ``{}`` or ``"24.08.2023 13:19:39"``, empty dates are ``""`` (users) or
``null`` (tasks), and calendar dates use the portal's locale (``12/11/2024 05:59:00 pm`` or
``11.12.2024 17:59:00``) with the exact instant in ``DATE_FROM_TS_UTC``. These models coerce all of
that; unknown fields are kept (``extra="allow"``) so nothing the portal sent is lost.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["CalendarEvent", "Department", "Task", "User", "parse_bool", "parse_datetime", "parse_id"]


# IDs and Unix seconds longer than this are no Bitrix24 values; the bound also keeps int() below
# Python's 4,300-digit limit (beyond it int() raises instead of parsing).
_MAX_DIGITS = 18

# The widest UTC offset in use is +14:00; Python accepts offsets up to 24 h.
_MAX_OFFSET = timedelta(hours=14)


def _digits(text: str) -> bool:
    """ASCII decimal digits only: ``"²".isdigit()`` and ``"٣".isdigit()`` are true, too."""
    return text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS


def parse_id(value: Any) -> int | None:
    """``"12"``/``12``/``"U12"`` -> 12, ``"0"`` -> 0; blank, ``"²"``, ``"abc"``, objects -> None.

    Only ASCII digits (an optional ``U``/``G`` prefix of attendee codes, an optional minus) are read.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip().lstrip("UuGg")
    return int(text) if _digits(text.removeprefix("-")) else None


_BOOLS = {
    **dict.fromkeys(("y", "1", "true", "yes"), True),
    **dict.fromkeys(("n", "0", "false", "no", ""), False),
}


def parse_bool(value: Any) -> bool | None:
    """``True``/``"Y"``/``"1"``/``1``/``"true"``/``"yes"`` -> True; ``"N"``/``"0"``/``0``/``""``/
    ``False``/``"false"``/``"no"`` -> False; anything else (``"maybe"``, 2, objects) -> None, unknown."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {0: False, 1: True}.get(value)
    if not isinstance(value, str):
        return None
    return _BOOLS.get(value.strip().lower())


_FORMATS = (
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
)


def _from_unix(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):  # NaN, infinities, beyond year 9999
        return None


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601, Unix seconds, or a locale format; blank, unreadable or out of range -> None.

    Values without a zone are returned naive (their zone is the portal's or the event's ``TZ_FROM``).
    An aware value is only returned when its offset is within ±14 h and it converts to UTC.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _from_unix(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if _digits(text):
        return _from_unix(int(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None:
        offset = parsed.utcoffset()
        if offset is None:
            return parsed
        if not -_MAX_OFFSET <= offset <= _MAX_OFFSET:
            return None
        try:
            parsed.astimezone(UTC)
        except OverflowError:
            return None
        return parsed
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text.upper() if "%p" in fmt else text, fmt)
        except ValueError:
            continue
    return None


def _id_list(value: Any) -> list[int]:
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        value = [value] if value not in (None, "", False) else []
    return [i for i in (parse_id(v) for v in value) if i is not None]


Id = Annotated[int | None, BeforeValidator(parse_id)]
Flag = Annotated[bool | None, BeforeValidator(parse_bool)]
When = Annotated[datetime | None, BeforeValidator(parse_datetime)]
Ids = Annotated[list[int], BeforeValidator(_id_list)]
Text = Annotated[str | None, BeforeValidator(lambda v: None if v in (None, {}, []) else str(v))]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class User(_Record):
    """A ``user.get`` record."""

    id: Id = Field(alias="ID")
    active: Flag = Field(None, alias="ACTIVE")
    name: Text = Field(None, alias="NAME")
    last_name: Text = Field(None, alias="LAST_NAME")
    email: Text = Field(None, alias="EMAIL")
    work_position: Text = Field(None, alias="WORK_POSITION")
    departments: Ids = Field(default_factory=list, alias="UF_DEPARTMENT")
    date_register: When = Field(None, alias="DATE_REGISTER")
    timestamp_x: When = Field(None, alias="TIMESTAMP_X")
    last_activity_date: When = Field(None, alias="LAST_ACTIVITY_DATE")


class Department(_Record):
    """A ``department.get`` record (``PARENT``/``UF_HEAD`` absent for the root / when unset)."""

    id: Id = Field(alias="ID")
    name: Text = Field(None, alias="NAME")
    sort: Id = Field(None, alias="SORT")
    parent: Id = Field(None, alias="PARENT")
    head: Id = Field(None, alias="UF_HEAD")


class Task(_Record):
    """A ``tasks.task.list``/``tasks.task.get`` record (camelCase; UPPER_SNAKE accepted too)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: Id = Field(alias="id")
    title: Text = None
    description: Text = None
    status: Id = None
    priority: Id = None
    responsible_id: Id = Field(None, alias="responsibleId")
    created_by: Id = Field(None, alias="createdBy")
    group_id: Id = Field(None, alias="groupId")
    deadline: When = None
    created_date: When = Field(None, alias="createdDate")
    changed_date: When = Field(None, alias="changedDate")
    closed_date: When = Field(None, alias="closedDate")

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Task:
        """Accept either spelling (``tasks.task.list`` camelCase or legacy UPPER_SNAKE)."""
        if "id" not in raw and "ID" in raw:
            raw = {_camel(k): v for k, v in raw.items()}
        return cls.model_validate(raw)


def _camel(key: str) -> str:
    head, *rest = key.lower().split("_")
    return head + "".join(p.title() for p in rest)


class CalendarEvent(_Record):
    """A ``calendar.event.get`` record; ``starts_at``/``ends_at`` come from the ``*_TS_UTC`` instants."""

    id: Id = Field(alias="ID")
    parent_id: Id = Field(None, alias="PARENT_ID")
    name: Text = Field(None, alias="NAME")
    cal_type: Text = Field(None, alias="CAL_TYPE")
    owner_id: Id = Field(None, alias="OWNER_ID")
    date_from: When = Field(None, alias="DATE_FROM")
    date_to: When = Field(None, alias="DATE_TO")
    starts_at: When = Field(None, alias="DATE_FROM_TS_UTC")
    ends_at: When = Field(None, alias="DATE_TO_TS_UTC")
    all_day: Flag = Field(None, alias="DT_SKIP_TIME")
    deleted: Flag = Field(None, alias="DELETED")
    is_meeting: Flag = Field(None, alias="IS_MEETING")
    created_by: Id = Field(None, alias="CREATED_BY")
    timestamp_x: When = Field(None, alias="TIMESTAMP_X")
    attendees: Ids = Field(default_factory=list, alias="ATTENDEES_CODES")

    @property
    def is_host_copy(self) -> bool:
        """True for the organiser's copy of a meeting (attendee copies point at it via ``PARENT_ID``)."""
        return self.parent_id in (None, self.id)
