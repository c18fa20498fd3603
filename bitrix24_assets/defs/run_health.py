"""Every run accounted for: what a run that stopped half-way leaves behind is closed and removed.

A step opens its sync-log row (``running``) before it reads and closes it when it ends, and
writes the records it reads to a private ``.spool`` file that becomes the stored read when the
read ends. A run that stops without its steps ending (the worker was killed, the run was
canceled, Core was unreachable when the step tried to record its failure) leaves the row
``running`` forever and the ``.spool`` file (personal data) until the account's next read.

``bitrix24_run_health_sensor`` (running by default) cleans that up:

- **Runs that ended badly.** Every ``FAILURE`` or ``CANCELED`` of a run of this code location
  (read from the event log after a cursor, like Dagster's own run status sensors) has its
  sync-log rows still ``running`` closed as ``abandoned`` with one sentence naming the account
  and the run (``core.abandon_syncs``), and its account's leftover ``.spool``/``.tmp`` files
  removed.
- **A sweep** every few minutes for rows that slipped through: rows ``running`` for more than
  ``STALE_SECONDS`` whose run is finished whatever its status (e.g. a successful retry after a
  step could not record its failure), or whose run this instance does not know after the longest
  a run may take (``max_runtime_seconds``), and leftover files of such runs.

Everything is idempotent (only ``running`` rows change; a file goes once), so a tick that fails
half-way (Core down) is simply done again by the next one; the cursor only moves with a finished
tick. A file is removed only when it was last written before its run ended and either names that
run in its header line or has no readable header (a spool killed before its first write): the
account's next run may already be writing a new ``.spool`` at the same path.

Dead workers themselves are detected by Dagster: the code server that started a worker fails
its run within a second of the worker's death, and where that code server is gone too, run
monitoring does it with ``run_launcher.LocalRunLauncher`` (see that module and the README).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import dagster as dg
import orjson

from bitrix24_assets.core import CoreStore, SyncLog
from bitrix24_assets.defs.resources import CoreResource, RawStoreResource

__all__ = [
    "ENDED_STATUSES",
    "Cleanup",
    "abandoned_message",
    "bitrix24_run_health_sensor",
    "close_run",
    "evaluate",
    "leftover_files",
    "sweep",
]

SENSOR_NAME = "bitrix24_run_health_sensor"
INTERVAL_SECONDS = int(os.environ.get("BITRIX24_RUN_HEALTH_INTERVAL_SECONDS", "30"))
SWEEP_EVERY_SECONDS = 300
# A `running` row this old whose run has finished is closed by the sweep; younger ones are left
# to the step (or to this sensor's own handling of the run's end).
STALE_SECONDS = 600
# A `running` row whose run this instance does not know is closed after this long, unless the
# instance bounds runs more tightly (``run_monitoring.max_runtime_seconds``).
UNKNOWN_RUN_SECONDS = 7200
FETCH_LIMIT = 200
PARTITION_TAG = "dagster/partition"
# the event types of an ended run (the ones RunStatusChangeRecordsFilter accepts, among others)
_EndedEventType = Literal[dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED]
ENDED_STATUSES: dict[dg.DagsterRunStatus, _EndedEventType] = {
    dg.DagsterRunStatus.FAILURE: dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterRunStatus.CANCELED: dg.DagsterEventType.RUN_CANCELED,
}
_LEFTOVER_SUFFIXES = frozenset({".spool", ".tmp"})
_HEADER_BYTES = 64 * 1024


# ------------------------------------------------------------------------------------------ messages


def abandoned_message(who: str, run_id: str, status: dg.DagsterRunStatus | None) -> str:
    """One sentence for the sync-log row: the account, the run, what happened and what to do."""
    if status == dg.DagsterRunStatus.CANCELED:
        cause = "the run was canceled"
    elif status == dg.DagsterRunStatus.FAILURE:
        cause = "its worker died, or Core could not be reached to record the step's failure"
    elif status is None:
        cause = "this Dagster instance does not know the run (deleted, or started by another instance)"
    else:
        cause = (
            f"the run ended ({status.value.lower()}) without a step recording the end of this sync, e.g. "
            "Core was unreachable when it tried"
        )
    return (
        f"{who}: run {run_id} stopped before this sync finished ({cause}); the next run syncs again, "
        "and if this repeats, read the run's logs for why it stopped (e.g. the worker ran out of memory)."
    )


def account_label(store: CoreStore, account_id: str | None, cache: dict[str, str]) -> str:
    """``Bitrix24 account 'name' (id)``; the id alone when Core no longer has the account."""
    if not account_id:
        return "Bitrix24 account"
    if account_id not in cache:
        try:
            cache[account_id] = f"Bitrix24 account '{store.get_account(account_id).name}' ({account_id})"
        except Exception:
            cache[account_id] = f"Bitrix24 account {account_id}"
    return cache[account_id]


# ------------------------------------------------------------------------------------------ files


def leftover_files(base_dir: Path, account_id: str | None = None) -> list[Path]:
    """Files of unfinished writes (``<raw key>/<account id>.spool`` written during a read, ``.tmp``
    by older versions): of one account, or of all."""
    pattern = f"*/{account_id}.*" if account_id else "*/*"
    return sorted(p for p in base_dir.glob(pattern) if p.suffix in _LEFTOVER_SUFFIXES)


def file_run_id(path: Path) -> str | None:
    """The run named in the file's header line; None when it has none that can be read (a spool
    is killed before its first write reaches the disk)."""
    try:
        with path.open("rb") as fh:
            line = fh.readline(_HEADER_BYTES)
        header = orjson.loads(line)
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(header, dict):
        return None
    sync = header.get("sync")  # the header layout of the IO manager's files
    run_id = header.get("run_id") or (sync.get("run_id") if isinstance(sync, dict) else None)
    return run_id if isinstance(run_id, str) else None


def _modified(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except OSError:  # gone already, or not ours to delete: never block the other clean-ups
        return False
    return True


def remove_run_files(
    base_dir: Path, account_id: str | None, run_id: str, ended_at: float | None
) -> list[Path]:
    """Remove the leftover files of a run that has ended (see the module docstring for the rule).

    A file without a readable header is taken as the run's only when the run had an account (one
    run per account at a time) and ended after the file's last write."""
    removed = []
    for path in leftover_files(base_dir, account_id):
        modified = _modified(path)
        if modified is None or (ended_at is not None and modified > ended_at):
            continue  # written after the run ended: the account's next run
        owner = file_run_id(path)
        headerless_of_this_run = owner is None and account_id is not None and ended_at is not None
        if (owner == run_id or headerless_of_this_run) and _remove(path):
            removed.append(path)
    return removed


# ------------------------------------------------------------------------------------------ one run


@dataclass
class Cleanup:
    """What one evaluation closed and removed."""

    runs: list[str] = field(default_factory=list)
    rows: int = 0
    files: list[Path] = field(default_factory=list)

    def add(self, run_id: str, rows: int, files: Sequence[Path]) -> None:
        if (rows or files) and run_id not in self.runs:
            self.runs.append(run_id)
        self.rows += rows
        self.files.extend(files)

    def summary(self) -> str:
        return (
            f"closed {self.rows} sync-log rows as abandoned and removed {len(self.files)} unfinished "
            f"raw files, of {len(self.runs)} runs"
        )


def close_run(
    store: CoreStore,
    base_dir: Path,
    record: dg.RunRecord,
    cleanup: Cleanup,
    names: dict[str, str],
) -> None:
    """Close a finished run's ``running`` rows and remove its leftover files."""
    run = record.dagster_run
    account_id = run.tags.get(PARTITION_TAG)
    message = abandoned_message(account_label(store, account_id, names), run.run_id, run.status)
    rows = store.abandon_syncs(run.run_id, message)
    files = remove_run_files(base_dir, account_id, run.run_id, record.end_time)
    cleanup.add(run.run_id, rows, files)


# ------------------------------------------------------------------------------------------ the sweep


def sweep(
    instance: dg.DagsterInstance, store: CoreStore, base_dir: Path, now: float, cleanup: Cleanup
) -> None:
    """Close old ``running`` rows whose run is over or unknown, and remove such runs' files."""
    names: dict[str, str] = {}
    unknown_after = instance.run_monitoring_max_runtime_seconds or UNKNOWN_RUN_SECONDS
    stale = store.stale_syncs(STALE_SECONDS)
    files = [(p, file_run_id(p), _modified(p)) for p in leftover_files(base_dir)]
    runs = _records(instance, {log.run_id for log in stale if log.run_id} | {r for _, r, _ in files if r})
    by_run: dict[str, list[SyncLog]] = defaultdict(list)
    for log in stale:
        by_run[str(log.run_id)].append(log)
    for run_id, logs in by_run.items():
        record = runs.get(run_id)
        oldest = min(log.started_at.timestamp() for log in logs)
        if record is None and now - oldest < unknown_after:
            continue
        if record is not None and not record.dagster_run.is_finished:
            continue
        who = account_label(store, logs[0].integration_account_id, names)
        status = record.dagster_run.status if record else None
        cleanup.add(run_id, store.abandon_syncs(run_id, abandoned_message(who, run_id, status)), [])
    for path, file_run, modified in files:
        if modified is None or now - modified < STALE_SECONDS:
            continue
        record = runs.get(file_run) if file_run else None
        if file_run is None:
            if _account_busy(instance, path.stem):
                continue
        elif record is None:
            if now - modified < unknown_after:
                continue
        elif not record.dagster_run.is_finished or (record.end_time and modified > record.end_time):
            continue
        if _remove(path):
            cleanup.add(file_run or path.stem, 0, [path])


def _records(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> dict[str, dg.RunRecord]:
    ids = sorted(run_ids)
    if not ids:
        return {}
    return {r.dagster_run.run_id: r for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=ids))}


_FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _account_busy(instance: dg.DagsterInstance, account_id: str) -> bool:
    """Whether a run of the account is queued or in progress (it may own a file without a header)."""
    busy = [s for s in dg.DagsterRunStatus if s not in _FINISHED]
    return bool(
        instance.get_run_records(
            filters=dg.RunsFilter(tags={PARTITION_TAG: account_id}, statuses=busy), limit=1
        )
    )


# ------------------------------------------------------------------------------------------ the sensor


@dataclass
class Cursor:
    """Where the last finished evaluation stopped: event-log storage ids per status, last sweep."""

    after: dict[str, int] = field(default_factory=dict)
    swept_at: float = 0.0

    @classmethod
    def load(cls, text: str | None) -> Cursor | None:
        if not text:
            return None
        try:
            raw = orjson.loads(text)
            return cls({str(k): int(v) for k, v in raw["after"].items()}, float(raw["swept_at"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None

    def dump(self) -> str:
        return orjson.dumps({"after": self.after, "swept_at": self.swept_at}).decode()


def _latest_storage_id(instance: dg.DagsterInstance, event_type: dg.DagsterEventType) -> int:
    records = instance.fetch_run_status_changes(event_type, limit=1).records
    return records[0].storage_id if records else -1


def _ours(context: dg.SensorEvaluationContext, run: dg.DagsterRun) -> bool:
    """A run of this code location and repository (as Dagster's run status sensors decide)."""
    origin = run.remote_job_origin
    location = context.code_location_origin.location_name if context.code_location_origin else None
    run_location = origin.repository_origin.code_location_origin.location_name if origin else None
    run_repository = origin.repository_origin.repository_name if origin else None
    return (location, context.repository_name) == (run_location, run_repository)


def evaluate(
    context: dg.SensorEvaluationContext, store: CoreStore, base_dir: Path, now: float
) -> dg.SensorResult:
    """One tick: the runs that failed or were canceled since the cursor, then the sweep if due."""
    instance = context.instance
    cursor = Cursor.load(context.cursor)
    if cursor is None:  # first tick: from now on (the sweep covers what ended before)
        cursor = Cursor({s.value: _latest_storage_id(instance, e) for s, e in ENDED_STATUSES.items()})
    cleanup = Cleanup()
    names: dict[str, str] = {}
    for status, event_type in ENDED_STATUSES.items():
        after = cursor.after.get(status.value, -1)
        records = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type, after_storage_id=after),
            limit=FETCH_LIMIT,
            ascending=True,
        ).records
        runs = _records(instance, {r.event_log_entry.run_id for r in records})
        for event in records:
            record = runs.get(event.event_log_entry.run_id)
            if record is not None and _ours(context, record.dagster_run):
                close_run(store, base_dir, record, cleanup, names)
            cursor.after[status.value] = event.storage_id
    if now - cursor.swept_at >= SWEEP_EVERY_SECONDS:
        sweep(instance, store, base_dir, now, cleanup)
        cursor.swept_at = now
    summary = cleanup.summary()
    if cleanup.runs:
        context.log.info(f"Run health: {summary} ({', '.join(cleanup.runs)}).")
    return dg.SensorResult(skip_reason=summary.capitalize() + ".", cursor=cursor.dump())


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Closes the sync-log rows that failed or canceled runs left 'running' (as 'abandoned', "
    "with one sentence) and removes their unfinished raw-record files; sweeps old leftovers every few "
    "minutes.",
)
def bitrix24_run_health_sensor(
    context: dg.SensorEvaluationContext, core: CoreResource, raw_store: RawStoreResource
) -> dg.SensorResult:
    with core.store() as store:
        return evaluate(context, store, Path(raw_store.base_dir), time.time())
