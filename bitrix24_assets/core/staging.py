"""How rows are staged for a merge: the column order of ``core.*_input`` types, shared by backends.

Postgres COPYs tuples in this order into ``pg_temp.stage_*``; Supabase sends the same fields as JSON
objects to ``core.merge_*(p_rows jsonb)``. ``ord`` is the row's position in the batch (the merge
keeps the last row per bitrix_id).

Every row also carries ``source_hash``, its fingerprint (:func:`fingerprint`): XXH3-128 of the orjson
encoding of the staged fields in column order, keys sorted, stored as a uuid. Both backends compute
it here, so a row merged through either one is recognised as unchanged by the other.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

import orjson
import xxhash
from pydantic import BaseModel

from .models import RemovalGuard
from .rows import CalendarEventRow, CoreRow, EmployeeRow, TaskRow

__all__ = [
    "EMPLOYEES",
    "EVENTS",
    "FINGERPRINT_OPTION",
    "STAGES",
    "TASKS",
    "Stage",
    "fingerprint",
    "fingerprint_digest",
    "fingerprints",
    "guard_json",
    "json_rows",
    "last_wins",
    "live_in_batch",
    "merge_batch",
    "owners_json",
]

_dumps = orjson.dumps
_SORTED = orjson.OPT_SORT_KEYS
_xxh128 = xxhash.xxh3_128_digest
_BITRIX_ID = operator.attrgetter("bitrix_id")

RowT = TypeVar("RowT", bound=CoreRow)


class Stage:
    """One entity's staging contract: temp table, input type, columns, merge functions."""

    def __init__(
        self, entity: str, table: str, keys_table: str, type_name: str, columns: Sequence[tuple[str, str]]
    ):
        short = entity if entity != "calendar_events" else "events"
        self.entity = entity
        self.table = table
        self.keys_table = keys_table  # (bitrix_id, source_hash) of the whole batch: the plan's input
        self.type_name = type_name
        self.columns = tuple(name for name, _ in columns)
        # binary COPY types: "ord" first, the fingerprint last
        self.pg_types = ("int8", *(pg_type for _, pg_type in columns), "uuid")
        self.json_columns = frozenset(name for name, pg_type in columns if pg_type == "jsonb")
        self.values = operator.attrgetter(*self.columns)
        self.plan_function = f"core.plan_{short}"
        self.staged_function = f"core.merge_{short}_staged"
        self.rpc_function = f"merge_{short}"


EMPLOYEES = Stage(
    "employees",
    "stage_employees",
    "stage_employee_keys",
    "core.employee_input",
    [
        ("bitrix_id", "text"),
        ("email", "text"),
        ("full_name", "text"),
        ("first_name", "text"),
        ("last_name", "text"),
        ("position", "text"),
        ("phone", "text"),
        ("is_active", "bool"),
        ("departments", "jsonb"),
        ("metadata", "jsonb"),
    ],
)
TASKS = Stage(
    "tasks",
    "stage_tasks",
    "stage_task_keys",
    "core.task_input",
    [
        ("bitrix_id", "text"),
        ("title", "text"),
        ("description", "text"),
        ("status", "text"),
        ("status_code", "int4"),
        ("priority", "text"),
        ("deadline", "timestamptz"),
        ("start_date_plan", "timestamptz"),
        ("end_date_plan", "timestamptz"),
        ("closed_at", "timestamptz"),
        ("created_at_source", "timestamptz"),
        ("changed_at_source", "timestamptz"),
        ("responsible_bitrix_id", "text"),
        ("created_by_bitrix_id", "text"),
        ("group_id", "text"),
        ("metadata", "jsonb"),
    ],
)
EVENTS = Stage(
    "calendar_events",
    "stage_events",
    "stage_event_keys",
    "core.event_input",
    [
        ("bitrix_id", "text"),
        ("name", "text"),
        ("description", "text"),
        ("calendar_type", "text"),
        ("owner_bitrix_id", "text"),
        ("starts_at", "timestamptz"),
        ("ends_at", "timestamptz"),
        ("all_day", "bool"),
        ("location", "text"),
        ("created_by_bitrix_id", "text"),
        ("is_deleted", "bool"),
        ("changed_at_source", "timestamptz"),
        ("metadata", "jsonb"),
    ],
)
STAGES: dict[type[BaseModel], Stage] = {EmployeeRow: EMPLOYEES, TaskRow: TASKS, CalendarEventRow: EVENTS}


def last_wins(rows: Sequence[RowT]) -> list[RowT]:
    """One row per bitrix_id, the last one of the batch winning, in first-seen order.

    A batch without duplicates (nearly always) is recognised with a set of its ids, a few times
    cheaper than the dict a batch with duplicates needs.
    """
    ids = list(map(_BITRIX_ID, rows))
    if len(set(ids)) == len(ids):
        return list(rows)
    return list(dict(zip(ids, rows, strict=True)).values())


def merge_batch(rows: Sequence[RowT], keep_ids: Collection[str] = ()) -> list[RowT]:
    """The rows a merge writes: one per bitrix_id (:func:`last_wins`), without those whose id is in
    ``keep_ids``. A kept id is a record the read saw but a mapper rejected; its Core row keeps its
    last good values, so a row of the same id in the batch (the read contradicting itself) is not
    written either."""
    unique = last_wins(rows)
    if not keep_ids:
        return unique
    kept = set(keep_ids)
    return [row for row in unique if row.bitrix_id not in kept]


def guard_json(guard: RemovalGuard | None) -> dict[str, Any]:
    """The guard as the SQL functions take it (``p_guard``); None means the defaults."""
    return (guard or RemovalGuard()).model_dump()


def owners_json(owners: Collection[tuple[str, str]] | None) -> list[list[str]] | None:
    """Calendars a read covered as ``p_owners``: ``[[calendar_type, owner id], ...]``, sorted (so a
    request body does not depend on set order); None = every calendar."""
    if owners is None:
        return None
    return sorted([str(kind), str(owner)] for kind, owner in owners)


def live_in_batch(stage: Stage, rows: Sequence[Any]) -> int:
    """Live rows among rows about to be inserted: active employees, events not deleted, all tasks
    (the live count of a first load, which the direct COPY does not ask the server for)."""
    if stage is EMPLOYEES:
        return sum(1 for row in rows if row.is_active)
    if stage is EVENTS:
        return sum(1 for row in rows if not row.is_deleted)
    return len(rows)


def fingerprint(stage: Stage, row: CoreRow) -> bytes:
    """The row's ``source_hash`` (16 bytes, stored as uuid): XXH3-128 of its staged fields as JSON.

    Not a security hash, only change detection: 128 bits make an unnoticed change (two different
    rows of one bitrix id with one hash) practically impossible, and XXH3 costs ~0.1 µs where md5
    costs ~0.7 µs per row. Keys are sorted so that a metadata dict built in another order is still
    the same row.
    """
    return _xxh128(_dumps(stage.values(row), option=_SORTED))


# the parts of fingerprint() for loops that read a row's values once for several uses (the
# first-load COPY): fingerprint_digest(orjson.dumps(stage.values(row), option=FINGERPRINT_OPTION))
# must stay equal to fingerprint(stage, row)
FINGERPRINT_OPTION = _SORTED
fingerprint_digest = _xxh128


def fingerprints(stage: Stage, rows: Sequence[CoreRow]) -> list[bytes]:
    """:func:`fingerprint` of each row (the loop of a 100k-row merge, so locals only)."""
    values, dumps, xxh128, sort = stage.values, _dumps, _xxh128, _SORTED
    return [xxh128(dumps(values(row), option=sort)) for row in rows]


def json_rows(rows: Sequence[CoreRow], start: int = 0) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts with ``ord`` and ``source_hash`` (for the RPC path); None fields
    are left out."""
    out = []
    for i, row in enumerate(rows, start):
        d = row.model_dump(mode="json", exclude_none=True)
        d["ord"] = i
        d["source_hash"] = fingerprint(STAGES[type(row)], row).hex()
        out.append(d)
    return out
