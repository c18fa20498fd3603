"""``user.get``, ``user.current``, ``user.fields`` (docs/bitrix24-rest-api.md §6.1-6.2).

Classic handler: top-level keys are upper-cased; ``FILTER`` (if an array) replaces the top-level
keys as the filter; ``SORT`` + ``ORDER`` apply only together; ORM-style ``start`` offset with
``start=-1`` support. Values: ``ID`` string, ``ACTIVE`` JSON bool, ``UF_DEPARTMENT`` int list
(absent for extranet users), dates per ``CRestUtil::ConvertDate``, empty text ``""``.
"""

from __future__ import annotations

from typing import Any

from ..dates import iso, iso_date_shifted, parse_datetime, plain_datetime
from ..filters import Field, compile_filter
from ..listing import list_page
from ..phpquery import intval, php_values, upper_keys
from ..store import User
from . import CallContext, MethodResult, router

USER_SCOPES = ("user", "user_basic", "user_brief")

FULL_FIELDS = [
    "ID",
    "XML_ID",
    "ACTIVE",
    "NAME",
    "LAST_NAME",
    "SECOND_NAME",
    "TITLE",
    "EMAIL",
    "LAST_LOGIN",
    "DATE_REGISTER",
    "TIME_ZONE",
    "IS_ONLINE",
    "TIMESTAMP_X",
    "LAST_ACTIVITY_DATE",
    "PERSONAL_GENDER",
    "PERSONAL_PROFESSION",
    "PERSONAL_WWW",
    "PERSONAL_BIRTHDAY",
    "PERSONAL_ICQ",
    "PERSONAL_PHONE",
    "PERSONAL_MOBILE",
    "PERSONAL_CITY",
    "PERSONAL_COUNTRY",
    "WORK_PHONE",
    "WORK_COMPANY",
    "WORK_POSITION",
    "WORK_DEPARTMENT",
    "WORK_CITY",
    "UF_EMPLOYMENT_DATE",
    "UF_DEPARTMENT",
    "UF_PHONE_INNER",
    "UF_SKYPE",
    "USER_TYPE",
]
BASIC_FIELDS = [f for f in FULL_FIELDS if f not in ("LAST_LOGIN", "PERSONAL_WWW", "PERSONAL_ICQ")]
BRIEF_FIELDS = [
    "ID",
    "XML_ID",
    "ACTIVE",
    "NAME",
    "LAST_NAME",
    "SECOND_NAME",
    "TITLE",
    "IS_ONLINE",
    "TIME_ZONE",
    "TIMESTAMP_X",
    "DATE_REGISTER",
    "PERSONAL_PROFESSION",
    "PERSONAL_GENDER",
    "PERSONAL_BIRTHDAY",
    "PERSONAL_CITY",
    "PERSONAL_COUNTRY",
    "WORK_POSITION",
    "WORK_CITY",
    "LAST_ACTIVITY_DATE",
    "UF_EMPLOYMENT_DATE",
    "UF_DEPARTMENT",
    "UF_PHONE_INNER",
    "USER_TYPE",
]
RESERVED = {"FILTER", "SORT", "ORDER", "SELECT", "START", "ADMIN_MODE", "IMAGE_RESIZE", "AUTH"}


def _day_ts(day: str, ctx_tz: Any) -> float | None:
    return parse_datetime(day, ctx_tz) if day else None


def filter_fields(tz: Any) -> dict[str, Field]:
    return {
        "ID": Field(lambda u: u.id, "int"),
        "ACTIVE": Field(lambda u: u.active, "bool"),
        "NAME": Field(lambda u: u.name),
        "LAST_NAME": Field(lambda u: u.last_name),
        "SECOND_NAME": Field(lambda u: u.second_name),
        "EMAIL": Field(lambda u: u.email),
        "XML_ID": Field(lambda u: u.xml_id),
        "WORK_POSITION": Field(lambda u: u.position),
        "PERSONAL_GENDER": Field(lambda u: u.gender),
        "PERSONAL_CITY": Field(lambda u: u.city),
        "PERSONAL_MOBILE": Field(lambda u: u.mobile),
        "WORK_PHONE": Field(lambda u: u.work_phone),
        "USER_TYPE": Field(lambda u: u.user_type),
        "IS_ONLINE": Field(lambda u: "Y" if u.is_online else "N"),
        "UF_DEPARTMENT": Field(lambda u: u.departments, "ints"),
        "HAS_DEPARTAMENT": Field(lambda u: "Y" if u.departments else "N"),
        "TIMESTAMP_X": Field(lambda u: u.timestamp_x, "date"),
        "LAST_LOGIN": Field(lambda u: u.last_login, "date"),
        "LAST_ACTIVITY_DATE": Field(lambda u: u.last_login, "date"),
        "DATE_REGISTER": Field(lambda u: _day_ts(u.date_register, tz), "date"),
        "PERSONAL_BIRTHDAY": Field(lambda u: _day_ts(u.birthday, tz), "date"),
        "UF_EMPLOYMENT_DATE": Field(lambda u: _day_ts(u.employment_date, tz), "date"),
    }


SORT_KEYS = {
    "ID",
    "NAME",
    "LAST_NAME",
    "EMAIL",
    "DATE_REGISTER",
    "TIMESTAMP_X",
    "LAST_LOGIN",
    "ACTIVE",
    "WORK_POSITION",
    "XML_ID",
}


def allowed_fields(scopes: frozenset[str]) -> list[str]:
    if "user" in scopes:
        return FULL_FIELDS
    if "user_basic" in scopes:
        return BASIC_FIELDS
    return BRIEF_FIELDS


def user_record(user: User, ctx: CallContext, *, activity_format: str = "object") -> dict[str, Any]:
    """The full user record (before scope/select filtering)."""
    tz = ctx.portal.tz
    stamp: Any = {} if activity_format == "object" else plain_datetime(user.timestamp_x, tz)
    activity: Any = (
        {}
        if activity_format == "object"
        else (plain_datetime(user.last_login, tz) if user.last_login else "")
    )
    record: dict[str, Any] = {
        "ID": str(user.id),
        "XML_ID": user.xml_id,
        "ACTIVE": user.active,
        "NAME": user.name,
        "LAST_NAME": user.last_name,
        "SECOND_NAME": user.second_name,
        "TITLE": "",
        "EMAIL": user.email,
        "LAST_LOGIN": iso(user.last_login, tz) or "",
        "DATE_REGISTER": iso_date_shifted(user.date_register, tz),
        "TIME_ZONE": user.time_zone,
        "IS_ONLINE": "Y" if user.is_online else "N",
        "TIMESTAMP_X": stamp,
        "LAST_ACTIVITY_DATE": activity,
        "PERSONAL_GENDER": user.gender,
        "PERSONAL_PROFESSION": "",
        "PERSONAL_WWW": "",
        "PERSONAL_BIRTHDAY": iso_date_shifted(user.birthday, tz),
        "PERSONAL_ICQ": "",
        "PERSONAL_PHONE": "",
        "PERSONAL_MOBILE": user.mobile,
        "PERSONAL_CITY": user.city,
        "PERSONAL_COUNTRY": "",
        "WORK_PHONE": user.work_phone,
        "WORK_COMPANY": "",
        "WORK_POSITION": user.position,
        "WORK_DEPARTMENT": "",
        "WORK_CITY": "",
        "UF_EMPLOYMENT_DATE": iso_date_shifted(user.employment_date, tz),
        "UF_DEPARTMENT": list(user.departments),
        "UF_PHONE_INNER": "",
        "UF_SKYPE": "",
        "USER_TYPE": user.user_type,
    }
    if user.user_type == "extranet":
        del record["UF_DEPARTMENT"]
    return ctx.state.render("users", user.id, record)


def shape(record: dict[str, Any], scopes: frozenset[str], select: list[str] | None) -> dict[str, Any]:
    allowed = allowed_fields(scopes)
    if select and "*" not in select and "UF_*" not in select:
        wanted = [f for f in select if f in allowed]
    else:
        wanted = allowed
    return {k: record[k] for k in wanted if k in record}


def _name_search(value: Any) -> Any:
    words = [w.casefold() for w in str(value).split() if w]

    def match(user: User) -> bool:
        haystack = [
            user.name.casefold(),
            user.last_name.casefold(),
            user.second_name.casefold(),
            user.email.casefold(),
        ]
        return all(any(h.startswith(w) for h in haystack) for w in words)

    return match


@router.method("user.get", *USER_SCOPES)
def user_get(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    raw_filter = p.get("FILTER")
    if isinstance(raw_filter, (dict, list)):
        filt = raw_filter if isinstance(raw_filter, dict) else {str(i): v for i, v in enumerate(raw_filter)}
    else:
        filt = {k: v for k, v in p.items() if k not in RESERVED}
    filt = {str(k).upper(): v for k, v in filt.items()}
    name_search = filt.pop("NAME_SEARCH", None)
    compiled = compile_filter(filt, filter_fields(ctx.portal.tz), ctx.portal.tz)
    if name_search not in (None, ""):
        inner = compiled.predicate
        search = _name_search(name_search)
        compiled.predicate = (lambda u: search(u) and inner(u)) if inner else search
    sort = str(p.get("SORT", "")).upper()
    order_dir = str(p.get("ORDER", "")).upper()
    order = None
    descending = False
    if sort and order_dir in ("ASC", "DESC") and sort in SORT_KEYS:
        descending = order_dir == "DESC"
        if sort != "ID":
            getter = (
                filter_fields(ctx.portal.tz)[sort].get
                if sort in filter_fields(ctx.portal.tz)
                else (lambda u: u.id)
            )
            order = [(getter, descending)]
    start = intval(p.get("START", 0))
    page = list_page(ctx.state.users, compiled, start=start, order=order, id_descending=descending)
    select = [str(s).upper() for s in php_values(p.get("SELECT"))] or None
    rows = [shape(user_record(u, ctx), ctx.scopes, select) for u in page.rows]
    if not rows:
        return MethodResult([], work=page.work)
    total = page.total
    if total is None and ctx.portal.config.keyset_total == "zero":
        total = 0
    return MethodResult(rows, total=total, next=page.next, work=page.work)


@router.method("user.current", *USER_SCOPES)
def user_current(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    user = ctx.state.users.get(ctx.user_id)
    if user is None:
        return MethodResult([])
    return MethodResult(shape(user_record(user, ctx, activity_format="plain"), ctx.scopes, None))


@router.method("user.fields", *USER_SCOPES)
def user_fields(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    labels = {f: f.replace("_", " ").title() for f in allowed_fields(ctx.scopes)}
    return MethodResult(labels)
