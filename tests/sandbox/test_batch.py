"""``batch`` (docs/bitrix24-rest-api.md §3): references, partial paths, halt, overflow, PHP array shapes."""

from __future__ import annotations

from .rest import form, post, result


def test_references_whole_value_embedded_and_partial_paths(sandbox):
    body = result(
        post(
            sandbox,
            "batch",
            {
                "halt": 0,
                "cmd": {
                    "me": "user.current",
                    "dept": "department.get?ID=$result[me][UF_DEPARTMENT][0]",
                    "users": "user.get?FILTER[UF_DEPARTMENT]=$result[me][UF_DEPARTMENT]",  # whole: array
                    "partial": "user.get?FILTER[ID]=$result[me][NO_SUCH][DEEPER]",  # stops at $result[me]
                    "embedded": "user.get?FILTER[EMAIL]=x$result[me][ID]y",  # scalar inside text
                    "tasks": "tasks.task.list?order[ID]=ASC&filter[>ID]=0&select[]=ID&start=-1",
                    "total": "tasks.task.get?taskId=$total[users]",
                },
            },
        )
    )
    assert body["result"]["dept"][0]["ID"] == "1"
    assert "1" in [u["ID"] for u in body["result"]["users"]]
    assert body["result_total"]["users"] == len(body["result"]["users"])
    assert body["result"]["embedded"] == []  # "x1y" matched no e-mail: embedded scalar substituted
    assert len(body["result"]["tasks"]["tasks"]) == 50 and "tasks" not in body["result_total"]
    assert body["result_error"] == []
    assert set(body["result_time"]["me"]) >= {"start", "finish", "duration", "processing"}


def test_errors_are_per_command_and_halt_stops(sandbox):
    cmd = {"a": "user.current", "b": "no.such.method", "c": "server.time"}
    body = result(post(sandbox, "batch", {"halt": 0, "cmd": cmd}))
    assert set(body["result"]) == {"a", "c"}
    assert body["result_error"] == {
        "b": {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
    }
    halted = result(post(sandbox, "batch", {"halt": 1, "cmd": cmd}))
    assert set(halted["result"]) == {"a"} and set(halted["result_error"]) == {"b"}


def test_51_commands_overflow_per_key_with_http_200(sandbox):
    cmd = {f"c{i:02d}": "server.time" for i in range(51)}
    response = post(sandbox, "batch", {"cmd": cmd})
    assert response.status_code == 200
    body = response.json()["result"]
    assert len(body["result"]) == 50
    assert body["result_error"] == {
        "c50": {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"}
    }


def test_numeric_keys_serialize_as_php_lists(sandbox):
    body = result(post(sandbox, "batch", {"cmd": ["server.time", "profile"]}))
    assert isinstance(body["result"], list) and len(body["result"]) == 2
    body = result(post(sandbox, "batch", {"cmd": ["server.time", "nope.nope", "profile"]}))
    assert set(body["result"]) == {"0", "2"} and set(body["result_error"]) == {"1"}
    body = result(post(sandbox, "batch", {"cmd": ["nope.a", "nope.b"]}))
    assert body["result"] == [] and isinstance(body["result_error"], list) and len(body["result_error"]) == 2


def test_nested_batch_is_not_allowed_and_scope_errors_have_empty_description(sandbox):
    hook = sandbox.admin.create_webhook(["task"])
    body = result(
        post(hook["webhook_url"], "batch", {"cmd": {"b": "batch?cmd[x]=server.time", "u": "user.get"}})
    )
    assert body["result_error"]["b"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    assert body["result_error"]["u"] == {"error": "insufficient_scope", "error_description": ""}


def test_next_and_total_are_distributed(sandbox):
    body = result(post(sandbox, "batch", {"cmd": {"p1": "user.get?start=0", "p2": "user.get?start=50"}}))
    assert body["result_next"] == {"p1": 50} and body["result_total"] == {"p1": 60, "p2": 60}


def test_form_encoded_batch_with_double_encoding(sandbox):
    body = result(form(sandbox, "batch", {"cmd": {"x": "user.get?FILTER[EMAIL]=a%26b", "t": "server.time"}}))
    assert body["result"]["x"] == [] and "t" in body["result"]


def test_case_insensitive_parameter_names_and_methods(sandbox):
    body = result(post(sandbox, "batch", {"CMD": {"a": "USER.CURRENT"}, "HALT": "0"}))
    assert body["result"]["a"]["ID"] == "1"


def test_non_string_commands_are_skipped(sandbox):
    body = result(post(sandbox, "batch", {"cmd": {"a": "server.time", "b": {"x": 1}}}))
    assert set(body["result"]) == {"a"} and body["result_error"] == []


def test_unresolved_keyset_reference_after_a_short_page_never_crashes(sandbox):
    """``$result[p0][tasks][49][id]`` after a page of <50 rows substitutes an array into ``>ID``.

    Follows CTasks::FilterCreate: the whole page (arrays of rows) matches nothing; an empty page
    (``[]``) builds no condition, so only the other conditions apply.
    """
    ids = sandbox.state.tasks.ids
    last = ids[-3]  # p0 returns 2 rows
    page = "tasks.task.list?order[ID]=asc&select[]=ID&start=-1&filter[>ID]="
    body = result(
        post(
            sandbox,
            "batch",
            {
                "halt": 0,
                "cmd": {
                    "p0": page + str(last),
                    "p1": page + "$result[p0][tasks][49][id]",  # -> the 2 rows: nothing matches
                    "p2": page + "$result[p1][tasks][49][id]",  # -> [] : the condition is dropped
                    "p3": page + "$result[p1][tasks][49][id]&filter%5B%3C%3DID%5D=5",
                },
            },
        )
    )
    assert body["result_error"] == []
    assert [int(t["id"]) for t in body["result"]["p0"]["tasks"]] == ids[-2:]
    assert body["result"]["p1"]["tasks"] == []
    assert [int(t["id"]) for t in body["result"]["p2"]["tasks"]] == ids[:50]
    assert [int(t["id"]) for t in body["result"]["p3"]["tasks"]] == [i for i in ids if i <= 5]


def test_array_in_an_ordered_comparison_ors_its_values(sandbox):
    ids = sandbox.state.tasks.ids
    body = result(
        post(
            sandbox,
            "tasks.task.list",
            {"order": {"ID": "asc"}, "filter": {">ID": [ids[-2], ids[-4]]}, "select": ["ID"], "start": -1},
        )
    )
    assert [int(t["id"]) for t in body["tasks"]] == ids[-3:]  # ID > a OR ID > b
    counters = sandbox.admin.counters()
    assert "INTERNAL_SERVER_ERROR" not in counters["errors"]
