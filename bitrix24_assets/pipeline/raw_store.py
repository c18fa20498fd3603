"""Raw records of the latest read of each (entity, account), on disk, private, for a day.

Raw records are personal data (names, e-mails, phones). They are kept so that a merge can be
repeated without calling Bitrix24 (``core_<entity>`` materialised alone after a failed merge, a
retried step) and so a failure can be inspected. One file per entity and account,
``<base>/bitrix_<raw>/<account id>.jsonl``: a header line (what read it was), then one JSON array
of the records. Files are ``0600`` in ``0700`` folders, written while the records are read (a
``.spool`` file renamed into place when the read has finished, deleted when it failed), and
deleted after ``retention_hours``. In a multi-host deployment ``base_dir`` must be a volume every
run worker mounts.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

__all__ = ["RawSpool", "RawStore", "ReadEnding", "ReadHeader", "StoredRead"]

DEFAULT_RETENTION_HOURS = 24.0
# stored; being written during a read (RawSpool); half-written by an older version
_STORED_SUFFIXES = frozenset({".jsonl", ".spool", ".tmp"})


@dataclass(frozen=True)
class ReadHeader:
    """What a stored read was, as known when it started: enough to merge it again exactly."""

    entity: str
    account_id: str
    run_id: str
    full: bool
    cursor_before: dict[str, Any] | None = None
    read_started_at: str | None = None
    window: dict[str, str] | None = None

    def dump(self) -> bytes:
        return orjson.dumps(
            {"kind": "raw", "layout": "array", **asdict(self)}, option=orjson.OPT_APPEND_NEWLINE
        )

    @classmethod
    def load(cls, line: bytes) -> ReadHeader:
        raw = orjson.loads(line)
        if "sync" in raw:  # written by the IO manager of earlier versions
            raw = raw["sync"]
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ReadEnding:
    """What a read learns at its end: the calendars a windowed read covered (only their events
    may be removed), records the client received but did not yield, and its completeness proof."""

    owners: list[list[str]] | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    verified: bool = False
    counted_total: int | None = None

    @classmethod
    def load(cls, line: bytes) -> ReadEnding:
        raw = orjson.loads(line) if line.strip() else {}
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


@dataclass
class StoredRead:
    header: ReadHeader
    ending: ReadEnding
    records: list[dict[str, Any]]


class RawSpool:
    """A read's file, written while the records arrive: a chunk of records at a time, so the disk
    writes fall in the client's waits for the portal; :meth:`commit` renames it into place."""

    CHUNK = 2_000  # records per dump: orjson on a list is several times cheaper per record than one by one

    def __init__(self, final: Path, header: ReadHeader) -> None:
        self.final = final
        self.seconds = 0.0  # spent dumping and writing, inside the read
        self.count = 0
        self._pending: list[dict[str, Any]] = []
        self._tmp = final.with_suffix(".spool")
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fh: BinaryIO | None = open(  # noqa: SIM115 (closed by finish/discard)
            self._tmp, "wb", opener=lambda p, f: os.open(p, f, 0o600)
        )
        self._fh.write(header.dump() + b"[")

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

    def commit(self, ending: ReadEnding | None = None) -> None:
        """Finish the file and move it into place. What a read learns only at its end (the
        calendars it covered, what the client dropped) goes into a last line, so the records
        already written are never copied again."""
        self._flush()
        if self._fh is None:
            raise FileNotFoundError(self._tmp)
        self._fh.write(b"]\n")
        if ending is not None:
            self._fh.write(orjson.dumps(asdict(ending), option=orjson.OPT_APPEND_NEWLINE))
        self._fh.close()
        self._fh = None
        self._tmp.replace(self.final)

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)


class RawStore:
    """The files of the latest read of each (entity, account)."""

    def __init__(self, base_dir: str | Path, retention_hours: float = DEFAULT_RETENTION_HOURS) -> None:
        self.base_dir = Path(base_dir)
        self.retention_hours = retention_hours

    def __repr__(self) -> str:
        return f"RawStore({str(self.base_dir)!r}, retention_hours={self.retention_hours:g})"

    def path(self, raw_key: str, account_id: str) -> Path:
        return self.base_dir / raw_key / f"{account_id}.jsonl"

    def spool(self, raw_key: str, header: ReadHeader) -> RawSpool:
        return RawSpool(self.path(raw_key, header.account_id), header)

    def load(self, raw_key: str, account_id: str) -> StoredRead | None:
        """The stored read, or None when there is none (never read, or past retention)."""
        try:
            data = self.path(raw_key, account_id).read_bytes()
        except FileNotFoundError:
            return None
        header_line, _, rest = data.partition(b"\n")
        body, _, ending = rest.partition(b"\n")
        return StoredRead(ReadHeader.load(header_line), ReadEnding.load(ending), orjson.loads(body or b"[]"))

    def sweep(self) -> int:
        """Delete files older than the retention period, half-written ones included; how many."""
        cutoff = time.time() - self.retention_hours * 3600
        removed = 0
        if not self.base_dir.is_dir():
            return 0
        for folder in self.base_dir.iterdir():
            if not folder.is_dir():
                continue
            for file in folder.iterdir():
                try:
                    if file.suffix in _STORED_SUFFIXES and file.stat().st_mtime < cutoff:
                        file.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed
