"""The entity registry: everything about one synced entity in one place, with typed callables.

An entry says how the entity is read (a function of the client), mapped (a pure mapper), merged
(a function of the store), what its Core table and row model are, which Dagster asset keys, job,
outgoing events and checks belong to it, and how it reads incrementally. Adding an entity is one
entry here, one mapper in ``sync/`` and one merge in ``core/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.bitrix24.events import Entity as EventEntity
from bitrix24_assets.core import CalendarEventRow, CoreStore, DepartmentRow, EmployeeRow, MergeCounts, TaskRow
from bitrix24_assets.core.models import RemovalGuard
from bitrix24_assets.core.store import Entity as CoreEntity
from bitrix24_assets.sync.cursors import CursorSpec
from bitrix24_assets.sync.departments import DEPARTMENT_FIELDS, to_department
from bitrix24_assets.sync.employees import USER_SELECT, to_employee
from bitrix24_assets.sync.events import EVENT_FIELDS, EventWindow, to_event
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.tasks import TASK_SELECT, to_task

__all__ = [
    "DEPARTMENTS",
    "EMPLOYEES",
    "ENTITIES",
    "EVENTS",
    "TASKS",
    "Entity",
    "MergeRequest",
    "ReadRequest",
    "entity_named",
]


@dataclass(frozen=True)
class ReadRequest:
    """What one read asks of the portal: everything, changes since ``since``, or a calendar window."""

    since: datetime | None = None
    window: EventWindow | None = None
    progress: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class MergeRequest:
    """One merge of mapped rows into Core for one account."""

    account_id: str
    rows: Sequence[Any]
    full: bool
    keep_ids: Sequence[str] = ()
    guard: RemovalGuard = field(default_factory=RemovalGuard)
    window: tuple[datetime, datetime] | None = None
    owners: Sequence[tuple[str, str]] | None = None


Read = Callable[[Bitrix24Client, ReadRequest], Iterable[dict[str, Any]]]
Merge = Callable[[CoreStore, MergeRequest], MergeCounts]


@dataclass(frozen=True)
class Entity:
    """One synced entity.

    Attributes:
        name: the entity's name in asset keys, run config and ``settings.entities`` (``tasks``).
        core_entity: its name in Core (sync logs, cursors, ``mark_deleted``): ``calendar_events``.
        raw_name: the Bitrix24 object the raw asset is named after (``bitrix_users``).
        bitrix_method: the REST method read (shown in descriptions and metadata).
        needs: the webhook scopes the read needs: each entry lists alternatives (any one will do), the
            first of them is the one to ask for.
        select: fields asked for (``select``), or the fields read when the method takes none.
        read: reads the records with the client.
        mapper: one record -> a Core row or a rejection (pure).
        merge: merges the rows into Core.
        row_model: the mapped rows' model.
        table: the Core table written.
        preview_columns: the row fields shown in the masked preview.
        cursor: how it reads incrementally; None when every sync reads everything (or a window).
        windowed: reads a calendar window instead of everything.
        depends_on: entities whose Core rows must exist first (people resolved to employees).
        event_entity: what Bitrix24's outgoing events about it are about (the inbox sensor); None
            when the receiver takes no events about it (a schedule keeps it fresh).
        job_name: the Dagster job that syncs it alone (incremental runs from the inbox).
        job_description: what that job does, as the Dagster UI shows it.
        hourly: synced by the hourly job (cheap enough to read every hour).
        checks: the post-merge checks of ``core_<name>``, by suffix (``pipeline/checks.py``).
    """

    name: str
    core_entity: CoreEntity
    raw_name: str
    bitrix_method: str
    needs: tuple[tuple[str, ...], ...]
    select: tuple[str, ...]
    read: Read
    mapper: Callable[[Any], Any | Rejection]
    merge: Merge
    row_model: type[BaseModel]
    table: str
    preview_columns: tuple[str, ...]
    event_entity: EventEntity | None
    job_description: str
    cursor: CursorSpec | None = None
    windowed: bool = False
    depends_on: tuple[str, ...] = ()
    hourly: bool = True
    checks: tuple[str, ...] = ()

    @property
    def scope(self) -> str:
        """The scope to name in descriptions and messages."""
        return self.needs[0][0]

    @property
    def raw_key(self) -> str:
        return f"bitrix_{self.raw_name}"

    @property
    def mapped_key(self) -> str:
        return f"mapped_{self.name}"

    @property
    def core_key(self) -> str:
        return f"core_{self.name}"

    @property
    def keys(self) -> tuple[str, str, str]:
        return self.raw_key, self.mapped_key, self.core_key

    @property
    def job_name(self) -> str:
        return f"bitrix24_{self.name}_job"

    @property
    def mostly_valid_check(self) -> str:
        return f"{self.mapped_key}_mostly_valid"


# ---- the entities -------------------------------------------------------------------------------


def _read_users(client: Bitrix24Client, request: ReadRequest) -> Iterable[dict[str, Any]]:
    return client.get_users(select=USER_SELECT, progress=request.progress)


def _read_tasks(client: Bitrix24Client, request: ReadRequest) -> Iterable[dict[str, Any]]:
    return client.get_tasks(select=TASK_SELECT, changed_since=request.since, progress=request.progress)


def _read_departments(client: Bitrix24Client, request: ReadRequest) -> Iterable[dict[str, Any]]:
    # counted paging, proven complete or IncompleteReadError (department.get ignores ``>ID``)
    return client.iter_list("department.get", {}, progress=request.progress)


def _read_events(client: Bitrix24Client, request: ReadRequest) -> Iterable[dict[str, Any]]:
    if request.window is None:
        raise ValueError("calendar events are read over a window; pass one")
    return client.get_events(request.window.date_from, request.window.date_to, progress=request.progress)


def _merge_employees(store: CoreStore, request: MergeRequest) -> MergeCounts:
    counts = store.merge_employees(
        request.account_id, request.rows, full=request.full, keep_ids=request.keep_ids, guard=request.guard
    )
    if counts.inserted or counts.updated or counts.removed:  # memberships follow UF_DEPARTMENT
        store.link_employee_departments(request.account_id)  # (and every departments merge relinks)
    return counts


def _merge_departments(store: CoreStore, request: MergeRequest) -> MergeCounts:
    return store.merge_departments(
        request.account_id, request.rows, full=request.full, keep_ids=request.keep_ids, guard=request.guard
    )


def _merge_tasks(store: CoreStore, request: MergeRequest) -> MergeCounts:
    return store.merge_tasks(
        request.account_id, request.rows, full=request.full, keep_ids=request.keep_ids, guard=request.guard
    )


def _merge_events(store: CoreStore, request: MergeRequest) -> MergeCounts:
    return store.merge_events(
        request.account_id,
        request.rows,
        full=request.full,
        window=request.window,
        owners=request.owners,
        keep_ids=request.keep_ids,
        guard=request.guard,
    )


EMPLOYEES = Entity(
    name="employees",
    core_entity="employees",
    raw_name="users",
    bitrix_method="user.get",
    needs=(("user", "user_basic"),),
    select=USER_SELECT,
    read=_read_users,
    mapper=to_employee,
    merge=_merge_employees,
    row_model=EmployeeRow,
    table="core.employees",
    preview_columns=("bitrix_id", "full_name", "email", "position", "is_active", "departments"),
    event_entity=EventEntity.EMPLOYEES,
    job_description="Sync employees of one account (users are always read in full).",
    checks=("no_duplicate_bitrix_ids", "count_matches_source", "one_account_per_portal"),
)
DEPARTMENTS = Entity(
    name="departments",
    core_entity="departments",
    raw_name="departments",
    bitrix_method="department.get",
    needs=(("department",),),
    select=DEPARTMENT_FIELDS,
    read=_read_departments,
    mapper=to_department,
    merge=_merge_departments,
    row_model=DepartmentRow,
    table="core.departments",
    preview_columns=("bitrix_id", "name", "parent_bitrix_id", "head_bitrix_id", "sort"),
    event_entity=None,  # the receiver takes no department events: the hourly job keeps them fresh
    job_description="Sync the department tree of one account (read in full: one cheap department.get "
    "enumeration) and the employees' memberships.",
    depends_on=("employees",),
    checks=("tree_resolved",),
)
TASKS = Entity(
    name="tasks",
    core_entity="tasks",
    raw_name="tasks",
    bitrix_method="tasks.task.list",
    needs=(("task",),),
    select=TASK_SELECT,
    read=_read_tasks,
    mapper=to_task,
    merge=_merge_tasks,
    row_model=TaskRow,
    table="core.tasks",
    preview_columns=(
        "bitrix_id",
        "title",
        "status",
        "priority",
        "responsible_bitrix_id",
        "deadline",
        "changed_at_source",
    ),
    event_entity=EventEntity.TASKS,
    job_description="Sync tasks of one account: changes since the last sync unless `full` is set.",
    checks=("no_duplicate_bitrix_ids", "owners_resolved"),
    cursor=CursorSpec(row_field="changed_at_source", filter_key=">=CHANGED_DATE"),
    depends_on=("employees",),
)
EVENTS = Entity(
    name="events",
    core_entity="calendar_events",
    raw_name="events",
    bitrix_method="calendar.event.get",
    needs=(("calendar",), ("user", "user_basic")),  # every user's calendar is read
    select=EVENT_FIELDS,
    read=_read_events,
    mapper=to_event,
    merge=_merge_events,
    row_model=CalendarEventRow,
    table="core.calendar_events",
    preview_columns=(
        "bitrix_id",
        "name",
        "calendar_type",
        "owner_bitrix_id",
        "starts_at",
        "ends_at",
        "is_deleted",
    ),
    event_entity=EventEntity.CALENDAR_EVENTS,
    job_description="Sync calendar events of one account over the configured window (every 6 hours, and "
    "on calendar events from the inbox).",
    windowed=True,
    depends_on=("employees",),
    # calendar.event.get has no change filter: every sync reads every calendar (one command per
    # user, ~400 s of server time on a 10k-user cloud portal), so events have their own schedule
    hourly=False,
    checks=("no_duplicate_bitrix_ids",),
)

ENTITIES: Mapping[str, Entity] = {e.name: e for e in (EMPLOYEES, TASKS, EVENTS, DEPARTMENTS)}
"""Every synced entity by name, in dependency order."""

_ALIASES: dict[str, Entity] = {
    **{e.name: e for e in ENTITIES.values()},
    **{e.core_entity: e for e in ENTITIES.values()},
}
_ALIASES["calendar"] = EVENTS


def entity_named(name: str) -> Entity | None:
    """The entity called ``name`` in any of its spellings (``events``, ``calendar_events``, ``calendar``)."""
    return _ALIASES.get(name.strip().lower())
