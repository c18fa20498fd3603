"""``calendar.event.get/getbyid/add/update/delete`` and ``calendar.section.get`` (docs/bitrix24-rest-api.md
§6.7-6.9).

UPPER-case fields; dates in the portal's site (culture) format plus ``*_TS_UTC`` Unix strings;
no pagination (the whole window comes back, priced per event). Errors use an **empty** error
code with HTTP 400 and a text description, as the calendar module does.
"""

from __future__ import annotations

from typing import Any

from ..costs import Work
from ..dates import DAY_SECONDS, parse_datetime, plain_datetime, site_date, site_datetime
from ..errors import RestError
from ..phpquery import intval, php_values
from ..store import CalendarEvent
from . import CallContext, MethodResult, router

TYPES = ("user", "group", "company_calendar")


def _required(method: str, name: str) -> RestError:
    return RestError(400, "", f'The required parameter "{name}" for the method "{method}" is not set')


def event_record(event: CalendarEvent, ctx: CallContext) -> dict[str, Any]:
    tz = ctx.portal.tz
    fmt = ctx.portal.config.calendar_date_format
    offset = str(int(ctx.portal.config.utc_offset_hours * 3600))
    if event.skip_time:
        date_from, date_to = site_date(event.date_from, tz, fmt), site_date(event.date_to, tz, fmt)
        length = int(event.date_to - event.date_from + DAY_SECONDS)
    else:
        date_from, date_to = site_datetime(event.date_from, tz, fmt), site_datetime(event.date_to, tz, fmt)
        length = int(event.date_to - event.date_from)
    attendees = event.attendees or [event.created_by]
    record = {
        "ID": str(event.id),
        "PARENT_ID": str(event.id),
        "ACTIVE": "Y",
        "DELETED": "N",
        "CAL_TYPE": event.cal_type,
        "OWNER_ID": str(event.owner_id),
        "NAME": event.name,
        "DATE_FROM": date_from,
        "DATE_TO": date_to,
        "TZ_FROM": event.tz,
        "TZ_TO": event.tz,
        "TZ_OFFSET_FROM": offset,
        "TZ_OFFSET_TO": offset,
        "DATE_FROM_TS_UTC": str(int(event.date_from)),
        "DATE_TO_TS_UTC": str(int(event.date_to)),
        "DT_SKIP_TIME": "Y" if event.skip_time else "N",
        "DT_LENGTH": length,
        "CREATED_BY": str(event.created_by),
        "DATE_CREATE": site_datetime(event.date_create, tz, fmt),
        "TIMESTAMP_X": site_datetime(event.timestamp_x, tz, fmt),
        "DESCRIPTION": event.description,
        "PRIVATE_EVENT": "1" if event.private else "",
        "ACCESSIBILITY": event.accessibility,
        "IMPORTANCE": event.importance,
        "IS_MEETING": event.is_meeting,
        "MEETING_STATUS": "H",
        "MEETING_HOST": str(event.created_by),
        "MEETING": {
            "HOST_NAME": "",
            "NOTIFY": True,
            "REINVITE": False,
            "ALLOW_INVITE": False,
            "HIDE_GUESTS": True,
        }
        if event.is_meeting
        else [],
        "LOCATION": event.location,
        "REMIND": [],
        "COLOR": event.color,
        "RRULE": "",
        "EXDATE": "",
        "ATTENDEES_CODES": [f"U{u}" for u in attendees],
        "ATTENDEE_LIST": [
            {"id": u, "entryId": str(event.id), "status": "H" if u == event.created_by else "Y"}
            for u in attendees
        ]
        if event.is_meeting
        else [],
        "SECTION_ID": str(event.section_id),
        "SECT_ID": str(event.section_id),
        "RECURRENCE_ID": None,
        "UF_CRM_CAL_EVENT": False,
        "VERSION": str(event.version),
        "DATE_FROM_FORMATTED": site_datetime(event.date_from, tz, fmt),
    }
    return ctx.state.render("events", event.id, record)


def _owner(params: dict[str, Any], method: str, ctx: CallContext, cal_type: str) -> int:
    raw = params.get("ownerId")
    if cal_type == "company_calendar":
        return 0
    if raw in (None, ""):
        if cal_type == "user":
            return ctx.user_id
        raise _required(method, "ownerId")
    return intval(raw)


def _type(params: dict[str, Any], method: str) -> str:
    cal_type = params.get("type")
    if cal_type in (None, ""):
        raise _required(method, "type")
    return str(cal_type)


@router.method("calendar.event.get", "calendar")
def event_get(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    method = "calendar.event.get"
    cal_type = _type(params, method)
    owner = _owner(params, method, ctx, cal_type)
    now = ctx.portal.clock.now()
    tz = ctx.portal.tz
    low = parse_datetime(params.get("from"), tz) if params.get("from") not in (None, "") else None
    high = parse_datetime(params.get("to"), tz) if params.get("to") not in (None, "") else None
    if low is None and high is None:
        low, high = now - 30 * DAY_SECONDS, now + 90 * DAY_SECONDS
    low = low if low is not None else float("-inf")
    high = high if high is not None else float("inf")
    if params.get("to") not in (None, "") and len(str(params.get("to")).strip()) <= 10:
        high += DAY_SECONDS - 1  # a date-only "to" includes that whole day
    sections = {intval(s) for s in php_values(params.get("section"))} if params.get("section") else None
    found = [
        e
        for e in ctx.state.events_by_owner(cal_type, owner)
        if e.date_from <= high and e.date_to >= low and (sections is None or e.section_id in sections)
    ]
    found.sort(key=lambda e: (e.date_from, e.id))
    return MethodResult([event_record(e, ctx) for e in found], work=Work(returned_rows=len(found)))


@router.method("calendar.event.getbyid", "calendar")
def event_get_by_id(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    event = ctx.state.events.get(intval(params.get("id")))
    return MethodResult(event_record(event, ctx) if event else None)


def _times(
    params: dict[str, Any], method: str, ctx: CallContext, *, required: bool
) -> tuple[float | None, float | None, bool]:
    tz = ctx.portal.tz
    skip_time = str(params.get("skip_time", "N")).upper() == "Y"
    start = end = None
    if params.get("from_ts") not in (None, ""):
        start = float(intval(params["from_ts"]))
    elif params.get("from") not in (None, ""):
        start = parse_datetime(params["from"], tz)
    if params.get("to_ts") not in (None, ""):
        end = float(intval(params["to_ts"]))
    elif params.get("to") not in (None, ""):
        end = parse_datetime(params["to"], tz)
    if required and start is None:
        raise _required(method, "from")
    if required and end is None:
        raise _required(method, "to")
    return start, end, skip_time


def create_event(
    ctx: CallContext,
    *,
    cal_type: str,
    owner: int,
    name: str,
    start: float,
    end: float,
    skip_time: bool = False,
    section: int | None = None,
    description: str = "",
    location: str = "",
    attendees: list[int] | None = None,
    color: str = "",
) -> CalendarEvent:
    """Add a calendar event (API or admin) and fire ONCALENDARENTRYADD."""
    now = float(int(ctx.portal.clock.now()))
    default = ctx.state.section_for(cal_type, owner, created=now)
    if section is not None and section not in {s.id for s in ctx.state.sections_of(cal_type, owner)}:
        raise RestError(400, "", "Invalid section ID or access denied")
    event = CalendarEvent(
        id=ctx.state.events.next_id(),
        cal_type=cal_type,
        owner_id=owner,
        section_id=section or default.id,
        name=name,
        description=description,
        date_from=start,
        date_to=max(end, start),
        skip_time=skip_time,
        created_by=ctx.user_id,
        date_create=now,
        timestamp_x=now,
        location=location,
        color=color,
        is_meeting=bool(attendees),
        attendees=sorted({ctx.user_id, *(attendees or [])}),
    )
    ctx.state.add_event(event)
    ctx.portal.emit("ONCALENDARENTRYADD", {"id": str(event.id)})
    return event


def update_event(ctx: CallContext, event_id: int, changes: dict[str, Any]) -> CalendarEvent:
    """Change an event (API or admin), bump ``TIMESTAMP_X``/``VERSION``, fire ONCALENDARENTRYUPDATE."""
    event = ctx.state.events.get(event_id)
    if event is None:
        raise RestError(400, "", "Event not found")
    for key in ("name", "description", "location", "color", "date_from", "date_to", "skip_time"):
        if key in changes and changes[key] is not None:
            setattr(event, key, changes[key])
    event.timestamp_x = float(int(ctx.portal.clock.now()))
    event.version += 1
    ctx.portal.emit("ONCALENDARENTRYUPDATE", {"id": str(event.id)})
    return event


def delete_event(ctx: CallContext, event_id: int) -> None:
    if ctx.state.events.get(event_id) is None:
        raise RestError(400, "", "Event not found")
    ctx.state.remove_event(event_id)
    ctx.portal.emit("ONCALENDARENTRYDELETE", {"id": str(event_id)})


@router.method("calendar.event.add", "calendar")
def event_add(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    method = "calendar.event.add"
    cal_type = _type(params, method)
    if cal_type not in TYPES:
        raise RestError(400, "", "Access denied")
    if params.get("ownerId") in (None, "") and cal_type != "company_calendar":
        raise _required(method, "ownerId")
    owner = _owner(params, method, ctx, cal_type)
    name = params.get("name")
    if name in (None, ""):
        raise _required(method, "name")
    start, end, skip_time = _times(params, method, ctx, required=True)
    assert start is not None and end is not None
    # AMBIGUOUS in the docs: without `section` (or with auto_detect_section=Y) we use the owner's
    # default section rather than failing, which is what the docs describe.
    section = intval(params["section"]) if params.get("section") not in (None, "") else None
    attendees = (
        [intval(a) for a in php_values(params.get("attendees"))]
        if str(params.get("is_meeting", "N")).upper() == "Y"
        else None
    )
    event = create_event(
        ctx,
        cal_type=cal_type,
        owner=owner,
        name=str(name),
        start=start,
        end=end,
        skip_time=skip_time,
        section=section,
        description=str(params.get("description", "")),
        location=str(params.get("location", "")),
        attendees=attendees,
        color=str(params.get("color", "")),
    )
    return MethodResult(event.id)


@router.method("calendar.event.update", "calendar")
def event_update(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    method = "calendar.event.update"
    if params.get("id") in (None, ""):
        raise _required(method, "id")
    start, end, skip_time = _times(params, method, ctx, required=False)
    changes: dict[str, Any] = {
        "name": params.get("name"),
        "description": params.get("description"),
        "location": params.get("location"),
        "color": params.get("color"),
        "date_from": start,
        "date_to": end,
    }
    if "skip_time" in params:
        changes["skip_time"] = skip_time
    event = update_event(ctx, intval(params["id"]), changes)
    return MethodResult(event.id)


@router.method("calendar.event.delete", "calendar")
def event_delete(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    if params.get("id") in (None, ""):
        raise _required("calendar.event.delete", "id")
    delete_event(ctx, intval(params["id"]))
    return MethodResult(True)


@router.method("calendar.section.get", "calendar")
def section_get(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    method = "calendar.section.get"
    cal_type = _type(params, method)
    owner = _owner(params, method, ctx, cal_type)
    now = ctx.portal.clock.now()
    if cal_type in TYPES and (cal_type != "user" or ctx.state.users.get(owner) is not None):
        sections = ctx.state.sections_of(cal_type, owner) or [
            ctx.state.section_for(cal_type, owner, created=now)
        ]
    else:
        sections = []
    tz = ctx.portal.tz
    perm = {
        "view_time": True,
        "view_title": True,
        "view_full": True,
        "add": True,
        "edit": True,
        "edit_section": True,
        "access": True,
    }
    return MethodResult(
        [
            {
                "ID": str(s.id),
                "NAME": s.name,
                "DESCRIPTION": "",
                "COLOR": s.color,
                "TEXT_COLOR": "",
                "EXPORT": {"ALLOW": True, "LINK": ""},
                "CAL_TYPE": s.cal_type,
                "OWNER_ID": str(s.owner_id),
                "CREATED_BY": str(s.owner_id or 1),
                "DATE_CREATE": plain_datetime(s.created, tz),
                "TIMESTAMP_X": plain_datetime(s.created, tz),
                "EXTERNAL_TYPE": "local",
                "ACCESS": [],
                "IS_COLLAB": False,
                "PERM": perm,
            }
            for s in sections
        ]
    )
