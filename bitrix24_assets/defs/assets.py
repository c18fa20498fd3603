"""Every entity of the registry as three assets materialised by one step.

``bitrix_<raw>``    the account's records as Bitrix24 returned them (kept in the raw store);
``mapped_<entity>`` the records as Core rows; rejections by reason; a check that stops the merge
                    when too many are malformed;
``core_<entity>``   the merge into Core, its sync-log row, and the per-account checks.

The step only wires: it asks :class:`~bitrix24_assets.pipeline.EntitySync` to read, map and merge,
and yields a ``MaterializeResult`` per selected asset. No value is handed to Dagster. The step is
subsettable: ``core_<entity>`` alone merges the stored read again without calling Bitrix24 (after a
merge failed for a reason that needed a fix), ``mapped_<entity>`` alone maps it again, and a retried
step merges the read its first try stored.
"""

import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import dagster as dg

from bitrix24_assets.core import IntegrationAccount
from bitrix24_assets.defs.config import EventsConfig, SyncConfig
from bitrix24_assets.defs.failures import TRANSIENT_RETRY, as_failure
from bitrix24_assets.defs.metadata import (
    account_metadata,
    check_result,
    map_metadata,
    merge_metadata,
    read_metadata,
    table_schema,
)
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource, RawStoreResource
from bitrix24_assets.gc_pause import cyclic_gc_paused
from bitrix24_assets.pipeline import (
    ENTITIES,
    Entity,
    EntitySync,
    MapOutcome,
    Skipped,
    SyncFailed,
    SyncOptions,
)
from bitrix24_assets.pipeline.checks import checks_for

GROUP = "bitrix24"

# Fresh enough for dashboards: the hourly schedule keeps core tables within 2 h; a day without a
# successful sync is a failure. Freshness is asset-level (any account's success counts).
CORE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=2)
)

Event = dg.MaterializeResult | dg.AssetObservation


def _specs(entity: Entity) -> list[dg.AssetSpec]:
    people = [ENTITIES[e].core_key for e in entity.depends_on]
    how = (
        "Reads a calendar window (30 days back, 90 ahead by default)."
        if entity.windowed
        else "Incremental since the last successful sync unless `full` is set."
        if entity.cursor
        else "Always read in full."
    )
    return [
        dg.AssetSpec(
            entity.raw_key,
            group_name=GROUP,
            kinds={"bitrix24"},
            skippable=True,
            description=(
                f"Raw records of `{entity.bitrix_method}` for one Bitrix24 account, exactly as returned "
                f"(scope `{entity.scope}`). {how} A full read is proven complete or fails."
            ),
            metadata={"bitrix_method": entity.bitrix_method, "select": ", ".join(entity.select)},
        ),
        dg.AssetSpec(
            entity.mapped_key,
            deps=[entity.raw_key],
            group_name=GROUP,
            kinds={"python", "pydantic"},
            skippable=True,
            description=(
                f"{entity.name.capitalize()} mapped to Core rows (`{entity.row_model.__name__}`). Records "
                "that cannot be mapped are counted by reason and kept as they are in Core; when over a fifth "
                "are malformed, no merge."
            ),
        ),
        dg.AssetSpec(
            entity.core_key,
            deps=[entity.mapped_key, *people],
            group_name=GROUP,
            kinds={"postgres"},
            skippable=True,
            freshness_policy=CORE_FRESHNESS,
            description=(
                f"`{entity.table}` rows of one account, merged through the Core SDK. Reports the rows in the "
                "table and inserted / updated / unchanged / removed; a full read removes only what a read "
                "proven complete no longer has, and never more than `max_removal_share` unconfirmed."
            ),
            metadata={"dagster/table_name": entity.table},
        ),
    ]


def _check_specs(entity: Entity) -> list[dg.AssetCheckSpec]:
    """The entity's checks, partitioned like its assets: each result is stored for the account it
    checked, so the UI shows a check's state per partition (a preview feature in Dagster 1.13)."""
    checks = [
        (
            entity.mostly_valid_check,
            entity.mapped_key,
            "At most 20% of the records read are malformed; otherwise the merge is not run (the API "
            "probably changed shape).",
        ),
        *((c.name(entity.name), entity.core_key, c.description) for c in checks_for(entity.name)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(name, asset=asset, description=text, partitions_def=integration_accounts)
            for name, asset, text in checks
        ]


def entity_assets(entity: Entity) -> dg.AssetsDefinition:
    """The step of one entity (op named ``bitrix_<raw>``: run config is ``ops: {bitrix_<raw>: …}``)."""
    step_of_entity = dg.multi_asset(
        name=entity.raw_key,
        specs=_specs(entity),
        check_specs=_check_specs(entity),
        partitions_def=integration_accounts,
        retry_policy=TRANSIENT_RETRY,
        can_subset=True,
    )

    if entity.windowed:

        @step_of_entity
        def windowed_step(
            context: dg.AssetExecutionContext,
            config: EventsConfig,
            core: CoreResource,
            bitrix24: Bitrix24Resource,
            raw_store: RawStoreResource,
        ) -> Iterator[Event]:
            yield from materialize(context, entity, config.options(), core, bitrix24, raw_store)

        return windowed_step

    @step_of_entity
    def step(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        core: CoreResource,
        bitrix24: Bitrix24Resource,
        raw_store: RawStoreResource,
    ) -> Iterator[Event]:
        yield from materialize(context, entity, config.options(), core, bitrix24, raw_store)

    return step


def materialize(
    context: dg.AssetExecutionContext,
    entity: Entity,
    options: SyncOptions,
    core: CoreResource,
    bitrix24: Bitrix24Resource,
    raw_store: RawStoreResource,
) -> Iterator[Event]:
    """Materialise the selected assets of ``entity`` for the partition's account."""
    store = core.get_store()
    sync = EntitySync(
        store,
        lambda account: bitrix24.run_client(account, store),
        raw_store.get(),
        context.run_id,
        progress=_progress_logger(context),
    )
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    raw_k, mapped_k, core_k = entity.keys
    # no cyclic GC while a whole read's records and rows are alive: see bitrix24_assets/gc_pause.py
    with cyclic_gc_paused():
        try:
            yield from _materialize(context, sync, entity, options, selected, raw_k, mapped_k, core_k)
        except SyncFailed as failed:
            raise as_failure(failed) from None
        except dg.DagsterExecutionInterruptedError:
            # a canceled run: without this the step's retry policy would turn the cancel into a retry
            raise dg.Failure(
                description=f"The run was canceled while syncing {entity.name}; the next run syncs again.",
                allow_retries=False,
            ) from None


def _materialize(
    context: dg.AssetExecutionContext,
    sync: EntitySync,
    entity: Entity,
    options: SyncOptions,
    selected: set[str],
    raw_k: str,
    mapped_k: str,
    core_k: str,
) -> Iterator[Event]:
    partition = context.partition_key
    account = sync.account(partition)
    who = account_metadata(account, _company(sync, account))
    header = ending = mapping = stored = None
    sync_id: str | None = None
    if raw_k in selected:
        if core_k in selected:
            sync_id = sync.open_sync(account, entity)
        skipped = sync.availability(account, entity, sync_id)
        stored = sync.stored(account, entity, this_run=True) if context.retry_number else None
        if skipped is not None:
            yield from _skipped(sync.skip(account, skipped, sync_id), who, selected, partition)
            return
        if stored is not None:  # a retry of this step: merge what the first try read
            context.log.info(f"Retry: merging the {len(stored.records):,} records this run already read.")
            header, ending = stored.header, stored.ending
            yield dg.MaterializeResult(
                asset_key=raw_k,
                metadata={**who, "dagster/row_count": len(stored.records), "read": "this run's first try"},
            )
        else:
            read = sync.read(
                account,
                entity,
                options,
                map_while_reading=bool({mapped_k, core_k} & selected),
                sync_id=sync_id,
            )
            if isinstance(read, Skipped):
                yield from _skipped(read, who, selected, partition)
                return
            header, ending, mapping, sync_id = read.header, read.ending, read.mapping, read.sync_id
            yield dg.MaterializeResult(asset_key=raw_k, metadata={**who, **read_metadata(entity, read)})
    if not {mapped_k, core_k} & selected:
        return
    if mapping is None:
        stored = stored or sync.require_stored(account, entity)
        header, ending = stored.header, stored.ending
        mapping = sync.map_stored(account, entity, stored, options)
    if mapped_k in selected:
        yield _mapped_result(entity, mapping, who, partition)
    if core_k not in selected:
        return
    assert header is not None and ending is not None
    sync.ensure_mergeable(account, entity, mapping, sync_id)
    merged = sync.merge(account, entity, header, ending, mapping, options, sync_id)
    if merged.removal_skipped:
        context.log.warning(f"{account.name}: {merged.removal_skipped}.")
    wanted = {key.name for key in context.selected_asset_check_keys}
    yield dg.MaterializeResult(
        asset_key=core_k,
        metadata={**who, **merge_metadata(entity, merged, table_schema(sync.store, entity.table))},
        check_results=[check_result(core_k, c, who, partition) for c in merged.checks if c.name in wanted],
    )


def _mapped_result(
    entity: Entity, mapping: MapOutcome, who: dict[str, str], partition: str
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        asset_key=entity.mapped_key,
        metadata={**who, **map_metadata(entity, mapping)},
        check_results=[check_result(entity.mapped_key, mapping.check, who, partition)],
    )


def _skipped(
    skipped: Skipped, who: dict[str, str], selected: set[str], partition: str
) -> Iterator[dg.AssetObservation]:
    """Nothing was materialised; each selected asset records why (the account stays as it is)."""
    for key in sorted(selected):
        yield dg.AssetObservation(
            asset_key=key, partition=partition, metadata={**who, "skipped": skipped.reason}
        )


def _company(sync: EntitySync, account: IntegrationAccount) -> str | None:
    try:
        return sync.store.company_names().get(account.company_id)
    except Exception:  # a name for the UI is not worth failing a sync over
        return None


PROGRESS_EVERY_SECONDS = 5.0


def _progress_logger(context: dg.AssetExecutionContext) -> Callable[[Entity, Any], None]:
    """A client progress callback logging records and pages every few seconds of a long read."""
    import time

    last = [time.monotonic()]

    def log(entity: Entity, progress: object) -> None:
        if time.monotonic() - last[0] < PROGRESS_EVERY_SECONDS:
            return
        last[0] = time.monotonic()
        total = getattr(progress, "estimated_total", None)
        context.log.info(
            f"{entity.bitrix_method}: {getattr(progress, 'records', 0):,}"
            f"{f' of ~{total:,}' if total else ''} records, {getattr(progress, 'pages', 0):,} pages"
        )

    return log


ALL_ASSETS: list[dg.AssetsDefinition] = [entity_assets(entity) for entity in ENTITIES.values()]


@dg.definitions
def assets() -> dg.Definitions:
    return dg.Definitions(assets=ALL_ASSETS)
