"""Transport conformance (docs/bitrix24-rest-api.md §1, §5, §9 items 1-4): URL forms, encodings, envelope,
errors."""

from __future__ import annotations

import httpx
import pytest

from .rest import error, form, get, post, result


def test_envelope_has_time_block_and_json_content_type(sandbox):
    response = post(sandbox, "server.time")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"result", "time"}
    t = body["time"]
    assert {"start", "finish", "duration", "processing", "date_start", "date_finish"} <= set(t)
    assert t["finish"] >= t["start"] and t["duration"] == pytest.approx(t["finish"] - t["start"], abs=1e-5)
    assert len(t["date_start"]) == 25 and t["date_start"][19] in "+-"  # PHP date('c'), no fractions
    assert "operating" not in t  # the instant profile has no load limiter


@pytest.mark.parametrize("suffix", ["user.get", "user.get.json", "USER.GET", "User.Get.json"])
def test_method_names_are_case_insensitive_and_json_suffix_optional(sandbox, suffix):
    assert len(result(post(sandbox, suffix))) == 50


def test_get_query_with_php_brackets(sandbox):
    rows = result(get(sandbox, "user.get", "filter%5B%3EID%5D=10&sort=ID&order=ASC"))
    assert rows[0]["ID"] == "11"
    rows = result(get(sandbox, "tasks.task.list", "filter[>ID]=5&order[ID]=asc&select[]=ID&select[]=TITLE"))
    assert rows["tasks"][0]["id"] == "6" and set(rows["tasks"][0]) >= {"id", "title", "status"}


def test_form_post_with_nested_brackets(sandbox):
    rows = result(
        form(sandbox, "tasks.task.list", {"filter": {"<=ID": 3}, "order": {"ID": "asc"}, "select": ["ID"]})
    )
    assert [t["id"] for t in rows["tasks"]] == ["1", "2", "3"]


def test_body_params_override_query_params(sandbox):
    url = sandbox.webhook_url + "user.get?FILTER[ID]=2"
    response = httpx.post(url, json={"FILTER": {"ID": 3}})
    assert [u["ID"] for u in result(response)] == ["3"]


def test_garbage_json_is_treated_as_empty_params(sandbox):
    response = httpx.post(
        sandbox.webhook_url + "user.get", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert len(result(response)) == 50  # no filter: a normal first page, no error


def test_non_json_media_type_body_is_parse_str(sandbox):
    response = httpx.post(
        sandbox.webhook_url + "user.get", content=b"FILTER[ID]=4", headers={"Content-Type": "text/plain"}
    )
    assert [u["ID"] for u in result(response)] == ["4"]


def test_unknown_params_are_ignored(sandbox):
    assert (
        len(result(post(sandbox, "user.get", {"NO_SUCH_PARAM": 1, "filter": {"NO_SUCH_FIELD": "x"}}))) == 50
    )


def test_php_json_quirks_string_ids_and_empty_maps(sandbox):
    task = result(post(sandbox, "tasks.task.list", {"filter": {"GROUP_ID": 0}, "select": ["ID"]}))["tasks"][0]
    assert isinstance(task["id"], str) and task["group"] == []
    user = result(post(sandbox, "user.get", {"FILTER": {"ID": 1}}))[0]
    assert user["ID"] == "1" and user["ACTIVE"] is True and user["UF_DEPARTMENT"] == [1]


@pytest.mark.parametrize(
    ("path", "status", "code", "description"),
    [
        ("/rest/1/wrongtoken/user.get", 401, "NO_AUTH_FOUND", "Wrong authorization data"),
        ("/rest/999/{token}/user.get", 401, "NO_AUTH_FOUND", "Wrong authorization data"),
        ("/rest/1/{token}/no.such.method", 404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
        ("/rest/{token}/user.get", 404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
        ("/rest/user.get", 401, "NO_AUTH_FOUND", "Wrong authorization data"),
    ],
)
def test_error_statuses_and_bodies(sandbox, path, status, code, description):
    token = sandbox.portal.admin_webhook.token
    response = httpx.get(sandbox.base_url + path.format(token=token))
    assert error(response) == (status, code, description)


def test_invalid_credentials_variant_is_configurable(sandbox_factory):
    portal = sandbox_factory(bad_token_error="INVALID_CREDENTIALS", users=5, tasks=5, events=5)
    response = httpx.get(portal.base_url + "/rest/1/nope/user.get")
    assert error(response) == (401, "INVALID_CREDENTIALS", "Invalid request credentials")


def test_missing_scope_is_403_and_scopes_are_per_webhook(sandbox):
    hook = sandbox.admin.create_webhook(["task"])
    assert error(post(hook["webhook_url"], "user.get")) == (
        403,
        "insufficient_scope",
        "The request requires higher privileges than provided by the webhook token",
    )
    assert result(post(hook["webhook_url"], "tasks.task.list", {"select": ["ID"]}))["tasks"]
    assert result(post(hook["webhook_url"], "scope")) == ["task"]
    assert set(result(post(sandbox, "scope"))) >= {"user", "task", "calendar", "im", "department"}


def test_user_brief_scope_hides_contact_fields(sandbox):
    hook = sandbox.admin.create_webhook(["user_brief"])
    user = result(post(hook["webhook_url"], "user.get", {"FILTER": {"ID": 1}}))[0]
    assert "EMAIL" not in user and "PERSONAL_MOBILE" not in user and user["NAME"]


def test_errors_never_leak_stack_traces(sandbox):
    for response in (
        httpx.post(sandbox.webhook_url + "tasks.task.list", json={"order": {"NOPE": "asc"}}),
        httpx.post(sandbox.webhook_url + "tasks.task.get", json={"taskId": {"a": 1}}),
        httpx.post(sandbox.webhook_url + "batch", content=b"\xff\xfe garbage"),
    ):
        assert "Traceback" not in response.text and 'File "' not in response.text
        assert response.headers["content-type"].startswith("application/json")
