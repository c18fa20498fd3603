"""Rows in Core's shape, produced by the ``sync`` mappers and consumed by ``CoreStore`` merges.

They are validated once at the boundary (pydantic) so the merge can trust them: datetimes must be
timezone-aware, ids are strings (Bitrix returns both ``"7"`` and ``7``), unknown fields are refused
so a typo in a mapper fails loudly instead of silently dropping data.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = ["CalendarEventRow", "CoreRow", "DepartmentRow", "EmployeeRow", "TaskRow"]

TaskStatus = Literal["new", "pending", "in_progress", "awaiting_control", "completed", "deferred", "declined"]
TaskPriority = Literal["low", "medium", "high"]
CalendarType = Literal["user", "group", "company_calendar"]


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bitrix_id: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("bitrix_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


def _optional_id(value: Any) -> Any:
    """Bitrix sends user ids as ints, numeric strings, "0" or "" for "nobody"."""
    if value in (None, "", 0, "0"):
        return None
    return str(value)


class EmployeeRow(_Row):
    """One Bitrix24 user as a Core employee (``metadata`` carries the raw extras)."""

    email: str | None = None
    full_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    position: str | None = None
    phone: str | None = None
    is_active: bool = True
    departments: list[int] = Field(default_factory=list)


class TaskRow(_Row):
    """One Bitrix24 task; people are Bitrix user ids, resolved to employee ids by the merge."""

    title: str | None = None
    description: str | None = None
    status: TaskStatus | None = None
    status_code: int | None = None
    priority: TaskPriority | None = None
    deadline: AwareDatetime | None = None
    start_date_plan: AwareDatetime | None = None
    end_date_plan: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    created_at_source: AwareDatetime | None = None
    changed_at_source: AwareDatetime | None = None
    responsible_bitrix_id: str | None = None
    created_by_bitrix_id: str | None = None
    group_id: str | None = None

    @field_validator("responsible_bitrix_id", "created_by_bitrix_id", "group_id", mode="before")
    @classmethod
    def _people_ids(cls, value: Any) -> Any:
        return _optional_id(value)


class CalendarEventRow(_Row):
    """One Bitrix24 calendar event (times from the ``*_TS_UTC`` fields, so always aware)."""

    name: str | None = None
    description: str | None = None
    calendar_type: CalendarType | None = None
    owner_bitrix_id: str | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    all_day: bool = False
    location: str | None = None
    created_by_bitrix_id: str | None = None
    is_deleted: bool = False
    changed_at_source: AwareDatetime | None = None

    @field_validator("owner_bitrix_id", "created_by_bitrix_id", mode="before")
    @classmethod
    def _people_ids(cls, value: Any) -> Any:
        return _optional_id(value)


class DepartmentRow(_Row):
    """One Bitrix24 department; parent and head are Bitrix ids, resolved by the merge."""

    name: str | None = None
    parent_bitrix_id: str | None = None
    head_bitrix_id: str | None = None
    sort: int | None = None

    @field_validator("parent_bitrix_id", "head_bitrix_id", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return _optional_id(value)

    def merge_json(self, ord_: int) -> dict[str, Any]:
        """The row as ``core.merge_departments`` takes it (both backends send this JSON)."""
        return {**self.model_dump(mode="json"), "ord": ord_}


CoreRow = EmployeeRow | TaskRow | CalendarEventRow | DepartmentRow
"""Any row a merge takes: each has ``bitrix_id`` and ``metadata``."""
