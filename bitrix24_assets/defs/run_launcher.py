"""A run launcher that tells Dagster's run monitoring when a local run worker has died.

Dagster's ``DefaultRunLauncher`` starts each run worker as a child process of a code server, and
that code server fails the run within a second when the worker dies (``_check_for_orphaned_runs``
in ``dagster/_grpc/server.py``). Nothing else does: the launcher has no worker health check, so
run monitoring only applies ``max_runtime_seconds`` (``monitor_started_run`` in
``dagster/_daemon/monitoring/run_monitoring.py``). A worker that outlives its code server (the code
server was killed or OOM-killed, the host rebooted) and then dies leaves its run ``STARTED`` for
up to two hours, and with one run per portal at a time that portal's next runs wait in the queue
all that time.

:class:`LocalRunLauncher` is ``DefaultRunLauncher`` plus that check: the worker writes its pid in
the run's event log ("Started process for run (pid: N)"), and every ``poll_interval_seconds`` the
monitoring daemon asks whether that process still exists. A missing process, a zombie, or a
process with that pid started after the event (the pid was reused) is a dead worker: Dagster
fails the run, the queue starts the portal's next run, and ``run_health``'s sensor closes the
run's sync-log rows. It only judges workers it can see: runs whose code server is reached over a
Unix socket or a loopback address (``dagster dev``, ``dagster-daemon run`` with a
``python_module`` workspace, a code server on the same host). Any other run is reported running
and left to ``max_runtime_seconds``. Use it only where the daemon and the code servers share one
host's process table; the Docker and Kubernetes launchers check their workers themselves.

Enabled in ``dagster_home/dagster.yaml``::

    run_launcher:
      module: bitrix24_assets.defs.run_launcher
      class: LocalRunLauncher
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import dagster as dg
import psutil
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._serdes import ConfigurableClassData

__all__ = ["LocalRunLauncher", "WorkerPid", "worker_alive", "worker_pid"]

STARTED_PREFIX = "Started process for run (pid: "
# psutil derives a process's start time from the boot time, which /proc gives in whole seconds
START_TOLERANCE_SECONDS = 2.0
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", ""})


@dataclass(frozen=True)
class WorkerPid:
    """The run worker's process id and when it said it had started (epoch seconds)."""

    pid: int
    started_at: float


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> WorkerPid | None:
    """The pid the run's worker recorded in "Started process for run (pid: N)", latest first."""
    found: WorkerPid | None = None
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        message = entry.message or ""
        if message.startswith(STARTED_PREFIX):
            digits = message[len(STARTED_PREFIX) :].split(")", 1)[0]
            if digits.isascii() and digits.isdigit():
                found = WorkerPid(int(digits), entry.timestamp)
    return found


def worker_alive(worker: WorkerPid) -> bool:
    """Whether that process still runs: it exists, is no zombie and is not a later process that
    was given the same pid."""
    try:
        process = psutil.Process(worker.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= worker.started_at + START_TOLERANCE_SECONDS
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # it exists (another user's process cannot be ours to judge)
        return True


def is_local_code_server(run: dg.DagsterRun) -> bool:
    """Whether the run was launched through a code server on this host (see the module docstring)."""
    raw = run.tags.get(GRPC_INFO_TAG)
    if not raw:
        return False
    try:
        info = json.loads(raw)
    except ValueError:
        return False
    if info.get("socket"):
        return True
    host = str(info.get("host") or "")
    return host in _LOOPBACK or host in {socket.gethostname(), socket.getfqdn()}


class LocalRunLauncher(dg.DefaultRunLauncher):
    """``DefaultRunLauncher`` whose run workers' health Dagster's run monitoring can check."""

    _CACHE_LIMIT = 10_000

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(inst_data=inst_data)
        self._pids: dict[str, WorkerPid] = {}

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        # Anything not known to be dead is RUNNING: the monitor fails a run on any other status.
        if not is_local_code_server(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not checked: its code server is elsewhere")
        worker = self._pids.get(run.run_id)
        if worker is None:
            worker = worker_pid(self._instance, run.run_id)
            if worker is None:
                return CheckRunHealthResult(WorkerStatus.RUNNING, "not checked: no worker pid recorded yet")
            if len(self._pids) >= self._CACHE_LIMIT:
                self._pids.clear()
            self._pids[run.run_id] = worker
        if worker_alive(worker):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(worker.pid))
        self._pids.pop(run.run_id, None)
        return CheckRunHealthResult(
            WorkerStatus.NOT_FOUND,
            f"the run worker process (pid {worker.pid}) is gone: it was killed or crashed",
            run_worker_id=str(worker.pid),
        )
