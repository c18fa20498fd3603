"""``tasks.task.*`` (docs/bitrix24-rest-api.md §6.4-6.6): camelCase shapes, filters, order, keyset paging,
writes."""

from __future__ import annotations

from datetime import datetime

import pytest

from .rest import error, post, result


def _ids(body):
    return [int(t["id"]) for t in body["tasks"]]


def test_default_order_is_id_desc_and_pages_count(sandbox):
    body = post(sandbox, "tasks.task.list", {"select": ["ID"]}).json()
    top = max(sandbox.state.tasks.ids)
    assert _ids(body["result"])[0] == top and body["total"] == 320 and body["next"] == 50


def test_always_present_keys_and_camel_case(sandbox):
    task = result(post(sandbox, "tasks.task.list", {"select": ["TITLE"], "order": {"ID": "asc"}}))["tasks"][0]
    assert set(task) == {"id", "title", "status", "subStatus", "group"}
    task = result(
        post(
            sandbox,
            "tasks.task.list",
            {"select": ["RESPONSIBLE_ID", "CREATED_BY", "DEADLINE", "CHANGED_DATE"], "order": {"ID": "asc"}},
        )
    )
    first = task["tasks"][0]
    assert first["responsible"]["link"] == f"/company/personal/user/{first['responsibleId']}/"
    assert first["creator"]["id"] == first["createdBy"]
    assert datetime.fromisoformat(first["changedDate"]).utcoffset().total_seconds() == 3 * 3600
    assert first["deadline"] is None or first["deadline"].endswith("+03:00")


def test_statuses_are_realistic(sandbox):
    statuses = {t.status for t in sandbox.state.tasks.rows.values()}
    assert statuses <= {2, 3, 4, 5, 6} and {2, 3, 5} <= statuses
    done = result(post(sandbox, "tasks.task.list", {"filter": {"REAL_STATUS": 5}, "select": ["CLOSED_DATE"]}))
    assert all(t["status"] == "5" and t["closedDate"] for t in done["tasks"])


def test_filters_and_prefixes(sandbox):
    tasks = sandbox.state.tasks.rows.values()
    rid = sandbox.state.tasks.get(1).responsible_id
    body = post(sandbox, "tasks.task.list", {"filter": {"RESPONSIBLE_ID": rid}, "select": ["ID"]}).json()
    assert body["total"] == sum(1 for t in tasks if t.responsible_id == rid)
    body = post(sandbox, "tasks.task.list", {"filter": {"!REAL_STATUS": 5}, "select": ["ID"]}).json()
    assert body["total"] == sum(1 for t in tasks if t.status != 5)
    cutoff = sorted(t.changed_date for t in tasks)[200]
    since = datetime.fromtimestamp(cutoff).astimezone().isoformat()
    body = post(sandbox, "tasks.task.list", {"filter": {">=CHANGED_DATE": since}, "select": ["ID"]}).json()
    assert body["total"] == sum(1 for t in tasks if t.changed_date >= cutoff) == 120
    body = post(sandbox, "tasks.task.list", {"filter": {"TITLE": "%отчёт%"}, "select": ["ID"]}).json()
    assert body["total"] == sum(1 for t in tasks if "отчёт" in t.title)
    body = post(sandbox, "tasks.task.list", {"filter": {"responsibleId": rid}, "select": ["ID"]}).json()
    assert body["total"] == sum(1 for t in tasks if t.responsible_id == rid)  # camelCase keys accepted


def test_order_by_other_fields(sandbox):
    body = result(
        post(sandbox, "tasks.task.list", {"order": {"CREATED_DATE": "desc"}, "select": ["CREATED_DATE"]})
    )
    dates = [t["createdDate"] for t in body["tasks"]]
    assert dates == sorted(dates, reverse=True)


def test_invalid_sort_key_is_an_error(sandbox):
    response = post(sandbox, "tasks.task.list", {"order": {"NOPE": "asc"}})
    assert error(response) == (400, "0", "Invalid sorting key (internal error)")


def test_keyset_enumeration_returns_every_task_once(sandbox):
    seen, last = [], 0
    while True:
        body = post(
            sandbox,
            "tasks.task.list",
            {"order": {"ID": "asc"}, "filter": {">ID": last}, "select": ["ID"], "start": -1},
        ).json()
        assert "next" not in body and "total" not in body
        page = _ids(body["result"])
        seen += page
        if len(page) < 50:
            break
        last = page[-1]
    assert seen == sandbox.state.tasks.ids and len(seen) == sandbox.state.seeded_counts["tasks"]


def test_offset_paging_with_next_covers_everything(sandbox):
    seen, start = [], 0
    while start is not None:
        body = post(
            sandbox, "tasks.task.list", {"order": {"ID": "asc"}, "select": ["ID"], "start": start}
        ).json()
        seen += _ids(body["result"])
        start = body.get("next")
    assert seen == sandbox.state.tasks.ids


def test_task_get(sandbox):
    task = result(post(sandbox, "tasks.task.get", {"taskId": 1}))["task"]
    assert task["id"] == "1" and "action" in task and task["favorite"] == "N"
    assert set(result(post(sandbox, "tasks.task.get", {"taskId": 1, "select": ["TITLE"]}))["task"]) >= {
        "title"
    }
    assert result(post(sandbox, "tasks.task.get", {"taskId": 10**6})) == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, (400, "100", "Could not find value for parameter {taskId} (internal error)")),
        ({"taskId": "abc"}, (400, "0", "wrong task id")),
    ],
)
def test_task_get_errors(sandbox, params, expected):
    assert error(post(sandbox, "tasks.task.get", params)) == expected


def test_missing_task_error_variant(sandbox_factory):
    portal = sandbox_factory(missing_task="error", users=5, tasks=5, events=0)
    assert error(post(portal, "tasks.task.get", {"taskId": 999}))[:2] == (400, "ERROR_CORE")


def test_task_writes_change_data_and_bump_change_dates(sandbox_factory):
    portal = sandbox_factory(users=10, tasks=20, events=0)
    created = result(
        post(
            portal,
            "tasks.task.add",
            {
                "fields": {
                    "TITLE": "Новая задача",
                    "RESPONSIBLE_ID": 3,
                    "DEADLINE": "2030-01-02T10:00:00+03:00",
                }
            },
        )
    )
    task = created["task"]
    assert task["title"] == "Новая задача" and task["status"] == "2" and task["createdBy"] == "1"
    assert task["deadline"] == "2030-01-02T10:00:00+03:00" and int(task["id"]) > max(
        portal.state.tasks.ids[:-1]
    )
    old = portal.state.tasks.get(5).changed_date
    updated = result(
        post(portal, "tasks.task.update", {"taskId": 5, "fields": {"STATUS": 5, "TITLE": "Done"}})
    )
    assert updated["task"]["status"] == "5" and updated["task"]["closedDate"]
    assert portal.state.tasks.get(5).changed_date > old
    assert result(post(portal, "tasks.task.delete", {"taskId": 5})) == {"task": True}
    assert result(post(portal, "tasks.task.get", {"taskId": 5})) == []
    assert post(portal, "tasks.task.list", {"select": ["ID"]}).json()["total"] == 20


@pytest.mark.parametrize(
    ("fields", "description"),
    [
        ({"RESPONSIBLE_ID": 1}, "Task title is not specified<br>"),
        ({"TITLE": "x"}, "Responsible person not specified"),
        ({"TITLE": "x", "RESPONSIBLE_ID": 9999}, 'User specified in the "Responsible" field not found'),
        ({"TITLE": "x", "RESPONSIBLE_ID": 1, "STATUS": 42}, "Incorrect status"),
    ],
)
def test_task_add_validation(sandbox, fields, description):
    assert error(post(sandbox, "tasks.task.add", {"fields": fields})) == (400, "ERROR_CORE", description)


def test_task_add_without_fields(sandbox):
    assert error(post(sandbox, "tasks.task.add", {})) == (
        400,
        "100",
        "Could not find value for parameter {fields} (internal error)",
    )
