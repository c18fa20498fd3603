"""Admin surface, OAuth mode and fault injection."""

from __future__ import annotations

import httpx
import pytest

from .rest import error, post, result


def test_admin_changes_are_visible_through_the_api_and_reset_restores(sandbox_factory):
    portal = sandbox_factory(users=10, tasks=10, events=3)
    portal.admin.deactivate_user(4)
    assert result(post(portal, "user.get", {"FILTER": {"ID": 4}}))[0]["ACTIVE"] is False
    added = portal.admin.add_user(NAME="John", LAST_NAME="Smith", EMAIL="john@example.com")
    assert result(post(portal, "user.get", {"FILTER": {"EMAIL": "john@example.com"}}))[0]["ID"] == added["ID"]
    portal.admin.update_task(3, TITLE="Edited", STATUS=5)
    assert result(post(portal, "tasks.task.get", {"taskId": 3}))["task"]["title"] == "Edited"
    portal.admin.delete_task(4)
    new_event = portal.admin.add_event(
        type="company_calendar",
        name="All hands",
        **{"from": "2030-01-01T10:00:00+03:00", "to": "2030-01-01T11:00:00+03:00"},
    )
    assert new_event["CAL_TYPE"] == "company_calendar"
    counters = portal.admin.counters()
    assert counters["requests"] == 3 and counters["calls"]["user.get"] == 2
    portal.admin.reset()
    assert len(portal.state.users) == 10 and portal.state.tasks.get(4) is not None
    assert portal.state.tasks.get(3).title != "Edited" and portal.admin.counters()["requests"] == 0


def test_admin_rejects_bad_input_with_a_sentence(sandbox):
    response = httpx.post(sandbox.base_url + "/_sandbox/webhooks", json={"scopes": "task"})
    assert response.status_code == 400 and "scopes must be a list" in response.json()["error_description"]


def test_oauth_access_expiry_and_refresh(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=5, events=0, freeze_clock=True)
    app = portal.admin.create_oauth_app(scopes=["user", "task"], expires_in=3600)
    rest = portal.base_url + "/rest/"
    assert httpx.post(rest + "user.current", json={"auth": app["access_token"]}).json()["result"]["ID"] == "1"
    assert httpx.get(rest + "user.current.json", params={"auth": app["access_token"]}).status_code == 200
    assert error(
        httpx.post(rest + "calendar.event.get", json={"auth": app["access_token"], "type": "user"})
    ) == (
        403,
        "insufficient_scope",
        "The request requires higher privileges than provided by the access token",
    )
    assert error(httpx.post(rest + "user.current", json={"auth": "nope"})) == (
        401,
        "invalid_token",
        "Unable to get application by token",
    )
    portal.admin.advance(3600)
    assert error(httpx.post(rest + "user.current", json={"auth": app["access_token"]})) == (
        401,
        "expired_token",
        "The access token provided has expired.",
    )
    refresh = {
        "grant_type": "refresh_token",
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "refresh_token": app["refresh_token"],
    }
    fresh = httpx.get(portal.base_url + "/oauth/token/", params=refresh).json()
    assert fresh["access_token"] != app["access_token"] and fresh["expires_in"] == 3600
    assert fresh["client_endpoint"] == rest and fresh["member_id"] == portal.portal.member_id
    assert httpx.post(rest + "user.current", json={"auth": fresh["access_token"]}).status_code == 200
    reused = httpx.post(portal.base_url + "/oauth/token/", data=refresh)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"  # refresh tokens rotate
    wrong = httpx.get(portal.base_url + "/oauth/token/", params={**refresh, "client_secret": "x"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    portal.admin.expire_tokens()
    assert (
        error(httpx.post(rest + "user.current", json={"auth": fresh["access_token"]}))[1] == "expired_token"
    )


@pytest.mark.parametrize("kind", ["500", "502", "503", "truncate", "drop"])
def test_fault_injection_kinds(sandbox_factory, kind):
    portal = sandbox_factory(users=5, tasks=5, events=0)
    portal.admin.set_faults(rate=1.0, kinds=[kind], count=1, methods=["server.time"])
    url = portal.webhook_url + "server.time"
    if kind == "drop":
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(url)
    else:
        response = httpx.get(url)
        if kind == "500":
            assert error(response) == (500, "INTERNAL_SERVER_ERROR", "Internal server error")
        elif kind == "truncate":
            assert response.status_code == 200
            with pytest.raises(ValueError):
                response.json()
        else:
            assert response.status_code == int(kind) and "nginx" in response.text
    assert httpx.get(url).status_code == 200  # count=1: the next request is healthy
    assert httpx.get(portal.webhook_url + "profile").status_code == 200
    assert portal.admin.counters()["faults"] == {kind: 1}


def test_slow_fault_costs_modelled_time(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=5, events=0, time_scale=1e-4)
    portal.admin.set_faults(rate=1.0, kinds=["slow"], slow_seconds=20, count=1)
    body = post(portal, "server.time").json()
    assert body["time"]["duration"] >= 20


def test_fault_rate_is_a_share_and_deterministic(sandbox_factory):
    portal = sandbox_factory(users=5, tasks=5, events=0)
    portal.admin.set_faults(rate=0.3, kinds=["500"], seed=5)
    first = [post(portal, "server.time").status_code for _ in range(100)]
    portal.admin.set_faults(rate=0.3, kinds=["500"], seed=5)
    assert [post(portal, "server.time").status_code for _ in range(100)] == first
    assert 15 <= first.count(500) <= 45
    portal.admin.clear_faults()
    assert post(portal, "server.time").status_code == 200
