"""The fault kinds that spoil an answer (``query_limit``, ``garbled``, ``empty``, ``missing_key``) and
the admin overrides that make stored records render malformed values, over plain HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from .rest import error, post, result

BATCH = {
    "cmd": {
        "me": "user.current",
        "tasks": "tasks.task.list?order[ID]=asc&filter[>ID]=0&select[0]=ID&start=0",
        "bad": "no.such.method",
    }
}


def test_query_limit_fault_is_the_limiters_answer(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=5, events=0)
    portal.admin.set_faults(rate=1.0, kinds=["query_limit"], count=1)
    assert error(post(portal, "server.time")) == (503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
    assert post(portal, "server.time").status_code == 200
    assert portal.admin.counters()["faults"] == {"query_limit": 1}


def test_garbled_fault_is_a_200_that_is_not_json_and_the_call_ran(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=5, events=0)
    portal.admin.set_faults(rate=1.0, kinds=["garbled"], count=1, methods=["tasks.task.add"])
    response = post(portal, "tasks.task.add", {"fields": {"TITLE": "kept", "RESPONSIBLE_ID": 1}})
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.content)
    assert any(t.title == "kept" for t in portal.state.tasks.rows.values())  # spoiled after it ran


def test_empty_fault_is_a_well_formed_empty_envelope_for_calls_and_batches(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=5, events=0)
    portal.admin.set_faults(rate=1.0, kinds=["empty"], count=2)
    body = post(portal, "user.get").json()
    assert body["result"] == [] and set(body) == {"result", "time"} and body["time"]["finish"]
    batch = post(portal, "batch", BATCH).json()
    assert batch["result"] == [] and "time" in batch
    assert len(result(post(portal, "user.get"))) == 5  # count=2: healthy again


def test_missing_key_fault_removes_one_command_from_every_map(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=5, events=0)
    healthy = result(post(portal, "batch", BATCH))
    assert set(healthy["result"]) | set(healthy["result_error"]) == {"me", "tasks", "bad"}
    portal.admin.set_faults(rate=1.0, kinds=["missing_key"], seed=4)
    seen: set[str] = set()
    for _ in range(12):
        body = result(post(portal, "batch", BATCH))
        present = set(body["result"] or {}) | set(body["result_error"] or {})
        (gone,) = {"me", "tasks", "bad"} - present
        for name in ("result", "result_error", "result_total", "result_next", "result_time"):
            assert gone not in (body[name] or {})
        seen.add(gone)
    assert seen == {"me", "tasks", "bad"}  # the removed key is drawn, not always the same one
    assert post(portal, "server.time").status_code == 200  # other methods never draw missing_key
    assert portal.admin.counters()["faults"] == {"missing_key": 12}


def test_missing_key_fault_keeps_php_list_shapes(sandbox_factory):
    """Numeric keys 0..n-1 serialise as a list; with one taken out PHP sends an object with gaps."""
    portal = sandbox_factory(users=5, tasks=5, events=0)
    portal.admin.set_faults(rate=1.0, kinds=["missing_key"], count=1, seed=1)
    body = result(post(portal, "batch", {"cmd": ["server.time", "server.time", "server.time"]}))
    assert isinstance(body["result"], dict) and len(body["result"]) == 2
    assert all(k in ("0", "1", "2") for k in body["result"])


def test_unknown_fault_kind_is_refused(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=5, events=0)
    with pytest.raises(RuntimeError, match="unknown fault kind"):
        portal.admin.set_faults(rate=0.5, kinds=["teapot"])


def test_overrides_render_malformed_values_and_reset_clears_them(sandbox_factory):
    portal = sandbox_factory(users=8, tasks=8, events=4)
    portal.admin.override("tasks", 3, {"status": "abc", "id": {"x": 1}, "notAField": 1})
    portal.admin.override("users", 2, {"ACTIVE": "maybe"}, remove=["ID"])
    event_id = portal.state.events.ids[0]
    portal.admin.override("events", event_id, {"ID": "²"})
    listed_tasks = post(portal, "tasks.task.list", {"order": {"ID": "asc"}, "select": ["ID", "TITLE"]})
    tasks = result(listed_tasks)["tasks"]
    third = tasks[2]
    assert third["id"] == {"x": 1} and third["status"] == "abc" and "notAField" not in third
    assert result(post(portal, "tasks.task.get", {"taskId": 3}))["task"]["id"] == {"x": 1}
    filtered = result(post(portal, "tasks.task.list", {"filter": {">ID": 2, "<=ID": 3}}))["tasks"]
    assert [t["id"] for t in filtered] == [{"x": 1}]  # filters still see the stored ID
    users = result(post(portal, "user.get", {"sort": "ID", "order": "ASC"}))
    assert "ID" not in users[1] and users[1]["ACTIVE"] == "maybe" and users[0]["ID"] == "1"
    event = portal.state.events.get(event_id)
    events = result(post(portal, "calendar.event.get", {"type": event.cal_type, "ownerId": event.owner_id}))
    assert "²" in {e["ID"] for e in events}
    listed = httpx.get(portal.base_url + "/_sandbox/overrides").json()
    assert {(o["entity"], o["id"]) for o in listed} == {("tasks", 3), ("users", 2), ("events", event_id)}
    portal.admin.reset()
    assert result(post(portal, "tasks.task.get", {"taskId": 3}))["task"]["id"] == "3"
    portal.admin.override("tasks", 3, {"id": None})
    assert portal.admin.clear_overrides() == {"cleared": 1}
    assert result(post(portal, "tasks.task.get", {"taskId": 3}))["task"]["id"] == "3"


def test_overrides_refuse_unknown_entities_and_records(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=5, events=0)
    with pytest.raises(RuntimeError, match="entity must be one of"):
        portal.admin.override("deals", 1, {"ID": "x"})
    with pytest.raises(RuntimeError, match="404"):
        portal.admin.override("tasks", 999, {"id": "x"})


def test_override_breaks_a_batch_reference_as_on_a_real_portal(sandbox_factory):
    """``$result[p0][tasks][1][id]`` reads the rendered ``id``: an object there spoils the next page."""
    portal = sandbox_factory(users=5, tasks=6, events=0)
    portal.admin.override("tasks", 2, {"id": {"x": 1}})
    page = "tasks.task.list?order[ID]=asc&select[0]=ID&start=-1&filter[>ID]={after}&filter[<=ID]={hi}"
    cmd = {"p0": page.format(after=0, hi=2), "p1": page.format(after="$result[p0][tasks][1][id]", hi=6)}
    body = result(post(portal, "batch", {"cmd": cmd}))
    assert [t["id"] for t in body["result"]["p1"]["tasks"]] != ["3", "4", "5", "6"]
