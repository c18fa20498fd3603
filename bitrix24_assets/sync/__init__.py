"""Layer 3 - pure mapping from raw Bitrix24 records to Core rows.

Everything here is a pure function of its inputs: no HTTP, no database, no Dagster, no clock.
It imports only the row models of the Core SDK (``bitrix24_assets.core.rows``), the GC-pause
helper and the standard library; it must not import ``bitrix24_assets.bitrix24`` (I/O),
``bitrix24_assets.defs`` (Dagster) or anything above it. That is what lets ``tests/sync`` run a
table of real payload variants in milliseconds.

Public surface:

- ``to_employee``, ``to_task``, ``to_event``: one record -> one row or a ``Rejection``, never an
  exception, whatever JSON the record holds; unreadable optional fields are reported in the row's
  ``metadata["field_issues"]``.
- ``map_records``: a batch of records -> ``MappingResult`` (rows, rejections by reason, duplicates,
  the IDs of rejected records, rejected records without an ID, field issues).
- ``CursorSpec``, ``next_cursor``, ``read_since``: the incremental cursor (the only cursor module).

The registry of entities (which read, mapper and merge belong together) is
``bitrix24_assets.pipeline.entities``: it holds the client's and the store's callables, which this
layer must not import.
"""

from bitrix24_assets.sync.batch import MappingResult, map_records
from bitrix24_assets.sync.cursors import CursorSpec, next_cursor, read_since
from bitrix24_assets.sync.employees import USER_SELECT, to_employee
from bitrix24_assets.sync.events import EVENT_FIELDS, EventWindow, event_window, to_event
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.tasks import TASK_SELECT, to_task

__all__ = [
    "EVENT_FIELDS",
    "TASK_SELECT",
    "USER_SELECT",
    "CursorSpec",
    "EventWindow",
    "MappingResult",
    "Rejection",
    "event_window",
    "map_records",
    "next_cursor",
    "read_since",
    "to_employee",
    "to_event",
    "to_task",
]
