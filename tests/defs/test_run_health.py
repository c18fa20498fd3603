"""Every run accounted for, even when its worker is killed.

* Under the real daemon (``dagster-daemon run`` on ``workspace.yaml``, the project's
  ``dagster.yaml``): a run worker reading from a portal made slow is SIGKILLed; its run ends
  ``FAILURE``, its sync-log row is ``abandoned`` with the sentence, its ``.spool`` file is gone and
  the account's queued next run starts. Once with the code server frozen (``SIGSTOP``: the worker
  stays a zombie nobody reaps, as when its code server is gone), where only ``LocalRunLauncher``'s
  health check under run monitoring can fail the run, then with the code server watching.
* The sensor's logic with ``build_sensor_context`` on a test instance and embedded Postgres: runs
  ended by ``report_run_failed``/``report_run_canceled`` (what the code server and run monitoring
  call), the sweep, idempotence, other code locations, a tick that fails.
* The launcher's health check on real processes (alive, zombie, gone, pid reused, another host).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import psutil
import pytest
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._core.test_utils import create_run_for_test

from bitrix24_assets.core import CoreStore, CoreUnavailableError, PostgresStore
from bitrix24_assets.defs import run_health
from bitrix24_assets.defs.resources import CoreResource, RawStoreResource
from bitrix24_assets.defs.run_health import bitrix24_run_health_sensor, evaluate
from bitrix24_assets.defs.run_launcher import LocalRunLauncher, WorkerPid, worker_alive, worker_pid

from .conftest import add_account, query

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, log: Path | None = None) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{tail}")
        time.sleep(0.2)


# ------------------------------------------------------------------------------------------ sensor


ACCOUNT_NAME = "acme.bitrix24.ru"


@pytest.fixture
def store(core_store: PostgresStore) -> PostgresStore:
    return core_store


@pytest.fixture
def account(store: PostgresStore) -> str:
    return add_account(store, "https://acme.bitrix24.ru/rest/1/secret/", name=ACCOUNT_NAME)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def ended_run(
    instance: dg.DagsterInstance,
    account: str,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.FAILURE,
    **kw: Any,
) -> dg.DagsterRun:
    """A run of the account that started and then ended the way Dagster ends a run whose worker
    died (``report_run_failed``, as the code server and run monitoring do) or was canceled."""
    run = create_run_for_test(
        instance,
        job_name="bitrix24_tasks_job",
        tags={"dagster/partition": account},
        status=dg.DagsterRunStatus.STARTED,
        **kw,
    )
    if status == dg.DagsterRunStatus.FAILURE:
        instance.report_run_failed(run)
    elif status == dg.DagsterRunStatus.CANCELED:
        instance.report_run_canceled(run)
    else:
        event = DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name)
        instance.report_dagster_event(event, run_id=run.run_id)
    return run


def spool(base: Path, account: str, run_id: str | None, *, raw: str = "bitrix_tasks", age: float = 0) -> Path:
    """A read's half-written file as RawSpool leaves it: header line (or nothing yet) and '['."""
    path = base / raw / f"{account}.spool"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"kind": "raw", "layout": "array", "entity": "tasks", "account_id": account, "run_id": run_id}
    path.write_bytes(json.dumps(header).encode() + b"\n[" if run_id else b"")
    if age:
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
    return path


def tick(instance: dg.DagsterInstance, store: CoreStore, base: Path, cursor: str | None) -> dg.SensorResult:
    """One evaluation of the sensor, as the daemon runs it with the cursor of the last good tick."""
    return evaluate(dg.build_sensor_context(instance=instance, cursor=cursor), store, base, time.time())


def logs_of(store: CoreStore, account: str, run_id: str) -> list[Any]:
    return [log for log in store.recent_syncs(account, limit=100) if log.run_id == run_id]


def test_failed_and_canceled_runs_get_rows_abandoned_and_spools_removed(
    instance: dg.DagsterInstance, store: PostgresStore, account: str, tmp_path: Path
) -> None:
    base = tmp_path / "storage"
    first = tick(instance, store, base, None)  # first tick: cursor at the end of the event log
    other_account = add_account(store, "https://other.bitrix24.ru/rest/1/x/", company="Other", name="other")

    killed = ended_run(instance, account)  # FAILURE: its worker died
    store.start_sync(account, "employees", killed.run_id)
    done = store.start_sync(account, "tasks", killed.run_id)
    store.finish_sync(done, status="success", records_fetched=1)
    store.start_sync(account, "tasks", killed.run_id)
    canceled = ended_run(instance, other_account, dg.DagsterRunStatus.CANCELED)
    store.start_sync(other_account, "calendar_events", canceled.run_id)
    live = create_run_for_test(instance, job_name="bitrix24_tasks_job", tags={"dagster/partition": account})
    store.start_sync(account, "tasks", live.run_id)
    killed_spool = spool(base, account, killed.run_id, age=60)
    empty_spool = spool(base, other_account, None, raw="bitrix_events", age=60)
    next_runs_spool = spool(base, account, "the-next-run", raw="bitrix_users")  # written after the end

    result = tick(instance, store, base, first.cursor)

    rows = {log.id: log for log in logs_of(store, account, killed.run_id)}
    assert [log.status for log in rows.values()].count("abandoned") == 2
    assert rows[done].status == "success" and rows[done].error is None
    for log in rows.values():
        if log.status == "abandoned":
            assert log.finished_at is not None
            assert log.error == (
                f"Bitrix24 account '{ACCOUNT_NAME}' ({account}): run {killed.run_id} stopped before this "
                "sync finished (its worker died, or Core could not be reached to record the step's "
                "failure); the next run syncs again, and if this repeats, read the run's logs for why it "
                "stopped (e.g. the worker ran out of memory)."
            )
    (other,) = logs_of(store, other_account, canceled.run_id)
    assert other.status == "abandoned" and "(the run was canceled)" in str(other.error)
    assert "'other'" in str(other.error)
    assert [log.status for log in logs_of(store, account, live.run_id)] == ["running"]
    assert not killed_spool.exists() and not empty_spool.exists()
    assert next_runs_spool.exists()
    assert (
        "closed 3 sync-log rows as abandoned and removed 2 unfinished raw files, of 2 runs"
        in str(result.skip_reason).lower()
    )

    again = tick(instance, store, base, result.cursor)  # nothing new: nothing changes
    assert "closed 0 sync-log rows" in str(again.skip_reason).lower()
    redo = tick(instance, store, base, first.cursor)  # the same events again: idempotent
    assert "closed 0 sync-log rows" in str(redo.skip_reason).lower()
    assert next_runs_spool.exists()


def test_a_run_without_an_account_removes_only_files_naming_it(
    instance: dg.DagsterInstance, store: PostgresStore, account: str, tmp_path: Path
) -> None:
    """A file without a header may be a live read of any account: only a run of that account (one
    at a time) may take it for its own."""
    first = tick(instance, store, tmp_path, None)
    run = create_run_for_test(instance, job_name="bitrix24_retention_job", status=dg.DagsterRunStatus.STARTED)
    headerless = spool(tmp_path, account, None, age=60)
    named = spool(tmp_path, account, run.run_id, raw="bitrix_users", age=60)
    instance.report_run_failed(run)
    tick(instance, store, tmp_path, first.cursor)
    assert headerless.exists() and not named.exists()


def test_a_tick_that_fails_is_done_again_by_the_next(
    instance: dg.DagsterInstance, store: PostgresStore, account: str, tmp_path: Path
) -> None:
    first = tick(instance, store, tmp_path, None)
    killed = ended_run(instance, account)
    store.start_sync(account, "tasks", killed.run_id)
    down = PostgresStore("postgresql://postgres@127.0.0.1:9/core", timeout=1)
    with pytest.raises(CoreUnavailableError):
        tick(instance, down, tmp_path, first.cursor)
    tick(instance, store, tmp_path, first.cursor)  # the daemon keeps the cursor of the last good tick
    assert [log.status for log in logs_of(store, account, killed.run_id)] == ["abandoned"]


def test_runs_of_other_code_locations_are_left_alone(
    instance: dg.DagsterInstance, store: PostgresStore, account: str, tmp_path: Path
) -> None:
    first = tick(instance, store, tmp_path, None)
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(GrpcServerCodeLocationOrigin("localhost", 4000, "other_location"), "repo"),
        "bitrix24_tasks_job",
    )
    foreign = ended_run(instance, account, remote_job_origin=origin)
    store.start_sync(account, "tasks", foreign.run_id)
    tick(instance, store, tmp_path, first.cursor)
    assert [log.status for log in logs_of(store, account, foreign.run_id)] == ["running"]


def test_the_sweep_closes_old_rows_of_finished_or_unknown_runs(
    instance: dg.DagsterInstance, store: PostgresStore, account: str, core_dsn: str, tmp_path: Path
) -> None:
    """Rows the run's own end did not reach: ended before this sensor ran, or Core was down when
    the step failed and a later try of the run succeeded."""
    base = tmp_path / "storage"
    succeeded = ended_run(instance, account, dg.DagsterRunStatus.SUCCESS)
    failed_long_ago = ended_run(instance, account)
    live = create_run_for_test(
        instance,
        job_name="bitrix24_tasks_job",
        tags={"dagster/partition": account},
        status=dg.DagsterRunStatus.STARTED,
    )
    ids = {
        "succeeded": store.start_sync(account, "tasks", succeeded.run_id),
        "failed": store.start_sync(account, "employees", failed_long_ago.run_id),
        "live": store.start_sync(account, "calendar_events", live.run_id),
        "unknown_recent": store.start_sync(account, "tasks", "run-of-another-instance"),
        "unknown_old": store.start_sync(account, "tasks", "purged-run"),
        "young": store.start_sync(account, "tasks", succeeded.run_id),
    }
    minutes = {"succeeded": 20, "failed": 20, "live": 20, "unknown_recent": 20, "unknown_old": 200}
    for key, age in minutes.items():
        query(
            core_dsn,
            "update core.integration_sync_logs set started_at = now() - make_interval(mins => %s)"
            " where id = %s returning id",
            age,
            ids[key],
        )
    old_spool = spool(base, account, failed_long_ago.run_id, age=1800)
    live_spool = spool(base, account, live.run_id, raw="bitrix_events", age=1800)

    cursor = run_health.Cursor({"FAILURE": 10**9, "CANCELED": 10**9}).dump()  # no run events: sweep only
    result = tick(instance, store, base, cursor)

    logs = {log.id: log for log in store.recent_syncs(account, limit=50)}
    status = {key: logs[sync_id].status for key, sync_id in ids.items()}
    assert status == {
        "succeeded": "abandoned",
        "failed": "abandoned",
        "live": "running",
        "unknown_recent": "running",
        "unknown_old": "abandoned",
        # same run as "succeeded" and abandoned with it: the run is over, nothing will close it
        "young": "abandoned",
    }
    assert "does not know the run" in str(logs[ids["unknown_old"]].error)
    assert "ended (success) without a step recording the end" in str(logs[ids["succeeded"]].error)
    assert not old_spool.exists() and live_spool.exists()
    assert "of 3 runs" in str(result.skip_reason)  # succeeded, failed_long_ago, purged-run
    assert json.loads(str(result.cursor))["swept_at"] > 0

    # the next tick within SWEEP_EVERY_SECONDS does not sweep again
    later = tick(instance, store, base, result.cursor)
    assert json.loads(str(later.cursor)) == json.loads(str(result.cursor))


def test_the_sensor_runs_by_default_with_its_resources(
    instance: dg.DagsterInstance, core_dsn: str, store: PostgresStore, account: str, tmp_path: Path
) -> None:
    assert bitrix24_run_health_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    resources = {
        "core": CoreResource(database_url=core_dsn),
        "raw_store": RawStoreResource(base_dir=str(tmp_path)),
    }
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        first = bitrix24_run_health_sensor(context)
    assert isinstance(first, dg.SensorResult) and first.cursor
    killed = ended_run(instance, account)
    store.start_sync(account, "tasks", killed.run_id)
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor) as context:
        bitrix24_run_health_sensor(context)
    assert [log.status for log in logs_of(store, account, killed.run_id)] == ["abandoned"]


# ------------------------------------------------------------------------------------------ launcher


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_worker_alive_tells_live_from_dead_zombie_and_reused_pids(child: subprocess.Popen[bytes]) -> None:
    started = psutil.Process(child.pid).create_time() + 0.5  # the worker reports itself just after
    assert worker_alive(WorkerPid(child.pid, started))
    assert not worker_alive(WorkerPid(child.pid, started - 3600))  # a later process got the pid
    child.send_signal(signal.SIGKILL)
    wait_for("a zombie", lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, 10)
    assert not worker_alive(WorkerPid(child.pid, started))  # killed, not yet reaped
    child.wait()
    assert not worker_alive(WorkerPid(child.pid, started))


def test_launcher_checks_local_workers_and_leaves_others_running(child: subprocess.Popen[bytes]) -> None:
    launcher = {"module": "bitrix24_assets.defs.run_launcher", "class": "LocalRunLauncher"}
    with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health

        def run_with(grpc: dict[str, Any] | None, pid: int | None) -> dg.DagsterRun:
            tags = {GRPC_INFO_TAG: json.dumps(grpc)} if grpc else {}
            run = create_run_for_test(instance, tags=tags, status=dg.DagsterRunStatus.STARTED)
            if pid is not None:
                instance.report_engine_event(
                    f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
                )
            return run

        local = run_with({"host": "localhost", "socket": "/tmp/dagster.sock"}, child.pid)
        found = worker_pid(instance, local.run_id)
        assert found is not None and found.pid == child.pid
        assert instance.run_launcher.check_run_worker_health(local).status == WorkerStatus.RUNNING
        remote = run_with({"host": "code-server.internal", "port": 4000}, child.pid)
        not_yet = run_with({"host": "127.0.0.1", "port": 4000}, None)
        child.kill()
        child.wait()
        health = instance.run_launcher.check_run_worker_health(local)
        assert health.status == WorkerStatus.NOT_FOUND and f"pid {child.pid}" in str(health.msg)
        assert instance.run_launcher.check_run_worker_health(remote).status == WorkerStatus.RUNNING
        assert instance.run_launcher.check_run_worker_health(not_yet).status == WorkerStatus.RUNNING


def test_both_instance_configs_enable_the_health_check_and_requeue_runs() -> None:
    # local: LocalRunLauncher's pid check; production: K8sRunLauncher, which checks its Jobs itself
    launchers = {"dagster.yaml": "LocalRunLauncher", "dagster.production.yaml": "K8sRunLauncher"}
    for name, launcher in launchers.items():
        config = yaml.safe_load((ROOT / "dagster_home" / name).read_text())
        assert config["run_launcher"]["class"] == launcher
        monitoring = config["run_monitoring"]
        assert monitoring["enabled"] and monitoring["poll_interval_seconds"] <= 60
        assert config["run_coordinator"]["config"]["max_user_code_failure_retries"] > 0


# ------------------------------------------------------------------------------------------ the daemon


FAULTED = ["user.get", "tasks.task.list", "calendar.event.get", "batch"]
NEVER = "0 0 1 1 *"  # (a cron tick the test will not meet)


def _dagster_home(tmp_path: Path) -> Path:
    """The project's dagster.yaml, with Dagster's own polling made fast for the test."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((ROOT / "dagster_home" / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = 1
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@contextmanager
def running_daemon(home: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run`` in its own process group (its code server and run workers join it),
    killed as a group at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _modified_before(path: Path, moment: float) -> bool:
    """Whether ``path`` was last written before ``moment`` (wall clock); False when it is gone."""
    try:
        return path.stat().st_mtime < time.time() - (time.monotonic() - moment)
    except FileNotFoundError:
        return False


def test_a_killed_run_worker_is_failed_its_sync_abandoned_and_the_next_run_starts(
    tmp_path: Path, core_dsn: str, sandbox_factory: Callable[..., Any]
) -> None:
    portal = sandbox_factory(users=20, tasks=40, events=10)
    # every read waits "forever" (~17 min at the sandbox's time scale): the runs are mid-read when killed
    portal.admin.set_faults(rate=1.0, kinds=["slow"], slow_seconds=1e6, methods=FAULTED)
    store = PostgresStore(core_dsn, max_size=2)
    account = add_account(store, portal.webhook_url)
    # two outgoing events older than the inbox's debounce: the inbox sensor's first tick requests a
    # bitrix24_employees_job and a bitrix24_tasks_job run of this account, which the per-portal
    # limit runs one after the other
    for i, event in enumerate(("ONUSERADD", "ONTASKUPDATE")):
        store.put_event(account, event, {"object_id": "1"}, f"event-{i}")
    query(core_dsn, "update core.integration_events set received_at = now() - interval '1 min' returning id")
    home = _dagster_home(tmp_path)
    storage = tmp_path / "storage"
    instance = dg.DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions("integration_accounts", [account])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORE_", "SUPABASE_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        PYTHONPATH=str(ROOT),
        CORE_DATABASE_URL=core_dsn,
        BITRIX24_TIME_SCALE="0.001",
        BITRIX24_STORAGE_DIR=str(storage),
        BITRIX24_RUN_HEALTH_INTERVAL_SECONDS="5",
        # no scheduled run may join the queue while the test runs
        **{f"BITRIX24_{name}_CRON": NEVER for name in ("SYNC", "EVENTS_SYNC", "FULL_SYNC", "RETENTION")},
    )
    log = tmp_path / "daemon.log"
    timings: dict[str, float] = {}

    def runs() -> list[dg.DagsterRun]:
        found = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": account}))
        return sorted(found, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)  # type: ignore[union-attr]

    def status(run_id: str) -> dg.DagsterRunStatus:
        return instance.get_run_by_id(run_id).status  # type: ignore[union-attr]

    def reading(run_id: str) -> WorkerPid | None:
        """The run's worker pid once it is reading (sync-log row open, spool file written)."""
        worker = worker_pid(instance, run_id)
        opened = [s for s in store.recent_syncs(account, limit=50) if s.run_id == run_id]
        if worker and opened and list(storage.glob(f"*/{account}.spool")):
            return worker
        return None

    def kill_and_check(
        run: dg.DagsterRun, phase: str, freeze_code_server: bool, queued: dg.DagsterRun | None = None
    ) -> float:
        """SIGKILL the run's worker while it reads; check what is left; when it was killed."""
        worker = wait_for(f"run {run.run_id} to be reading", lambda: reading(run.run_id), 90, log)
        if queued is not None:  # one run per portal at a time
            assert status(queued.run_id) == dg.DagsterRunStatus.QUEUED
        code_server = psutil.Process(worker.pid).ppid()
        began = time.monotonic()
        if freeze_code_server:
            os.kill(code_server, signal.SIGSTOP)
        try:
            os.kill(worker.pid, signal.SIGKILL)
            failed = lambda: status(run.run_id) == dg.DagsterRunStatus.FAILURE  # noqa: E731
            wait_for(f"{phase}: the run to fail", failed, 30, log)
            timings[f"{phase}: kill -> FAILURE"] = time.monotonic() - began
        finally:
            if freeze_code_server:
                os.kill(code_server, signal.SIGCONT)
        failure = [e.message for e in instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)]
        if freeze_code_server:  # failed by run monitoring through LocalRunLauncher, nobody else
            assert any("Detected run worker status NOT_FOUND" in (m or "") for m in failure), failure

        def abandoned() -> list[Any]:
            rows = [s for s in store.recent_syncs(account, limit=50) if s.run_id == run.run_id]
            return rows if rows and all(s.status == "abandoned" for s in rows) else []

        rows = wait_for(f"{phase}: the sync-log row to be abandoned", abandoned, 40, log)
        timings[f"{phase}: kill -> row abandoned"] = time.monotonic() - began
        for row in rows:
            assert f"({account}): run {run.run_id} stopped before this sync finished" in str(row.error)
            assert row.finished_at is not None
        # the killed read's spool is gone; the portal's next run may already be writing its own
        left = [p for p in storage.glob("*/*.spool") if _modified_before(p, began)]
        assert not left, f"the killed read's spool file is still there: {left}"
        return began

    began = time.monotonic()
    with running_daemon(home, env, log):
        first, second = wait_for("two runs", lambda: len(runs()) == 2 and runs(), 90, log)
        timings["daemon start -> runs queued"] = time.monotonic() - began
        # The hard case first: nobody reaps the dead worker, only the launcher's check can tell.
        killed = kill_and_check(first, "code server frozen", freeze_code_server=True, queued=second)
        wait_for("the queued run to start", lambda: status(second.run_id) in _STARTED, 60, log)
        timings["code server frozen: kill -> queued run starting"] = time.monotonic() - killed
        # The common case: the code server (or, with this test's 1 s polling, run monitoring,
        # whichever looks first) fails the run.
        kill_and_check(second, "code server watching", freeze_code_server=False)
    timings["whole test"] = time.monotonic() - began
    print("\n".join(f"{k}: {v:.1f} s" for k, v in timings.items()))
    store.close()


_STARTED = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
