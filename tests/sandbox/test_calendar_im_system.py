"""Calendar (§6.7-6.9), notifications (§6.10) and system methods (§6.11)."""

from __future__ import annotations

from datetime import datetime, timedelta

from .rest import error, post, result


def _window(portal, days_before=40, days_after=70):
    anchor = datetime.fromisoformat(portal.admin.info()["anchor_date"])
    return (anchor - timedelta(days=days_before)).date().isoformat(), (
        anchor + timedelta(days=days_after)
    ).date().isoformat()


def test_event_get_returns_the_whole_window_without_pagination(sandbox):
    start, end = _window(sandbox)
    body = post(
        sandbox, "calendar.event.get", {"type": "company_calendar", "ownerId": 0, "from": start, "to": end}
    ).json()
    expected = [e for e in sandbox.state.events.rows.values() if e.cal_type == "company_calendar"]
    assert len(body["result"]) == len(expected) > 0 and "next" not in body and "total" not in body


def test_event_fields_use_site_format_and_ts_utc(sandbox):
    owner = next(e.owner_id for e in sandbox.state.events.rows.values() if e.cal_type == "user")
    start, end = _window(sandbox)
    events = result(
        post(sandbox, "calendar.event.get", {"type": "user", "ownerId": owner, "from": start, "to": end})
    )
    event = events[0]
    stored = sandbox.state.events.get(int(event["ID"]))
    assert event["DATE_FROM_TS_UTC"] == str(int(stored.date_from)) and event["CAL_TYPE"] == "user"
    local = datetime.fromtimestamp(stored.date_from).astimezone(sandbox.portal.tz)
    expected = local.strftime("%d.%m.%Y") if stored.skip_time else local.strftime("%d.%m.%Y %H:%M:%S")
    assert event["DATE_FROM"] == expected and event["OWNER_ID"] == str(owner)
    assert event["DT_SKIP_TIME"] in ("Y", "N") and isinstance(event["DT_LENGTH"], int)


def test_event_window_filters_and_groups(sandbox):
    assert (
        result(
            post(
                sandbox,
                "calendar.event.get",
                {"type": "company_calendar", "from": "2001-01-01", "to": "2001-02-01"},
            )
        )
        == []
    )
    group = next((e for e in sandbox.state.events.rows.values() if e.cal_type == "group"), None)
    if group is not None:
        start, end = _window(sandbox)
        found = result(
            post(
                sandbox,
                "calendar.event.get",
                {"type": "group", "ownerId": group.owner_id, "from": start, "to": end},
            )
        )
        assert str(group.id) in {e["ID"] for e in found}


def test_event_get_requires_type_with_an_empty_error_code(sandbox):
    assert error(post(sandbox, "calendar.event.get", {})) == (
        400,
        "",
        'The required parameter "type" for the method "calendar.event.get" is not set',
    )


def test_event_add_update_delete(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=0, events=0, calendar_date_format="en")
    params = {
        "type": "user",
        "ownerId": 2,
        "name": "Demo",
        "from": "2030-03-04T17:59:00+03:00",
        "to": "2030-03-04T18:59:00+03:00",
        "description": "d",
    }
    event_id = result(post(portal, "calendar.event.add", params))
    assert isinstance(event_id, int)
    found = result(
        post(
            portal,
            "calendar.event.get",
            {"type": "user", "ownerId": 2, "from": "2030-03-01", "to": "2030-03-05"},
        )
    )
    assert [e["ID"] for e in found] == [str(event_id)] and found[0]["DATE_FROM"] == "03/04/2030 05:59:00 pm"
    assert (
        result(
            post(
                portal,
                "calendar.event.update",
                {"id": event_id, "type": "user", "ownerId": 2, "name": "Renamed"},
            )
        )
        == event_id
    )
    assert result(post(portal, "calendar.event.getbyid", {"id": event_id}))["NAME"] == "Renamed"
    assert result(post(portal, "calendar.event.delete", {"id": event_id})) is True
    assert result(post(portal, "calendar.event.getbyid", {"id": event_id})) is None


def test_event_add_missing_name(sandbox):
    response = post(
        sandbox,
        "calendar.event.add",
        {"type": "user", "ownerId": 1, "from": "2030-01-01", "to": "2030-01-01"},
    )
    assert error(response) == (
        400,
        "",
        'The required parameter "name" for the method "calendar.event.add" is not set',
    )


def test_section_get(sandbox):
    sections = result(post(sandbox, "calendar.section.get", {"type": "company_calendar", "ownerId": 0}))
    assert sections[0]["CAL_TYPE"] == "company_calendar" and sections[0]["PERM"]["view_full"] is True
    assert len(sections[0]["DATE_CREATE"]) == 19
    mine = result(post(sandbox, "calendar.section.get", {"type": "user"}))
    assert mine[0]["OWNER_ID"] == "1"


def test_notifications(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=0, events=0)
    first = result(post(portal, "im.notify.system.add", {"USER_ID": 2, "MESSAGE": " Hello "}))
    second = result(post(portal, "im.notify.personal.add", {"user_id": 3, "message": "Hi"}))
    third = result(post(portal, "im.notify", {"to": 3, "USER_ID": 3, "MESSAGE": "x", "TYPE": "SYSTEM"}))
    assert isinstance(first, int) and second == first + 1 and third == second + 1
    sent = portal.admin.notifications()
    assert [(n["kind"], n["user_id"], n["message"]) for n in sent] == [
        ("system", 2, "Hello"),
        ("personal", 3, "Hi"),
        ("system", 3, "x"),
    ]
    assert error(post(portal, "im.notify.system.add", {"MESSAGE": "x"})) == (
        400,
        "USER_ID_EMPTY",
        "User ID can't be empty",
    )
    assert error(post(portal, "im.notify", {"USER_ID": 2})) == (
        400,
        "MESSAGE_EMPTY",
        "Message can't be empty",
    )


def test_system_methods(sandbox):
    me = result(post(sandbox, "profile"))
    assert me["ID"] == "1" and me["ADMIN"] is True
    assert datetime.fromisoformat(result(post(sandbox, "server.time"))).utcoffset() == timedelta(hours=3)
    assert result(post(sandbox, "method.get", {"name": "tasks.task.list"})) == {
        "isExisting": True,
        "isAvailable": True,
    }
    assert "batch" in result(post(sandbox, "methods"))
