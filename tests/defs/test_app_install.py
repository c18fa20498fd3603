"""An OAuth application installed on a portal is onboarded with no manual step, and uninstalled cleanly.

The sandbox portal (HTTP on 127.0.0.1) installs the application and POSTs the install to the real
receiver (uvicorn), which stores the account in the embedded Postgres Core; the accounts sensor is
evaluated on a real Dagster instance and the run it requests is executed in process with the
production resources, reading the portal with the OAuth tokens the install stored. Nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.resources import CoreResource
from bitrix24_assets.sandbox import SandboxHandle
from bitrix24_assets.webhooks.install import find_portal_account
from tests.defs.conftest import query
from tests.defs.test_sensors_schedules import keys, tick
from tests.webhooks.test_install import install, receiver_for, settings_for, uninstall


def _run_requested(
    defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """Execute a sensor's run request the way the daemon would launch it: its job, partition, tags."""
    job = defs.resolve_job_def(request.job_name or "bitrix24_full_sync_job")
    return job.execute_in_process(
        instance=instance, partition_key=request.partition_key, tags=request.tags, raise_on_error=False
    )


def _counts(dsn: str, account_id: str) -> tuple[int, int]:
    (employees,) = query(
        dsn,
        "select count(*) from core.employees where metadata->>'integration_account_id' = %s and is_active",
        account_id,
    )[0]
    (tasks,) = query(
        dsn,
        "select count(*) from core.tasks where integration_account_id = %s and not is_deleted",
        account_id,
    )[0]
    return int(employees), int(tasks)


def test_install_onboards_the_portal_and_uninstall_stops_it_keeping_its_data(
    sandbox_factory: Callable[..., SandboxHandle],
    core_store: CoreStore,
    core_dsn: str,
    core_resource: CoreResource,
    instance: dg.DagsterInstance,
    test_defs: dg.Definitions,
) -> None:
    portal = sandbox_factory(users=8, tasks=14, events=6, seed=23)
    app: dict[str, Any] = portal.admin.create_oauth_app()
    with receiver_for(core_store, settings_for(app)) as receiver:
        installed = install(portal, receiver, app["client_id"])
        assert installed["status"] == 200, installed["answer"]
        account = find_portal_account(core_store, portal.portal.member_id)
        assert account is not None
        at_install = account.credentials.get_secret_value()

        # the accounts sensor adds the partition and requests the first full sync by itself
        onboarding = tick(instance, core_resource)
        assert isinstance(onboarding, dg.SensorResult)
        assert keys(instance) == {account.id}
        (request,) = onboarding.run_requests
        assert request.partition_key == account.id and request.tags["bitrix24/trigger"] == "onboarding"

        portal.admin.expire_tokens()  # the run must refresh the install's tokens and keep the new pair
        result = _run_requested(test_defs, instance, request)
        assert result.success
        employees = sum(1 for u in portal.state.users.rows.values() if u.active and u.user_type == "employee")
        assert _counts(core_dsn, account.id) == (employees, len(portal.state.tasks))
        refreshed = core_store.get_account(account.id)
        stored = refreshed.credentials.get_secret_value()
        assert stored["refresh_token"] != at_install["refresh_token"]
        assert refreshed.portal == portal.portal.domain  # not the OAuth server's domain from the refresh
        assert refreshed.status == "active"

        secrets = {
            app["client_secret"],
            at_install["access_token"],
            at_install["refresh_token"],
            stored["access_token"],
            stored["refresh_token"],
            installed["application_token"],
        }
        shown = [str(entry) for entry in instance.all_logs(result.run_id)]
        shown += [str(instance.get_run_by_id(result.run_id).tags)]  # type: ignore[union-attr]
        shown += [repr(s) for s in core_store.recent_syncs(account.id)]
        shown += [str(row) for row in query(core_dsn, "select * from core.integration_sync_logs")]
        assert [s for s in secrets if any(s in text for text in shown)] == []

        # uninstall: the account is disabled, the sensor removes its partition, its rows stay
        gone = uninstall(portal, app["client_id"])
        assert [d["status"] for d in gone["delivered"]] == [200]
        removal = tick(instance, core_resource)
        assert isinstance(removal, dg.SensorResult) and not removal.run_requests
        assert keys(instance) == set()
        assert _counts(core_dsn, account.id) == (employees, len(portal.state.tasks))

        # installing again brings the partition back with a new first sync
        again = install(portal, receiver, app["client_id"])
        assert again["status"] == 200, again["answer"]
        back = tick(instance, core_resource)
        assert isinstance(back, dg.SensorResult) and keys(instance) == {account.id}
        assert [r.partition_key for r in back.run_requests] == [account.id]
        assert back.run_requests[0].run_key != request.run_key
