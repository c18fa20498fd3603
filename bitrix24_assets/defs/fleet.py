"""The fleet: small portals synced in batches, one Dagster run per batch, each portal still its own
partition with its own materializations, checks and sync-log rows.

Why not backfill policies (``BackfillPolicy.single_run`` / ``multi_run`` over the dynamic
partitions): a range run records one outcome for every partition in it (one failing portal fails
all, no metadata per partition), and ranges of dynamic keys cannot follow a spread by account. So
a plain op runs :class:`~bitrix24_assets.pipeline.fleet.FleetSync` and logs, per portal, the same
``AssetMaterialization`` events (``partition`` = account id, the assets' metadata keys) and
``AssetCheckEvaluation`` results the per-portal assets write; a failed portal gets none and is
named in the run's failure.

- ``bitrix24_fleet_sensor`` (running; every ``BITRIX24_FLEET_SENSOR_SECONDS``, 30) keeps three
  cadences (:data:`PASSES`), on the schedules' crons: hourly (the hourly entities, incremental),
  6-hourly calendar events and the nightly full reconciliation. Each cron tick starts a cycle;
  accounts hold a fixed slot (hash of the id, 60 slots), and the slots are cut into as many
  windows as batches of ``BITRIX24_FLEET_MAX_PER_RUN`` (500: each run costs Dagster ~7 CPU-s to
  launch and start, so fewer, larger runs; two of them keep two cores busy) are needed, filled to
  80% so that a window rarely outgrows one run, spread over
  ``BITRIX24_FLEET_SPREAD_SECONDS`` (default: until the next tick; the nightly pass over
  ``BITRIX24_FLEET_NIGHTLY_SPREAD_SECONDS``, 4 hours). A window's batch is requested
  once it is due: no thundering herd, and each account's sync time stays put. The hourly cadence
  starts with the cycle it is deployed in; the others with their next tick (no full
  reconciliation of every portal at deploy time).
- What a portal records is ``BITRIX24_FLEET_EVENTS`` (run config ``events``): ``core`` (default) or
  ``full``, see :func:`portal_events`.
- Only small, healthy portals ride the fleet: every hourly entity's latest sync succeeded (or was
  skipped) and read at most ``BITRIX24_FLEET_MAX_ROWS`` (5,000) records. New, failing and large
  portals keep one ``bitrix24_sync_job`` run each (``bitrix24_hourly_sync``), so a 100k-task
  portal runs alone and never holds up a batch. ``BITRIX24_FLEET=off`` sends every account there.
- An account with a run queued or in flight (fleet or per-portal) is not queued again: it waits
  (the cursor keeps it) and joins a later batch of the same cycle once it is free.
- ``bitrix24_fleet_job`` re-executed (the UI's "Re-execute") skips the portals its run group
  already materialised: a retry re-runs only what failed or was not reached.
"""

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._utils.schedules import get_latest_completed_cron_tick, get_next_cron_tick
from pydantic import Field

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core import CoreStore, IntegrationAccount, SyncLog
from bitrix24_assets.defs.jobs import ALL, EVENTS_CRON, FULL_CRON, HOURLY, INCREMENTAL_CRON, SCHEDULE_TIMEZONE
from bitrix24_assets.defs.metadata import (
    account_metadata,
    map_metadata,
    merge_metadata,
    read_metadata,
    table_schema,
)
from bitrix24_assets.defs.partitions import ACCOUNTS_PARTITIONS_NAME
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource, RawStoreResource
from bitrix24_assets.defs.tags import TRIGGER_TAG
from bitrix24_assets.pipeline import ENTITIES, Entity, SyncOptions
from bitrix24_assets.pipeline.checks import CheckOutcome, checks_for
from bitrix24_assets.pipeline.fleet import FleetSync, PortalResult, describe, http_transport, slot_of

FLEET_JOB = "bitrix24_fleet_job"
FLEET_OP = "bitrix24_fleet_sync"
CYCLE_TAG = "bitrix24/fleet_cycle"
PASS_TAG = "bitrix24/fleet_pass"
BATCH_TAG = "bitrix24/fleet_batch"
SLOTS = 60
WINDOW_FILL = 0.8


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


FLEET_ENABLED = os.environ.get("BITRIX24_FLEET", "on").strip().lower() not in ("off", "0", "false", "no")
MAX_PER_RUN = max(1, int(_env_number("BITRIX24_FLEET_MAX_PER_RUN", 500)))
# New accounts arriving together (a platform's import, an app installed by many portals): more than
# ONBOARD_ALONE in one tick get their first full sync in fleet batches of ONBOARD_PER_RUN (smaller
# than MAX_PER_RUN: a new portal's size is unknown, and a large one holds its thread for minutes).
ONBOARD_ALONE = max(0, int(_env_number("BITRIX24_FLEET_ONBOARD_ALONE", 10)))
ONBOARD_PER_RUN = max(1, int(_env_number("BITRIX24_FLEET_ONBOARD_PER_RUN", 100)))
WORKERS = max(1, int(_env_number("BITRIX24_FLEET_WORKERS", 8)))  # 16 cost more CPU and took longer
MAX_ROWS = int(_env_number("BITRIX24_FLEET_MAX_ROWS", 5000))
SPREAD_SECONDS = max(0.0, _env_number("BITRIX24_FLEET_SPREAD_SECONDS", 86400.0))  # capped by the cycle
SENSOR_SECONDS = max(1, int(_env_number("BITRIX24_FLEET_SENSOR_SECONDS", 30)))
EVENTS = "full" if os.environ.get("BITRIX24_FLEET_EVENTS", "core").strip().lower() == "full" else "core"

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class FleetPass:
    """A cadence the fleet keeps: which entities, read how (``full``), on which cron; its batches
    spread over ``spread`` seconds after each tick (None: until the next tick); ``catch_up``: a
    sensor without a cursor for it starts with the cycle in progress (else with the next one)."""

    name: str
    entities: tuple[str, ...]
    full: bool
    cron: str
    spread: float | None = None
    catch_up: bool = False

    def entity_defs(self) -> list[Entity]:
        return [ENTITIES[name] for name in self.entities]


HOURLY_PASS = FleetPass("hourly", HOURLY, False, INCREMENTAL_CRON, catch_up=True)
EVENTS_PASS = FleetPass("events", ("events",), False, EVENTS_CRON)
NIGHTLY_PASS = FleetPass(
    "nightly", ALL, True, FULL_CRON, spread=_env_number("BITRIX24_FLEET_NIGHTLY_SPREAD_SECONDS", 4 * 3600)
)
PASSES = (HOURLY_PASS, EVENTS_PASS, NIGHTLY_PASS)


def hourly_entities() -> list[Entity]:
    return HOURLY_PASS.entity_defs()


# ---- who rides the fleet, and when ----------------------------------------------------------------


def fleet_refusal(
    latest: Sequence[SyncLog], entities: Sequence[Entity], max_rows: int = MAX_ROWS
) -> str | None:
    """Why an account keeps its own run (None: it rides the fleet), from its latest sync-log rows."""
    by_entity = {log.entity: log for log in latest}
    for entity in entities:
        log = by_entity.get(entity.core_entity)
        if log is None:
            return f"no {entity.name} sync yet"
        if log.status not in ("success", "skipped"):
            return f"latest {entity.name} sync is {log.status}"
        if (log.records_fetched or 0) > max_rows:
            return f"latest {entity.name} read was large ({log.records_fetched:,} records)"
    return None


def refusals(store: CoreStore, accounts: Sequence[str], entities: Sequence[Entity]) -> dict[str, str | None]:
    """:func:`fleet_refusal` of each account (one small query each, a few at a time); an account
    whose rows cannot be read keeps its own run."""

    def one(account: str) -> str | None:
        try:
            return fleet_refusal(store.latest_syncs(account), entities)
        except Exception as exc:
            return f"its sync log could not be read ({type(exc).__name__})"

    with ThreadPoolExecutor(8) as pool:
        return dict(zip(accounts, pool.map(one, accounts), strict=True))


def busy_accounts(instance: dg.DagsterInstance, *, fleet_only: bool = False) -> set[str]:
    """Accounts with a run queued or in flight: their partition, or the accounts of a fleet run
    (only the latter with ``fleet_only``: the run queue's per-partition limit cannot see those)."""
    busy: set[str] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        if run.job_name == FLEET_JOB:
            busy.update(_run_accounts(run.run_config))
        elif not fleet_only and (partition := run.tags.get("dagster/partition")):
            busy.add(partition)
    return busy


def _run_accounts(run_config: object) -> list[str]:
    try:
        accounts = run_config["ops"][FLEET_OP]["config"]["accounts"]  # type: ignore[index]
    except (KeyError, TypeError):
        return []
    return [str(a) for a in accounts] if isinstance(accounts, list) else []


@dataclass(frozen=True)
class Window:
    """Slots ``[first_slot, end_slot)`` of a cycle, due ``offset`` seconds after the cycle starts."""

    index: int
    first_slot: int
    end_slot: int
    offset: float


def windows(accounts: int, max_per_run: int = MAX_PER_RUN, spread: float = SPREAD_SECONDS) -> list[Window]:
    """As many windows as batches of 80% of ``max_per_run`` need (at most one per slot), evenly over
    the spread: a window's accounts vary around the mean (slots are hashes), and one a little over
    the limit would cost a second run."""
    return layout(window_count(accounts, max_per_run), spread)


def window_count(accounts: int, max_per_run: int = MAX_PER_RUN) -> int:
    return min(SLOTS, max(1, math.ceil(accounts / max(1.0, WINDOW_FILL * max_per_run))))


def layout(count: int, spread: float = SPREAD_SECONDS) -> list[Window]:
    """``count`` windows of the slots, the first due at once, the others evenly over the spread."""
    count = min(SLOTS, max(1, count))
    bounds = [w * SLOTS // count for w in range(count + 1)]
    return [Window(w, bounds[w], bounds[w + 1], spread * bounds[w] / SLOTS) for w in range(count)]


def batches(accounts: Iterable[str], window: Window, max_per_run: int = MAX_PER_RUN) -> list[list[str]]:
    """The window's accounts (by slot), sorted, cut into equal runs of at most ``max_per_run`` (a
    window a little over the limit makes two halves, not a full run and a run of a few)."""
    members = sorted(a for a in accounts if window.first_slot <= slot_of(a, SLOTS) < window.end_slot)
    if not members:
        return []
    size = math.ceil(len(members) / math.ceil(len(members) / max(1, max_per_run)))
    return [members[i : i + size] for i in range(0, len(members), size)]


def cycle_of(cron: str, now: float, timezone: str = SCHEDULE_TIMEZONE) -> tuple[float, float]:
    """(start, length) in seconds of the cron cycle ``now`` falls in: from the latest tick at or
    before ``now`` to the next one."""
    moment = datetime.fromtimestamp(now, UTC)
    start = get_latest_completed_cron_tick(cron, moment, timezone).timestamp()
    end = get_next_cron_tick(cron, datetime.fromtimestamp(start + 1, UTC), timezone).timestamp()
    return start, max(60.0, end - start)


# ---- the run --------------------------------------------------------------------------------------


class FleetConfig(dg.Config):
    """Which accounts one fleet run syncs (account ids; nothing secret)."""

    accounts: list[str] = Field(description="Integration account ids (partition keys) to sync.")
    entities: list[str] = Field(
        default=list(HOURLY), description=f"Entities to sync, in registry order (of {', '.join(ALL)})."
    )
    full: bool = Field(default=False, description="Full reads and reconciliation (the nightly pass).")
    workers: int = Field(default=WORKERS, ge=1, le=256, description="Portals synced at the same time.")
    events: str = Field(
        default=EVENTS,
        pattern="^(core|full)$",
        description="'core': one core_<entity> materialization per portal and entity (with the read's "
        "and mapping's figures) and the checks that did not pass; 'full': every event the per-portal "
        "assets write.",
    )


@dg.op(name=FLEET_OP, out={}, description="Sync of a batch of small portals, a thread per portal in flight.")
def fleet_sync(
    context: dg.OpExecutionContext,
    config: FleetConfig,
    core: CoreResource,
    bitrix24: Bitrix24Resource,
    raw_store: RawStoreResource,
) -> Iterator[dg.AssetMaterialization | dg.AssetObservation | dg.AssetCheckEvaluation]:
    unknown = sorted(set(config.entities) - set(ENTITIES))
    if unknown:
        raise dg.Failure(f"Unknown entities {unknown} in the fleet run's config; known: {', '.join(ALL)}.")
    entities = [ENTITIES[name] for name in ALL if name in config.entities]
    done = _done_in_run_group(context.instance, context.run_id, entities)
    accounts = [a for a in dict.fromkeys(config.accounts) if a not in done]
    if done:
        context.log.info(f"Re-execution: {len(config.accounts) - len(accounts)} portals were done before.")
    store = core.get_store()
    try:
        companies = store.company_names()
    except Exception:  # names for the UI are not worth failing a batch over
        companies = {}
    fleet = FleetSync(
        store,
        lambda account: fleet_client(bitrix24, account, store),
        raw_store.get(),
        context.run_id,
        entities=entities,
        options=SyncOptions(full=config.full),
        workers=config.workers,
    )
    failing = failing_checks(context.instance, accounts, entities) if config.events == "core" else None
    failed: list[PortalResult] = []
    synced = 0
    described: set[str] = set()  # entities whose column schema this run has recorded
    try:
        for result in fleet.run(accounts):
            if result.ok:
                synced += 1
                yield from portal_events(result, companies, store, config.events, failing, described)
            else:
                failed.append(result)
                context.log.warning(describe(result))
    except dg.DagsterExecutionInterruptedError:
        fleet.stop()
        raise
    context.log.info(f"Fleet batch: {synced} of {len(accounts)} portals synced, {len(failed)} failed.")
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(accounts)} portals failed; each is named below with its fix, "
            "and re-executing this run syncs only those: "
            + " ".join(describe(r) for r in failed[:20])
            + (f" (and {len(failed) - 20} more)" if len(failed) > 20 else ""),
            metadata={"failed_accounts": dg.MetadataValue.json([r.account_id for r in failed])},
            allow_retries=False,
        )


def fleet_client(bitrix24: Bitrix24Resource, account: IntegrationAccount, store: CoreStore) -> Bitrix24Client:
    """The resource's client for a webhook account, on :func:`http_transport` (one TLS context per
    process, not per portal); OAuth accounts get the resource's own (it saves refreshed tokens)."""
    if not account.webhook_url:
        return bitrix24.client_for(account, store)
    return Bitrix24Client(
        webhook_url=account.webhook_url,
        time_scale=bitrix24.time_scale,
        timeout=bitrix24.timeout_seconds,
        transport=http_transport(),
    )


def failing_checks(
    instance: dg.DagsterInstance, accounts: Sequence[str], entities: Sequence[Entity]
) -> set[tuple[str, str]] | None:
    """(check, partition) of the checks whose latest result for the partition is not a pass (one
    query per run), so the ``core`` level records the pass that clears them; None when unknown."""
    keys = [
        dg.AssetCheckKey(dg.AssetKey(asset), name)
        for e in entities
        for asset, name in (
            (e.mapped_key, e.mostly_valid_check),
            *((e.core_key, c.name(e.name)) for c in checks_for(e.name)),
        )
    ]
    try:
        infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=list(accounts))
    except Exception:
        return None
    return {
        (info.check_key.name, info.partition_key)
        for info in infos
        if info.partition_key and info.latest_execution_status != AssetCheckExecutionRecordStatus.SUCCEEDED
    }


def portal_events(
    result: PortalResult,
    companies: dict[str, str],
    store: CoreStore,
    level: str = "core",
    failing: set[tuple[str, str]] | None = None,
    described: set[str] | None = None,
) -> Iterator[dg.AssetMaterialization | dg.AssetObservation | dg.AssetCheckEvaluation]:
    """What this partition's assets record. ``full``: every event the per-portal assets write (raw,
    mapped and core materializations, every check). ``core``: one ``core_<entity>`` materialization
    whose metadata also carries the read's and the mapping's figures (``checks`` lists each check's
    verdict), and a check evaluation only for a check that did not pass: each event costs Dagster's
    storage ~25 ms of CPU, more than the whole sync of a small portal. A pass is recorded where the
    partition's latest result of that check was not a pass (``failing``; all passes when unknown).
    The Core table's column schema (the largest part of an event's metadata) goes with the first
    ``core_<entity>`` materialization of each entity in the run (``described`` remembers which;
    every one when it is None)."""
    account, partition = result.account, result.account_id
    if account is None:
        return
    who = account_metadata(account, companies.get(account.company_id))
    for entry in result.entities:
        outcome = entry.outcome
        if outcome is None:
            continue
        entity = entry.entity
        if outcome.skipped is not None:
            keys = entity.keys if level == "full" else (entity.core_key,)
            for key in keys:
                yield dg.AssetObservation(
                    key, partition=partition, metadata={**who, "skipped": outcome.skipped.reason}
                )
            continue
        read, merged = outcome.read, outcome.merge
        if read is None or merged is None or read.mapping is None:
            continue
        schema = table_schema(store, entity.table)
        if level == "core" and described is not None:
            if entity.name in described:
                schema = None
            described.add(entity.name)
        checks = [(entity.mapped_key, read.mapping.check), *((entity.core_key, c) for c in merged.checks)]
        if level == "full":
            yield dg.AssetMaterialization(
                entity.raw_key, partition=partition, metadata={**who, **read_metadata(entity, read)}
            )
            yield dg.AssetMaterialization(
                entity.mapped_key, partition=partition, metadata={**who, **map_metadata(entity, read.mapping)}
            )
        else:
            figures = {**read_metadata(entity, read), **map_metadata(entity, read.mapping)}
            figures.pop("preview", None)
            figures.pop("dagster/row_count", None)
            figures["records_read"] = read.records
            verdicts = {c.name: "passed" if c.passed else c.severity for _, c in checks}
            yield dg.AssetMaterialization(
                entity.core_key,
                partition=partition,
                metadata={
                    **who,
                    **figures,
                    **merge_metadata(entity, merged, schema),
                    "checks": dg.MetadataValue.json(verdicts),
                },
            )
            checks = [
                (asset, c)
                for asset, c in checks
                if not c.passed or failing is None or (c.name, partition) in failing
            ]
        if level == "full":
            yield dg.AssetMaterialization(
                entity.core_key,
                partition=partition,
                metadata={**who, **merge_metadata(entity, merged, schema)},
            )
        for asset, check in checks:
            yield _check(asset, check, who, partition)


def _check(asset: str, outcome: CheckOutcome, who: dict[str, Any], partition: str) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset),
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.WARN if outcome.severity == "warn" else dg.AssetCheckSeverity.ERROR,
        metadata={"partition": partition, **who, **outcome.metadata},
        partition=partition,
    )


def _done_in_run_group(instance: dg.DagsterInstance, run_id: str, entities: Sequence[Entity]) -> set[str]:
    """Partitions whose hourly entities were all materialised (or skipped) by an earlier run of this
    run's group (the run it re-executes, and theirs)."""
    run = instance.get_run_by_id(run_id)
    root = run and (run.root_run_id or run.tags.get("dagster/root_run_id"))
    if not root:
        return set()
    group = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/root_run_id": root}))
    earlier = [root, *(r.run_id for r in group if r.run_id not in (root, run_id))]
    wanted = {dg.AssetKey(e.core_key) for e in entities}
    seen: dict[str, set[dg.AssetKey]] = {}
    for other in earlier:
        for kind in (dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_OBSERVATION):
            for entry in instance.all_logs(other, of_type=kind):
                event = entry.dagster_event
                data = getattr(event, "event_specific_data", None) if event else None
                record = getattr(data, "materialization", None) or getattr(data, "asset_observation", None)
                if record is not None and record.partition and record.asset_key in wanted:
                    seen.setdefault(record.partition, set()).add(record.asset_key)
    return {partition for partition, keys in seen.items() if keys >= wanted}


@dg.job(
    name=FLEET_JOB,
    executor_def=dg.in_process_executor,
    tags={TRIGGER_TAG: "fleet"},
    description="A batch of small portals synced in one run (bitrix24_fleet_sensor: hourly, calendar "
    "events, nightly full); each portal keeps its partition, materializations, checks and sync-log rows.",
)
def fleet_job() -> None:
    fleet_sync()


# ---- the sensor -----------------------------------------------------------------------------------


@dg.sensor(
    name="bitrix24_fleet_sensor",
    job=fleet_job,
    minimum_interval_seconds=SENSOR_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING if FLEET_ENABLED else dg.DefaultSensorStatus.STOPPED,
    description="Small, healthy portals in batches (bitrix24_fleet_job) on the schedules' crons: hourly "
    "sync, calendar events, nightly full reconciliation; spread over each cycle by account. New, failing "
    "and large portals keep their own runs (the bitrix24_* schedules).",
)
def fleet_sensor(context: dg.SensorEvaluationContext, core: CoreResource) -> dg.SensorResult | dg.SkipReason:
    if not FLEET_ENABLED:
        return dg.SkipReason("BITRIX24_FLEET=off: every account has its own scheduled runs.")
    return plan_tick(context, core, time.time())


def plan_tick(
    context: dg.SensorEvaluationContext, core: CoreResource, now: float, passes: Sequence[FleetPass] = PASSES
) -> dg.SensorResult:
    """The batches of each pass that became due since the last tick (the cursor remembers, per pass,
    the cycle, the windows requested and the accounts that were busy when their window came)."""
    keys = context.instance.get_dynamic_partitions(ACCOUNTS_PARTITIONS_NAME)
    cursor = _cursor(context.cursor)
    busy: set[str] | None = None
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    with core.store() as store:
        for cadence in passes:
            start, length = cycle_of(cadence.cron, now)
            state = cursor.get(cadence.name)
            if state is None or state.get("cycle") != start:
                count = window_count(len(keys))
                caught = state is not None or cadence.catch_up
                state = {"cycle": start, "windows": count, "next": 0 if caught else count, "waiting": []}
            cursor[cadence.name] = state
            spread = min(SPREAD_SECONDS, length, cadence.spread if cadence.spread is not None else length)
            plan = layout(state["windows"], spread)  # a cycle keeps the windows it started with
            due = [w for w in plan[state["next"] :] if start + w.offset <= now]
            candidates = [a for w in due for batch in batches(keys, w) for a in batch] + state["waiting"]
            if not candidates:
                continue
            busy = busy_accounts(context.instance) if busy is None else busy
            ready = [a for a in dict.fromkeys(candidates) if a not in busy]
            state["waiting"] = sorted({a for a in candidates if a in busy} & set(keys))
            refused = refusals(store, ready, cadence.entity_defs())
            riding = [a for a in ready if refused.get(a, "busy") is None]
            new = _requests(cadence, start, due, riding)
            requests.extend(new)
            if due:
                state["next"] = due[-1].index + 1
            notes.append(
                f"{cadence.name}: {len(riding)} portals in {len(new)} runs, {len(state['waiting'])} waiting "
                f"for a run in flight, {len(ready) - len(riding)} on their own runs"
            )
    if not requests:
        reason = "; ".join(notes) if notes else "No batch due yet."
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=json.dumps(cursor))
    context.log.info("Fleet tick: " + "; ".join(notes) + ".")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))


def _members_key(members: Iterable[str]) -> str:
    """A short, stable name for a set of batch members (run keys of batches not tied to a window)."""
    return hashlib.sha256(",".join(members).encode()).hexdigest()[:16]


def _requests(
    cadence: FleetPass, start: float, due: Sequence[Window], riding: Sequence[str]
) -> list[dg.RunRequest]:
    """Run requests for the due windows' riders; riders that had waited for a run in flight form
    batches of their own (keyed by their members: a retried tick does not request them twice)."""
    cycle = datetime.fromtimestamp(start, UTC).isoformat()
    members = set(riding)
    placed: set[str] = set()
    groups: list[tuple[str, list[str]]] = []
    for window in due:
        for k, batch in enumerate(batches(members, window)):
            groups.append((f"{window.index}.{k}", batch))
            placed.update(batch)
    late = sorted(members - placed)
    for k in range(0, len(late), MAX_PER_RUN):
        batch = late[k : k + MAX_PER_RUN]
        groups.append((f"late.{_members_key(batch)}", batch))
    config = {"entities": list(cadence.entities), "full": cadence.full}
    return [
        dg.RunRequest(
            run_key=f"fleet-{cadence.name}:{cycle}:{label}",
            run_config={"ops": {FLEET_OP: {"config": {"accounts": batch, **config}}}},
            tags={
                PASS_TAG: cadence.name,
                CYCLE_TAG: cycle,
                BATCH_TAG: label,
                "bitrix24/fleet_size": str(len(batch)),
            },
        )
        for label, batch in groups
    ]


def _cursor(raw: str | None) -> dict[str, dict[str, Any]]:
    """Per pass: {"cycle", "windows", "next", "waiting"}; a cursor of the hourly-only sensor of
    earlier versions ({"cycle", "windows", "next"}) is the hourly pass's."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        value = {}
    if not isinstance(value, dict):
        return {}
    if {"cycle", "windows", "next"} <= set(value):
        value = {HOURLY_PASS.name: value}
    out: dict[str, dict[str, Any]] = {}
    for name, state in value.items():
        if isinstance(state, dict) and {"cycle", "windows", "next"} <= set(state):
            waiting = state.get("waiting")
            out[name] = {**state, "waiting": [str(a) for a in waiting] if isinstance(waiting, list) else []}
    return out


def onboarding_requests(accounts: Sequence[str], stamps: dict[str, str]) -> list[dg.RunRequest]:
    """First full syncs of new accounts in fleet batches (sorted, ``ONBOARD_PER_RUN`` each). A
    batch's run key names its members and their ``stamps`` (``updated_at``), so a re-activated
    account is onboarded again and a retried tick requests nothing twice."""
    ordered = sorted(accounts)
    requests = []
    for k in range(0, len(ordered), ONBOARD_PER_RUN):
        batch = ordered[k : k + ONBOARD_PER_RUN]
        config = {"accounts": batch, "entities": list(ALL), "full": True}
        key = _members_key(f"{a}:{stamps.get(a, '')}" for a in batch)
        requests.append(
            dg.RunRequest(
                job_name=FLEET_JOB,
                run_key=f"onboard-fleet:{key}",
                run_config={"ops": {FLEET_OP: {"config": config}}},
                tags={
                    TRIGGER_TAG: "onboarding",
                    PASS_TAG: "onboarding",
                    "bitrix24/fleet_size": str(len(batch)),
                },
            )
        )
    return requests


def own_run_accounts(
    instance: dg.DagsterInstance, store: CoreStore, keys: Sequence[str], cadence: FleetPass = HOURLY_PASS
) -> list[str]:
    """The accounts a schedule gives a run each: all of them with the fleet off, else those the
    fleet refuses for the cadence's entities (new, failing, large); never one with a run queued or
    in flight."""
    busy = busy_accounts(instance)
    keys = [k for k in keys if k not in busy]
    if not FLEET_ENABLED:
        return keys
    refused = refusals(store, keys, cadence.entity_defs())
    return [k for k in keys if refused.get(k) is not None]
