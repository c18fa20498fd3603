"""``tasks.task.list`` record -> ``TaskRow`` (reference 6.4).

Payload facts: keys are camelCase, values mostly strings (``"id": "8017"``), ``status`` is the
real status 1-7, ``priority`` "0"/"1"/"2", dates are ISO 8601 with the caller's offset or
``null``, ``groupId`` is "0" without a group and ``group`` is ``[]`` then.
"""

from __future__ import annotations

import functools
from typing import Any

from bitrix24_assets.core.rows import TaskRow
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.values import bitrix_id, iso_datetime, text

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

# REAL_STATUS codes (reference 6.4; 1 and 7 are legacy constants still seen on old portals).
STATUS_NAMES: dict[int, str] = {
    1: "new",
    2: "pending",
    3: "in_progress",
    4: "awaiting_control",
    5: "completed",
    6: "deferred",
    7: "declined",
}
PRIORITY_NAMES: dict[int, str] = {0: "low", 1: "medium", 2: "high"}

# Date fields: Core column <- camelCase key.
_DATES = {
    "deadline": "deadline",
    "start_date_plan": "startDatePlan",
    "end_date_plan": "endDatePlan",
    "closed_at": "closedDate",
    "created_at_source": "createdDate",
    "changed_at_source": "changedDate",
}


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


def _code(value: Any) -> int | None:
    raw = text(value)
    return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None


def to_task(task: Any) -> TaskRow | Rejection:
    """Map one ``tasks.task.list`` record to a ``TaskRow``, or say why it cannot be one.

    Returns a ``Rejection`` for a missing ID, an unknown status code or a missing
    ``changedDate`` (the incremental cursor depends on it). Person IDs stay Bitrix IDs: the Core
    merge resolves them to employee ids of the same account.
    """
    if not isinstance(task, dict):
        return Rejection("record is not an object")
    task_id = bitrix_id(_get(task, "id"))
    if task_id is None:
        return Rejection("missing or invalid id")
    status_code = _code(_get(task, "status"))
    if status_code not in STATUS_NAMES:
        return Rejection("unknown status code", task_id)
    dates = {column: iso_datetime(_get(task, key)) for column, key in _DATES.items()}
    if dates["changed_at_source"] is None:
        return Rejection("missing changedDate", task_id)
    priority_code = _code(_get(task, "priority"))

    metadata: dict[str, Any] = {"bitrix_id": task_id}
    parent = bitrix_id(_get(task, "parentId"))
    if parent is not None:
        metadata["parent_id"] = parent
    sub_status = _code(_get(task, "subStatus"))
    if sub_status is not None:
        metadata["sub_status"] = sub_status
    tags = _get(task, "tags")
    if isinstance(tags, list) and tags:
        metadata["tags"] = [str(t) for t in tags]

    return TaskRow(
        bitrix_id=task_id,
        title=text(_get(task, "title")) or "",
        description=text(_get(task, "description")),
        status=STATUS_NAMES[status_code],
        status_code=status_code,
        priority=PRIORITY_NAMES.get(priority_code if priority_code is not None else 1, "medium"),
        responsible_bitrix_id=bitrix_id(_get(task, "responsibleId")),
        created_by_bitrix_id=bitrix_id(_get(task, "createdBy")),
        group_id=bitrix_id(_get(task, "groupId")),
        metadata=metadata,
        **dates,
    )
