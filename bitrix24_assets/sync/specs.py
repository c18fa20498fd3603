"""One ``EntitySpec`` per synced entity, in a registry (style.md "What we take", items 7-8).

The Dagster asset factory (``bitrix24_assets.defs.assets``) turns every spec into
``bitrix_<raw>`` -> ``mapped_<entity>`` -> ``core_<entity>``. Adding an entity means adding a spec
here, its mapper module with tests, the Core merge and the sandbox methods; no existing asset
changes. Specs are pure data plus pure functions: how to *call* the client is described by a
``ReadPlan`` (client method name + keyword arguments) that the Dagster layer executes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bitrix24_assets.sync.cursors import CursorSpec, read_since
from bitrix24_assets.sync.employees import USER_SELECT, to_employee
from bitrix24_assets.sync.events import EVENT_FIELDS, EventWindow, to_event
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.tasks import TASK_SELECT, to_task


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """A client call to make: ``getattr(client, method)(**kwargs)``, plus whether it is full."""

    method: str
    kwargs: dict[str, Any]
    full: bool


@dataclass(frozen=True)
class EntitySpec:
    """Everything that differs between employees, tasks and calendar events.

    Attributes:
        entity: Core entity name, also the sync-log ``entity`` and the asset suffix.
        raw_name: name of the raw asset suffix (``bitrix_<raw_name>``), after the Bitrix object.
        bitrix_method: the REST method read (shown in descriptions and metadata).
        scope: the webhook scope the method needs (named in failure messages).
        client_method: the ``Bitrix24Client`` method that reads it.
        select: fields asked for (``select``), or the fields read when the method has none.
        mapper: pure record -> row | Rejection.
        merge_method: the ``CoreStore`` method that merges the rows.
        table: the Core table written.
        cursor: incremental cursor, or None when every sync reads everything.
        windowed: reads a calendar window (events) instead of everything.
        depends_on: entities whose Core rows must exist first (people resolved to employees).
    """

    entity: str
    raw_name: str
    bitrix_method: str
    scope: str
    client_method: str
    select: tuple[str, ...]
    mapper: Callable[[Any], Any | Rejection]
    merge_method: str
    table: str
    cursor: CursorSpec | None = None
    windowed: bool = False
    depends_on: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sync_entity(self) -> str:
        """The entity name in sync logs, cursors and ``mark_deleted`` (the Core table's name)."""
        return self.table.split(".", 1)[1]

    def plan(self, *, full: bool, cursor: Mapping[str, Any] | None, window: EventWindow | None) -> ReadPlan:
        """The client call for this sync: incremental from ``cursor`` unless ``full`` or none stored."""
        if self.windowed:
            if window is None:
                raise ValueError(f"{self.entity} reads a calendar window; pass one")
            return ReadPlan(
                self.client_method, {"date_from": window.date_from, "date_to": window.date_to}, True
            )
        kwargs: dict[str, Any] = {"select": list(self.select)}
        since: datetime | None = None
        if self.cursor is not None and not full:
            since = read_since(self.cursor, cursor)
            if since is not None:
                kwargs["changed_since"] = since
        return ReadPlan(self.client_method, kwargs, since is None)


EMPLOYEES = EntitySpec(
    entity="employees",
    raw_name="users",
    bitrix_method="user.get",
    scope="user",
    client_method="get_users",
    select=USER_SELECT,
    mapper=to_employee,
    merge_method="merge_employees",
    table="core.employees",
)
TASKS = EntitySpec(
    entity="tasks",
    raw_name="tasks",
    bitrix_method="tasks.task.list",
    scope="task",
    client_method="get_tasks",
    select=TASK_SELECT,
    mapper=to_task,
    merge_method="merge_tasks",
    table="core.tasks",
    cursor=CursorSpec(row_field="changed_at_source", filter_key=">=CHANGED_DATE"),
    depends_on=("employees",),
)
EVENTS = EntitySpec(
    entity="events",
    raw_name="events",
    bitrix_method="calendar.event.get",
    scope="calendar",
    client_method="get_events",
    select=EVENT_FIELDS,
    mapper=to_event,
    merge_method="merge_events",
    table="core.calendar_events",
    windowed=True,
    depends_on=("employees",),
)

ENTITIES: dict[str, EntitySpec] = {spec.entity: spec for spec in (EMPLOYEES, TASKS, EVENTS)}
