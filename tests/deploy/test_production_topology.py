"""The production topology on one machine: every service a separate process on 127.0.0.1.

- the code location served over gRPC by the image's default command (the Dockerfile's ``CMD``,
  ``dagster code-server start -m bitrix24_assets.definitions``, host and port set for 127.0.0.1);
- ``dagster-webserver`` and ``dagster-daemon`` on a ``workspace.yaml`` that points at that gRPC
  server, with ``dagster_home/dagster.production.yaml`` as their instance: Dagster's storage in
  Postgres (dagster-postgres, a database of its own on the embedded test server, beside Core's),
  the queued run coordinator with threaded dequeues and the per-portal limits;
- the events receiver (``bitrix24-webhooks``, the image's second command);
- two sandbox portals over HTTP, one account each in Core (embedded Postgres).

The one change to the production instance is the run launcher. There is no Kubernetes here, so
``K8sRunLauncher`` is replaced by the project's ``LocalRunLauncher`` (Dagster's DefaultRunLauncher
plus a worker health check): the daemon dequeues a run and asks the code server over gRPC to start
its run worker, where the K8s launcher would ask Kubernetes for a Job.

One hourly cycle goes through it: ``bitrix24_sync_job`` (what ``bitrix24_hourly_sync`` requests
per account, with the same partition and tags) is submitted per portal through the webserver's
GraphQL API, and a task changed in one portal reaches Core through the receiver, the inbox
sensor and a ``bitrix24_tasks_job`` run. Then a fleet cycle: one ``bitrix24_fleet_job`` run syncs
both portals, as ``bitrix24_fleet_sensor`` requests it for small, healthy portals (submitted through
GraphQL with the sensor's run config, as the sensor's timing is by the hour). The partitions are
added before the daemon starts, as the accounts sensor would (its first full syncs are tested in
tests/defs). Each portal ends with its own materializations, Core rows and sync-log rows of every
one of those runs.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import httpx
import psycopg
import pytest
import yaml
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._grpc.client import DagsterGrpcClient
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from psycopg import sql

from bitrix24_assets.core.embedded import EmbeddedPostgres
from bitrix24_assets.core.postgres import PostgresStore
from bitrix24_assets.defs.fleet import BATCH_TAG, CYCLE_TAG, FLEET_JOB, FLEET_OP
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.tags import ACCOUNT_TAG
from bitrix24_assets.sandbox import SandboxHandle
from tests.defs.conftest import SANDBOX_TIME_SCALE, add_account, query
from tests.deploy.processes import Services, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "bitrix24_assets"
NEW_TITLE = "Changed in Bitrix24, seen by the receiver"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def image_command(host: str, port: int) -> list[str]:
    """The Dockerfile's default command (the code server), bound to ``host``:``port``."""
    line = next(ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.startswith("CMD ["))
    argv: list[str] = json.loads(line[len("CMD ") :])
    argv[argv.index("-h") + 1] = host
    argv[argv.index("-p") + 1] = str(port)
    return [str(BIN / argv[0]), *argv[1:]]


def production_instance(home: Path) -> None:
    """dagster.production.yaml with the local launcher in place of K8sRunLauncher (see above)."""
    config = yaml.safe_load((ROOT / "dagster_home" / "dagster.production.yaml").read_text())
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    config["run_launcher"] = {"module": "bitrix24_assets.defs.run_launcher", "class": "LocalRunLauncher"}
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def dagster_pg_url(core_server: EmbeddedPostgres) -> Iterator[str]:
    """A database of its own for Dagster's storage, on the embedded server that also holds Core."""
    name = f"dagster_topology_{os.getpid()}"
    with psycopg.connect(core_server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield core_server.dsn(name)
    finally:
        with psycopg.connect(core_server.dsn("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def test_hourly_cycle_through_code_server_webserver_daemon_and_receiver(
    tmp_path: Path,
    core_dsn: str,
    dagster_pg_url: str,
    sandbox: SandboxHandle,
    sandbox_factory: Callable[..., SandboxHandle],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = time.monotonic()
    home = tmp_path / "dagster_home"
    production_instance(home)
    grpc_port, web_port, receiver_port = free_port(), free_port(), free_port()
    workspace = tmp_path / "workspace.yaml"
    server = {"host": "127.0.0.1", "port": grpc_port, "location_name": LOCATION}
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": server}]}))
    (tmp_path / "logs").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORE_", "SUPABASE_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": dagster_pg_url,
        "CORE_DATABASE_URL": core_dsn,
        "BITRIX24_TIME_SCALE": str(SANDBOX_TIME_SCALE),
        "BITRIX24_STORAGE_DIR": str(tmp_path / "storage"),
    }
    services = Services(tmp_path / "logs", env, cwd=tmp_path)
    receiver = f"http://127.0.0.1:{receiver_port}"
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url)
    marks: dict[str, float] = {}
    instance = dg.DagsterInstance.from_config(str(home))  # creates Dagster's tables in Postgres
    try:
        services.start("code-server", image_command("127.0.0.1", grpc_port))
        receiver_argv = ["--host", "127.0.0.1", "--port", str(receiver_port), "--log-level", "warning"]
        services.start("receiver", [str(BIN / "bitrix24-webhooks"), *receiver_argv])

        # while they start: two portals, their accounts in Core, their partitions in Dagster
        portal_b = sandbox_factory(seed=11)
        token = secrets.token_urlsafe(24)
        with PostgresStore(core_dsn, max_size=2) as store:
            acc_a = add_account(store, sandbox.webhook_url, "Acme", "acme.sandbox")
            acc_b = add_account(store, portal_b.webhook_url, "Globex", "globex.sandbox")
            store.update_credentials(acc_b, {"application_token": token})
        accounts = {acc_a: (sandbox, "acme.sandbox"), acc_b: (portal_b, "globex.sandbox")}
        instance.add_dynamic_partitions(integration_accounts.name, list(accounts))

        services.wait_for("the receiver", lambda: _healthy(f"{receiver}/healthz"), timeout=60)
        services.wait_for("the code server", lambda: _code_server_ready(grpc_port), timeout=90)
        marks["code server and receiver up"] = time.monotonic() - started
        webserver = [
            str(BIN / "dagster-webserver"),
            "-w",
            str(workspace),
            "-h",
            "127.0.0.1",
            "-p",
            str(web_port),
        ]
        services.start("webserver", webserver)
        services.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)])

        # 1. a task changes in portal B: Bitrix24 (the sandbox) posts ONTASKUPDATE to the receiver,
        # which stores it in Core's inbox; the daemon's inbox sensor turns it into a tasks run
        portal_b.admin.set_event_handler(f"{receiver}/bitrix24/events/{acc_b}", token)
        portal_b.admin.update_task(7, TITLE=NEW_TITLE)
        # 2. the hourly job per portal, submitted through the webserver's GraphQL API; the queue
        # runs each portal's runs one after another (tag limits), the two portals side by side
        services.wait_for("the webserver", lambda: _healthy(f"http://127.0.0.1:{web_port}/server_info"), 90)
        marks["webserver up"] = time.monotonic() - started
        client = DagsterGraphQLClient("127.0.0.1", port_number=web_port, timeout=60)
        sessions_before = _sessions(dagster_pg_url)
        hourly_ids = {
            acc: client.submit_job_execution(
                "bitrix24_sync_job",
                repository_location_name=LOCATION,
                tags={"dagster/partition": acc, ACCOUNT_TAG: name},
            )
            for acc, (_, name) in accounts.items()
        }
        statuses = services.wait_for(
            "the hourly runs", lambda: _graphql_finished(client, list(hourly_ids.values())), timeout=120
        )
        marks["hourly runs done"] = time.monotonic() - started
        # dagster-postgres opens a connection per storage call (NullPool): count them while the two
        # hourly runs ran (polled through GraphQL only; the daemon's ticks count too)
        sessions = _sessions(dagster_pg_url) - sessions_before
        inbox_run = services.wait_for(
            "the inbox sensor's tasks run (receiver -> Core inbox -> sensor -> bitrix24_tasks_job)",
            lambda: _finished_run(instance, "bitrix24_tasks_job", acc_b),
            timeout=120,
        )
        marks["inbox run done"] = time.monotonic() - started
        # 3. a fleet cycle: both portals in one bitrix24_fleet_job run, with the run config and tags
        # bitrix24_fleet_sensor gives a batch (the sensor's timing over the hour is tested in tests/defs)
        fleet_id = client.submit_job_execution(
            FLEET_JOB,
            repository_location_name=LOCATION,
            run_config={"ops": {FLEET_OP: {"config": {"accounts": sorted(accounts)}}}},
            tags={CYCLE_TAG: "topology-test", BATCH_TAG: "0.0"},
        )
        fleet_status = services.wait_for(
            "the fleet run", lambda: _graphql_finished(client, [fleet_id]), timeout=120
        )
        marks["fleet run done"] = time.monotonic() - started
        # shut down as an operator would: the daemon first (nothing new is launched), then the
        # rest once no run is in flight (a run's worker is the code server's child, not ours)
        services.stop_service("daemon")
        services.wait_for("runs in flight to end", lambda: _no_run_in_flight(instance), timeout=60)
    except BaseException:
        services.stop()
        instance.dispose()
        raise
    leaked = services.stop()
    try:
        _check_cycle(instance, core_dsn, accounts, hourly_ids, statuses, grpc_port, services)
        # the fleet run: one run, yet per portal its own materializations and sync-log rows
        assert fleet_status == ["SUCCESS"], services.logs()
        _check_portals(instance, core_dsn, accounts, dict.fromkeys(accounts, fleet_id), grpc_port)
        # the receiver's path: the event is in Core's inbox, processed, and its run synced the change
        assert inbox_run.status == dg.DagsterRunStatus.SUCCESS, services.logs()
        assert inbox_run.tags.get("dagster/sensor_name") == "bitrix24_events_inbox_sensor"
        assert inbox_run.tags.get(ACCOUNT_TAG) == "globex.sandbox"
        # no secret crossed into Dagster: not in any run's config or tags, nor in its event log
        run_ids = [*hourly_ids.values(), fleet_id, inbox_run.run_id]
        _check_no_secrets(instance, run_ids, [sandbox.webhook_url, portal_b.webhook_url], token)
        processed = "select event, processed_at is not null from core.integration_events"
        processed += " where integration_account_id = %s"
        assert ("ONTASKUPDATE", True) in query(core_dsn, processed, acc_b)
        title = "select title from core.tasks where integration_account_id = %s and bitrix_id = '7'"
        assert query(core_dsn, title, acc_b) == [(NEW_TITLE,)]
    finally:
        instance.dispose()
    assert not leaked, f"processes left running after shutdown: {leaked}"
    steps = ", ".join(f"{k} at {v:.1f} s" for k, v in marks.items())
    print(f"\nproduction topology: {steps}, checked at {time.monotonic() - started:.1f} s")
    print(f"new connections to Dagster's storage database while the 2 hourly runs ran: {sessions}")


def _check_cycle(
    instance: dg.DagsterInstance,
    core_dsn: str,
    accounts: dict[str, tuple[SandboxHandle, str]],
    hourly_ids: dict[str, str],
    statuses: list[str],
    grpc_port: int,
    services: Services,
) -> None:
    """Per portal: a successful hourly run of its partition, tagged with its account."""
    assert statuses == ["SUCCESS"] * len(hourly_ids), services.logs()
    for acc, (_, name) in accounts.items():
        run = instance.get_run_by_id(hourly_ids[acc])
        assert run is not None
        assert (run.tags["dagster/partition"], run.tags[ACCOUNT_TAG]) == (acc, name)
    _check_portals(instance, core_dsn, accounts, hourly_ids, grpc_port)


def _check_portals(
    instance: dg.DagsterInstance,
    core_dsn: str,
    accounts: dict[str, tuple[SandboxHandle, str]],
    run_ids: dict[str, str],
    grpc_port: int,
) -> None:
    """Each portal's run was launched through the code server and left that portal's
    materializations (naming the account), its employees in Core and its successful sync-log rows."""
    for acc, (portal, name) in accounts.items():
        run = instance.get_run_by_id(run_ids[acc])
        assert run is not None
        grpc_info = json.loads(run.tags[GRPC_INFO_TAG])  # launched through our code server
        assert (grpc_info["host"], grpc_info["port"]) == ("127.0.0.1", grpc_port)
        for asset in ("core_employees", "core_tasks"):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[acc]), limit=10
            ).records
            by_run = {r.run_id: r.asset_materialization for r in records}
            materialization = by_run.get(run.run_id)
            assert materialization is not None, (asset, name)
            assert materialization.metadata["account"].value == name
        employees = [u for u in portal.state.users.rows.values() if u.user_type == "employee" and u.active]
        active = (
            "select count(*) from core.employees where metadata->>'integration_account_id' = %s and is_active"
        )
        assert query(core_dsn, active, acc) == [(len(employees),)] and employees
        logged = "select entity from core.integration_sync_logs where run_id = %s and status = 'success'"
        logged += " and integration_account_id = %s"
        assert {"employees", "tasks"} <= {r[0] for r in query(core_dsn, logged, run.run_id, acc)}


def _check_no_secrets(
    instance: dg.DagsterInstance, run_ids: list[str], webhooks: list[str], token: str
) -> None:
    secrets_ = [token, *(url.rstrip("/").rsplit("/", 1)[1] for url in webhooks)]
    assert all(len(secret) >= 8 for secret in secrets_)
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        stored = json.dumps([run.run_config, run.tags], default=str)
        stored += "".join(repr(entry) for entry in instance.all_logs(run_id))
        assert not [secret for secret in secrets_ if secret in stored], run.job_name


def _healthy(url: str) -> bool | None:
    try:
        return True if httpx.get(url, timeout=2).status_code == 200 else None
    except httpx.TransportError:
        return None


def _code_server_ready(port: int) -> bool | None:
    """The code server answers and has loaded the code location."""
    try:
        DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories()
    except Exception:
        return None
    return True


def _sessions(dsn: str) -> int:
    """Connections ever opened to the database (Postgres' own counter)."""
    rows = query(dsn, "select sessions from pg_stat_database where datname = current_database()")
    return int(rows[0][0])


def _graphql_finished(client: DagsterGraphQLClient, run_ids: list[str]) -> list[str] | None:
    try:
        statuses = [client.get_run_status(rid).value for rid in run_ids]
    except DagsterGraphQLClientError:
        return None
    return statuses if all(dg.DagsterRunStatus(s) in FINISHED for s in statuses) else None


def _no_run_in_flight(instance: dg.DagsterInstance) -> bool | None:
    busy = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    return None if instance.get_runs(filters=dg.RunsFilter(statuses=busy), limit=1) else True


def _finished_run(instance: dg.DagsterInstance, job: str, account: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=job, tags={"dagster/partition": account}), limit=1
    )
    return runs[0] if runs and runs[0].status in FINISHED else None
