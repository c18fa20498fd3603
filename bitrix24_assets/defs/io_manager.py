"""Where intermediate records live between assets, chosen on purpose: they are personal data.

``bitrix_*`` and ``mapped_*`` outputs hold names, e-mails and phone numbers. They are written as
JSON lines to ``$DAGSTER_HOME/storage/bitrix24/<asset>/<account id>.jsonl`` (readable, so a failed
merge can be inspected; one file per partition, overwritten by the partition's next run) and
every file older than ``retention_hours`` (default 24) is deleted whenever anything is written.
The directory must be on disk only the Dagster services can read; in a multi-container
deployment point ``BITRIX24_STORAGE_DIR`` at a volume shared by the run workers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import dagster as dg

from bitrix24_assets.defs.batches import MappedBatch, RawBatch, dump_lines, load_lines

DEFAULT_RETENTION_HOURS = 24.0


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
        key = context.asset_partition_key if context.has_asset_partitions else "__all__"
        return Path(self.base_dir, *context.asset_key.path, f"{key}.jsonl")

    def handle_output(self, context: dg.OutputContext, obj: RawBatch | MappedBatch) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8", opener=lambda p, f: os.open(p, f, 0o600)) as fh:
            for line in dump_lines(obj):
                fh.write(line)
                fh.write("\n")
        tmp.replace(path)
        self._sweep()

    def load_input(self, context: dg.InputContext) -> Any:
        path = self._path(context)
        if not path.exists():
            raise dg.Failure(
                description=(
                    f"No stored output of {context.asset_key.to_user_string()} for this account (it is "
                    f"kept {self.retention_hours:g} h); materialise the upstream asset in the same run."
                ),
                allow_retries=False,
            )
        with open(path, encoding="utf-8") as fh:
            return load_lines(fh.read().split("\n"))

    def _sweep(self) -> None:
        """Delete stored outputs older than the retention period (PII minimisation)."""
        cutoff = time.time() - self.retention_hours * 3600
        for file in Path(self.base_dir).rglob("*.jsonl"):
            try:
                if file.stat().st_mtime < cutoff:
                    file.unlink()
            except FileNotFoundError:
                continue
