"""Failure paths a user will meet, and checks on good and planted bad data.

A revoked webhook must fail the run with one sentence (no retries), leave a failed sync-log row
and put the account in error; the next good run puts it back. No secret may reach Dagster's
event log (run config, tags, logs, metadata, failure text)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import dagster as dg

from bitrix24_assets.core import CoreStore
from bitrix24_assets.pipeline.checks import PostMerge, evaluate
from bitrix24_assets.sandbox import SandboxHandle
from tests.defs.conftest import Runner, add_account, query


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    return " ".join(
        e.event_specific_data.error.message  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE
    )


def event_log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    records = instance.all_logs(run_id)
    return json.dumps([str(r) for r in records]) + json.dumps(run.run_config) + json.dumps(run.tags)


def test_revoked_webhook_fails_with_one_sentence_marks_account_and_recovers(
    sandbox_factory: Callable[..., SandboxHandle], runner: Runner, core_store: CoreStore, core_dsn: str
) -> None:
    portal = sandbox_factory(users=5, tasks=5, events=2, seed=3)
    token = portal.webhook_url.rstrip("/").rsplit("/", 1)[1]
    revoked = portal.webhook_url.replace(token, "revokedsecret42")
    account = add_account(core_store, revoked, name="Acme portal")

    result = runner.run(account, "bitrix24_employees_job")
    assert not result.success
    message = failure_text(result)
    assert f"Bitrix24 account 'Acme portal' ({account})" in message
    assert "revokedsecret42" not in message and "/rest/1/***/" in message
    # configuration errors are not retried
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]

    row = core_store.get_account(account)
    assert row.status == "error"
    assert row.status_message and "revokedsecret42" not in row.status_message
    logs = query(
        core_dsn, "select status, error from core.integration_sync_logs where run_id = %s", result.run_id
    )
    assert [status for status, _ in logs] == ["failed"]
    assert "revokedsecret42" not in logs[0][1]
    assert "revokedsecret42" not in event_log_text(runner.instance, result.run_id)

    # the owner creates a new webhook: the next run succeeds and the account is healthy again
    core_store.update_credentials(account, {"webhook_url": portal.webhook_url})
    assert runner.run(account, "bitrix24_employees_job").success
    assert core_store.get_account(account).status == "active"


def test_no_secret_in_event_log_of_a_successful_run(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    result = runner.run(account, "bitrix24_full_sync_job")
    assert result.success
    token = sandbox.webhook_url.rstrip("/").rsplit("/", 1)[1]
    assert token not in event_log_text(runner.instance, result.run_id)


def test_checks_pass_on_good_data_and_fail_on_planted_bad_data(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, core_dsn: str
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    good = runner.run(account, "bitrix24_full_sync_job")
    assert good.success
    by_name = {c.check_name: c for c in good.get_asset_check_evaluations()}
    assert by_name["core_employees_count_matches_source"].passed
    assert by_name["core_employees_no_duplicate_bitrix_ids"].passed
    assert by_name["core_tasks_no_duplicate_bitrix_ids"].passed
    assert by_name["mapped_tasks_mostly_valid"].passed

    # plant: an extra active employee linked to this account that Bitrix24 does not have, and a
    # live task whose responsible person is nobody Core knows
    company = core_store.get_account(account).company_id
    query(
        core_dsn,
        "insert into core.employees (company_id, full_name, is_active, metadata) values "
        "(%s, 'Ghost', true, jsonb_build_object('integration_account_id', %s::text, 'bitrix_id', '999999')) "
        "returning id",
        company,
        account,
    )
    query(
        core_dsn,
        "update core.tasks set responsible_id = null, responsible_bitrix_id = '888888' "
        "where integration_account_id = %s and bitrix_id = (select min(bitrix_id) from core.tasks "
        "where integration_account_id = %s and not is_deleted) returning id",
        account,
        account,
    )
    bad = runner.run(account, "bitrix24_sync_job")
    by_name = {c.check_name: c for c in bad.get_asset_check_evaluations()}
    # an incremental employees read is still full (users are read in full), so the ghost is
    # deactivated by the merge: the count check passes again; tasks keep their planted owner
    assert by_name["core_tasks_owners_resolved"].passed is False
    assert by_name["core_tasks_owners_resolved"].severity == dg.AssetCheckSeverity.WARN


def test_employee_checks_fail_on_planted_ghost_and_duplicate(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, core_dsn: str
) -> None:
    account = add_account(core_store, sandbox.webhook_url)
    good = runner.run(account, "bitrix24_employees_job")
    assert good.success
    active = sum(1 for u in sandbox.state.users.rows.values() if u.user_type == "employee" and u.active)
    context = PostMerge(account, active_read=active)
    assert all(r.passed for r in evaluate(core_store, "employees", "employees", context))

    # plant: the same Bitrix user linked twice (under another company) -> a duplicate; and an
    # active employee Bitrix24 does not have -> the count differs
    other = core_store.create_company("Planted Ltd")
    query(
        core_dsn,
        "insert into core.employees (company_id, full_name, is_active, metadata) values "
        "(%s, 'Twin', true, jsonb_build_object('integration_account_id', %s::text, 'bitrix_id', '1')) "
        "returning id",
        other,
        account,
    )
    company = core_store.get_account(account).company_id
    query(
        core_dsn,
        "insert into core.employees (company_id, full_name, is_active, metadata) values "
        "(%s, 'Ghost', true, jsonb_build_object('integration_account_id', %s::text, 'bitrix_id', '999999')) "
        "returning id",
        company,
        account,
    )
    results = {r.name: r.passed for r in evaluate(core_store, "employees", "employees", context)}
    assert results == {
        "core_employees_no_duplicate_bitrix_ids": False,
        "core_employees_count_matches_source": False,
        "core_employees_one_account_per_portal": True,
    }


def test_malformed_read_blocks_the_merge_and_fails_the_sync_log(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, core_dsn: str, monkeypatch: Any
) -> None:
    """The ``mostly_valid`` check of ``mapped_tasks`` fails and the step stops before the merge."""
    from collections import Counter

    import bitrix24_assets.pipeline.entity_sync as entity_sync_module
    from bitrix24_assets.sync import MappingResult

    def all_malformed(records: Any, mapper: Any) -> MappingResult[Any]:
        records = list(records)
        return MappingResult([], Counter({"missing ID (planted)": len(records)}), len(records))

    account = add_account(core_store, sandbox.webhook_url)
    monkeypatch.setattr(entity_sync_module, "map_records", all_malformed)
    result = runner.run(account, "bitrix24_tasks_job", full=True)
    assert not result.success
    by_name = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert by_name["mapped_tasks_mostly_valid"].passed is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "core_tasks" not in materialized and {"bitrix_tasks", "mapped_tasks"} <= materialized
    logs = query(
        core_dsn, "select status, error from core.integration_sync_logs where run_id = %s", result.run_id
    )
    assert [status for status, _ in logs] == [
        "failed"
    ] and "too many tasks records read are malformed" in logs[0][1]
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = str(failure.step_failure_data.error)
    assert f"Bitrix24 account 'Portal' ({account}): the merge into core.tasks was not run" in message
    assert "update the mapper" in message


def test_mapper_bug_during_the_read_is_named_as_mapping_and_logged(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, core_dsn: str, monkeypatch: Any
) -> None:
    """Records are mapped while they are read; a mapper that raises (a bug, not bad data) fails
    the step as a mapping failure, not as a failed read, and closes the sync-log row."""
    import bitrix24_assets.sync.tasks as tasks_module

    def broken_row(**fields: Any) -> Any:
        raise KeyError("planted")

    account = add_account(core_store, sandbox.webhook_url)
    monkeypatch.setattr(tasks_module, "TaskRow", broken_row)  # to_task itself now raises
    result = runner.run(account, "bitrix24_tasks_job", full=True)
    assert not result.success
    message = failure_text(result)
    assert f"({account}): mapping tasks records raised KeyError: 'planted'" in message, message
    assert "fix bitrix24_assets/sync/tasks.py" in message and "reading" not in message
    assert "Exceeded max_retries" not in message  # the same records would fail again: no retries
    logs = query(
        core_dsn, "select status, error from core.integration_sync_logs where run_id = %s", result.run_id
    )
    assert [status for status, _ in logs] == ["failed"] and "mapping tasks records raised" in logs[0][1]
    assert core_store.get_account(account).status == "active"  # not the account owner's to fix


def test_a_mistyped_webhook_url_is_never_shown_anywhere(
    sandbox: SandboxHandle, runner: Runner, core_store: CoreStore, core_dsn: str
) -> None:
    """A webhook URL pasted without its user id or trailing slash still carries its secret."""
    base = sandbox.webhook_url.split("/rest/", 1)[0]
    mistyped = f"{base}/rest/abc123SECRET456"
    account = add_account(core_store, mistyped, name="Mistyped portal")
    result = runner.run(account, "bitrix24_employees_job")
    assert not result.success
    message = failure_text(result)
    assert "Mistyped portal" in message and "abc123SECRET456" not in message
    shown = [
        message,
        event_log_text(runner.instance, result.run_id),
        core_store.get_account(account).status_message or "",
        *(str(error) for (error,) in query(core_dsn, "select error from core.integration_sync_logs")),
    ]
    assert not [text for text in shown if "abc123SECRET456" in text or "SECRET456" in text]
