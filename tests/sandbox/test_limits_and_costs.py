"""Limits and costs (docs/bitrix24-rest-api.md §4, §3.4): leaky bucket, operating budget, cost model,
worker pool.

The modelled clock is frozen in these tests and moved with the admin API, so nothing sleeps.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bitrix24_assets.sandbox import CostModel, Limits, lower_bound_seconds

from .rest import error, post, result

ZERO = CostModel.zero(workers=4)


def test_leaky_bucket_cloud_50_then_drains_2_per_second(sandbox_factory):
    portal = sandbox_factory(profile="cloud", costs=ZERO, freeze_clock=True, users=5, tasks=5, events=0)
    for _ in range(49):
        assert post(portal, "server.time").status_code == 200
    assert post(portal, "batch", {"cmd": {f"c{i}": "server.time" for i in range(10)}}).status_code == 200
    assert error(post(portal, "server.time")) == (503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
    portal.admin.advance(1.0)  # drains 2
    assert post(portal, "server.time").status_code == 200
    assert post(portal, "server.time").status_code == 200
    assert post(portal, "server.time").status_code == 503
    assert portal.admin.counters()["rejections"]["QUERY_LIMIT_EXCEEDED"] == 2


def test_enterprise_bucket_is_250(sandbox_factory):
    portal = sandbox_factory(profile="enterprise", costs=ZERO, freeze_clock=True, users=5, tasks=5, events=0)
    statuses = [post(portal, "server.time").status_code for _ in range(251)]
    assert statuses[:250] == [200] * 250 and statuses[250] == 503


def test_instant_profile_has_no_rate_limit(sandbox_factory):
    portal = sandbox_factory(freeze_clock=True, users=5, tasks=5, events=0)
    assert all(post(portal, "server.time").status_code == 200 for _ in range(60))


@pytest.fixture
def heavy(sandbox_factory):
    """Cloud limits, every call costs 100 modelled s (1 ms wall), frozen clock, no rate limit."""
    return lambda **kw: sandbox_factory(
        profile="cloud",
        costs=ZERO.with_(base=100.0),
        time_scale=1e-5,
        freeze_clock=True,
        limits=Limits(bucket_size=None, operating_limit=480.0),
        users=5,
        tasks=5,
        events=0,
        **kw,
    )


def test_operating_budget_blocks_after_crossing_and_resets(heavy):
    portal = heavy()
    now = portal.portal.clock.now()
    reported = []
    for _ in range(5):
        body = post(portal, "server.time").json()
        reported.append(body["time"]["operating"])
    assert reported == [100, 200, 300, 400, 500]  # the 5th call crossed 480 and still finished
    assert (
        body["time"]["operating_reset_at"] == int(now + 600)
        or body["time"]["operating_reset_at"] == int(now + 600) + 1
    )
    assert error(post(portal, "server.time")) == (
        429,
        "OPERATION_TIME_LIMIT",
        "Method is blocked due to operation time limit.",
    )
    assert post(portal, "profile").status_code == 200  # other methods keep working
    other = portal.admin.create_webhook(["user"])
    assert post(other["webhook_url"], "server.time").status_code == 200  # budget is per webhook
    portal.admin.advance(600)
    assert post(portal, "server.time").json()["time"]["operating"] == 100


def test_batch_billing_docs_charges_each_sub_method(heavy):
    portal = heavy()
    body = result(post(portal, "batch", {"cmd": {f"c{i}": "server.time" for i in range(6)}}))
    assert body["result_error"]["c5"]["error"] == "OPERATION_TIME_LIMIT"  # checked before each command
    assert body["result_time"]["c4"]["operating"] == 500
    assert post(portal, "server.time").status_code == 429
    assert portal.admin.counters()["operating"]["server.time"] == 500


def test_batch_billing_batch_charges_method_batch(heavy):
    portal = heavy(batch_billing="batch")
    body = result(post(portal, "batch", {"cmd": {f"c{i}": "server.time" for i in range(6)}}))
    assert body["result_error"] == [] and body["result_time"]["c0"]["operating"] == 600
    assert post(portal, "server.time").json()["time"]["operating"] == 100  # sub-method untouched
    assert post(portal, "batch", {"cmd": {"a": "server.time"}}).status_code == 429


def test_operating_floor_skips_cheap_calls(sandbox_factory):
    portal = sandbox_factory(
        profile="cloud",
        costs=ZERO.with_(base=0.05),
        freeze_clock=True,
        time_scale=1e-4,
        limits=Limits(bucket_size=None, operating_floor=0.1),
        users=5,
        tasks=5,
        events=0,
    )
    body = post(portal, "server.time").json()
    assert body["time"]["operating"] == 0 and "operating_reset_at" not in body["time"]


def test_reported_processing_is_the_modelled_cost(sandbox_factory):
    costs = CostModel()
    portal = sandbox_factory(
        profile="cloud", time_scale=1e-4, freeze_clock=True, users=5, tasks=300, events=0
    )
    counted = post(portal, "tasks.task.list", {"select": ["ID"], "start": 100}).json()["time"]
    assert counted["processing"] == pytest.approx(
        costs.list_page_cost("tasks.task.list", matching_rows=300, offset=100), abs=1e-6
    )
    keyset = post(
        portal,
        "tasks.task.list",
        {"order": {"ID": "asc"}, "filter": {">ID": 10}, "select": ["ID"], "start": -1},
    ).json()["time"]
    assert keyset["processing"] == pytest.approx(
        costs.list_page_cost("tasks.task.list", matching_rows=0, counted=False), abs=1e-6
    )


def test_default_costs_reproduce_the_published_shape():
    costs = CostModel()
    counted = costs.list_page_cost("tasks.task.list", matching_rows=100_000)
    keyset = costs.list_page_cost("tasks.task.list", matching_rows=100_000, counted=False)
    assert 0.8 <= counted <= 1.2 and keyset <= 0.1 and counted / keyset > 10
    deep = costs.list_page_cost("tasks.task.list", matching_rows=100_000, offset=90_000)
    assert deep > counted  # offsets cost more the deeper they go


def test_lower_bound_combines_workers_bucket_and_budget():
    costs, cloud = CostModel(), Limits()
    work = costs.keyset_enumeration_cost("tasks.task.list", 100_000)
    assert lower_bound_seconds(work, 2001, costs, cloud) == pytest.approx((2001 - 50) / 2.0)
    assert lower_bound_seconds(work, 41, costs, cloud) == pytest.approx(work / costs.workers)
    assert lower_bound_seconds(1.0, 1, costs, cloud, billed_per_method={"m": 1000.0}) == 1200.0


def test_concurrent_requests_share_a_bounded_worker_pool(sandbox_factory):
    portal = sandbox_factory(
        profile="cloud",
        costs=ZERO.with_(base=5.0),
        time_scale=0.01,
        limits=Limits(bucket_size=None, operating_limit=None),
        users=5,
        tasks=5,
        events=0,
    )
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: post(portal, "server.time").status_code, range(8)))
    assert codes == [200] * 8
    assert 1 < portal.admin.counters()["max_concurrent"] <= 4
