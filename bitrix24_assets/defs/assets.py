"""The asset factory: every ``sync.ENTITIES`` spec becomes three assets.

``bitrix_<raw>``    reads the account's records with the client (full or since the cursor);
``mapped_<entity>`` validates and maps them (rejections counted by reason, masked preview,
                    a check that stops the merge when most records are malformed);
``core_<entity>``   merges into Core, closes the sync-log row, reports inserted / updated /
                    unchanged / removed and runs the per-account checks.
``core_tasks`` and ``core_events`` also depend on ``core_employees``: the merge resolves people
to employee ids, so employees must be there first.

The three assets of an entity are materialised by one step (a subsettable ``multi_asset``, op
named ``bitrix_<raw>``): see ``_entity_asset`` for why and how a single asset still runs alone.
"""

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from bitrix24_assets.core import CoreStore, IntegrationAccount
from bitrix24_assets.defs.batches import ROW_MODELS, MappedBatch, RawBatch, RawSpool, SyncRun
from bitrix24_assets.defs.checks import checks_for, evaluate_checks, mostly_valid
from bitrix24_assets.defs.config import EventsConfig, SyncConfig
from bitrix24_assets.defs.failures import TRANSIENT_RETRY, fail_sync
from bitrix24_assets.defs.io_manager import JsonLinesIOManager
from bitrix24_assets.defs.metadata import column_schema, preview, stats_metadata, stats_snapshot
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource
from bitrix24_assets.gc_pause import cyclic_gc_paused
from bitrix24_assets.sync import (
    ENTITIES,
    EntitySpec,
    MappingResult,
    event_window,
    map_records,
    next_cursor,
)
from bitrix24_assets.sync.values import iso_datetime

GROUP = "bitrix24"
PROGRESS_EVERY_SECONDS = 5.0
SYNCABLE_STATUSES = frozenset({"active", "error"})

# Fresh enough for dashboards: the hourly schedule keeps core tables within 2 h; a day without a
# successful sync is a failure. Freshness is asset-level (any account's success counts).
CORE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=2)
)


class AccountNotSyncable(Exception):
    """The partition's account exists but is not a Bitrix24 account that may be synced."""

    is_configuration_error = True


def raw_key(spec: EntitySpec) -> str:
    return f"bitrix_{spec.raw_name}"


def mapped_key(spec: EntitySpec) -> str:
    return f"mapped_{spec.entity}"


def core_key(spec: EntitySpec) -> str:
    return f"core_{spec.entity}"


# ------------------------------------------------------------------------------------------ reading


def _load_account(context: dg.AssetExecutionContext, store: CoreStore) -> IntegrationAccount:
    try:
        account = store.get_account(context.partition_key)
    except Exception as exc:
        fail_sync(context, None, None, None, exc, "loading the integration account")
    if account.provider != "bitrix24" or account.status not in SYNCABLE_STATUSES:
        fail_sync(
            context,
            None,
            account,
            None,
            AccountNotSyncable(
                f"the account is provider '{account.provider}' with status '{account.status}', so it is not "
                "synced; set provider 'bitrix24' and status 'active' in core.integration_accounts to sync it"
            ),
            "checking the account",
            mark_account=False,
        )
    return account


def _portal_now(client: Any) -> datetime:
    """The portal's clock (``server.time``), so the window follows the portal, not our host."""
    try:
        value = iso_datetime(client.call("server.time", {}))
    except Exception:
        value = None
    return value or datetime.now(UTC)


@dataclass
class _Mapping:
    """Records mapped while they were read (see ``_map_while_reading``)."""

    result: MappingResult[Any]
    seconds: float  # spent in the mapper itself, hidden in part behind the client's waits


def _read(
    context: dg.AssetExecutionContext,
    spec: EntitySpec,
    full: bool,
    window_days: tuple[int, int] | None,
    core: CoreResource,
    bitrix24: Bitrix24Resource,
    io_manager: JsonLinesIOManager,
    *,
    map_while_reading: bool,
) -> tuple[dg.MaterializeResult, _Mapping | None]:
    """The raw materialization, and the mapping when ``map_while_reading``. The raw file is
    written as the records arrive (``RawSpool``): the IO manager then only moves it into place."""
    began = time.perf_counter()
    store = core.get_store()
    account = _load_account(context, store)
    sync_id: str | None = None
    try:
        sync_id = store.start_sync(account.id, spec.sync_entity, context.run_id)
        cursor = store.get_cursor(account.id, spec.sync_entity) if spec.cursor else None
        client_began = time.perf_counter()
        client = bitrix24.run_client(account, store)
        stats_before = stats_snapshot(getattr(client, "stats", None))
        read_started_at = _portal_now(client) if spec.cursor else None
        window = None
        if spec.windowed and window_days is not None:
            window = event_window(
                _portal_now(client), account.settings, days_back=window_days[0], days_ahead=window_days[1]
            )
        plan = spec.plan(full=full, cursor=cursor, window=window)
        since = plan.kwargs.get("changed_since")
        sync = SyncRun(
            entity=spec.entity,
            account_id=account.id,
            sync_id=sync_id,
            run_id=context.run_id,
            full=plan.full,
            cursor_before=cursor,
            window=window.as_cursor() if window else None,
            read_started_at=read_started_at.isoformat() if read_started_at else None,
        )
        reader = getattr(client, plan.method)
        started = time.monotonic()
        progress = _progress_logger(context, spec, client, stats_before)
        spool = io_manager.spool(raw_key(spec), context.partition_key, sync)
        stream = reader(**plan.kwargs, progress=progress)
        try:
            arriving = _spooled(stream, spool)
            mapping = _map_while_reading(arriving, spec.mapper, spec.entity) if map_while_reading else None
            if mapping is None:
                deque(arriving, maxlen=0)  # (read to the end)
            spool.finish()
        except BaseException:
            spool.discard()
            # stop the client's lanes now, not when the (paused) collector finds the generator
            getattr(stream, "close", lambda: None)()
            raise
        read_seconds = time.monotonic() - started
        # No log line for the read: its figures ride on the materialization (one event-log write
        # less per step, a visible share of an hourly run that has nothing to do).
        stats = stats_metadata(getattr(client, "stats", None), stats_before)
        client_seconds = time.perf_counter() - client_began
    except _MapperFailed as exc:
        fail_sync(context, store, account, sync_id, exc, "mapping", mark_account=False, retry=False)
    except Exception as exc:
        fail_sync(context, store, account, sync_id, exc, f"reading {spec.bitrix_method}")
    materialization = dg.MaterializeResult(
        asset_key=raw_key(spec),
        value=RawBatch(sync, [], spool=spool),
        metadata={
            "dagster/row_count": spool.count,
            "read": "full" if plan.full else "incremental",
            "changed_since": since.isoformat() if since else "",
            "window": f"{window.date_from:%Y-%m-%d}..{window.date_to:%Y-%m-%d}" if window else "",
            "bitrix_method": spec.bitrix_method,
            "read_seconds": round(read_seconds, 3),
            "portal": account.portal,
            **stats,
            # Where the step's time went (python -m bench.e2e splits Dagster's overhead with these).
            "client_seconds": round(client_seconds, 3),
            "sync_log_seconds": round(client_began - began, 3),
            # writing the raw file, inside client_seconds (between the client's pages)
            "io_spool_seconds": round(spool.seconds, 3),
        },
    )
    return materialization, mapping


class _MapperFailed(Exception):
    """A mapper raised during the read: a bug, not bad data (bad records become rejections), so
    a retry would fail the same way and the account owner cannot fix it."""

    def __init__(self, entity: str, error: Exception) -> None:
        super().__init__(
            f"mapping {entity} records raised {type(error).__name__}: {error}; that is a bug in the "
            f"mapper (malformed records are counted as rejections, not raised): fix "
            f"bitrix24_assets/sync/{entity}.py and run again"
        )
        self.hint = "fix the mapper"


def _spooled(stream: Iterable[dict[str, Any]], spool: RawSpool) -> Iterator[dict[str, Any]]:
    """Each record as the client yields it, also written to the raw file.

    No list of the records is kept: once mapped and written, a record is dropped. Holding a
    cold run's 130k records until the end of the step cost ~190 MB of peak memory and ~0.3 s to
    free them afterwards, when nothing else could happen meanwhile."""
    add_to_file = spool.add
    for record in stream:
        add_to_file(record)
        yield record


def _map_while_reading(
    stream: Iterable[dict[str, Any]], mapper: Callable[[Any], Any], entity: str
) -> _Mapping:
    """Map records as the client yields them.

    The client reads pages in lanes (threads) that spend most of their time waiting for the
    portal, so mapping between records fills those waits: measured on 100k tasks, reading took
    3.4-3.6 s, reading then mapping 5.0-5.2 s, and mapping while reading 3.8-4.2 s.
    """
    spent = 0.0
    clock = time.perf_counter

    def timed(record: Any) -> Any:
        nonlocal spent
        began = clock()
        try:
            return mapper(record)
        except Exception as exc:
            raise _MapperFailed(entity, exc) from exc
        finally:
            spent += clock() - began

    result = map_records(stream, timed)
    return _Mapping(result, spent)


def _progress_logger(
    context: dg.AssetExecutionContext, spec: EntitySpec, client: Any, stats_before: dict[str, Any]
) -> Any:
    """A client progress callback logging records, requests and rate-limit waits every few seconds."""
    last = [time.monotonic()]

    def log(progress: Any) -> None:
        if time.monotonic() - last[0] < PROGRESS_EVERY_SECONDS:
            return
        last[0] = time.monotonic()
        stats = stats_metadata(getattr(client, "stats", None), stats_before)
        total = getattr(progress, "estimated_total", None)
        context.log.info(
            f"{spec.bitrix_method}: {progress.records:,}{f' of ~{total:,}' if total else ''} records, "
            f"{progress.pages:,} pages" + "".join(f", {k.replace('_', ' ')} {v}" for k, v in stats.items())
        )

    return log


# ------------------------------------------------------------------------------------------ the step


def _entity_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    """``bitrix_<raw>``, ``mapped_<entity>`` and ``core_<entity>`` materialised by one step.

    Three assets with their edges, one op (named ``bitrix_<raw>``, so run config stays
    ``ops: {bitrix_<raw>: {config: ...}}``). Every step of a run costs Dagster a fixed amount
    whatever it does (start/success and input events, partition checks, data-version lookups:
    0.1-0.15 s), and the read, the mapping and the merge of an entity always run together, so a
    step each only added that cost: about a sixth of an hourly run with nothing to do.

    The op is subsettable, so each asset can still be materialised on its own; an unselected
    upstream value is loaded from the IO manager's stored files instead of being computed:
    ``core_<entity>`` alone re-merges the last stored read without calling Bitrix24 (what to do
    after a failed merge), ``mapped_<entity>`` alone re-maps the stored raw records. A retry of
    the step (``TRANSIENT_RETRY``, e.g. Core was down during the merge) takes the raw records this
    run already stored instead of reading the portal again.
    """
    raw_k, mapped_k, core_k = raw_key(spec), mapped_key(spec), core_key(spec)
    check_name = f"{mapped_k}_mostly_valid"
    model = ROW_MODELS[spec.entity]
    people = [core_key(ENTITIES[e]) for e in spec.depends_on]
    # AssetOut, not AssetSpec: a spec's output is typed Nothing, and raw/mapped outputs carry values
    # (stored by the IO manager). Outputs are optional so that a subset yields only its own.
    outs = {
        raw_k: dg.AssetOut(
            group_name=GROUP,
            kinds={"bitrix24"},
            is_required=False,
            description=(
                f"Raw records of `{spec.bitrix_method}` for one Bitrix24 account, exactly as returned "
                f"(scope `{spec.scope}`). "
                + (
                    "Reads a calendar window (30 days back, 90 ahead by default)."
                    if spec.windowed
                    else "Incremental since the last successful sync unless `full` is set."
                    if spec.cursor
                    else "Always read in full."
                )
            ),
            metadata={"bitrix_method": spec.bitrix_method, "select": ", ".join(spec.select)},
        ),
        mapped_k: dg.AssetOut(
            group_name=GROUP,
            kinds={"python", "pydantic"},
            is_required=False,
            description=(
                f"{spec.entity.capitalize()} mapped to Core rows (`{model.__name__}`). Records that "
                "cannot be mapped are counted by reason; when over a fifth are malformed, no merge."
            ),
            metadata={"dagster/column_schema": column_schema(model)},
        ),
        core_k: dg.AssetOut(
            group_name=GROUP,
            kinds={"postgres"},
            is_required=False,
            dagster_type=dg.Nothing,
            freshness_policy=CORE_FRESHNESS,
            description=(
                f"`{spec.table}` rows of one account, merged through the Core SDK. Reports inserted / "
                "updated / unchanged / removed; writes a row to `core.integration_sync_logs` with the run id."
            ),
            metadata={"dagster/table_name": spec.table, "dagster/column_schema": column_schema(model)},
        ),
    }
    check_specs = [
        dg.AssetCheckSpec(
            check_name,
            asset=mapped_k,
            description="At most 20% of the records read are malformed; otherwise the merge is not run "
            "(the API probably changed shape).",
        ),
        *(
            dg.AssetCheckSpec(c.name(spec.entity), asset=core_k, description=c.description)
            for c in checks_for(spec.entity)
        ),
    ]
    common: dict[str, Any] = dict(
        name=raw_k,
        outs=outs,
        # core_<entity> also waits for the employees it resolves people to
        deps=people,
        internal_asset_deps={
            raw_k: set(),
            mapped_k: {dg.AssetKey(raw_k)},
            core_k: {dg.AssetKey(mapped_k), *(dg.AssetKey(k) for k in people)},
        },
        partitions_def=integration_accounts,
        retry_policy=TRANSIENT_RETRY,
        check_specs=check_specs,
        can_subset=True,
    )

    def sync(
        context: dg.AssetExecutionContext,
        full: bool,
        window_days: tuple[int, int] | None,
        core: CoreResource,
        bitrix24: Bitrix24Resource,
        io_manager: JsonLinesIOManager,
    ) -> Iterator[dg.MaterializeResult]:
        # No cyclic GC during the step (bitrix24_assets.gc_pause): between the read and the merge
        # Dagster and the IO manager allocate with every row alive, and the collector walked them
        # all again and again (1.3 s of a 12 s cold run). The rows (and the records of a batch
        # loaded from its file) are released before it is switched back on, so its first
        # collection has little to walk (0.1 s).
        held: list[RawBatch | MappedBatch] = []
        with cyclic_gc_paused():
            try:
                yield from step(context, full, window_days, core, bitrix24, io_manager, held)
            finally:
                for batch in held:  # stored by the IO manager by now; see RawBatch.release
                    batch.release()

    def step(
        context: dg.AssetExecutionContext,
        full: bool,
        window_days: tuple[int, int] | None,
        core: CoreResource,
        bitrix24: Bitrix24Resource,
        io_manager: JsonLinesIOManager,
        held: list[RawBatch | MappedBatch],
    ) -> Iterator[dg.MaterializeResult]:
        """Materialise the selected assets; every batch made or loaded is appended to ``held``."""
        selected = {key.to_user_string() for key in context.selected_asset_keys}
        raw: RawBatch | None = None
        mapping: _Mapping | None = None
        if raw_k in selected:
            raw = _stored_by_this_run(context, io_manager, raw_k)  # a retry: do not read again
            if raw is None:
                # mapped in the same pass whenever this step maps them anyway (almost every run)
                map_too = mapped_k in selected or core_k in selected
                read, mapping = _read(
                    context, spec, full, window_days, core, bitrix24, io_manager, map_while_reading=map_too
                )
                raw = read.value
                held.append(raw)
                yield read
            else:
                held.append(raw)
                yield dg.MaterializeResult(
                    asset_key=raw_k,
                    value=raw,
                    metadata={"dagster/row_count": len(raw.records), "read": "this run's first try"},
                )
        mapped: MappedBatch | None = None
        if mapped_k in selected or (core_k in selected and raw is not None):
            if raw is None:
                raw = io_manager.load_stored(raw_k, context.partition_key)
                held.append(raw)
            mapped, result, passed = _map(context, spec, core, raw, check_name, mapping)
            held.append(mapped)
            if mapped_k in selected:
                yield result
            if not passed and core_k in selected:
                raise dg.Failure(
                    description=(
                        f"Bitrix24 account {context.partition_key}: the merge into {spec.table} was not "
                        f"run because too many {spec.entity} records read are malformed "
                        f"({mapped.rejected}); the API probably changed shape: see {mapped_k}'s "
                        "rejected_by_reason and update the mapper in bitrix24_assets/sync/."
                    ),
                    allow_retries=False,
                )
        if core_k in selected:
            if mapped is None:
                mapped = io_manager.load_stored(mapped_k, context.partition_key)
                held.append(mapped)
            yield _merge(context, spec, core, mapped)

    if spec.windowed:

        @dg.multi_asset(**common)
        def read_window(  # type: ignore[no-untyped-def]
            context: dg.AssetExecutionContext,
            config: EventsConfig,
            core: CoreResource,
            bitrix24: Bitrix24Resource,
            io_manager: dg.ResourceParam[JsonLinesIOManager],
        ):
            days = (config.calendar_days_back, config.calendar_days_ahead)
            yield from sync(context, config.full, days, core, bitrix24, io_manager)

        return read_window

    @dg.multi_asset(**common)
    def read_all(  # type: ignore[no-untyped-def]
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        core: CoreResource,
        bitrix24: Bitrix24Resource,
        io_manager: dg.ResourceParam[JsonLinesIOManager],
    ):
        yield from sync(context, config.full, None, core, bitrix24, io_manager)

    return read_all


def _stored_by_this_run(
    context: dg.AssetExecutionContext, io_manager: JsonLinesIOManager, asset: str
) -> RawBatch | None:
    """The raw records this run already stored (only a retry of the step has any)."""
    if context.retry_number == 0:
        return None
    try:
        stored = io_manager.load_stored(asset, context.partition_key)
    except dg.Failure:
        return None
    if not isinstance(stored, RawBatch) or stored.sync.run_id != context.run_id:
        return None
    context.log.info(f"Retry: merging the {len(stored.records):,} records this run already read.")
    return stored


# ------------------------------------------------------------------------------------------ mapping


def _map(
    context: dg.AssetExecutionContext,
    spec: EntitySpec,
    core: CoreResource,
    raw: RawBatch,
    check_name: str,
    mapping: _Mapping | None,
) -> tuple[MappedBatch, dg.MaterializeResult, bool]:
    """Map the raw records (unless they were mapped while read); the batch, its materialization
    (with the check) and whether it passed."""
    while_reading = mapping is not None
    if mapping is None:
        # a batch read by this step holds its records only in its file: it is mapped while read
        assert raw.spool is None, "records read by this step are mapped while they are read"
        started = time.perf_counter()
        result = map_records(raw.records, spec.mapper)
        mapping = _Mapping(result, time.perf_counter() - started)
    result, map_seconds = mapping.result, mapping.seconds
    rejected = dict(result.rejected.most_common())
    check = mostly_valid(rejected, result.records_read)
    # Rejections are reported in the metadata (``rejected_by_reason``), not as an extra log line.
    if not check.passed:
        try:
            core.get_store().finish_sync(
                raw.sync.sync_id,
                status="failed",
                error=f"Too many malformed {spec.entity} records: {rejected}.",
            )
        except Exception as exc:
            context.log.warning(f"Could not record the failure in Core ({type(exc).__name__}).")
    mapped = MappedBatch(raw.sync, result.rows, result.records_read, rejected)
    mapped.io_source, mapped.io_read_seconds = raw.io_source, raw.io_read_seconds
    materialization = dg.MaterializeResult(
        asset_key=mapped_key(spec),
        value=mapped,
        metadata={
            "dagster/row_count": len(result.rows),
            "records_read": result.records_read,
            "rejected": result.rejected_total,
            "rejected_by_reason": dg.MetadataValue.json(rejected),
            "preview": preview(spec.entity, result.rows),
            "map_seconds": round(map_seconds, 3),
            # true: map_seconds ran between the client's pages, inside bitrix_*'s client_seconds
            "mapped_while_reading": while_reading,
            "input_source": raw.io_source,
            "io_read_seconds": round(raw.io_read_seconds, 3),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=mapped_key(spec),
                check_name=check_name,
                passed=check.passed,
                metadata=check.metadata,
            )
        ],
    )
    return mapped, materialization, bool(check.passed)


# ------------------------------------------------------------------------------------------ merging


def _merge(
    context: dg.AssetExecutionContext, spec: EntitySpec, core: CoreResource, mapped: MappedBatch
) -> dg.MaterializeResult:
    """Merge the rows, close the sync-log row, advance the cursor and run the per-account checks."""
    began = time.perf_counter()
    store = core.get_store()
    sync = mapped.sync
    account_id = context.partition_key
    sync_id: str | None = sync.sync_id
    try:
        if sync.run_id != context.run_id:  # rows read by an earlier run: log this merge separately
            sync_id = store.start_sync(account_id, spec.sync_entity, context.run_id)
        kwargs: dict[str, Any] = {"full": sync.full}
        if spec.windowed and sync.window:
            kwargs["window"] = (
                datetime.fromisoformat(sync.window["date_from"]),
                datetime.fromisoformat(sync.window["date_to"]),
            )
        started = time.monotonic()
        counts = getattr(store, spec.merge_method)(account_id, mapped.rows, **kwargs)
        merge_seconds = time.monotonic() - started
        started_at = datetime.fromisoformat(sync.read_started_at) if sync.read_started_at else None
        cursor = (
            next_cursor(spec.cursor, mapped.rows, sync.cursor_before, read_started_at=started_at)
            if spec.cursor
            else sync.window
        )
        store.finish_sync(
            sync_id, status="success", records_fetched=mapped.records_read, counts=counts, cursor=cursor
        )
        account = store.get_account(account_id)
        if account.status == "error":
            store.set_account_status(account_id, "active", None)
            context.log.info(f"Account {account_id} is healthy again (status back to active).")
    except Exception as exc:
        fail_sync(context, store, None, sync_id, exc, f"merging into {spec.table}", mark_account=False)
    checks_began = time.perf_counter()
    selected_checks = {key.name for key in context.selected_asset_check_keys}
    check_results = [
        r for r in evaluate_checks(store, account_id, spec.entity, mapped) if r.check_name in selected_checks
    ]
    checks_seconds = time.perf_counter() - checks_began
    return dg.MaterializeResult(
        asset_key=core_key(spec),
        metadata={
            "dagster/row_count": counts.inserted + counts.updated + counts.unchanged,
            "inserted": counts.inserted,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "removed": counts.removed,
            "full": sync.full,
            "merge_seconds": round(merge_seconds, 3),
            "sync_log_id": sync_id,
            "checks_seconds": round(checks_seconds, 3),
            "sync_log_seconds": round(checks_began - began - merge_seconds, 3),
            "input_source": mapped.io_source,
            "io_read_seconds": round(mapped.io_read_seconds, 3),
        },
        check_results=check_results,
    )


ALL_ASSETS: list[dg.AssetsDefinition] = [_entity_asset(spec) for spec in ENTITIES.values()]


@dg.definitions
def assets() -> dg.Definitions:
    return dg.Definitions(assets=ALL_ASSETS)
