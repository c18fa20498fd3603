"""The sandbox portal's in-memory state: one object holding every entity and its indexes.

Rows are ``slots`` dataclasses with epoch-second timestamps (formatting happens in the method
modules, per Bitrix's inconsistent per-module date formats). Tasks and users keep an ID-sorted
list next to the dict so keyset pages (``>ID`` + ``order ID asc`` + ``start=-1``) bisect to their
first row and stop after 50 matches instead of scanning the portal.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

OVERRIDABLE = ("users", "tasks", "events")


@dataclass(slots=True)
class Department:
    id: int
    name: str
    sort: int
    parent: int | None
    head: int | None


@dataclass(slots=True)
class User:
    id: int
    active: bool
    name: str
    last_name: str
    second_name: str
    email: str
    gender: str  # "M" / "F"
    birthday: str  # "YYYY-MM-DD" or ""
    position: str
    work_phone: str
    mobile: str
    city: str
    departments: list[int]
    user_type: str  # "employee" / "extranet"
    date_register: str  # "YYYY-MM-DD"
    last_login: float | None
    timestamp_x: float
    is_online: bool
    employment_date: str  # "YYYY-MM-DD" or ""
    xml_id: str = ""
    time_zone: str = ""


@dataclass(slots=True)
class Task:
    id: int
    title: str
    description: str
    status: int  # REAL_STATUS 2..6 (1 new, 7 declined legacy)
    priority: int  # 0 low, 1 medium, 2 high
    created_by: int
    responsible_id: int
    group_id: int
    created_date: float
    changed_date: float
    changed_by: int
    closed_date: float | None
    deadline: float | None
    start_date_plan: float | None
    end_date_plan: float | None
    parent_id: int | None = None
    accomplices: list[int] = field(default_factory=list)
    auditors: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    mark: str | None = None
    time_estimate: int = 0
    comments_count: int = 0


@dataclass(slots=True)
class CalendarEvent:
    id: int
    cal_type: str  # user / group / company_calendar
    owner_id: int
    section_id: int
    name: str
    description: str
    date_from: float  # UTC epoch
    date_to: float
    skip_time: bool  # all-day
    created_by: int
    date_create: float
    timestamp_x: float
    location: str = ""
    accessibility: str = "busy"
    importance: str = "normal"
    private: bool = False
    color: str = ""
    is_meeting: bool = False
    attendees: list[int] = field(default_factory=list)
    tz: str = "Europe/Moscow"
    version: int = 1


@dataclass(slots=True)
class Section:
    id: int
    name: str
    cal_type: str
    owner_id: int
    color: str
    created: float


@dataclass(slots=True)
class Group:
    """A workgroup/project (``sonet_group.get``); its calendar is ``type=group, ownerId=id``."""

    id: int
    name: str
    members: int
    owner_id: int = 1
    created: float = 0.0
    visible: bool = True  # invisible groups are listed to members and, with IS_ADMIN=Y, to admins
    opened: bool = True  # anyone may join without approval
    closed: bool = False  # archived
    project: bool = False
    description: str = ""


@dataclass(slots=True)
class Webhook:
    """An incoming webhook: its owner, secret code and granted scopes."""

    id: int
    user_id: int
    token: str
    scopes: frozenset[str]


class IdIndex:
    """Rows by id plus an ascending id list for bisecting keyset pages."""

    def __init__(self) -> None:
        self.rows: dict[int, Any] = {}
        self.ids: list[int] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: Any) -> None:
        if self.ids and row.id <= self.ids[-1]:
            bisect.insort(self.ids, row.id)
        else:
            self.ids.append(row.id)
        self.rows[row.id] = row

    def remove(self, row_id: int) -> Any:
        row = self.rows.pop(row_id)
        i = bisect.bisect_left(self.ids, row_id)
        del self.ids[i]
        return row

    def get(self, row_id: int) -> Any:
        return self.rows.get(row_id)

    def next_id(self) -> int:
        return (self.ids[-1] if self.ids else 0) + 1

    def scan(
        self, low: int | None = None, high: int | None = None, *, descending: bool = False
    ) -> Iterator[Any]:
        """Rows with ``low <= id <= high`` in id order, without touching the rest."""
        lo = 0 if low is None else bisect.bisect_left(self.ids, low)
        hi = len(self.ids) if high is None else bisect.bisect_right(self.ids, high)
        ids = self.ids
        rows = self.rows
        if descending:
            for i in range(hi - 1, lo - 1, -1):
                yield rows[ids[i]]
        else:
            for i in range(lo, hi):
                yield rows[ids[i]]


@dataclass
class Override:
    """Values one stored record renders with instead of its own (admin ``/overrides``): for tests
    that need malformed records (an ``id`` that is an object, ``status: "abc"``, no ``ID`` at all).
    Filters, order and ``$result`` paths still see the stored record; only the answer changes."""

    fields: dict[str, Any] = field(default_factory=dict)  # replaces keys the rendered record has
    remove: tuple[str, ...] = ()  # keys taken out of the rendered record


@dataclass
class Notification:
    id: int
    kind: str
    user_id: int
    from_user_id: int | None
    message: str
    tag: str | None
    created: float


class PortalState:
    """Everything the portal knows. Mutated only on the server's event loop."""

    def __init__(self) -> None:
        self.departments: dict[int, Department] = {}
        self.users = IdIndex()
        self.tasks = IdIndex()
        self.events = IdIndex()
        self.groups: dict[int, Group] = {}
        self.sections: dict[int, Section] = {}
        self.notifications: list[Notification] = []
        self.seeded_counts: dict[str, int] = {}
        self.overrides: dict[tuple[str, int], Override] = {}
        self._next_section_id = 1
        self._section_index: dict[tuple[str, int], Section] = {}
        self._owner_index: dict[tuple[str, int], list[CalendarEvent]] = {}

    # ---- malformed renderings for tests ------------------------------------------------------------

    def render(self, entity: str, row_id: int, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with the admin override of ``(entity, row_id)`` applied, if there is one."""
        found = self.overrides.get((entity, row_id)) if self.overrides else None
        if found is None:
            return record
        for key, value in found.fields.items():
            if key in record:
                record[key] = copy.deepcopy(value)
        for key in found.remove:
            record.pop(key, None)
        return record

    # ---- sections: one default section per calendar owner, made on first use -----------------

    def section_for(
        self, cal_type: str, owner_id: int, *, created: float, name: str | None = None
    ) -> Section:
        key = (cal_type, owner_id)
        found = self._section_index.get(key)
        if found is not None:
            return found
        section = Section(
            id=self._next_section_id,
            name=name or _default_section_name(cal_type, owner_id, self),
            cal_type=cal_type,
            owner_id=owner_id,
            color="#9cbeee",
            created=created,
        )
        self._next_section_id += 1
        self.sections[section.id] = section
        self._section_index[key] = section
        return section

    def sections_of(self, cal_type: str, owner_id: int) -> list[Section]:
        found = self._section_index.get((cal_type, owner_id))
        return [found] if found else []

    def events_by_owner(self, cal_type: str, owner_id: int) -> list[CalendarEvent]:
        return self._owner_index.get((cal_type, owner_id), [])

    def add_event(self, event: CalendarEvent) -> None:
        self.events.add(event)
        self._owner_index.setdefault((event.cal_type, event.owner_id), []).append(event)

    def remove_event(self, event_id: int) -> CalendarEvent:
        event: CalendarEvent = self.events.remove(event_id)
        owned = self._owner_index.get((event.cal_type, event.owner_id), [])
        owned[:] = [e for e in owned if e.id != event_id]
        return event


def _default_section_name(cal_type: str, owner_id: int, state: PortalState) -> str:
    if cal_type == "company_calendar":
        return "Календарь компании"
    if cal_type == "group":
        group = state.groups.get(owner_id)
        return group.name if group else f"Группа {owner_id}"
    user = state.users.get(owner_id)
    return f"{user.name} {user.last_name}".strip() if user else f"User {owner_id}"
