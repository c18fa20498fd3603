"""Commands as Dagster runs, under a real Dagster instance with the embedded Core and the sandbox
portal over HTTP: the sensor requests one run per account with pending commands (keyed so a tick
never requests the same commands twice), the op job carries them out and shows what it did as
metadata and tags, an unknown outcome fails the run with one sentence, and the run is queued under
the same per-portal limit as the portal's syncs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from bitrix24_assets.core import CoreStore
from bitrix24_assets.core.commands import CommandOutbox
from bitrix24_assets.definitions import defs
from bitrix24_assets.defs.commands import bitrix24_commands_job, build_commands_sensor
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource
from bitrix24_assets.sandbox import SandboxHandle

from .conftest import SANDBOX_TIME_SCALE, add_account

EMAIL = "vera.commands@acme.test"


@pytest.fixture
def portal(sandbox_factory: Callable[..., SandboxHandle]) -> SandboxHandle:
    handle = sandbox_factory(users=3, tasks=1, events=1, seed=13)
    handle.admin.add_user(NAME="Vera", EMAIL=EMAIL)
    return handle


def evaluate(instance: dg.DagsterInstance, core: CoreResource) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, resources={"core": core}) as context:
        result = build_commands_sensor()(context)
    assert isinstance(result, dg.SensorResult)
    return result


def run(
    instance: dg.DagsterInstance, core: CoreResource, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    assert request.partition_key is not None
    return bitrix24_commands_job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        tags=request.tags,
        resources={"core": core, "bitrix24": Bitrix24Resource(time_scale=SANDBOX_TIME_SCALE)},
        raise_on_error=False,
    )


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: getattr(v, "value", getattr(v, "data", v)) for k, v in event.step_output_data.metadata.items()}


def test_the_sensor_requests_one_run_per_account_and_the_job_carries_the_commands_out(
    core_store: CoreStore,
    core_resource: CoreResource,
    instance: dg.DagsterInstance,
    portal: SandboxHandle,
) -> None:
    account = add_account(core_store, portal.webhook_url, company="Acme", name="acme.test")
    not_onboarded = add_account(core_store, "https://other.bitrix24.ru/rest/1/s3cr3tt0ken/", name="other")
    outbox = CommandOutbox(core_store)
    ids = [
        outbox.enqueue(account, "notification", {"email": EMAIL, "message": "Hi"}, "n1").command.id,
        outbox.enqueue(account, "task", {"fields": {"TITLE": "Call", "RESPONSIBLE_ID": 1}}, "t1").command.id,
        outbox.enqueue(
            account, "notification", {"email": "nobody@acme.test", "message": "Hi"}, "n2"
        ).command.id,
    ]
    outbox.enqueue(not_onboarded, "task", {"fields": {"TITLE": "Later", "RESPONSIBLE_ID": 1}}, "t1")
    instance.add_dynamic_partitions(integration_accounts.name, [account])

    (request,) = evaluate(instance, core_resource).run_requests or []
    (again,) = evaluate(instance, core_resource).run_requests or []
    assert request.run_key == again.run_key == f"commands:{account}:{max(ids)}"  # requested once
    assert request.job_name in (None, "bitrix24_commands_job") and request.partition_key == account
    assert request.tags["bitrix24/account"] == "acme.test" and request.tags["bitrix24/company"] == "Acme"
    assert request.tags["bitrix24/pending_commands"] == "3"

    result = run(instance, core_resource, request)
    assert result.success
    meta = output_metadata(result)
    assert (meta["sent"], meta["failed"], meta["unknown"]) == (2, 1, 0)
    assert meta["sent_ids"] == ids[:2] and meta["failed_ids"] == [ids[2]]
    tags = instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]
    assert tags["dagster/partition"] == account  # the per-portal queue limit's key
    assert (tags["bitrix24/commands_sent"], tags["bitrix24/commands_failed"]) == ("2", "1")
    assert {c.run_id for c in outbox.list(account)} == {result.run_id}

    skipped = evaluate(instance, core_resource)  # the onboarded account has nothing pending any more
    assert not skipped.run_requests and skipped.skip_reason is not None
    outbox.enqueue(account, "notification", {"email": EMAIL, "message": "Again"}, "n3")
    (next_request,) = evaluate(instance, core_resource).run_requests or []
    assert next_request.run_key != request.run_key


def test_an_unknown_outcome_fails_the_run_with_one_sentence_and_is_not_repeated(
    core_store: CoreStore,
    core_resource: CoreResource,
    instance: dg.DagsterInstance,
    portal: SandboxHandle,
) -> None:
    account = add_account(core_store, portal.webhook_url, name="acme.test")
    outbox = CommandOutbox(core_store)
    cid = outbox.enqueue(account, "task", {"fields": {"TITLE": "Once", "RESPONSIBLE_ID": 1}}, "k").command.id
    instance.add_dynamic_partitions(integration_accounts.name, [account])
    portal.admin.set_faults(rate=1.0, kinds=["drop_after"], methods=["tasks.task.add"], count=1)
    (request,) = evaluate(instance, core_resource).run_requests or []

    result = run(instance, core_resource, request)

    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert message.startswith("Bitrix24 account 'acme.test': the outcome of commands") and str(cid) in message
    assert "commands resolve" in message
    assert portal.portal.counters.calls.get("tasks.task.add") == 1
    assert evaluate(instance, core_resource).run_requests in (None, [])  # nothing pending: never resent
    token = portal.webhook_url.rstrip("/").rsplit("/", 1)[-1]
    logs = "\n".join(str(e.message) for e in instance.all_logs(result.run_id))
    assert token not in logs and token not in message


def test_the_job_is_no_asset_and_shares_the_per_portal_run_limit() -> None:
    d = defs()
    assert "bitrix24_commands_job" in {j.name for j in d.resolve_all_job_defs()}
    assert "bitrix24_commands_sensor" in {s.name for s in d.sensors or []}
    graph = d.resolve_asset_graph()
    assert not [k for k in graph.get_all_asset_keys() if "command" in k.to_user_string()]
    assert bitrix24_commands_job.partitions_def == integration_accounts  # runs tagged dagster/partition
    config = yaml.safe_load((Path(__file__).parents[2] / "dagster_home" / "dagster.yaml").read_text())
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


def test_an_account_with_a_run_queued_or_in_flight_waits_for_a_later_tick(
    core_store: CoreStore, core_resource: CoreResource, instance: dg.DagsterInstance
) -> None:
    from dagster._core.test_utils import create_run_for_test

    from bitrix24_assets.defs.fleet import FLEET_JOB, FLEET_OP

    a = add_account(core_store, "https://a.bitrix24.ru/rest/1/s3cr3tt0ken/", name="a")
    b = add_account(core_store, "https://b.bitrix24.ru/rest/1/s3cr3tt0ken/", name="b")
    c = add_account(core_store, "https://c.bitrix24.ru/rest/1/s3cr3tt0ken/", name="c")
    instance.add_dynamic_partitions(integration_accounts.name, [a, b, c])
    outbox = CommandOutbox(core_store)
    for account in (a, b, c):
        outbox.enqueue(account, "notification", {"email": EMAIL, "message": "Hi"}, "n1")
    # a fleet batch run with account a holds no per-portal tag: only the sensor keeps them apart
    fleet = create_run_for_test(
        instance,
        job_name=FLEET_JOB,
        run_config={"ops": {FLEET_OP: {"config": {"accounts": [a]}}}},
        status=dg.DagsterRunStatus.STARTED,
    )
    queued = create_run_for_test(  # a commands run of c not started yet will claim c's commands
        instance,
        job_name="bitrix24_commands_job",
        tags={"dagster/partition": c},
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    assert [r.partition_key for r in evaluate(instance, core_resource).run_requests or []] == [b]
    instance.report_run_canceled(fleet)
    instance.report_run_canceled(queued)
    requested = sorted(r.partition_key or "" for r in evaluate(instance, core_resource).run_requests or [])
    assert requested == sorted([a, b, c])


def test_a_queue_whose_run_failed_before_claiming_gets_one_more_run_per_retry_interval(
    core_store: CoreStore, core_dsn: str, core_resource: CoreResource, instance: dg.DagsterInstance
) -> None:
    account = add_account(core_store, "https://a.bitrix24.ru/rest/1/s3cr3tt0ken/", name="a")
    core_store.update_credentials(account, {"webhook_url": None})  # the run will fail: no credentials
    instance.add_dynamic_partitions(integration_accounts.name, [account])
    CommandOutbox(core_store).enqueue(account, "notification", {"email": EMAIL, "message": "Hi"}, "n1")
    (request,) = evaluate(instance, core_resource).run_requests or []
    result = run(instance, core_resource, request)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert message.startswith("Bitrix24 account 'a': it has no credentials") and "stay pending" in message
    assert [c.status for c in CommandOutbox(core_store).list(account)] == ["pending"]  # nothing claimed
    (same,) = evaluate(instance, core_resource).run_requests or []
    assert same.run_key == request.run_key  # the next tick does not start another failing run
    with psycopg.connect(core_dsn) as conn:  # 16 minutes later, without waiting 16 minutes
        conn.execute("update core.integration_commands set updated_at = now() - interval '16 minutes'")
    (retry,) = evaluate(instance, core_resource).run_requests or []
    assert retry.run_key == f"{request.run_key}:retry1"
