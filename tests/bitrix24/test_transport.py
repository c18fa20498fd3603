"""Send-path behaviour with ``httpx.MockTransport`` (no server needed for these protocol details)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bitrix24_assets.bitrix24 import Bitrix24Client, errors
from bitrix24_assets.bitrix24.limits import LeakyBucket, OperatingBudget

TOKEN = "s3cr3tw3bh00k"
URL = f"https://acme.bitrix24.ru/rest/1/{TOKEN}/"
TIME = {"start": 1000.0, "finish": 1000.1, "duration": 0.1, "processing": 0.05}


def client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> Bitrix24Client:
    return Bitrix24Client(webhook_url=URL, transport=httpx.MockTransport(handler), time_scale=0.0001, **kw)


def ok(result: Any, **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"result": result, "time": TIME, **extra})


def test_posts_json_and_reads_envelope() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok([{"ID": "1"}], total=1)

    assert client(handler).call("user.get", {"filter": {">ID": 0}}) == [{"ID": "1"}]
    assert seen[0].method == "POST" and seen[0].url.path == f"/rest/1/{TOKEN}/user.get"
    assert json.loads(seen[0].content) == {"filter": {">ID": 0}}


def test_answers_orjson_refuses_are_still_read() -> None:
    """Answers are parsed with orjson; what it refuses (an integer beyond 64 bits, a byte-order
    mark) goes through the standard library instead of failing as "not a JSON envelope"."""
    huge = 2**70
    bodies = iter(
        [
            b'{"result": %d, "time": {"start": 1, "finish": 2}}' % huge,
            b'\xef\xbb\xbf{"result": "bom", "time": {"start": 1, "finish": 2}}',
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=next(bodies), headers={"content-type": "application/json"})

    c = client(handler)
    assert c.call("server.time") == huge
    assert c.call("server.time") == "bom"


def test_rejects_a_url_that_is_not_a_webhook() -> None:
    with pytest.raises(errors.ClientConfigError, match="Inbound webhook"):
        Bitrix24Client(webhook_url="https://acme.bitrix24.ru/rest/")


def test_query_limit_is_retried_even_for_writes() -> None:
    answers = iter(
        [
            httpx.Response(503, json={"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many"}),
            httpx.Response(429, json={"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many"}),
            ok({"task": {"id": "5"}}),
        ]
    )
    c = client(lambda r: next(answers))
    assert c.create_task({"TITLE": "t", "RESPONSIBLE_ID": 1}) == {"id": "5"}
    assert c.stats.retries == 2 and c.stats.rate_limited == 2


def test_server_error_retried_for_reads_not_for_writes() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(500, json={"error": "INTERNAL_SERVER_ERROR", "error_description": "x"})
        return ok({"task": {"id": "1"}} if "add" in request.url.path else [])

    assert client(handler).call("user.get") == []
    assert calls["n"] == 2
    calls["n"] = 0
    with pytest.raises(errors.ServerError):
        client(handler).create_task({"TITLE": "t", "RESPONSIBLE_ID": 1})
    assert calls["n"] == 1  # a write that may have run is not repeated


def test_dropped_connection_retried_for_reads() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] < 3:
            raise httpx.RemoteProtocolError("peer closed", request=request)
        return ok(["ok"])

    assert client(handler).call("profile") == ["ok"]


def test_operation_time_limit_waits_for_reset_then_succeeds() -> None:
    answers = iter(
        [
            ok([], time={**TIME, "operating": 470.0, "operating_reset_at": 1030.1}),
            httpx.Response(429, json={"error": "OPERATION_TIME_LIMIT", "error_description": "blocked"}),
            ok([1], time={**TIME, "finish": 1031.0, "operating": 10.0}),
        ]
    )
    c = client(lambda r: next(answers))
    c.call("user.get")
    assert c.call("user.get") == [1]
    assert c.stats.operation_limited == 1 and c._t.clock.slept >= 29  # waited ~30 s, by the portal's clock


class FakeClock:
    """Modelled time that only moves when someone sleeps (deterministic limit tests)."""

    time_scale = 1.0

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_budget_slows_down_before_the_block() -> None:
    clock = FakeClock()
    budget = OperatingBudget(clock, limit=100)  # type: ignore[arg-type]
    budget.observe("tasks.task.list", 60.0, 1030.0, 1000.0)
    budget.observe("tasks.task.list", 70.0, 1030.0, 1000.0)  # 10 s per call
    assert budget.acquire(["tasks.task.list"]) == 0  # 70 + 10 < 90
    budget.release(["tasks.task.list"])
    budget.observe("tasks.task.list", 85.0, 1030.0, 1001.0)  # reset in 29 s on the portal's clock
    waited = budget.acquire(["tasks.task.list"])
    assert waited == pytest.approx(29.0)  # waited for the reset instead of sending into the block


def test_leaky_bucket_paces_at_the_drain_rate() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(capacity=5, drain_per_second=2.0, clock=clock)  # type: ignore[arg-type]
    waits = [bucket.acquire() for _ in range(9)]
    assert waits[:5] == [0, 0, 0, 0, 0] and all(w > 0 for w in waits[5:])
    assert clock.t == pytest.approx(2.0)  # 4 extra requests at 2/s


def test_unmetered_portal_is_not_paced_until_it_says_otherwise() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(capacity=5, drain_per_second=2.0, clock=clock)  # type: ignore[arg-type]
    bucket.observe(metered=False)  # an answer without time.operating
    assert [bucket.acquire() for _ in range(20)] == [0.0] * 20 and clock.t == 0
    bucket.observe(metered=True)  # operating appeared: paced from now on, from a full bucket
    bucket.observe(metered=False)  # and a later answer without it does not switch pacing off again
    assert bucket.acquire() > 0


def test_query_limit_switches_pacing_on_for_an_unmetered_portal() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(capacity=5, drain_per_second=2.0, clock=clock)  # type: ignore[arg-type]
    bucket.observe(metered=False)
    bucket.fill()
    assert bucket.metered is True and bucket.acquire() > 0


@pytest.mark.parametrize(
    ("plan", "time", "paced"),
    [
        ("auto", TIME, False),  # no operating in the answers: a self-hosted-like portal
        ("auto", {**TIME, "operating": 0.05}, True),  # the cloud's load limiter is on
        ("cloud", TIME, True),
        ("self-hosted", {**TIME, "operating": 0.05}, True),  # the answers prove it is metered
    ],
)
def test_plan_and_answers_decide_pacing(plan: str, time: dict[str, float], paced: bool) -> None:
    c = Bitrix24Client(
        webhook_url=f"https://{plan}-{len(time)}.example.test/rest/1/{TOKEN}/",  # own shared bucket
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"result": [], "time": time})),
        time_scale=0.0001,
        plan=plan,
        rate_limit=(3, 0.01),  # slow drain: pacing shows as waits even at this time scale
    )
    for _ in range(10):
        c.call("profile")
    assert (c.stats.bucket_wait > 0) is paced


def test_batch_shapes_and_sub_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ok(
            {
                "result": {"a": {"ID": "1"}},
                "result_error": {"b": {"error": "insufficient_scope", "error_description": ""}},
                "result_total": [],
                "result_next": [],
                "result_time": [],
            }
        )

    c = client(handler)
    with pytest.raises(errors.BatchCommandError) as info:
        c.batch({"a": "user.current", "b": "tasks.task.list"})
    assert isinstance(info.value.error, errors.ScopeError) and info.value.key == "b"
    assert info.value.is_configuration_error
    res = c.batch({"a": "user.current", "b": "tasks.task.list"}, raise_errors=False)
    assert res["a"] == {"ID": "1"}
    with pytest.raises(errors.BatchCommandError):
        res["b"]


def test_batch_numeric_keys_come_back_as_a_list() -> None:
    c = client(lambda r: ok({"result": [{"ID": "1"}, {"ID": "2"}], "result_error": [], "result_time": []}))
    res = c.batch({"0": "user.current", "1": "user.current"})
    assert res["1"] == {"ID": "2"}


def test_more_than_50_batch_commands_is_refused() -> None:
    with pytest.raises(errors.ClientConfigError, match="at most 50"):
        client(lambda r: ok({})).batch({f"k{i}": "profile" for i in range(51)})


def test_token_never_in_logs_repr_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    c = client(
        lambda r: httpx.Response(
            401, json={"error": "NO_AUTH_FOUND", "error_description": f"bad token {TOKEN}"}
        )
    )
    with pytest.raises(errors.AuthError) as info:
        c.call("user.get")
    import traceback

    texts = [
        repr(c),
        str(c.stats.as_dict()),
        caplog.text,
        str(info.value),
        repr(info.value),
        "".join(traceback.format_exception(info.value)),
    ]
    assert all(TOKEN not in t for t in texts)
    assert "/rest/1/***/" in caplog.text or "***" in str(info.value)


def _batch_answer(request: httpx.Request, drop: str | None) -> httpx.Response:
    cmd = json.loads(request.content)["cmd"]
    return ok({"result": {k: {"ID": k} for k in cmd if k != drop}, "result_error": [], "result_time": []})


def test_batch_without_a_commands_key_is_retried_then_incomplete() -> None:
    """A command in neither ``result`` nor ``result_error`` is a broken answer, never an empty one."""
    answers = iter(["b", "b", None])
    c = client(lambda r: _batch_answer(r, next(answers)))
    assert c.batch({"a": "user.current", "b": "profile"})["b"] == {"ID": "b"}
    assert c.stats.retries == 2 and c.stats.broken_answers == 2
    c = client(lambda r: _batch_answer(r, "b"), max_attempts=3)
    with pytest.raises(errors.IncompleteReadError, match="neither a result nor an error for 1 of its 2"):
        c.batch({"a": "user.current", "b": "profile"})
    assert c.stats.requests == 3


def test_write_batch_without_a_key_is_not_sent_again() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return _batch_answer(request, "b")

    with pytest.raises(errors.IncompleteReadError):
        client(handler).batch({"a": "tasks.task.add?fields[TITLE]=x", "b": "tasks.task.add?fields[TITLE]=y"})
    assert calls["n"] == 1  # a write that may have run is never repeated


def test_halted_batch_may_stop_after_the_failed_command() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ok(
            {
                "result": {"a": 1},
                "result_error": {"b": {"error": "ERROR_CORE", "error_description": "no"}},
                "result_time": [],
            }
        )

    commands = {"a": "profile", "b": "profile", "c": "profile"}
    res = client(handler).batch(commands, halt=True, raise_errors=False)
    assert res["a"] == 1 and "c" not in res
