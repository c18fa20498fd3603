"""Where intermediate records live between assets, chosen on purpose: they are personal data.

``bitrix_*`` and ``mapped_*`` outputs hold names, e-mails and phone numbers. They are written as
a header line plus one JSON array to ``$DAGSTER_HOME/storage/bitrix24/<asset>/<account id>.jsonl``
(readable, so a failed
merge can be inspected; one file per partition, overwritten by the partition's next run) and
every file older than ``retention_hours`` (default 24) is deleted whenever anything is written.
The directory must be on disk only the Dagster services can read; in a multi-container
deployment point ``BITRIX24_STORAGE_DIR`` at a volume shared by the run workers.

Within one run the value is also handed to the downstream step in memory (all steps of a run
share one process, ``in_process_executor``): parsing 100k records back from the file and
validating 100k rows again cost more than reading them from the portal. The file is still
written first and is the source whenever the memory copy is absent: a re-execution of the
failed steps (a new run), a step retried after its input was consumed, another executor. The
handoff holds each value until its one consumer loads it, so the raw records are released once
mapped; whatever is left is dropped when the run ends.

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
from pydantic import PrivateAttr

from bitrix24_assets.defs.batches import (
    DERIVED,
    MappedBatch,
    RawBatch,
    dump_lines,
    dump_mapped_header,
    load_lines,
    read_header,
)
from bitrix24_assets.sync import ENTITIES, map_records

DEFAULT_RETENTION_HOURS = 24.0


def default_storage_dir() -> str:
    home = os.environ.get("DAGSTER_HOME") or str(Path("dagster_home").resolve())
    return str(Path(home) / "storage" / "bitrix24")


class JsonLinesIOManager(dg.ConfigurableIOManager):
    """One JSON-lines file per (asset, partition) with a retention sweep."""

    base_dir: str
    retention_hours: float = DEFAULT_RETENTION_HOURS

    # (run id, file path) -> the value handed over in this process; see the module docstring.
    _handoff: dict[tuple[str, Path], Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_env(cls) -> JsonLinesIOManager:
        return cls(
            base_dir=os.environ.get("BITRIX24_STORAGE_DIR") or default_storage_dir(),
            retention_hours=float(
                os.environ.get("BITRIX24_STORAGE_RETENTION_HOURS", DEFAULT_RETENTION_HOURS)
            ),
        )

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        key = context.asset_partition_key if context.has_asset_partitions else "__all__"
        return Path(self.base_dir, *context.asset_key.path, f"{key}.jsonl")

    def handle_output(self, context: dg.OutputContext, obj: RawBatch | MappedBatch) -> None:
        started = time.perf_counter()
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as fh:
            if isinstance(obj, MappedBatch):
                fh.write(dump_mapped_header(obj))
            else:
                fh.writelines(dump_lines(obj))
        tmp.replace(path)
        self._sweep()
        if isinstance(obj, MappedBatch):  # raw records are mapped in their own step: nobody loads them
            self._handoff[(context.run_id, path)] = obj
        # Rides on the materialization event (no extra event): the bench's IO-manager share.
        context.add_output_metadata({"io_write_seconds": round(time.perf_counter() - started, 3)})

    def load_input(self, context: dg.InputContext) -> Any:
        started = time.perf_counter()
        path = self._path(context)
        value = self._handoff.pop((_run_id(context), path), None)
        if value is None:
            value = self._load_file(context, path)
        # The consuming asset reports this in its own metadata (an input observation would be an
        # extra event-log write per step).
        value.io_read_seconds = time.perf_counter() - started
        return value

    def _load_file(self, context: dg.InputContext, path: Path) -> RawBatch | MappedBatch:
        data = self._read(context.asset_key.to_user_string(), path)
        header = read_header(data)
        batch = self._derive_mapped(context, header, path) if header["kind"] == DERIVED else load_lines(data)
        batch.io_source = "file"
        return batch

    def _derive_mapped(self, context: dg.InputContext, header: dict[str, Any], path: Path) -> MappedBatch:
        """Map the raw records of the same sync again (see the module docstring)."""
        spec = ENTITIES[header["sync"]["entity"]]
        raw_name = f"bitrix_{spec.raw_name}"
        raw = load_lines(self._read(raw_name, path.parent.parent / raw_name / path.name))
        if raw.sync.sync_id != header["sync"]["sync_id"]:
            raise dg.Failure(
                description=(
                    f"The stored records of {raw_name} for this account belong to a later sync than "
                    f"{context.asset_key.to_user_string()}; materialise both again in one run."
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

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._handoff.clear()

    def _sweep(self) -> None:
        """Delete stored outputs older than the retention period (PII minimisation)."""
        cutoff = time.time() - self.retention_hours * 3600
        for file in Path(self.base_dir).rglob("*.jsonl"):
            try:
                if file.stat().st_mtime < cutoff:
                    file.unlink()
            except FileNotFoundError:
                continue


def _run_id(context: dg.InputContext) -> str | None:
    """The consuming run's id (None when the context has no run, e.g. a hand-built context)."""
    try:
        return context.step_context.run_id
    except Exception:
        return None
