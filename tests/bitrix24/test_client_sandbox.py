"""The client against the sandbox portal over real HTTP on 127.0.0.1.

Exact counts are compared with ``portal.state`` (the sandbox's in-memory store) so a lost or
duplicated record fails the test.
"""

from __future__ import annotations

import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bitrix24_assets.bitrix24 import (
    Bitrix24Client,
    OAuthCredentials,
    Progress,
    errors,
)
from bitrix24_assets.sandbox import Limits
from bitrix24_assets.sync import Rejection, to_employee, to_event, to_task
from bitrix24_assets.sync.values import bitrix_id

SCALE = 0.001


def make(portal: Any, **kw: Any) -> Bitrix24Client:
    return Bitrix24Client(webhook_url=kw.pop("url", portal.webhook_url), time_scale=SCALE, **kw)


def visible_users(portal: Any) -> int:
    return len(portal.state.users)


def test_every_read_method_returns_exact_data(sandbox: Any) -> None:
    with make(sandbox) as client:
        users = list(client.get_users())
        assert len(users) == len({u["ID"] for u in users}) == visible_users(sandbox)
        assert all(
            not isinstance(to_employee(u), Rejection) or u.get("USER_TYPE") != "employee" for u in users
        )
        tasks = list(client.get_tasks(select=["ID", "TITLE", "CHANGED_DATE"]))
        assert sorted(int(t["id"]) for t in tasks) == sandbox.state.tasks.ids
        assert all(getattr(to_task(t), "changed_at_source", None) for t in tasks)
        departments = client.get_departments()
        assert sorted(int(d["ID"]) for d in departments) == sorted(sandbox.state.departments)
        assert all(bitrix_id(d["ID"]) for d in departments)
        email = users[0]["EMAIL"]
        assert client.get_user_by_email(email)["ID"] == users[0]["ID"]
        assert client.get_user_by_email("nobody@nowhere.invalid") is None
        profile = client.call("profile")
        assert profile["ID"] == "1"


def test_events_cover_all_calendars_once(sandbox: Any) -> None:
    """Group calendars are discovered with ``sonet_group.get`` (invisible groups included)."""
    with make(sandbox) as client:
        now = datetime.now(UTC)
        events = list(client.get_events(now - timedelta(days=400), now + timedelta(days=400)))
    ids = [e["ID"] for e in events]
    assert len(ids) == len(set(ids))
    types = {e["CAL_TYPE"] for e in events}
    assert {"user", "company_calendar", "group"} <= types
    group_events = {e.id for e in sandbox.state.events.rows.values() if e.cal_type == "group"}
    assert {int(e["ID"]) for e in events if e["CAL_TYPE"] == "group"} == group_events
    assert any(not g.visible for g in sandbox.state.groups.values())
    parsed = [to_event(e) for e in events]
    assert all(not isinstance(p, Rejection) and p.starts_at is not None for p in parsed)
    keys = {str(e.get("PARENT_ID") or e["ID"]) for e in events}
    assert len(keys) == len(events)  # one copy per meeting


def test_events_of_explicit_groups_only(sandbox: Any) -> None:
    group = next(e.owner_id for e in sandbox.state.events.rows.values() if e.cal_type == "group")
    with make(sandbox) as client:
        now = datetime.now(UTC)
        window = (now - timedelta(days=400), now + timedelta(days=400))
        events = list(client.get_events(*window, group_ids=[group]))
    assert {e["OWNER_ID"] for e in events if e["CAL_TYPE"] == "group"} == {str(group)}


def test_unmetered_portal_calendar_read_is_not_paced(sandbox_factory: Any) -> None:
    """The instant profile has no bucket and no ``time.operating`` (like a self-hosted portal):
    pacing its 60+ batches at the cloud's 2 requests/s made a 10k-user read take 77 s."""
    portal = sandbox_factory(users=2600, tasks=10, events=200)
    with make(portal) as client:
        events = list(client.get_events(datetime.now(UTC) - timedelta(days=30), datetime.now(UTC)))
        assert client.stats.requests > 55  # more than the cloud bucket would let through at once
        assert client.stats.bucket_wait == 0
    assert events


def test_writes(sandbox_factory: Any) -> None:
    portal = sandbox_factory()
    with make(portal) as client:
        task = client.create_task({"TITLE": "From the client", "RESPONSIBLE_ID": 1})
        assert portal.state.tasks.get(int(task["id"])) is not None
        event_id = client.create_event(
            {
                "type": "user",
                "ownerId": 1,
                "name": "Sync",
                "from": "2025-01-15T10:00:00+03:00",
                "to": "2025-01-15T11:00:00+03:00",
            }
        )
        assert portal.state.events.get(event_id) is not None
        assert client.notify(1, "hello") > 0
        with pytest.raises(errors.ClientConfigError):
            client.create_task({"TITLE": "no responsible"})
        with pytest.raises(errors.BadRequestError):
            client.call("tasks.task.add", {"fields": {"TITLE": "", "RESPONSIBLE_ID": 1}})


def test_lanes_with_gaps_and_changes_during_enumeration(sandbox_factory: Any) -> None:
    portal = sandbox_factory(tasks=6000, users=20)
    ids_now = list(portal.state.tasks.ids)
    for task_id in ids_now[100:1400] + ids_now[3000:3100:3]:  # a big gap and scattered gaps in IDs
        portal.admin.delete_task(task_id)
    seen_pages: list[Progress] = []
    added: list[int] = []

    def progress(p: Progress) -> None:
        seen_pages.append(Progress(p.method, p.pages, p.records, p.estimated_total))
        if len(seen_pages) == 1:  # after the probe, before the lanes: a new task must still be read
            added.append(int(portal.admin.add_task(title="late", responsible_id=1)["id"]))
        if len(seen_pages) == 3:  # rows change while lanes are running
            portal.admin.update_task(portal.state.tasks.ids[-10], title="edited mid-pull")
            portal.admin.delete_task(portal.state.tasks.ids[50])

    with make(portal, max_lanes=6) as client:
        tasks = list(client.get_tasks(select=["ID", "TITLE"], progress=progress))
    ids = [int(t["id"]) for t in tasks]
    assert len(ids) == len(set(ids))  # nothing duplicated
    expected = set(portal.state.tasks.ids)
    assert expected <= set(ids) and len(set(ids) - expected) <= 1  # nothing lost; at most the deleted one
    assert added and added[0] in ids
    assert seen_pages[-1].records == len(ids) and seen_pages[0].estimated_total


def test_incremental_reads_with_cursor(sandbox_factory: Any) -> None:
    portal = sandbox_factory(tasks=200)
    with make(portal) as client:
        started = client.call("server.time")
        seen = [
            datetime.fromisoformat(t["changedDate"]) for t in client.get_tasks(select=["ID", "CHANGED_DATE"])
        ]
        since = max(seen)  # the cursor: the largest changedDate read (sync/cursors.py), never "now"
        assert started
        target = portal.state.tasks.ids[3]
        portal.admin.advance(120)  # two modelled minutes later
        portal.admin.update_task(target, title="changed later")
        changed = list(client.get_tasks(select=["ID", "TITLE"], changed_since=since))
        ids = {int(t["id"]) for t in changed}
        assert target in ids and len(ids) < 200
        with pytest.raises(errors.ClientConfigError, match="time zone"):
            list(client.get_tasks(changed_since=datetime(2025, 1, 1)))


def test_retries_on_injected_faults_lose_nothing(sandbox_factory: Any) -> None:
    portal = sandbox_factory(tasks=3000, users=20)
    portal.admin.set_faults(rate=0.3, kinds=["500", "502", "503", "drop", "truncate"], seed=3)
    with make(portal) as client:
        ids = [int(t["id"]) for t in client.get_tasks(select=["ID"])]
        assert client.stats.retries > 0
    portal.admin.clear_faults()
    assert sorted(ids) == portal.state.tasks.ids


def test_cloud_profile_big_pull_never_trips_the_block(sandbox_factory: Any) -> None:
    # A 20 s budget (instead of 480 s) so a 6000-task pull (~8.5 s of server time per pass) needs pacing.
    limits = Limits(bucket_size=50, drain_per_second=2.0, operating_limit=20.0)
    portal = sandbox_factory(profile="cloud", tasks=6000, users=20, limits=limits)
    with make(portal, operating_limit=20.0) as client:
        for _ in range(3):
            assert len(list(client.get_tasks(select=["ID"]))) == 6000
        assert client.stats.operation_limited == 0 and client.stats.rate_limited == 0
    counters = portal.admin.counters()
    tripped = {k: v for k, v in {**counters["errors"], **counters["rejections"]}.items() if "LIMIT" in k}
    assert not tripped


def test_recovers_from_an_operating_block(sandbox_factory: Any) -> None:
    # 2 s, not more: at this time scale a 10-minute budget window is 0.6 s of wall time, so on a busy
    # machine a read slower than that never met a 5 s block (the first lane batches alone cost ~8 s).
    limits = Limits(bucket_size=50, drain_per_second=2.0, operating_limit=2.0)
    portal = sandbox_factory(profile="cloud", tasks=6000, users=20, limits=limits)
    with make(portal) as client:  # believes the budget is 480 s, so it runs into the real 2 s block
        ids = [int(t["id"]) for t in client.get_tasks(select=["ID"])]
        assert client.stats.operation_limited > 0 or client.stats.budget_wait > 0
    assert sorted(ids) == portal.state.tasks.ids


def test_auth_and_scope_errors(sandbox_factory: Any) -> None:
    portal = sandbox_factory()
    bad = portal.webhook_url.replace("/rest/1/", "/rest/1/x")
    with make(portal, url=bad) as client, pytest.raises(errors.AuthError) as info:
        client.call("profile")
    assert info.value.is_configuration_error and "revoked or mistyped" in str(info.value)
    limited = portal.admin.create_webhook(["user"])["webhook_url"]
    with make(portal, url=limited) as client:
        with pytest.raises(errors.ScopeError, match="scope 'task'"):
            list(client.get_tasks())
        with pytest.raises(errors.MethodNotFoundError):
            client.call("no.such.method")
        with pytest.raises(errors.BatchCommandError) as binfo:
            client.batch({"me": "profile", "t": "tasks.task.list"})
        assert isinstance(binfo.value.error, errors.ScopeError)
    token = bad.rstrip("/").rsplit("/", 1)[1]
    assert token not in "".join(traceback.format_exception(info.value)) + repr(info.value)


def test_oauth_refreshes_expired_token_and_persists(sandbox_factory: Any) -> None:
    portal = sandbox_factory()
    app = portal.admin.create_oauth_app()
    stored: list[dict[str, Any]] = []
    creds = OAuthCredentials(
        client_id=app["client_id"],
        client_secret=app["client_secret"],
        access_token=app["access_token"],
        refresh_token=app["refresh_token"],
        client_endpoint=f"{portal.base_url}/rest/",
        token_url=app["token_url"],
    )
    with Bitrix24Client(oauth=creds, on_token_refresh=stored.append, time_scale=SCALE) as client:
        assert client.call("profile")["ID"]
        portal.admin.expire_tokens()
        assert len(list(client.get_users())) == visible_users(portal)
        assert len(stored) == 1 and stored[0]["access_token"] != app["access_token"]
        assert app["access_token"] not in repr(client) + repr(creds)
    bad = creds.model_copy(
        update={
            "refresh_token": creds.refresh_token.__class__("nope"),
            "access_token": creds.access_token.__class__("expired"),
        }
    )
    with Bitrix24Client(oauth=bad, time_scale=SCALE) as client, pytest.raises(errors.AuthError):
        client.call("profile")
