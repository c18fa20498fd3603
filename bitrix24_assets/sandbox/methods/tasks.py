"""``tasks.task.list/get/add/update/delete`` (docs/bitrix24-rest-api.md §6.4-6.6).

Controller-style methods: lower-case parameter names, UPPER_SNAKE field names in ``select``,
``filter`` and ``fields``, camelCase keys in the result (``result.tasks`` / ``result.task``),
values mostly strings, dates ISO 8601 with the portal offset or ``null``. ``status`` and
``subStatus`` and ``group`` (``[]`` when none) are always present. ``start=-1`` drops the count.
Writes bump ``changedDate`` and fire ONTASKADD / ONTASKUPDATE / ONTASKDELETE.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from ..dates import iso, parse_datetime
from ..errors import RestError
from ..filters import Field, compile_filter, normalize_field
from ..listing import list_page
from ..phpquery import intval, php_values
from ..store import Task
from . import CallContext, MethodResult, router

ALLOWED_OPS = ("", "=", "!", "!=", "<", "<=", ">", ">=", "@", "!@", "%")
SORTABLE = {
    "ID",
    "TITLE",
    "TIME_SPENT_IN_LOGS",
    "DATE_START",
    "CREATED_DATE",
    "CHANGED_DATE",
    "CLOSED_DATE",
    "ACTIVITY_DATE",
    "START_DATE_PLAN",
    "END_DATE_PLAN",
    "DEADLINE",
    "REAL_STATUS",
    "STATUS_COMPLETE",
    "PRIORITY",
    "MARK",
    "CREATED_BY_LAST_NAME",
    "RESPONSIBLE_LAST_NAME",
    "GROUP_ID",
    "TIME_ESTIMATE",
    "ALLOW_CHANGE_DEADLINE",
    "ALLOW_TIME_TRACKING",
    "MATCH_WORK_TIME",
    "FAVORITE",
    "SORTING",
    "IS_PINNED",
    "IS_PINNED_IN_GROUP",
}


def sub_status(task: Task, now: float) -> int:
    """``STATUS`` meta value: ``-1`` overdue for open tasks past their deadline."""
    if task.status in (2, 3) and task.deadline is not None and task.deadline < now:
        return -1
    return task.status


def param(params: dict[str, Any], name: str) -> Any:
    """Controller params use the documented spelling; accept any case as Bitrix's binder does."""
    if name in params:
        return params[name]
    lowered = name.lower()
    for key, value in params.items():
        if str(key).lower() == lowered:
            return value
    return None


def filter_fields(ctx: CallContext) -> dict[str, Field]:
    now = ctx.portal.clock.now()
    return {
        "ID": Field(lambda t: t.id, "int"),
        "PARENT_ID": Field(lambda t: t.parent_id or 0, "int"),
        "GROUP_ID": Field(lambda t: t.group_id, "int"),
        "CREATED_BY": Field(lambda t: t.created_by, "int"),
        "STATUS_CHANGED_BY": Field(lambda t: t.changed_by, "int"),
        "CHANGED_BY": Field(lambda t: t.changed_by, "int"),
        "PRIORITY": Field(lambda t: t.priority, "int"),
        "RESPONSIBLE_ID": Field(lambda t: t.responsible_id, "int"),
        "TITLE": Field(lambda t: t.title, "like"),
        "REAL_STATUS": Field(lambda t: t.status, "int"),
        "STATUS": Field(lambda t: sub_status(t, now), "int"),
        "MARK": Field(lambda t: t.mark or ""),
        "SITE_ID": Field(lambda t: "s1"),
        "TAG": Field(lambda t: ",".join(t.tags)),
        "DEADLINE": Field(lambda t: t.deadline, "date"),
        "CREATED_DATE": Field(lambda t: t.created_date, "date"),
        "CLOSED_DATE": Field(lambda t: t.closed_date, "date"),
        "CHANGED_DATE": Field(lambda t: t.changed_date, "date"),
        "DATE_START": Field(lambda t: t.created_date if t.status >= 3 else None, "date"),
        "ACTIVITY_DATE": Field(lambda t: t.changed_date, "date"),
        "ACCOMPLICE": Field(lambda t: t.accomplices, "ints"),
        "AUDITOR": Field(lambda t: t.auditors, "ints"),
        "ONLY_ROOT_TASKS": Field(lambda t: "Y" if not t.parent_id else "N"),
    }


SORT_GETTERS: dict[str, Callable[[Task], Any]] = {
    "ID": lambda t: t.id,
    "TITLE": lambda t: t.title.casefold(),
    "CREATED_DATE": lambda t: t.created_date,
    "CHANGED_DATE": lambda t: t.changed_date,
    "ACTIVITY_DATE": lambda t: t.changed_date,
    "CLOSED_DATE": lambda t: t.closed_date,
    "DEADLINE": lambda t: t.deadline,
    "START_DATE_PLAN": lambda t: t.start_date_plan,
    "END_DATE_PLAN": lambda t: t.end_date_plan,
    "REAL_STATUS": lambda t: t.status,
    "STATUS_COMPLETE": lambda t: 1 if t.status == 5 else 0,
    "PRIORITY": lambda t: t.priority,
    "GROUP_ID": lambda t: t.group_id,
    "DATE_START": lambda t: t.created_date if t.status >= 3 else None,
    "TIME_ESTIMATE": lambda t: t.time_estimate,
}


# UPPER_SNAKE field -> (camelCase key, value of (task, tz, now)); only selected fields are computed
_Value = Callable[[Task, Any, float], Any]
TASK_FIELDS: dict[str, tuple[str, _Value]] = {
    "ID": ("id", lambda task, tz, now: str(task.id)),
    "PARENT_ID": ("parentId", lambda task, tz, now: str(task.parent_id) if task.parent_id else None),
    "TITLE": ("title", lambda task, tz, now: task.title),
    "DESCRIPTION": ("description", lambda task, tz, now: task.description),
    "MARK": ("mark", lambda task, tz, now: task.mark),
    "PRIORITY": ("priority", lambda task, tz, now: str(task.priority)),
    "MULTITASK": ("multitask", lambda task, tz, now: "N"),
    "NOT_VIEWED": ("notViewed", lambda task, tz, now: "N"),
    "REPLICATE": ("replicate", lambda task, tz, now: "N"),
    "GROUP_ID": ("groupId", lambda task, tz, now: str(task.group_id)),
    "STAGE_ID": ("stageId", lambda task, tz, now: "0"),
    "CREATED_BY": ("createdBy", lambda task, tz, now: str(task.created_by)),
    "CREATED_DATE": ("createdDate", lambda task, tz, now: iso(task.created_date, tz)),
    "RESPONSIBLE_ID": ("responsibleId", lambda task, tz, now: str(task.responsible_id)),
    "CHANGED_BY": ("changedBy", lambda task, tz, now: str(task.changed_by)),
    "CHANGED_DATE": ("changedDate", lambda task, tz, now: iso(task.changed_date, tz)),
    "STATUS_CHANGED_BY": ("statusChangedBy", lambda task, tz, now: str(task.changed_by)),
    "STATUS_CHANGED_DATE": ("statusChangedDate", lambda task, tz, now: iso(task.changed_date, tz)),
    "CLOSED_BY": ("closedBy", lambda task, tz, now: str(task.responsible_id) if task.closed_date else None),
    "CLOSED_DATE": ("closedDate", lambda task, tz, now: iso(task.closed_date, tz)),
    "ACTIVITY_DATE": ("activityDate", lambda task, tz, now: iso(task.changed_date, tz)),
    "DATE_START": (
        "dateStart",
        lambda task, tz, now: iso(task.created_date, tz) if task.status >= 3 else None,
    ),
    "DEADLINE": ("deadline", lambda task, tz, now: iso(task.deadline, tz)),
    "START_DATE_PLAN": ("startDatePlan", lambda task, tz, now: iso(task.start_date_plan, tz)),
    "END_DATE_PLAN": ("endDatePlan", lambda task, tz, now: iso(task.end_date_plan, tz)),
    "GUID": (
        "guid",
        lambda task, tz, now: "{" + str(uuid.uuid5(uuid.NAMESPACE_OID, f"task-{task.id}")).upper() + "}",
    ),
    "XML_ID": ("xmlId", lambda task, tz, now: None),
    "COMMENTS_COUNT": ("commentsCount", lambda task, tz, now: str(task.comments_count)),
    "SERVICE_COMMENTS_COUNT": ("serviceCommentsCount", lambda task, tz, now: "0"),
    "NEW_COMMENTS_COUNT": ("newCommentsCount", lambda task, tz, now: 0),
    "ALLOW_CHANGE_DEADLINE": ("allowChangeDeadline", lambda task, tz, now: "Y"),
    "ALLOW_TIME_TRACKING": ("allowTimeTracking", lambda task, tz, now: "N"),
    "TASK_CONTROL": ("taskControl", lambda task, tz, now: "N"),
    "ADD_IN_REPORT": ("addInReport", lambda task, tz, now: "N"),
    "FORKED_BY_TEMPLATE_ID": ("forkedByTemplateId", lambda task, tz, now: None),
    "TIME_ESTIMATE": ("timeEstimate", lambda task, tz, now: str(task.time_estimate)),
    "TIME_SPENT_IN_LOGS": ("timeSpentInLogs", lambda task, tz, now: None),
    "MATCH_WORK_TIME": ("matchWorkTime", lambda task, tz, now: "N"),
    "FORUM_TOPIC_ID": ("forumTopicId", lambda task, tz, now: None),
    "FORUM_ID": ("forumId", lambda task, tz, now: None),
    "SITE_ID": ("siteId", lambda task, tz, now: "s1"),
    "SUBORDINATE": ("subordinate", lambda task, tz, now: "N"),
    "FAVORITE": ("favorite", lambda task, tz, now: "N"),
    "EXCHANGE_MODIFIED": ("exchangeModified", lambda task, tz, now: None),
    "EXCHANGE_ID": ("exchangeId", lambda task, tz, now: None),
    "OUTLOOK_VERSION": ("outlookVersion", lambda task, tz, now: "1"),
    "VIEWED_DATE": ("viewedDate", lambda task, tz, now: iso(task.changed_date, tz)),
    "SORTING": ("sorting", lambda task, tz, now: None),
    "DURATION_PLAN": ("durationPlan", lambda task, tz, now: None),
    "DURATION_FACT": ("durationFact", lambda task, tz, now: None),
    "DURATION_TYPE": ("durationType", lambda task, tz, now: "days"),
    "IS_MUTED": ("isMuted", lambda task, tz, now: "N"),
    "IS_PINNED": ("isPinned", lambda task, tz, now: "N"),
    "IS_PINNED_IN_GROUP": ("isPinnedInGroup", lambda task, tz, now: "N"),
    "DESCRIPTION_IN_BBCODE": ("descriptionInBbcode", lambda task, tz, now: "Y"),
    "STATUS": ("subStatus", lambda task, tz, now: str(sub_status(task, now))),
    "REAL_STATUS": ("status", lambda task, tz, now: str(task.status)),
    "ACCOMPLICES": ("accomplices", lambda task, tz, now: [str(u) for u in task.accomplices]),
    "AUDITORS": ("auditors", lambda task, tz, now: [str(u) for u in task.auditors]),
    "TAGS": ("tags", lambda task, tz, now: list(task.tags)),
}


def _user_brief(ctx: CallContext, user_id: int) -> dict[str, Any]:
    user = ctx.state.users.get(user_id)
    name = f"{user.name} {user.last_name}".strip() if user else ""
    return {
        "id": str(user_id),
        "name": name,
        "link": f"/company/personal/user/{user_id}/",
        "icon": "/bitrix/images/tasks/default_avatar.png",
        "workPosition": user.position if user else "",
    }


def _group(ctx: CallContext, group_id: int) -> Any:
    group = ctx.state.groups.get(group_id)
    if not group_id or group is None:
        return []
    return {
        "id": str(group.id),
        "name": group.name,
        "opened": True,
        "membersCount": group.members,
        "image": "",
        "additionalData": [],
    }


def task_record(
    task: Task, ctx: CallContext, select: list[str] | None, *, full: bool = False
) -> dict[str, Any]:
    tz = ctx.portal.tz
    now = ctx.portal.clock.now()
    wanted = list(TASK_FIELDS) if not select or "*" in select else ["ID", *select]
    out: dict[str, Any] = {}
    for name in [*wanted, "REAL_STATUS", "STATUS"]:  # status and subStatus are always present
        spec = TASK_FIELDS.get(name)
        if spec is not None and spec[0] not in out:
            out[spec[0]] = spec[1](task, tz, now)
    out["group"] = _group(ctx, task.group_id)
    chosen = set(wanted)
    if "CREATED_BY" in chosen:
        out["creator"] = _user_brief(ctx, task.created_by)
    if "RESPONSIBLE_ID" in chosen:
        out["responsible"] = _user_brief(ctx, task.responsible_id)
    if "ACCOMPLICES" in chosen:
        out["accomplicesData"] = {str(u): _user_brief(ctx, u) for u in task.accomplices} or []
    if "AUDITORS" in chosen:
        out["auditorsData"] = {str(u): _user_brief(ctx, u) for u in task.auditors} or []
    if full:
        mine = ctx.user_id in (task.created_by, task.responsible_id) or ctx.user_id == 1
        out["action"] = {
            a: mine
            for a in (
                "accept",
                "decline",
                "complete",
                "approve",
                "disapprove",
                "start",
                "pause",
                "delegate",
                "remove",
                "edit",
                "defer",
                "renew",
                "create",
                "changeDeadline",
                "checklistAddItems",
                "addFavorite",
                "deleteFavorite",
                "rate",
                "edit.originator",
                "checklist.reorder",
                "elapsedtime.add",
                "dayplan.timer.toggle",
                "edit.plan",
                "checklist.add",
                "favorite.add",
                "favorite.delete",
            )
        }
        out["favorite"] = "N"
        out["chatId"] = None
    return ctx.state.render("tasks", task.id, out)


def _select(params: dict[str, Any]) -> list[str] | None:
    raw = param(params, "select")
    names = [normalize_field(str(v)) if str(v) != "*" else "*" for v in php_values(raw)]
    return names or None


def _order(params: dict[str, Any]) -> tuple[list[tuple[Callable[[Task], Any], bool]] | None, bool]:
    raw = param(params, "order")
    if not isinstance(raw, dict) or not raw:
        return None, True  # docs: default ID desc
    keys: list[tuple[Callable[[Task], Any], bool]] = []
    id_only: bool | None = None
    for name, direction in raw.items():
        field = normalize_field(str(name))
        if field not in SORTABLE:
            raise RestError(400, "0", "Invalid sorting key (internal error)")
        descending = str(direction).lower() == "desc"
        if field == "ID" and not keys:
            id_only = descending
            continue
        getter = SORT_GETTERS.get(field, lambda t: 0)
        keys.append((getter, descending))
    if not keys:
        return None, bool(id_only)
    if id_only is not None:
        keys.insert(0, (lambda t: t.id, id_only))
    return keys, False


@router.method("tasks.task.list", "task")
def task_list(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    raw_filter = param(params, "filter")
    filt = raw_filter if isinstance(raw_filter, dict) else {}
    compiled = compile_filter(filt, filter_fields(ctx), ctx.portal.tz, allowed=ALLOWED_OPS)
    order, id_desc = _order(params)
    start = intval(param(params, "start") or 0)
    page = list_page(ctx.state.tasks, compiled, start=start, order=order, id_descending=id_desc)
    select = _select(params)
    tasks = [task_record(t, ctx, select) for t in page.rows]
    total = page.total
    if total is None and ctx.portal.config.keyset_total == "zero":
        total = 0
    return MethodResult({"tasks": tasks}, total=total, next=page.next, work=page.work)


def _task_id(params: dict[str, Any]) -> int:
    raw = param(params, "taskId")
    if raw is None or raw == "":
        raise RestError(400, "100", "Could not find value for parameter {taskId} (internal error)")
    if isinstance(raw, (dict, list)) or (isinstance(raw, str) and not raw.strip().lstrip("-").isdigit()):
        raise RestError(400, "0", "wrong task id")
    return intval(raw)


@router.method("tasks.task.get", "task")
def task_get(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    task = ctx.state.tasks.get(_task_id(params))
    if task is None:
        if ctx.portal.config.missing_task == "error":
            raise RestError(400, "ERROR_CORE", "Task not found or not accessible")
        return MethodResult([])
    return MethodResult({"task": task_record(task, ctx, _select(params), full=True)})


# ---- writes (shared with the admin surface) ------------------------------------------------------


def _date_field(fields: dict[str, Any], name: str, ctx: CallContext) -> float | None:
    value = fields.get(name)
    if value in (None, ""):
        return None
    ts = parse_datetime(value, ctx.portal.tz)
    return float(int(ts)) if ts is not None else None


def _fields_param(params: dict[str, Any]) -> dict[str, Any]:
    raw = param(params, "fields")
    if not isinstance(raw, dict) or not raw:
        raise RestError(400, "100", "Could not find value for parameter {fields} (internal error)")
    return {normalize_field(str(k)): v for k, v in raw.items()}


def apply_fields(task: Task, fields: dict[str, Any], ctx: CallContext, now: float) -> None:
    """Apply UPPER_SNAKE ``fields`` to ``task`` with the validation Bitrix applies."""
    if "TITLE" in fields:
        if not str(fields["TITLE"]).strip():
            raise RestError(400, "ERROR_CORE", "Task title is not specified<br>")
        task.title = str(fields["TITLE"])
    if "DESCRIPTION" in fields:
        task.description = str(fields["DESCRIPTION"] or "")
    if "RESPONSIBLE_ID" in fields:
        rid = intval(fields["RESPONSIBLE_ID"])
        if not rid:
            raise RestError(400, "ERROR_CORE", "Responsible person not specified")
        if ctx.state.users.get(rid) is None:
            raise RestError(400, "ERROR_CORE", 'User specified in the "Responsible" field not found')
        task.responsible_id = rid
    if "CREATED_BY" in fields and intval(fields["CREATED_BY"]):
        task.created_by = intval(fields["CREATED_BY"])
    if "PRIORITY" in fields:
        task.priority = min(max(intval(fields["PRIORITY"]), 0), 2)
    if "GROUP_ID" in fields:
        task.group_id = intval(fields["GROUP_ID"])
    if "PARENT_ID" in fields:
        task.parent_id = intval(fields["PARENT_ID"]) or None
    if "STATUS" in fields:
        status = intval(fields["STATUS"])
        if status not in range(1, 8):
            raise RestError(400, "ERROR_CORE", "Incorrect status")
        if status == 5 and task.status != 5:
            task.closed_date = now
        elif status != 5:
            task.closed_date = None
        task.status = status
    for name, attr in (
        ("DEADLINE", "deadline"),
        ("START_DATE_PLAN", "start_date_plan"),
        ("END_DATE_PLAN", "end_date_plan"),
    ):
        if name in fields:
            setattr(task, attr, _date_field(fields, name, ctx))
    if "ACCOMPLICES" in fields:
        task.accomplices = [intval(v) for v in php_values(fields["ACCOMPLICES"]) if intval(v)]
    if "AUDITORS" in fields:
        task.auditors = [intval(v) for v in php_values(fields["AUDITORS"]) if intval(v)]
    if "TAGS" in fields:
        task.tags = [str(v) for v in php_values(fields["TAGS"])]
    if "MARK" in fields:
        task.mark = str(fields["MARK"]) or None


def create_task(ctx: CallContext, fields: dict[str, Any]) -> Task:
    """Add a task (API or admin) and fire ONTASKADD."""
    now = float(int(ctx.portal.clock.now()))
    if not str(fields.get("TITLE", "")).strip():
        raise RestError(400, "ERROR_CORE", "Task title is not specified<br>")
    if not intval(fields.get("RESPONSIBLE_ID", 0)):
        raise RestError(400, "ERROR_CORE", "Responsible person not specified")
    task = Task(
        id=ctx.state.tasks.next_id(),
        title="",
        description="",
        status=2,
        priority=1,
        created_by=ctx.user_id,
        responsible_id=0,
        group_id=0,
        created_date=now,
        changed_date=now,
        changed_by=ctx.user_id,
        closed_date=None,
        deadline=None,
        start_date_plan=None,
        end_date_plan=None,
    )
    apply_fields(task, fields, ctx, now)
    ctx.state.tasks.add(task)
    ctx.portal.emit(
        "ONTASKADD",
        {
            "FIELDS_BEFORE": "undefined",
            "FIELDS_AFTER": {"ID": str(task.id)},
            "IS_ACCESSIBLE_BEFORE": "N",
            "IS_ACCESSIBLE_AFTER": "undefined",
        },
    )
    return task


def update_task(ctx: CallContext, task_id: int, fields: dict[str, Any]) -> Task:
    """Change a task (API or admin), bump ``changedDate`` and fire ONTASKUPDATE."""
    task = ctx.state.tasks.get(task_id)
    if task is None:
        raise RestError(400, "ERROR_CORE", "Task not found")
    now = float(int(ctx.portal.clock.now()))
    apply_fields(task, fields, ctx, now)
    task.changed_date = now
    task.changed_by = ctx.user_id
    ctx.portal.emit(
        "ONTASKUPDATE",
        {
            "FIELDS_BEFORE": {"ID": str(task.id)},
            "FIELDS_AFTER": {"ID": str(task.id)},
            "IS_ACCESSIBLE_BEFORE": "undefined",
            "IS_ACCESSIBLE_AFTER": "undefined",
        },
    )
    return task


def delete_task(ctx: CallContext, task_id: int) -> None:
    if ctx.state.tasks.get(task_id) is None:
        raise RestError(400, "ERROR_CORE", "Task not found")
    ctx.state.tasks.remove(task_id)
    ctx.portal.emit(
        "ONTASKDELETE",
        {
            "FIELDS_BEFORE": {"ID": str(task_id)},
            "FIELDS_AFTER": "undefined",
            "IS_ACCESSIBLE_BEFORE": "undefined",
            "IS_ACCESSIBLE_AFTER": "N",
        },
    )


@router.method("tasks.task.add", "task")
def task_add(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    task = create_task(ctx, _fields_param(params))
    return MethodResult({"task": task_record(task, ctx, None, full=True)})


@router.method("tasks.task.update", "task")
def task_update(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    task_id = _task_id(params)
    task = update_task(ctx, task_id, _fields_param(params))
    return MethodResult({"task": task_record(task, ctx, None, full=True)})


@router.method("tasks.task.delete", "task")
def task_delete(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    delete_task(ctx, _task_id(params))
    return MethodResult({"task": True})
