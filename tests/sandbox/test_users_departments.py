"""``user.get`` / ``user.current`` / ``department.get`` (docs/bitrix24-rest-api.md §6.1-6.3, §2
pagination)."""

from __future__ import annotations

import pytest

from .rest import post, result


def _ids(rows):
    return [int(r["ID"]) for r in rows]


def test_counted_pages_have_total_and_next_until_the_last(sandbox):
    first = post(sandbox, "user.get").json()
    assert first["total"] == 60 and first["next"] == 50 and _ids(first["result"]) == list(range(1, 51))
    last = post(sandbox, "user.get", {"start": 50}).json()
    assert _ids(last["result"]) == list(range(51, 61)) and "next" not in last and last["total"] == 60


def test_start_is_an_exact_orm_offset(sandbox):
    assert _ids(result(post(sandbox, "user.get", {"start": 7})))[0] == 8


def test_start_minus_one_has_no_count_and_no_next(sandbox):
    body = post(
        sandbox, "user.get", {"FILTER": {">ID": 40}, "SORT": "ID", "ORDER": "ASC", "start": -1}
    ).json()
    assert _ids(body["result"]) == list(range(41, 61)) and "next" not in body and "total" not in body


def test_start_minus_one_total_zero_variant(sandbox_factory):
    portal = sandbox_factory(keyset_total="zero", users=5, tasks=5, events=0)
    body = post(portal, "user.get", {"start": -1}).json()
    assert body["total"] == 0 and "next" not in body
    assert post(portal, "tasks.task.list", {"start": -1}).json()["total"] == 0


def test_empty_result_has_no_total(sandbox):
    body = post(sandbox, "user.get", {"FILTER": {"ID": 999}}).json()
    assert body["result"] == [] and "total" not in body and "next" not in body


@pytest.mark.parametrize(
    ("value", "active"),
    [
        (True, True),
        ("Y", True),
        (1, True),
        ("false", True),
        ("N", False),
        (0, False),
        (False, False),
        ("", False),
    ],
)
def test_active_filter_uses_php_truthiness(sandbox, value, active):
    rows = result(post(sandbox, "user.get", {"FILTER": {"ACTIVE": value}}))
    assert rows and all(r["ACTIVE"] is active for r in rows)


def test_top_level_keys_are_the_filter_when_no_filter_given(sandbox):
    user = sandbox.state.users.get(5)
    rows = result(post(sandbox, "user.get", {"EMAIL": user.email})) if user.email else []
    assert not user.email or _ids(rows) == [5]
    dept = sandbox.state.users.get(1).departments[0]
    assert 1 in _ids(result(post(sandbox, "user.get", {"UF_DEPARTMENT": dept})))


def test_prefix_operators(sandbox):
    users = sandbox.state.users.rows.values()
    assert _ids(result(post(sandbox, "user.get", {"filter": {">=ID": 58}}))) == [58, 59, 60]
    assert _ids(result(post(sandbox, "user.get", {"filter": {"<ID": 3}}))) == [1, 2]
    assert _ids(result(post(sandbox, "user.get", {"filter": {"@ID": [4, 9]}}))) == [4, 9]
    assert 4 not in _ids(result(post(sandbox, "user.get", {"filter": {"!ID": 4}})))
    needle = sandbox.state.users.get(3).last_name[1:4]
    found = _ids(result(post(sandbox, "user.get", {"filter": {"%LAST_NAME": needle}})))
    assert found == sorted(u.id for u in users if needle.casefold() in u.last_name.casefold())
    extranet = _ids(result(post(sandbox, "user.get", {"filter": {"USER_TYPE": "extranet"}})))
    assert extranet == sorted(u.id for u in users if u.user_type == "extranet")


def test_date_filter_and_unparseable_date_matches_nothing(sandbox):
    rows = result(post(sandbox, "user.get", {"filter": {">=DATE_REGISTER": "2000-01-01T00:00:00+03:00"}}))
    assert len(rows) == 50
    assert result(post(sandbox, "user.get", {"filter": {">DATE_REGISTER": "not a date"}})) == []


def test_sort_and_order_apply_only_together(sandbox):
    desc = _ids(result(post(sandbox, "user.get", {"SORT": "ID", "ORDER": "DESC"})))
    assert desc[:3] == [60, 59, 58]
    assert _ids(result(post(sandbox, "user.get", {"SORT": "ID"})))[:3] == [1, 2, 3]
    names = [r["LAST_NAME"] for r in result(post(sandbox, "user.get", {"SORT": "LAST_NAME", "ORDER": "ASC"}))]
    assert names == sorted(names, key=lambda n: n)  # stable text order


def test_select_limits_fields(sandbox):
    rows = result(post(sandbox, "user.get", {"SELECT": ["ID", "EMAIL", "NO_SUCH"], "FILTER": {"ID": 2}}))
    assert set(rows[0]) == {"ID", "EMAIL"}


def test_user_field_formats(sandbox):
    extranet = next(u for u in sandbox.state.users.rows.values() if u.user_type == "extranet")
    row = result(post(sandbox, "user.get", {"FILTER": {"ID": extranet.id}}))[0]
    assert "UF_DEPARTMENT" not in row and row["USER_TYPE"] == "extranet"
    row = result(post(sandbox, "user.get", {"FILTER": {"ID": 1}}))[0]
    assert row["DATE_REGISTER"].endswith("T03:00:00+03:00") and row["IS_ONLINE"] in ("Y", "N")
    assert row["TIMESTAMP_X"] == {}


def test_user_current_is_the_webhook_owner(sandbox):
    me = result(post(sandbox, "user.current"))
    assert me["ID"] == "1" and me["ACTIVE"] is True and isinstance(me["LAST_ACTIVITY_DATE"], str)


def test_department_get_tree_order_total_and_page_rounding(sandbox):
    body = post(sandbox, "department.get").json()
    depts = body["result"]
    assert body["total"] == len(sandbox.state.departments) and "next" not in body
    assert depts[0] == {"ID": "1", "NAME": "Компания", "SORT": 500, "UF_HEAD": "1"}
    assert all("PARENT" in d for d in depts[1:])
    assert post(sandbox, "department.get", {"START": 7}).json()["result"] == depts  # rounded to page 1


def test_department_filter_is_exact_and_ignores_prefixes(sandbox):
    assert [d["ID"] for d in result(post(sandbox, "department.get", {"ID": 2}))] == ["2"]
    assert [d["ID"] for d in result(post(sandbox, "department.get", {"FILTER": {"PARENT": 1}}))]
    everything = result(post(sandbox, "department.get"))
    assert result(post(sandbox, "department.get", {"FILTER": {">ID": 2}})) == everything
    assert post(sandbox, "department.get", {"ID": 999}).json()["total"] == 0
