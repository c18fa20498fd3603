"""The asset factory: every ``sync.ENTITIES`` spec becomes three assets.

``bitrix_<raw>``    reads the account's records with the client (full or since the cursor);
``mapped_<entity>`` validates and maps them (rejections counted by reason, masked preview,
                    a blocking check that stops the merge when most records are malformed);
``core_<entity>``   merges into Core, closes the sync-log row, reports inserted / updated /
                    unchanged / removed and runs the per-account checks.
``core_tasks`` and ``core_events`` also depend on ``core_employees``: the merge resolves people
to employee ids, so employees must be there first.

``bitrix_<raw>`` and ``mapped_<entity>`` are materialised by one step (a two-output
``multi_asset``, op named ``bitrix_<raw>``): see ``_read_and_map_asset`` for why.
"""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from bitrix24_assets.core import CoreStore, IntegrationAccount
from bitrix24_assets.defs.batches import ROW_MODELS, MappedBatch, RawBatch, SyncRun
from bitrix24_assets.defs.checks import checks_for, evaluate_checks, mostly_valid
from bitrix24_assets.defs.config import EventsConfig, SyncConfig
from bitrix24_assets.defs.failures import TRANSIENT_RETRY, fail_sync
from bitrix24_assets.defs.metadata import column_schema, preview, stats_metadata, stats_snapshot
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource
from bitrix24_assets.sync import ENTITIES, EntitySpec, event_window, map_records, next_cursor
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


def _read(
    context: dg.AssetExecutionContext,
    spec: EntitySpec,
    full: bool,
    window_days: tuple[int, int] | None,
    core: CoreResource,
    bitrix24: Bitrix24Resource,
) -> dg.MaterializeResult:
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
        reader = getattr(client, plan.method)
        started = time.monotonic()
        progress = _progress_logger(context, spec, client, stats_before)
        records = list(reader(**plan.kwargs, progress=progress))
        read_seconds = time.monotonic() - started
        # No log line for the read: its figures ride on the materialization (one event-log write
        # less per step, a visible share of an hourly run that has nothing to do).
        stats = stats_metadata(getattr(client, "stats", None), stats_before)
        client_seconds = time.perf_counter() - client_began
    except Exception as exc:
        fail_sync(context, store, account, sync_id, exc, f"reading {spec.bitrix_method}")
    assert sync_id is not None
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
    return dg.MaterializeResult(
        asset_key=raw_key(spec),
        value=RawBatch(sync, records),
        metadata={
            "dagster/row_count": len(records),
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
        },
    )


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


def _read_and_map_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    """``bitrix_<raw>`` and ``mapped_<entity>`` in one step (two assets, two outputs).

    Mapping is pure and follows every read, so a step of its own only added Dagster's fixed cost
    per step (start/success/input events, the input's partition checks and data-version lookups:
    ~0.15 s on Postgres storage, a tenth of an hourly run with nothing to do). Both assets and
    the edge between them stay as they were; the raw records are still written for inspection,
    the mapped value still goes through the IO manager to ``core_<entity>``, so a failed merge is
    re-executed without reading Bitrix24 again. The op keeps the raw asset's name, so run config
    stays ``ops: {bitrix_<raw>: {config: ...}}``.
    """
    check_name = f"{mapped_key(spec)}_mostly_valid"
    # AssetOut, not AssetSpec: a spec's output is typed Nothing, and these outputs carry values.
    raw_out = dg.AssetOut(
        group_name=GROUP,
        kinds={"bitrix24"},
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
    )
    mapped_out = dg.AssetOut(
        group_name=GROUP,
        kinds={"python", "pydantic"},
        description=(
            f"{spec.entity.capitalize()} mapped to Core rows (`{ROW_MODELS[spec.entity].__name__}`). "
            "Records that cannot be mapped are counted by reason, never fail the run."
        ),
        metadata={"dagster/column_schema": column_schema(ROW_MODELS[spec.entity])},
    )
    common: dict[str, Any] = dict(
        name=raw_key(spec),
        outs={raw_key(spec): raw_out, mapped_key(spec): mapped_out},
        internal_asset_deps={mapped_key(spec): {dg.AssetKey(raw_key(spec))}},
        partitions_def=integration_accounts,
        retry_policy=TRANSIENT_RETRY,
        check_specs=[
            dg.AssetCheckSpec(
                check_name,
                asset=mapped_key(spec),
                blocking=True,
                description="At most 20% of the records read are malformed; otherwise the merge is blocked "
                "(the API probably changed shape).",
            )
        ],
    )
    if spec.windowed:

        @dg.multi_asset(**common)
        def read_window(  # type: ignore[no-untyped-def]
            context: dg.AssetExecutionContext,
            config: EventsConfig,
            core: CoreResource,
            bitrix24: Bitrix24Resource,
        ):
            days = (config.calendar_days_back, config.calendar_days_ahead)
            raw = _read(context, spec, config.full, days, core, bitrix24)
            yield raw
            yield _map(context, spec, core, raw.value, check_name)

        return read_window

    @dg.multi_asset(**common)
    def read_all(  # type: ignore[no-untyped-def]
        context: dg.AssetExecutionContext, config: SyncConfig, core: CoreResource, bitrix24: Bitrix24Resource
    ):
        raw = _read(context, spec, config.full, None, core, bitrix24)
        yield raw
        yield _map(context, spec, core, raw.value, check_name)

    return read_all


# ------------------------------------------------------------------------------------------ mapping


def _map(
    context: dg.AssetExecutionContext, spec: EntitySpec, core: CoreResource, raw: RawBatch, check_name: str
) -> dg.MaterializeResult:
    started = time.perf_counter()
    result = map_records(raw.records, spec.mapper)
    map_seconds = time.perf_counter() - started
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
    return dg.MaterializeResult(
        asset_key=mapped_key(spec),
        value=MappedBatch(raw.sync, result.rows, result.records_read, rejected),
        metadata={
            "dagster/row_count": len(result.rows),
            "records_read": result.records_read,
            "rejected": result.rejected_total,
            "rejected_by_reason": dg.MetadataValue.json(rejected),
            "preview": preview(spec.entity, result.rows),
            "map_seconds": round(map_seconds, 3),
            "input_source": raw.io_source,
            "io_read_seconds": round(raw.io_read_seconds, 3),
        },
        check_results=[
            dg.AssetCheckResult(check_name=check_name, passed=check.passed, metadata=check.metadata)
        ],
    )


# ------------------------------------------------------------------------------------------ merging


def _core_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    model = ROW_MODELS[spec.entity]

    @dg.asset(
        name=core_key(spec),
        ins={"mapped": dg.AssetIn(mapped_key(spec))},
        deps=[core_key(ENTITIES[e]) for e in spec.depends_on],
        partitions_def=integration_accounts,
        group_name=GROUP,
        kinds={"postgres"},
        retry_policy=TRANSIENT_RETRY,
        freshness_policy=CORE_FRESHNESS,
        description=(
            f"`{spec.table}` rows of one account, merged through the Core SDK. Reports inserted / "
            "updated / unchanged / removed; writes a row to `core.integration_sync_logs` with the run id."
        ),
        check_specs=[
            dg.AssetCheckSpec(c.name(spec.entity), asset=core_key(spec), description=c.description)
            for c in checks_for(spec.entity)
        ],
        metadata={"dagster/table_name": spec.table, "dagster/column_schema": column_schema(model)},
    )
    def merged(
        context: dg.AssetExecutionContext, core: CoreResource, mapped: MappedBatch
    ) -> dg.MaterializeResult:
        began = time.perf_counter()
        store = core.get_store()
        sync = mapped.sync
        account_id = context.partition_key
        sync_id: str | None = sync.sync_id
        try:
            if sync.run_id != context.run_id:  # inputs stored by an earlier run: log this merge separately
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
        check_results = evaluate_checks(store, account_id, spec.entity, mapped)
        checks_seconds = time.perf_counter() - checks_began
        return dg.MaterializeResult(
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

    return merged


def build_entity_assets(spec: EntitySpec) -> list[dg.AssetsDefinition]:
    """``bitrix_<raw>`` -> ``mapped_<entity>`` (one step) -> ``core_<entity>`` for one spec."""
    return [_read_and_map_asset(spec), _core_asset(spec)]


ALL_ASSETS: list[dg.AssetsDefinition] = [a for spec in ENTITIES.values() for a in build_entity_assets(spec)]


@dg.definitions
def assets() -> dg.Definitions:
    return dg.Definitions(assets=ALL_ASSETS)
