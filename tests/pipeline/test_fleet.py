"""The fleet runner without Dagster: many accounts synced by one thread pool against the sandbox
portal over HTTP and embedded Postgres. Each portal ends in exact parity or fails alone, with its
own sentence, sync-log rows and account status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core import CoreStore, IntegrationAccount
from bitrix24_assets.pipeline import ENTITIES, RawStore
from bitrix24_assets.pipeline.fleet import FleetSync, http_transport, slot_of
from bitrix24_assets.sandbox import SandboxConfig, SandboxHandle
from bitrix24_assets.sandbox.fleet import running_fleet
from tests.pipeline.helpers import TIME_SCALE, account_for, live_ids, portal_ids, sync_logs

HOURLY = [ENTITIES["employees"], ENTITIES["tasks"]]


def test_twenty_portals_end_exact_and_a_revoked_and_a_malformed_portal_fail_alone(
    sandbox: SandboxHandle,
    sandbox_factory: Callable[..., SandboxHandle],
    core_store: CoreStore,
    core_dsn: str,
    tmp_path: Path,
) -> None:
    good = [account_for(core_store, sandbox.webhook_url, company=f"Co {i}", name=f"p{i}") for i in range(18)]
    revoked_url = sandbox.webhook_url.replace("/rest/1/", "/rest/1/x")
    revoked = account_for(core_store, revoked_url, company="Revoked Co", name="Revoked portal")
    broken = sandbox_factory(users=8, tasks=10, events=2, seed=11)
    for task_id in sorted(broken.state.tasks.rows)[:5]:  # half the tasks malformed: the API "changed"
        broken.admin.override("tasks", task_id, {"status": "abc"}, remove=["changedDate"])
    malformed = account_for(core_store, broken.webhook_url, company="Broken Co", name="Malformed portal")

    clients: Counter[str] = Counter()

    def client_for(account: IntegrationAccount) -> Bitrix24Client:
        clients[account.id] += 1
        assert account.webhook_url
        return Bitrix24Client(webhook_url=account.webhook_url, time_scale=TIME_SCALE)

    fleet = FleetSync(
        core_store, client_for, RawStore(tmp_path / "raw"), "fleet-run-1", entities=HOURLY, workers=6
    )
    results = {r.account_id: r for r in fleet.run([*good, revoked, malformed])}

    assert set(results) == {*good, revoked, malformed}
    assert clients == Counter({a: 1 for a in results})  # one client per portal, never shared
    for account in good:
        assert results[account].ok, results[account].message
        for entity in HOURLY:
            assert live_ids(core_dsn, entity, account) == portal_ids(sandbox, entity), (account, entity)
        assert {(e, s) for e, s, _ in sync_logs(core_dsn, account)} == {
            ("employees", "success"),
            ("tasks", "success"),
        }

    # the revoked webhook: employees fail with the sentence, tasks (depending on them) are not run
    failed = results[revoked]
    assert not failed.ok and not failed.retryable
    assert failed.message and "Revoked portal" in failed.message and "webhook" in failed.message
    secret = revoked_url.rstrip("/").rsplit("/", 1)[-1]
    assert secret not in failed.message
    assert failed.entities[1].not_run == "not run because employees failed"
    assert sync_logs(core_dsn, revoked) == [("employees", "failed", failed.message)]
    assert core_store.get_account(revoked).status == "error"

    # malformed tasks: employees synced, the tasks merge refused, nothing of it in Core
    partial = results[malformed]
    assert [r.ok for r in partial.entities] == [True, False]
    assert partial.message and "Malformed portal" in partial.message and "malformed" in partial.message
    assert live_ids(core_dsn, HOURLY[0], malformed) == portal_ids(broken, HOURLY[0])
    assert live_ids(core_dsn, HOURLY[1], malformed) == set()
    assert {(e, s) for e, s, _ in sync_logs(core_dsn, malformed)} == {
        ("employees", "success"),
        ("tasks", "failed"),
    }
    assert all(r.finished_at >= r.started_at > 0 for r in results.values())


def test_a_retry_runs_only_the_entities_that_failed(
    sandbox: SandboxHandle, core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    account = account_for(core_store, sandbox.webhook_url, name="Retried portal")

    def client_for(account: IntegrationAccount) -> Bitrix24Client:
        assert account.webhook_url
        return Bitrix24Client(webhook_url=account.webhook_url, time_scale=TIME_SCALE)

    fleet = FleetSync(core_store, client_for, RawStore(tmp_path / "raw"), "run-2", entities=HOURLY)
    first = fleet.sync_portal(account)
    assert first.ok
    first.entities[1].outcome = None  # as if tasks had failed in the first pass
    again = fleet.sync_portal(account, first)
    assert again.ok and again.entities[0] is first.entities[0]  # employees kept, not synced again
    assert [e for e, _, _ in sync_logs(core_dsn, account)] == ["employees", "tasks", "tasks"]


def test_slots_are_stable_and_spread() -> None:
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(6000)]
    slots = [slot_of(a, 60) for a in ids]
    assert slots == [slot_of(a, 60) for a in ids]  # deterministic
    per_slot = Counter(slots)
    assert set(per_slot) == set(range(60))
    assert max(per_slot.values()) < 1.35 * 100 and min(per_slot.values()) > 0.65 * 100


def test_portals_of_one_sandbox_fleet_each_keep_their_own_origin_limits_and_counters(
    core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    config = SandboxConfig(users=6, tasks=30, events=2, profile="cloud", time_scale=TIME_SCALE)
    with running_fleet(8, config, templates=3) as fleet:
        urls = fleet.webhook_urls
        assert len({url.split("/rest/")[0] for url in urls}) == 8  # one origin per portal
        accounts = [
            account_for(core_store, url, company=f"Fleet {i}", name=f"f{i}") for i, url in enumerate(urls)
        ]

        def client_for(account: IntegrationAccount) -> Bitrix24Client:
            assert account.webhook_url
            return Bitrix24Client(
                webhook_url=account.webhook_url, time_scale=TIME_SCALE, transport=http_transport()
            )

        fleet_sync = FleetSync(core_store, client_for, RawStore(tmp_path / "raw"), "fleet-3", entities=HOURLY)
        results = list(fleet_sync.run(accounts))
        assert all(r.ok for r in results), [r.message for r in results if not r.ok]
        requests = [p.counters.requests for p in fleet.portals]
        assert all(n > 0 for n in requests) and len(set(requests)) == 1  # each answered its own calls
        assert len({id(p.bucket) for p in fleet.portals}) == 8  # its own leaky bucket
        for account, portal in zip(accounts, fleet.portals, strict=True):
            for entity in HOURLY:
                expected = portal_ids(SandboxHandle(portal, None), entity)  # type: ignore[arg-type]
                assert live_ids(core_dsn, entity, account) == expected
        # portals of different templates hold different data
        assert fleet.portals[0].state is fleet.portals[3].state is not fleet.portals[1].state
