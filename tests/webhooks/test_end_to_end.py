"""End to end: a change in the sandbox portal reaches Core through the real event path.

sandbox write (REST ``tasks.task.update`` and admin edits/deletes) -> the sandbox POSTs outgoing
events -> the receiver (uvicorn on 127.0.0.1) -> ``core.integration_events`` (embedded Postgres)
-> the inbox sensor on a real Dagster instance -> the requested runs, executed in-process -> Core.
Nothing is mocked. The only wait is for the sandbox's fire-and-forget POSTs to land (bounded poll).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
import uvicorn

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.inbox import build_inbox_sensor
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import CoreResource
from bitrix24_assets.sandbox import SandboxHandle
from bitrix24_assets.webhooks import create_app

TOKEN = "e2e-application-token-5f2b9c0d1e"


@contextmanager
def serving(app: object) -> Iterator[str]:
    """The receiver under a real uvicorn server in a background thread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_for_pending(store: CoreStore, count: int, timeout: float = 20.0) -> None:
    """Outgoing events are fire-and-forget in the sandbox: poll until they have been stored."""
    deadline = time.monotonic() + timeout
    while len(store.pending_events(limit=100)) < count:
        assert time.monotonic() < deadline, f"expected {count} stored events"
        time.sleep(0.05)


def rows(dsn: str, sql: str, *params: object) -> dict[str, tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return {r[0]: r[1:] for r in conn.execute(sql, params).fetchall()}  # type: ignore[arg-type]


def test_a_sandbox_change_reaches_core_through_events(
    sandbox_factory: Callable[..., SandboxHandle],
    core_store: CoreStore,
    core_dsn: str,
    core: CoreResource,
    instance: dg.DagsterInstance,
    code_location: dg.Definitions,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    portal = sandbox_factory(users=8, tasks=12, events=12)
    company = core_store.create_company("E2E company")
    account = core_store.add_account(
        company, "e2e portal", {"webhook_url": portal.webhook_url, "application_token": TOKEN}
    ).id
    instance.add_dynamic_partitions(integration_accounts.name, [account])
    full = code_location.resolve_job_def("bitrix24_full_sync_job")
    assert full.execute_in_process(instance=instance, partition_key=account).success

    tasks_sql = "select bitrix_id, title, is_deleted from core.tasks where integration_account_id = %s"
    events_sql = (
        "select bitrix_id, name, is_deleted from core.calendar_events where integration_account_id = %s"
    )
    [changed_task, deleted_task, *_] = sorted(rows(core_dsn, tasks_sql, account), key=int)
    [changed_event, *_] = sorted(rows(core_dsn, events_sql, account), key=int)

    with serving(create_app(core_store)) as receiver:
        portal.admin.set_event_handler(f"{receiver}/bitrix24/events/{account}", TOKEN)
        with Bitrix24Client(webhook_url=portal.webhook_url, time_scale=0.001) as client:
            client.call(
                "tasks.task.update", {"taskId": changed_task, "fields": {"TITLE": "Changed in Bitrix24"}}
            )
        portal.admin.delete_task(int(deleted_task))
        portal.admin.update_event(int(changed_event), name="Moved meeting")
        wait_for_pending(core_store, 3)

    sensor = build_inbox_sensor(clock=lambda: datetime.now(UTC) + timedelta(minutes=1))
    with dg.build_sensor_context(instance=instance, resources={"core": core}) as context:
        evaluation = sensor(context)
    assert isinstance(evaluation, dg.SensorResult)
    requests = evaluation.run_requests or []
    assert sorted(r.job_name for r in requests) == ["bitrix24_events_job", "bitrix24_tasks_job"]
    # the deletion is in Core before any run
    assert rows(core_dsn, tasks_sql, account)[deleted_task][1] is True

    for request in requests:
        job = code_location.resolve_job_def(request.job_name)
        run = job.execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=request.tags
        )
        assert run.success

    tasks = rows(core_dsn, tasks_sql, account)
    assert tasks[changed_task] == ("Changed in Bitrix24", False)
    assert tasks[deleted_task][1] is True
    assert rows(core_dsn, events_sql, account)[changed_event] == ("Moved meeting", False)
    assert core_store.pending_events(limit=10) == []
    assert TOKEN not in caplog.text
