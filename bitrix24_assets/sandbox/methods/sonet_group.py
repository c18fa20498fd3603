"""``sonet_group.get`` (scope ``sonet_group``): the portal's workgroups and projects.

The classic handler over ``CSocNetGroup::GetList``: upper-case ``ORDER`` (field -> ``ASC|DESC``)
and ``FILTER`` (prefixes ``= ! > >= < <= %``), ``start`` paging by 50 with ``next``/``total``,
values as strings, ``Y``/``N`` flags and dates in ISO 8601 with the portal offset, as in the docs'
example answer. Only groups the caller may see are listed: visible ones (the sandbox keeps no
membership lists); ``IS_ADMIN=Y`` from an administrator (user 1) lists invisible groups too.
A group's calendar is read with ``calendar.event.get?type=group&ownerId=<ID>``.
"""

from __future__ import annotations

from typing import Any

from ..dates import iso
from ..filters import Field, compile_filter
from ..listing import list_page
from ..phpquery import intval, truthy, upper_keys
from ..store import Group, IdIndex
from . import CallContext, MethodResult, router

ADMIN_USER_ID = 1
OPERATORS = ("", "=", "!", "!=", ">", ">=", "<", "<=", "%")


def _flag(value: bool) -> str:
    return "Y" if value else "N"


FIELDS: dict[str, Field] = {
    "ID": Field(lambda g: g.id, "int"),
    "NAME": Field(lambda g: g.name),
    "OWNER_ID": Field(lambda g: g.owner_id, "int"),
    "ACTIVE": Field(lambda g: "Y"),
    "VISIBLE": Field(lambda g: _flag(g.visible)),
    "OPENED": Field(lambda g: _flag(g.opened)),
    "CLOSED": Field(lambda g: _flag(g.closed)),
    "PROJECT": Field(lambda g: _flag(g.project)),
    "NUMBER_OF_MEMBERS": Field(lambda g: g.members, "int"),
    "DATE_CREATE": Field(lambda g: g.created, "date"),
    "SITE_ID": Field(lambda g: "s1"),
}


def group_record(group: Group, ctx: CallContext) -> dict[str, Any]:
    tz = ctx.portal.tz
    created = iso(group.created, tz)
    return {
        "ID": str(group.id),
        "SITE_ID": "s1",
        "NAME": group.name,
        "DESCRIPTION": group.description,
        "DATE_CREATE": created,
        "DATE_UPDATE": created,
        "ACTIVE": "Y",
        "VISIBLE": _flag(group.visible),
        "OPENED": _flag(group.opened),
        "CLOSED": _flag(group.closed),
        "SUBJECT_ID": "1",
        "OWNER_ID": str(group.owner_id),
        "KEYWORDS": "",
        "NUMBER_OF_MEMBERS": str(group.members),
        "DATE_ACTIVITY": created,
        "SUBJECT_NAME": "Рабочие группы",
        "PROJECT": _flag(group.project),
        "IS_EXTRANET": "N",
    }


@router.method("sonet_group.get", "sonet_group")
def sonet_group_get(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    raw_filter = p.get("FILTER")
    filt = {str(k).upper(): v for k, v in raw_filter.items()} if isinstance(raw_filter, dict) else {}
    compiled = compile_filter(filt, FIELDS, ctx.portal.tz, allowed=OPERATORS)
    see_all = ctx.user_id == ADMIN_USER_ID and truthy(p.get("IS_ADMIN")) and p.get("IS_ADMIN") != "N"
    if not see_all:
        inner = compiled.predicate
        compiled.predicate = (lambda g: g.visible and inner(g)) if inner else (lambda g: g.visible)
    index = IdIndex()
    for group_id in sorted(ctx.state.groups):
        index.add(ctx.state.groups[group_id])
    order = None
    descending = False
    raw_order = p.get("ORDER")
    if isinstance(raw_order, dict) and raw_order:
        keys = [(str(k).upper(), str(v).upper() == "DESC") for k, v in raw_order.items()]
        if keys[0][0] == "ID" and len(keys) == 1:
            descending = keys[0][1]
        else:
            order = [(FIELDS[k].get, desc) for k, desc in keys if k in FIELDS] or None
    page = list_page(index, compiled, start=intval(p.get("START", 0)), order=order, id_descending=descending)
    return MethodResult(
        [group_record(g, ctx) for g in page.rows], total=page.total, next=page.next, work=page.work
    )
