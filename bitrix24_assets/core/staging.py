"""How rows are staged for a merge: the column order of ``core.*_input`` types, shared by backends.

Postgres COPYs tuples in this order into ``pg_temp.stage_*``; Supabase sends the same fields as JSON
objects to ``core.merge_*(p_rows jsonb)``. ``ord`` is the row's position in the batch (the merge
keeps the last row per bitrix_id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from .rows import CalendarEventRow, EmployeeRow, TaskRow

__all__ = ["EMPLOYEES", "EVENTS", "STAGES", "TASKS", "Stage", "json_rows", "last_wins"]


class Stage:
    """One entity's staging contract: temp table, input type, columns, merge functions."""

    def __init__(self, entity: str, table: str, type_name: str, columns: Sequence[tuple[str, str]]):
        self.entity = entity
        self.table = table
        self.type_name = type_name
        self.columns = tuple(name for name, _ in columns)
        self.pg_types = ("int8", *(pg_type for _, pg_type in columns))  # binary COPY types, "ord" first
        self.json_columns = frozenset(name for name, pg_type in columns if pg_type == "jsonb")
        self.staged_function = f"core.merge_{entity if entity != 'calendar_events' else 'events'}_staged"
        self.rpc_function = self.staged_function.removeprefix("core.").removesuffix("_staged")


EMPLOYEES = Stage(
    "employees",
    "stage_employees",
    "core.employee_input",
    [
        ("bitrix_id", "text"),
        ("email", "text"),
        ("full_name", "text"),
        ("first_name", "text"),
        ("last_name", "text"),
        ("position", "text"),
        ("phone", "text"),
        ("is_active", "bool"),
        ("departments", "jsonb"),
        ("metadata", "jsonb"),
    ],
)
TASKS = Stage(
    "tasks",
    "stage_tasks",
    "core.task_input",
    [
        ("bitrix_id", "text"),
        ("title", "text"),
        ("description", "text"),
        ("status", "text"),
        ("status_code", "int4"),
        ("priority", "text"),
        ("deadline", "timestamptz"),
        ("start_date_plan", "timestamptz"),
        ("end_date_plan", "timestamptz"),
        ("closed_at", "timestamptz"),
        ("created_at_source", "timestamptz"),
        ("changed_at_source", "timestamptz"),
        ("responsible_bitrix_id", "text"),
        ("created_by_bitrix_id", "text"),
        ("group_id", "text"),
        ("metadata", "jsonb"),
    ],
)
EVENTS = Stage(
    "calendar_events",
    "stage_events",
    "core.event_input",
    [
        ("bitrix_id", "text"),
        ("name", "text"),
        ("description", "text"),
        ("calendar_type", "text"),
        ("owner_bitrix_id", "text"),
        ("starts_at", "timestamptz"),
        ("ends_at", "timestamptz"),
        ("all_day", "bool"),
        ("location", "text"),
        ("created_by_bitrix_id", "text"),
        ("is_deleted", "bool"),
        ("changed_at_source", "timestamptz"),
        ("metadata", "jsonb"),
    ],
)
STAGES: dict[type[BaseModel], Stage] = {EmployeeRow: EMPLOYEES, TaskRow: TASKS, CalendarEventRow: EVENTS}


def last_wins(rows: Sequence[BaseModel]) -> list[BaseModel]:
    """One row per bitrix_id, the last one of the batch winning, in first-seen order."""
    by_id: dict[str, BaseModel] = {}
    for row in rows:
        by_id[row.bitrix_id] = row  # type: ignore[attr-defined]
    return list(by_id.values()) if len(by_id) != len(rows) else list(rows)


def json_rows(rows: Sequence[BaseModel], start: int = 0) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts with ``ord`` (for the RPC path); None fields are left out."""
    out = []
    for i, row in enumerate(rows, start):
        d = row.model_dump(mode="json", exclude_none=True)
        d["ord"] = i
        out.append(d)
    return out
