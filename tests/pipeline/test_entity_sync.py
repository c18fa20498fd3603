"""The entity sync without Dagster: the sandbox portal over HTTP, the client, the mappers and
embedded Postgres, end to end. Every fault ends in exact parity with the portal or in a failed
sync with one sentence; nothing is removed from Core that still exists in Bitrix24."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bitrix24_assets.core import CoreStore
from bitrix24_assets.core.models import RemovalGuard
from bitrix24_assets.pipeline import ENTITIES, EntitySync, Skipped, SyncFailed, SyncOptions
from bitrix24_assets.sandbox import SandboxHandle
from tests.pipeline.helpers import (
    account_for,
    core_rows,
    entity_sync,
    live_ids,
    portal_ids,
    sync_logs,
)

EMPLOYEES, TASKS, EVENTS = ENTITIES["employees"], ENTITIES["tasks"], ENTITIES["events"]
FULL = SyncOptions(full=True)


def test_a_full_sync_of_each_entity_ends_in_parity_with_the_portal(
    sandbox: SandboxHandle, core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    account = account_for(core_store, sandbox.webhook_url)
    sync = entity_sync(core_store, tmp_path)
    for entity in (EMPLOYEES, TASKS, EVENTS):
        outcome = sync.run(account, entity, FULL)
        assert outcome.merge is not None and outcome.read is not None, entity.name
        expected = portal_ids(sandbox, entity, outcome.read.window)
        assert live_ids(core_dsn, entity, account) == expected, entity.name
        counts = outcome.merge.counts
        assert counts.rows_in_table == len(core_rows(core_dsn, entity, account)) == counts.inserted
        assert counts.live_rows == len(expected), entity.name  # inactive users are kept, inactive
    assert {(e, s) for e, s, _ in sync_logs(core_dsn, account)} == {
        ("employees", "success"),
        ("tasks", "success"),
        ("calendar_events", "success"),
    }


@pytest.mark.parametrize("entity_name", ["employees", "tasks", "events"])
def test_a_full_read_that_would_remove_most_rows_is_not_merged(
    entity_name: str,
    sandbox_factory: Callable[..., SandboxHandle],
    core_store: CoreStore,
    core_dsn: str,
    tmp_path: Path,
) -> None:
    """The account's webhook now reaches a portal with far fewer records (as a broken or emptied
    answer would look): the merge refuses, says why and how to confirm, and Core is unchanged."""
    entity = ENTITIES[entity_name]
    big = sandbox_factory(users=40, tasks=200, events=300, seed=21)
    small = sandbox_factory(users=8, tasks=20, events=10, seed=21)
    account = account_for(core_store, big.webhook_url, name="Big portal")
    sync = entity_sync(core_store, tmp_path)
    if entity is not EMPLOYEES:
        sync.run(account, EMPLOYEES, FULL)
    sync.run(account, entity, FULL)
    before = core_rows(core_dsn, entity, account)

    core_store.update_credentials(account, {"webhook_url": small.webhook_url})
    with pytest.raises(SyncFailed) as failed:
        entity_sync(core_store, tmp_path).run(account, entity, FULL)
    message = str(failed.value)
    assert "Big portal" in message and account in message
    assert "allow_mass_removal" in message
    assert not failed.value.retryable
    assert core_rows(core_dsn, entity, account) == before  # nothing merged, nothing removed
    assert sync_logs(core_dsn, account)[-1][1] == "failed"

    confirmed = SyncOptions(full=True, guard=RemovalGuard(allow=True))
    outcome = entity_sync(core_store, tmp_path).run(account, entity, confirmed)
    assert outcome.merge is not None and outcome.read is not None and outcome.merge.counts.removed > 0
    live, expected = live_ids(core_dsn, entity, account), portal_ids(small, entity, outcome.read.window)
    if entity is EVENTS:  # events of calendars the small portal does not have are not candidates
        assert live >= expected
    else:
        assert live == expected


def test_an_empty_read_never_removes_an_accounts_rows(
    sandbox_factory: Callable[..., SandboxHandle], core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    full_portal = sandbox_factory(users=10, tasks=30, events=5, seed=3)
    empty = sandbox_factory(users=10, tasks=0, events=5, seed=3)
    account = account_for(core_store, full_portal.webhook_url)
    sync = entity_sync(core_store, tmp_path)
    sync.run(account, EMPLOYEES, FULL)
    sync.run(account, TASKS, FULL)
    core_store.update_credentials(account, {"webhook_url": empty.webhook_url})
    lenient = SyncOptions(full=True, guard=RemovalGuard(max_share=1.0, min_rows=10_000))
    with pytest.raises(SyncFailed, match="allow_mass_removal"):
        entity_sync(core_store, tmp_path).run(account, TASKS, lenient)
    assert live_ids(core_dsn, TASKS, account) == portal_ids(full_portal, TASKS)


def test_a_malformed_record_keeps_its_last_good_row_and_is_never_removed(
    sandbox_factory: Callable[..., SandboxHandle], core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    portal = sandbox_factory(users=10, tasks=40, events=5, seed=5)
    account = account_for(core_store, portal.webhook_url)
    sync = entity_sync(core_store, tmp_path)
    sync.run(account, EMPLOYEES, FULL)
    sync.run(account, TASKS, FULL)
    task_ids = sorted(portal.state.tasks.rows)
    bad, good = task_ids[3], task_ids[4]
    before = core_rows(core_dsn, TASKS, account)[str(bad)]
    portal.admin.update_task(bad, TITLE="Changed, but the record now arrives malformed")
    portal.admin.override("tasks", bad, {"status": "abc"}, remove=["changedDate"])
    outcome = entity_sync(core_store, tmp_path).run(account, TASKS, FULL)
    assert outcome.merge is not None and outcome.read is not None
    mapping = outcome.read.mapping
    assert mapping is not None and sum(mapping.rejected.values()) == 1
    (tasks_log,) = [log for log in core_store.latest_syncs(account) if log.entity == "tasks"]
    assert tasks_log.status == "success" and tasks_log.rejected == mapping.rejected  # counted by reason
    assert outcome.merge.counts.removed == 0
    after = core_rows(core_dsn, TASKS, account)
    assert after[str(bad)] == before  # last good values, not deleted
    assert not after[str(good)]["is_deleted"]


def test_a_record_without_a_readable_id_stops_removals_of_that_read(
    sandbox_factory: Callable[..., SandboxHandle], core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    """A record whose ID cannot be read could be any row: the read merges, but removes nothing."""
    portal = sandbox_factory(users=10, tasks=40, events=5, seed=6)
    account = account_for(core_store, portal.webhook_url)
    sync = entity_sync(core_store, tmp_path)
    sync.run(account, EMPLOYEES, FULL)
    sync.run(account, TASKS, FULL)
    task_ids = sorted(portal.state.tasks.rows)
    portal.admin.delete_task(task_ids[0])
    portal.admin.override("tasks", task_ids[5], {"id": {"unexpected": "object"}})
    outcome = entity_sync(core_store, tmp_path).run(account, TASKS, FULL)
    assert outcome.merge is not None
    assert outcome.merge.removal_skipped and "no readable ID" in outcome.merge.removal_skipped
    assert outcome.merge.counts.removed == 0
    assert not core_rows(core_dsn, TASKS, account)[str(task_ids[0])]["is_deleted"]
    portal.admin.clear_overrides()
    again = entity_sync(core_store, tmp_path).run(account, TASKS, FULL)
    assert again.merge is not None and again.merge.counts.removed == 1  # the next clean read removes it


def test_events_of_calendars_not_read_are_not_removed(
    sandbox_factory: Callable[..., SandboxHandle], core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    """Calendars of deactivated users are not read; their events are not deleted for that."""
    portal = sandbox_factory(users=12, tasks=5, events=80, seed=8)
    account = account_for(core_store, portal.webhook_url)
    sync = entity_sync(core_store, tmp_path)
    sync.run(account, EMPLOYEES, FULL)
    sync.run(account, EVENTS, FULL)
    owners = [e.owner_id for e in portal.state.events.rows.values() if e.cal_type == "user"]
    owner = max(set(owners), key=owners.count)
    portal.admin.deactivate_user(owner)
    outcome = entity_sync(core_store, tmp_path).run(account, EVENTS, FULL)
    assert outcome.merge is not None and outcome.merge.counts.removed == 0
    theirs = {
        str(e.id) for e in portal.state.events.rows.values() if e.cal_type == "user" and e.owner_id == owner
    }
    rows = core_rows(core_dsn, EVENTS, account)
    assert theirs and all(not rows[i]["is_deleted"] for i in theirs if i in rows)


def test_an_entity_without_its_scope_is_skipped_and_the_account_stays_active(
    sandbox_factory: Callable[..., SandboxHandle], core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    portal = sandbox_factory(users=10, tasks=20, events=5, seed=9)
    hook = portal.admin.create_webhook(scopes=["user", "im", "calendar"])
    account = account_for(core_store, hook["webhook_url"])
    outcome = entity_sync(core_store, tmp_path).run(account, TASKS, FULL)
    assert isinstance(outcome.skipped, Skipped) and "scope 'task'" in outcome.skipped.reason
    assert core_store.get_account(account).status == "active"
    ((entity, status, error),) = sync_logs(core_dsn, account)
    assert (entity, status) == ("tasks", "skipped") and "scope 'task'" in error
    portal.admin.set_webhook_scopes(hook["id"], ["user", "im", "calendar", "task"])
    synced = entity_sync(core_store, tmp_path).run(account, TASKS, FULL)
    assert synced.merge is not None and live_ids(core_dsn, TASKS, account) == portal_ids(portal, TASKS)


@pytest.mark.parametrize(
    ("entities", "synced"),
    [
        (["employees", "tasks"], {"employees", "tasks"}),
        ({"calendar_events": False}, {"employees", "tasks"}),
        ({"tasks": False, "events": True}, {"employees", "events"}),
    ],
)
def test_settings_entities_turns_entities_off_on_purpose(
    entities: Any,
    synced: set[str],
    sandbox: SandboxHandle,
    core_store: CoreStore,
    tmp_path: Path,
) -> None:
    account = account_for(core_store, sandbox.webhook_url, settings={"entities": entities})
    sync = entity_sync(core_store, tmp_path)
    done = set()
    for entity in (EMPLOYEES, TASKS, EVENTS):
        outcome = sync.run(account, entity, FULL)
        if outcome.skipped is None:
            done.add(entity.name)
        else:
            assert "settings.entities" in outcome.skipped.reason
    assert done == synced


def test_an_unsyncable_account_fails_with_one_sentence(
    sandbox: SandboxHandle, core_store: CoreStore, tmp_path: Path
) -> None:
    account = account_for(core_store, sandbox.webhook_url, name="Paused portal")
    core_store.set_account_status(account, "disabled", None)
    with pytest.raises(SyncFailed) as failed:
        entity_sync(core_store, tmp_path).run(account, TASKS)
    assert "Paused portal" in str(failed.value) and "status 'disabled'" in str(failed.value)
    assert not failed.value.retryable


def test_a_revoked_webhook_marks_the_account_and_names_the_fix(
    sandbox: SandboxHandle, core_store: CoreStore, core_dsn: str, tmp_path: Path
) -> None:
    revoked = sandbox.webhook_url.replace("/rest/1/", "/rest/1/x")
    account = account_for(core_store, revoked, name="Revoked portal")
    sync: EntitySync = entity_sync(core_store, tmp_path)
    with pytest.raises(SyncFailed) as failed:
        sync.run(account, EMPLOYEES)
    message = str(failed.value)
    assert "Revoked portal" in message and "webhook" in message and not failed.value.retryable
    secret = revoked.rstrip("/").rsplit("/", 1)[-1]
    assert secret not in message
    stored = core_store.get_account(account)
    assert stored.status == "error" and secret not in (stored.status_message or "")
