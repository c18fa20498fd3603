"""Where intermediate records live between assets, chosen on purpose: they are personal data.

``bitrix_*`` and ``mapped_*`` outputs hold names, e-mails and phone numbers. They are written as
a header line plus one JSON array to ``$DAGSTER_HOME/storage/bitrix24/<asset>/<account id>.jsonl``
(readable, so a failed merge can be inspected; one file per partition, overwritten by the
partition's next run) and every file older than ``retention_hours`` (default 24) is deleted
whenever anything is written.
The directory must be on disk only the Dagster services can read; in a multi-container
deployment point ``BITRIX24_STORAGE_DIR`` at a volume shared by the run workers.

Within a run nothing is read back: the read, the mapping and the merge of an entity are one
step (``assets._entity_asset``) and hand their values over in memory. The files are read when a
step materialises only part of an entity (``core_<entity>`` alone after a failed merge,
``mapped_<entity>`` alone), when a retried step takes the records its first try read
(:meth:`JsonLinesIOManager.load_stored`), and by any asset of the platform's own that takes one
of these assets as an input (:meth:`JsonLinesIOManager.load_input`).

A ``bitrix_*`` file is written while its records are read (:meth:`JsonLinesIOManager.spool`,
``batches.RawSpool``: a private ``.spool`` file next to the final one, deleted if the read fails),
so that ``handle_output`` only renames it into place: writing 82 MB of task records after the
read cost 0.3-0.4 s of every cold run, and during the read the disk writes fall in the client's
waits. Any other raw batch (a retry's, a test's) is dumped by ``handle_output`` as before.

A ``mapped_*`` output is stored as a header only (sync, counts, rejections): its rows are a pure
function of the raw records of the same sync, so a new run re-derives them by mapping the raw
file again. That saves writing 100k rows (~1 s of a cold run) that only re-executions read, and
re-mapping costs about what parsing and validating the stored rows did.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import dagster as dg

from bitrix24_assets.defs.batches import (
    DERIVED,
    MappedBatch,
    RawBatch,
    RawSpool,
    SyncRun,
    dump_lines,
    dump_mapped_header,
    load_lines,
    read_header,
)
from bitrix24_assets.sync import ENTITIES, map_records

DEFAULT_RETENTION_HOURS = 24.0
# stored; being written by handle_output; being written during a read (RawSpool)
_STORED_SUFFIXES = frozenset({".jsonl", ".tmp", ".spool"})


def default_storage_dir() -> str:
    home = os.environ.get("DAGSTER_HOME") or str(Path("dagster_home").resolve())
    return str(Path(home) / "storage" / "bitrix24")


class JsonLinesIOManager(dg.ConfigurableIOManager):
    """One JSON-lines file per (asset, partition) with a retention sweep."""

    base_dir: str
    retention_hours: float = DEFAULT_RETENTION_HOURS

    @classmethod
    def from_env(cls) -> JsonLinesIOManager:
        return cls(
            base_dir=os.environ.get("BITRIX24_STORAGE_DIR") or default_storage_dir(),
            retention_hours=float(
                os.environ.get("BITRIX24_STORAGE_RETENTION_HOURS", DEFAULT_RETENTION_HOURS)
            ),
        )

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        return self._file(context.asset_key, _partition_key(context))

    def _file(self, asset_key: dg.AssetKey, partition_key: str) -> Path:
        return Path(self.base_dir, *asset_key.path, f"{partition_key}.jsonl")

    def handle_output(self, context: dg.OutputContext, obj: RawBatch | MappedBatch) -> None:
        started = time.perf_counter()
        path = self._path(context)
        if isinstance(obj, RawBatch) and obj.spool is not None:
            if not obj.spool.commit(path):  # the records are only in that file (see RawBatch)
                raise dg.Failure(
                    description=(
                        f"Bitrix24 account {_partition_key(context)}: the file of "
                        f"{context.asset_key.to_user_string()} written during the read is gone "
                        "(deleted while the run was reading?); materialise it again."
                    ),
                    allow_retries=False,
                )
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as fh:
                if isinstance(obj, MappedBatch):
                    fh.write(dump_mapped_header(obj))
                else:
                    fh.writelines(dump_lines(obj))
            tmp.replace(path)
        self._sweep()
        # Rides on the materialization event (no extra event): the bench's IO-manager share.
        context.add_output_metadata({"io_write_seconds": round(time.perf_counter() - started, 3)})

    def spool(self, asset: str, partition_key: str, sync: SyncRun) -> RawSpool:
        """A raw batch's file, written while the records are read; ``handle_output`` then only
        moves it into place (see :class:`~bitrix24_assets.defs.batches.RawSpool`)."""
        return RawSpool(self._file(dg.AssetKey.from_user_string(asset), partition_key), sync)

    def load_input(self, context: dg.InputContext) -> Any:
        return self.load_stored(context.asset_key, _partition_key(context))

    def load_stored(self, asset_key: dg.AssetKey | str, partition_key: str) -> RawBatch | MappedBatch:
        """The stored value of ``asset_key`` for one partition (account), as ``handle_output`` got it.

        Raises a one-sentence ``dg.Failure`` when the file is gone (retention) or, for a mapped
        value, when the raw file beside it belongs to another sync."""
        started = time.perf_counter()
        key = dg.AssetKey.from_user_string(asset_key) if isinstance(asset_key, str) else asset_key
        path = self._file(key, partition_key)
        data = self._read(key.to_user_string(), path)
        header = read_header(data)
        batch = self._derive_mapped(key, header, path) if header["kind"] == DERIVED else load_lines(data)
        batch.io_source = "file"
        batch.io_read_seconds = time.perf_counter() - started
        return batch

    def _derive_mapped(self, asset_key: dg.AssetKey, header: dict[str, Any], path: Path) -> MappedBatch:
        """Map the raw records of the same sync again (see the module docstring)."""
        spec = ENTITIES[header["sync"]["entity"]]
        raw_name = f"bitrix_{spec.raw_name}"
        raw = load_lines(self._read(raw_name, path.parent.parent / raw_name / path.name))
        if raw.sync.sync_id != header["sync"]["sync_id"]:
            raise dg.Failure(
                description=(
                    f"The stored records of {raw_name} for this account belong to a later sync than "
                    f"{asset_key.to_user_string()}; materialise both again in one run."
                ),
                allow_retries=False,
            )
        result = map_records(raw.records, spec.mapper)
        return MappedBatch(raw.sync, result.rows, header["records_read"], header["rejected"])

    def _read(self, asset: str, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise dg.Failure(
                description=(
                    f"No stored output of {asset} for this account (it is kept "
                    f"{self.retention_hours:g} h); materialise the upstream asset in the same run."
                ),
                allow_retries=False,
            ) from None

    def _sweep(self) -> None:
        """Delete stored outputs older than the retention period (PII minimisation), and files a
        killed process left half-written (``.tmp``, ``.spool``): they hold the same records."""
        cutoff = time.time() - self.retention_hours * 3600
        for file in Path(self.base_dir).rglob("*"):
            try:
                if file.suffix in _STORED_SUFFIXES and file.stat().st_mtime < cutoff:
                    file.unlink()
            except FileNotFoundError:
                continue


def _partition_key(context: dg.OutputContext | dg.InputContext) -> str:
    """The account id of a partitioned asset; ``__all__`` for an unpartitioned one."""
    return context.asset_partition_key if context.has_asset_partitions else "__all__"
