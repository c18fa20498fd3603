"""``sonet_group.get`` (scope ``sonet_group``): workgroups for discovering group calendars."""

from __future__ import annotations

from .rest import error, post


def _ids(rows):
    return [int(r["ID"]) for r in rows]


def test_fields_and_visibility(sandbox):
    groups = sandbox.state.groups
    visible = sorted(g for g in groups if groups[g].visible)
    body = post(sandbox, "sonet_group.get", {"ORDER": {"ID": "ASC"}}).json()
    assert _ids(body["result"]) == visible and body["total"] == len(visible)
    first = body["result"][0]
    expected = {"ID", "NAME", "ACTIVE", "VISIBLE", "OPENED", "CLOSED", "OWNER_ID", "DATE_CREATE", "PROJECT"}
    assert set(first) >= expected | {"NUMBER_OF_MEMBERS", "SITE_ID", "DESCRIPTION"}
    assert first["ACTIVE"] == "Y" and first["ID"] == "1" and first["DATE_CREATE"][10] == "T"
    admin = post(sandbox, "sonet_group.get", {"ORDER": {"ID": "ASC"}, "IS_ADMIN": "Y"}).json()
    assert _ids(admin["result"]) == sorted(groups) != visible  # the admin sees invisible groups too


def test_filter_order_and_paging(sandbox_factory):
    portal = sandbox_factory(users=6000, tasks=10, events=10)  # 40 groups
    groups = portal.state.groups
    body = post(portal, "sonet_group.get", {"FILTER": {"OPENED": "N"}, "IS_ADMIN": "Y"}).json()
    assert _ids(body["result"]) == sorted(g for g in groups if not groups[g].opened)
    params = {"FILTER": {">ID": 30}, "ORDER": {"ID": "DESC"}, "IS_ADMIN": "Y"}
    body = post(portal, "sonet_group.get", params).json()
    assert _ids(body["result"]) == list(range(40, 30, -1))
    name = groups[3].name
    body = post(portal, "sonet_group.get", {"FILTER": {"%NAME": name[:4]}, "IS_ADMIN": "Y"}).json()
    assert 3 in _ids(body["result"])
    body = post(portal, "sonet_group.get", {"IS_ADMIN": "Y", "start": 30}).json()
    assert _ids(body["result"]) == list(range(31, 41)) and body["total"] == 40 and "next" not in body


def test_needs_the_sonet_group_scope(sandbox):
    hook = sandbox.admin.create_webhook(["calendar"])["webhook_url"]
    assert error(post(hook, "sonet_group.get"))[1] == "insufficient_scope"
    assert "sonet_group" in post(sandbox, "scope").json()["result"]
