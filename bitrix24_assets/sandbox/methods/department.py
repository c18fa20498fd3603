"""``department.get`` (docs/bitrix24-rest-api.md §6.3): exact-match filter, tree order, page-rounded
``start``.

Only the keys ``ID, NAME, SORT, PARENT, UF_HEAD`` filter (top level or inside ``FILTER``), no
operator prefixes: ``>ID`` is silently ignored, which is why keyset paging does not work here.
Pagination is the legacy ``CDBResult`` kind: ``start`` is rounded down to a multiple of 50 and
``total`` is returned even when it is 0.
"""

from __future__ import annotations

from typing import Any

from ..costs import Work
from ..phpquery import intval, php_values, upper_keys
from ..store import Department
from . import CallContext, MethodResult, router

FILTER_KEYS = ("ID", "NAME", "SORT", "PARENT", "UF_HEAD")
PAGE = 50


def _value(dept: Department, key: str) -> Any:
    return {"ID": dept.id, "NAME": dept.name, "SORT": dept.sort, "PARENT": dept.parent, "UF_HEAD": dept.head}[
        key
    ]


def tree_order(departments: dict[int, Department]) -> list[Department]:
    """Depth-first (LEFT_MARGIN) order: parent before children, siblings by SORT then NAME."""
    children: dict[int | None, list[Department]] = {}
    for dept in departments.values():
        children.setdefault(dept.parent, []).append(dept)
    for siblings in children.values():
        siblings.sort(key=lambda d: (d.sort, d.name, d.id))
    ordered: list[Department] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        dept = stack.pop()
        ordered.append(dept)
        stack.extend(reversed(children.get(dept.id, [])))
    return ordered


def department_record(dept: Department) -> dict[str, Any]:
    record: dict[str, Any] = {"ID": str(dept.id), "NAME": dept.name, "SORT": dept.sort}
    if dept.parent is not None:
        record["PARENT"] = str(dept.parent)
    if dept.head is not None:
        record["UF_HEAD"] = str(dept.head)
    return record


@router.method("department.get", "department")
def department_get(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    nested = p.get("FILTER")
    source = nested if isinstance(nested, dict) else p
    conditions: dict[str, set[str]] = {}
    for key in FILTER_KEYS:
        if key in {str(k).upper() for k in source}:
            raw = next(v for k, v in source.items() if str(k).upper() == key)
            conditions[key] = {str(v) if key == "NAME" else str(intval(v)) for v in php_values(raw)}
    rows = [
        d
        for d in tree_order(ctx.state.departments)
        if all(
            str(_value(d, k) if k == "NAME" else intval(_value(d, k) or 0)) in wanted
            for k, wanted in conditions.items()
        )
    ]
    sort = str(p.get("SORT", "")).upper()
    if sort in FILTER_KEYS:
        descending = str(p.get("ORDER", "ASC")).upper() == "DESC"
        rows.sort(key=lambda d: (_value(d, sort) is not None, _value(d, sort) or 0), reverse=descending)
    start = intval(p.get("START", 0))
    total = len(rows)
    if start < 0:
        page_rows = rows[:PAGE]
        return MethodResult([department_record(d) for d in page_rows], work=Work(list_page=True))
    page = start // PAGE + 1
    offset = (page - 1) * PAGE
    page_rows = rows[offset : offset + PAGE]
    next_start = page * PAGE if page * PAGE < total else None
    return MethodResult(
        [department_record(d) for d in page_rows],
        total=total,
        next=next_start,
        work=Work(list_page=True, counted_rows=total, offset=offset),
    )
