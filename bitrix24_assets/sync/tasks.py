"""``tasks.task.list`` record -> ``TaskRow`` (fields as Bitrix24's REST docs describe the method).

Payload facts: keys are camelCase, values mostly strings (``"id": "8017"``), ``status`` is the
real status 1-7, ``priority`` "0"/"1"/"2", dates are ISO 8601 with the caller's offset or
``null``, ``groupId`` is "0" without a group and ``group`` is ``[]`` then.
"""

from __future__ import annotations

import functools
from typing import Any

from bitrix24_assets.core.rows import TaskPriority, TaskRow, TaskStatus
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.values import (
    Issues,
    bitrix_id,
    is_blank,
    iso_datetime,
    small_int,
    text,
    text_list,
)

TASK_SELECT: tuple[str, ...] = (
    "ID",
    "TITLE",
    "DESCRIPTION",
    "STATUS",
    "REAL_STATUS",
    "PRIORITY",
    "DEADLINE",
    "START_DATE_PLAN",
    "END_DATE_PLAN",
    "CLOSED_DATE",
    "CREATED_DATE",
    "CHANGED_DATE",
    "RESPONSIBLE_ID",
    "CREATED_BY",
    "GROUP_ID",
    "PARENT_ID",
    "TAGS",
)

# REAL_STATUS codes (Bitrix24 REST docs; 1 and 7 are legacy constants still seen on old portals).
STATUS_NAMES: dict[int, TaskStatus] = {
    1: "new",
    2: "pending",
    3: "in_progress",
    4: "awaiting_control",
    5: "completed",
    6: "deferred",
    7: "declined",
}
PRIORITY_NAMES: dict[int, TaskPriority] = {0: "low", 1: "medium", 2: "high"}

# Optional date fields: Core column <- camelCase key (``changedDate`` is required, read first).
_DATES = (
    ("deadline", "deadline"),
    ("start_date_plan", "startDatePlan"),
    ("end_date_plan", "endDatePlan"),
    ("closed_at", "closedDate"),
    ("created_at_source", "createdDate"),
)

UNKNOWN_PRIORITY = "unknown priority code"

# Codes as Bitrix24 sends them ("2", "-1"), looked up before the general reader (hot path).
_CODES: dict[str, int] = {str(code): code for code in range(-3, 8)}
_PRIORITY_BY_TEXT: dict[str, TaskPriority] = {str(code): name for code, name in PRIORITY_NAMES.items()}


def _get(task: dict[str, Any], camel: str) -> Any:
    """camelCase first, UPPER_SNAKE as a fallback (``tasks.task.get`` with some selects)."""
    if camel in task:
        return task[camel]
    return task.get(_upper_snake(camel))


@functools.cache
def _upper_snake(camel: str) -> str:
    """``parentId`` -> ``PARENT_ID``, computed once per name: a field the portal leaves out of
    every record (``subStatus``, ``tags``) would otherwise pay for it 100k times per read."""
    return "".join(f"_{c}" if c.isupper() else c for c in camel).upper()


def to_task(task: Any) -> TaskRow | Rejection:
    """Map one ``tasks.task.list`` record to a ``TaskRow``, or say why it cannot be one.

    Returns a ``Rejection`` for a missing ID, an unknown status code or a missing or unreadable
    ``changedDate`` (the incremental cursor depends on it). Person IDs stay Bitrix IDs: the Core
    merge resolves them to employee ids of the same account. Optional fields that are present but
    unreadable (a person ID "²", a deadline in year 0, an unknown priority) become NULL with the
    reason in ``metadata["field_issues"]``, keyed by the camelCase field name.
    """
    if not isinstance(task, dict):
        return Rejection("record is not an object")
    task_id = bitrix_id(_get(task, "id"))
    if task_id is None:
        return Rejection("missing or invalid id")
    raw_status = _get(task, "status")
    status_code = _CODES.get(raw_status) if type(raw_status) is str else None
    if status_code is None:
        status_code = small_int(raw_status)
    if status_code not in STATUS_NAMES:
        return Rejection("unknown status code", task_id)
    issues: Issues = {}
    changed = iso_datetime(_get(task, "changedDate"), issues, "changedDate")
    if changed is None:
        problem = issues.get("changedDate")
        return Rejection(f"changedDate: {problem}" if problem else "missing changedDate", task_id)
    dates = {column: iso_datetime(_get(task, key), issues, key) for column, key in _DATES}

    raw_priority = _get(task, "priority")
    priority = _PRIORITY_BY_TEXT.get(raw_priority) if type(raw_priority) is str else None
    if priority is None:
        if is_blank(raw_priority):
            priority = "medium"  # Bitrix24's default when the field is absent
        else:
            priority_code = small_int(raw_priority)
            priority = PRIORITY_NAMES.get(priority_code) if priority_code is not None else None
            if priority is None:
                issues["priority"] = UNKNOWN_PRIORITY

    metadata: dict[str, Any] = {"bitrix_id": task_id}
    parent = bitrix_id(_get(task, "parentId"), issues, "parentId")
    if parent is not None:
        metadata["parent_id"] = parent
    raw_sub_status = _get(task, "subStatus")
    sub_status = _CODES.get(raw_sub_status) if type(raw_sub_status) is str else None
    if sub_status is None:
        sub_status = small_int(raw_sub_status, issues, "subStatus")
    if sub_status is not None:
        metadata["sub_status"] = sub_status
    tags = text_list(_get(task, "tags"), issues, "tags")
    if tags:
        metadata["tags"] = tags
    title = text(_get(task, "title"), issues, "title") or ""
    description = text(_get(task, "description"), issues, "description")
    responsible = bitrix_id(_get(task, "responsibleId"), issues, "responsibleId")
    created_by = bitrix_id(_get(task, "createdBy"), issues, "createdBy")
    group = bitrix_id(_get(task, "groupId"), issues, "groupId")
    if issues:
        metadata["field_issues"] = issues

    return TaskRow(
        bitrix_id=task_id,
        title=title,
        description=description,
        status=STATUS_NAMES[status_code],
        status_code=status_code,
        priority=priority,
        responsible_bitrix_id=responsible,
        created_by_bitrix_id=created_by,
        group_id=group,
        changed_at_source=changed,
        metadata=metadata,
        **dates,
    )
