"""What flows between the assets of one entity: the records/rows plus the sync they belong to.

The raw asset opens the sync-log row; its id travels with the data so that whichever later step
finishes (or fails) the sync closes the same row, and the core asset knows whether the read was
full (mark what disappeared) and which cursor and window it used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter

from bitrix24_assets.core import CalendarEventRow, EmployeeRow, TaskRow

ROW_MODELS: dict[str, type[BaseModel]] = {
    "employees": EmployeeRow,
    "tasks": TaskRow,
    "events": CalendarEventRow,
}


@dataclass(frozen=True)
class SyncRun:
    """One sync of one entity of one account, as started by the raw asset."""

    entity: str
    account_id: str
    sync_id: str
    run_id: str
    full: bool
    cursor_before: dict[str, Any] | None = None
    read_started_at: str | None = None  # portal clock (ISO) when an incremental-capable read began
    window: dict[str, str] | None = None


@dataclass
class RawBatch:
    """Records exactly as Bitrix24 returned them."""

    sync: SyncRun
    records: list[dict[str, Any]]


@dataclass
class MappedBatch:
    """Validated Core rows plus what the mapper refused."""

    sync: SyncRun
    rows: list[Any]
    records_read: int
    rejected: dict[str, int] = field(default_factory=dict)


def dump_lines(batch: RawBatch | MappedBatch) -> list[str]:
    """JSON lines: a header with the sync and counts, then one record or row per line."""
    if isinstance(batch, RawBatch):
        header = {"kind": "raw", "sync": asdict(batch.sync)}
        body = [orjson.dumps(r).decode() for r in batch.records]
    else:
        header = {
            "kind": "mapped",
            "sync": asdict(batch.sync),
            "records_read": batch.records_read,
            "rejected": batch.rejected,
        }
        body = [row.model_dump_json() for row in batch.rows]
    return [json.dumps(header), *body]


def load_lines(lines: list[str]) -> RawBatch | MappedBatch:
    """The inverse of ``dump_lines``."""
    header = json.loads(lines[0])
    sync = SyncRun(**header["sync"])
    body = "[" + ",".join(line for line in lines[1:] if line) + "]"
    if header["kind"] == "raw":
        return RawBatch(sync, orjson.loads(body))
    rows = TypeAdapter(list[ROW_MODELS[sync.entity]]).validate_json(body)  # type: ignore[valid-type]
    return MappedBatch(sync, rows, header["records_read"], header["rejected"])
