"""What flows between the assets of one entity: the records/rows plus the sync they belong to.

The raw asset opens the sync-log row; its id travels with the data so that whichever later step
finishes (or fails) the sync closes the same row, and the core asset knows whether the read was
full (mark what disappeared) and which cursor and window it used.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from pydantic import BaseModel, TypeAdapter

from bitrix24_assets.core import CalendarEventRow, EmployeeRow, TaskRow

ROW_MODELS: dict[str, type[BaseModel]] = {
    "employees": EmployeeRow,
    "tasks": TaskRow,
    "events": CalendarEventRow,
}


# ``kind`` of a stored mapped batch whose rows are re-derived from the raw file (see below).
DERIVED = "mapped-derived"


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
    """Records exactly as Bitrix24 returned them: in ``records``, or, for a batch read by this
    step, only in the file written during the read (``spool``; see ``assets._read``)."""

    sync: SyncRun
    records: list[dict[str, Any]]
    # Set by the IO manager when loading (not stored): where the value came from and how long that
    # took, reported in the consuming asset's metadata.
    io_source: str = "memory"
    io_read_seconds: float = 0.0
    released: bool = False  # the records were dropped at the end of the step (see ``release``)
    spool: RawSpool | None = None  # the file written during the read, for the IO manager to commit

    def release(self) -> None:
        """Drop the records once the step is done with them (stored by the IO manager by then).

        Dagster keeps an output value referenced after the step from frames that only the cyclic
        garbage collector frees (its SQLite event log raises and catches an IntegrityError for
        every materialization, and the traceback holds the whole calling stack), and that
        collector is paused during steps, so without this a batch loaded from its file (a retry, a
        re-execution) would keep its 100k records past the step. A batch read by the step holds none.
        """
        self.records.clear()
        self.released = True


@dataclass
class MappedBatch:
    """Validated Core rows plus what the mapper refused."""

    sync: SyncRun
    rows: list[Any]
    records_read: int
    rejected: dict[str, int] = field(default_factory=dict)
    io_source: str = "memory"  # as in RawBatch
    io_read_seconds: float = 0.0
    released: bool = False  # as in RawBatch

    def release(self) -> None:
        """Drop the rows once the step is done with them (see ``RawBatch.release``)."""
        self.rows.clear()
        self.released = True


def dump_lines(batch: RawBatch | MappedBatch) -> list[bytes]:
    """Two newline-terminated JSON lines: a header with the sync and counts, then every record
    (or row) as one JSON array (``"layout": "array"`` in the header).

    One ``orjson.dumps`` of the whole list instead of one per record: 100k task records (82 MB)
    take ~0.08 s instead of ~0.53 s, most of what writing a cold run's raw files cost. The file
    is still one header line to read first; ``jq '.[0]'`` on the second line shows a record.
    orjson writes datetimes as RFC 3339 itself, so a row is dumped from its field values
    without pydantic's serializer."""
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    if isinstance(batch, RawBatch):
        return [raw_header(batch.sync), dumps(batch.records, option=newline)]
    header = {
        "kind": "mapped",
        "layout": "array",
        "sync": asdict(batch.sync),
        "records_read": batch.records_read,
        "rejected": batch.rejected,
    }
    return [dumps(header, option=newline), dumps([vars(row) for row in batch.rows], option=newline)]


def raw_header(sync: SyncRun) -> bytes:
    """The first line of a stored raw batch."""
    header = {"kind": "raw", "layout": "array", "sync": asdict(sync)}
    return orjson.dumps(header, option=orjson.OPT_APPEND_NEWLINE)


class RawSpool:
    """A raw batch's file written while its records are read, byte for byte what ``dump_lines``
    writes (header line, then one JSON array of the records).

    Writing 100k task records (82 MB) after the read cost 0.3-0.4 s of every cold run; written a
    chunk at a time during the read, the disk writes fall in the client's waits for the portal
    (file writes release the GIL) and the IO manager only renames the file into place
    (:meth:`commit`). The file is private (0600) from the start, and a read that fails leaves
    nothing behind (:meth:`discard`).
    """

    CHUNK = 2_000  # records per dump: orjson on a list is ~6x cheaper per record than one by one

    def __init__(self, final: Path, sync: SyncRun) -> None:
        self.final = final
        self.seconds = 0.0  # spent dumping and writing, inside the read
        self.count = 0
        self._pending: list[dict[str, Any]] = []
        self._tmp = final.with_suffix(".spool")
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fh: BinaryIO | None = open(  # noqa: SIM115 (closed by finish/discard)
            self._tmp, "wb", opener=lambda p, f: os.open(p, f, 0o600)
        )
        self._fh.write(raw_header(sync) + b"[")

    def add(self, record: dict[str, Any]) -> None:
        self._pending.append(record)
        if len(self._pending) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending or self._fh is None:
            return
        began = time.perf_counter()
        body = orjson.dumps(self._pending)[1:-1]  # the records without the list's brackets
        if self.count:
            self._fh.write(b",")
        self._fh.write(body)
        self.count += len(self._pending)
        self._pending.clear()
        self.seconds += time.perf_counter() - began

    def finish(self) -> None:
        """Write the rest and close the file (not yet in place: see :meth:`commit`)."""
        self._flush()
        if self._fh is not None:
            self._fh.write(b"]\n")
            self._fh.close()
            self._fh = None

    def commit(self, path: Path) -> bool:
        """Move the finished file to ``path``; False (and nothing moved) when it is not finished,
        is not the file for ``path``, or is gone."""
        if self._fh is not None or path != self.final or not self._tmp.exists():
            self.discard()
            return False
        self._tmp.replace(path)
        return True

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)


def dump_mapped_header(batch: MappedBatch) -> bytes:
    """The stored form of a mapped batch: one header line, no rows.

    Mapping is a pure function of the raw records, which are stored next to it (the raw asset's
    file of the same sync), so the rows are re-derived from them when a new run needs this value
    (``kind: "mapped-derived"``). Writing 100k mapped rows cost ~1 s of every cold run for a
    file read only by re-executions, and the raw records are what one inspects anyway.
    """
    header = {
        "kind": DERIVED,
        "sync": asdict(batch.sync),
        "records_read": batch.records_read,
        "rejected": batch.rejected,
        "rows": len(batch.rows),
    }
    return orjson.dumps(header, option=orjson.OPT_APPEND_NEWLINE)


def read_header(data: bytes) -> dict[str, Any]:
    """The header line of a stored batch."""
    return orjson.loads(data.partition(b"\n")[0])  # type: ignore[no-any-return]


def load_lines(data: bytes) -> RawBatch | MappedBatch:
    """The inverse of ``dump_lines`` (the file's whole content). Mapped rows are validated again:
    the file may come from an earlier run or have been edited while inspecting a failure."""
    header_line, _, body_lines = data.partition(b"\n")
    header = orjson.loads(header_line)
    sync = SyncRun(**header["sync"])
    if header.get("layout") == "array":
        body = body_lines.strip() or b"[]"
    else:  # one record per line: files written before the array layout (kept up to 24 h)
        body = b"[" + b",".join(line for line in body_lines.split(b"\n") if line) + b"]"
    if header["kind"] == "raw":
        return RawBatch(sync, orjson.loads(body))
    rows = TypeAdapter(list[ROW_MODELS[sync.entity]]).validate_json(body)  # type: ignore[valid-type]
    return MappedBatch(sync, rows, header["records_read"], header["rejected"])
