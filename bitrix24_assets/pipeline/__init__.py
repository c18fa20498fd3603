"""Layer 3b - the entity sync: read with the client, map, merge into Core, for one account.

Between the pure mappers (``sync/``) and the Dagster code location (``defs/``): it does the I/O of
a sync (Bitrix24 client, Core store, raw-record files) with plain inputs and outcomes, and knows
nothing of Dagster, so a Dagster step, a loop over thousands of portals and a test all run the same
code. Imports ``bitrix24``, ``core`` and ``sync``; only ``defs`` imports it.

- ``entities.py``: the registry, one :class:`Entity` per synced entity (keys, read, mapper, merge,
  row model, table, cursor, job, events), with typed callables.
- ``entity_sync.py``: :class:`EntitySync` (read, map, merge, sync-log row, failures as one sentence).
- ``raw_store.py``: where the latest read of each (entity, account) is kept, privately, for a day.
- ``checks.py``: the data checks of a merge, as plain verdicts.
- ``failures.py``: exceptions -> one sentence and a retry decision.
- ``settings.py``: which entities an account's settings turn on.
"""

from bitrix24_assets.pipeline.entities import ENTITIES, Entity, entity_named
from bitrix24_assets.pipeline.entity_sync import (
    EntitySync,
    MapOutcome,
    MergeOutcome,
    ReadOutcome,
    Skipped,
    SyncOptions,
    SyncOutcome,
)
from bitrix24_assets.pipeline.failures import SyncFailed
from bitrix24_assets.pipeline.raw_store import RawStore

__all__ = [
    "ENTITIES",
    "Entity",
    "EntitySync",
    "MapOutcome",
    "MergeOutcome",
    "RawStore",
    "ReadOutcome",
    "Skipped",
    "SyncFailed",
    "SyncOptions",
    "SyncOutcome",
    "entity_named",
]
