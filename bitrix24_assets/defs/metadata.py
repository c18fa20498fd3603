"""What the UI shows of a sync: metadata of each materialization, the Core table's real schema,
a masked preview, check results.

The preview is stored in Dagster's event log for as long as the run history is kept, so it shows
only a few rows, masks e-mail addresses and never includes phone numbers. Every materialization
and check result names the account and its company: partitions are bare UUIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dagster as dg
from pydantic import BaseModel

from bitrix24_assets.core import CoreStore, IntegrationAccount
from bitrix24_assets.pipeline import Entity, MapOutcome, MergeOutcome, ReadOutcome
from bitrix24_assets.pipeline.checks import CheckOutcome

PREVIEW_ROWS = 5


def account_metadata(account: IntegrationAccount, company: str | None = None) -> dict[str, Any]:
    """Who a partition is: its name, company and portal (the webhook's secret masked)."""
    out: dict[str, Any] = {"account": account.name, "portal": account.portal}
    if company:
        out["company"] = company
    return out


_SCHEMAS: dict[tuple[str, str], dg.TableSchema] = {}


def table_schema(store: CoreStore, table: str) -> dg.TableSchema | None:
    """The Core table's columns as the catalogue has them (None when it cannot be read); read once
    per process and table (a run is a process; the schema changes only with a migration)."""
    key = (repr(store), table)
    if key not in _SCHEMAS:
        try:
            columns = store.table_columns(table)
        except Exception:
            return None
        _SCHEMAS[key] = dg.TableSchema(columns=[dg.TableColumn(name, sql_type) for name, sql_type in columns])
    return _SCHEMAS[key]


def mask_email(value: str | None) -> str | None:
    if not value or "@" not in value:
        return value
    local, domain = value.split("@", 1)
    return f"{local[:1]}***@{domain}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value).replace("|", "\\|").replace("\n", " ")[:60]


def preview(columns: Sequence[str], rows: Sequence[BaseModel]) -> dg.MetadataValue:
    """A markdown table of the first rows, e-mails masked."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:PREVIEW_ROWS]:
        values = [mask_email(getattr(row, c)) if c == "email" else getattr(row, c) for c in columns]
        lines.append("| " + " | ".join(_cell(v) for v in values) + " |")
    if not rows:
        lines.append("| " + " | ".join("" for _ in columns) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def read_metadata(entity: Entity, read: ReadOutcome) -> dict[str, Any]:
    """``bitrix_<raw>``: what was read, how, and what it cost."""
    window = read.window
    return {
        "dagster/row_count": read.records,
        "read": "full" if read.header.full else "incremental",
        "changed_since": read.since.isoformat() if read.since else "",
        "window": f"{window.date_from:%Y-%m-%d}..{window.date_to:%Y-%m-%d}" if window else "",
        "bitrix_method": entity.bitrix_method,
        "complete": "proven" if read.ending.verified else ("window" if entity.windowed else "incremental"),
        "read_seconds": round(read.read_seconds, 3),
        **read.client_stats,
        # where the step's time went (python -m bench.e2e splits Dagster's overhead with these)
        "client_seconds": round(read.client_seconds, 3),
        "sync_log_seconds": round(read.sync_log_seconds, 3),
        "io_spool_seconds": round(read.spool_seconds, 3),  # writing the raw file, inside client_seconds
    }


def map_metadata(entity: Entity, mapping: MapOutcome) -> dict[str, Any]:
    """``mapped_<entity>``: rows, rejections by reason (the client's dropped records included),
    per-field problems, a masked preview."""
    result = mapping.result
    field_issues = dict(getattr(result, "field_issues", {}) or {})
    return {
        "dagster/row_count": len(result.rows),
        "records_read": result.records_read,
        "rejected": sum(mapping.rejected.values()),
        "rejected_by_reason": dg.MetadataValue.json(mapping.rejected),
        "field_issues": dg.MetadataValue.json(field_issues),
        "preview": preview(entity.preview_columns, result.rows),
        "map_seconds": round(mapping.seconds, 3),
        # true: map_seconds ran between the client's pages, inside bitrix_*'s client_seconds
        "mapped_while_reading": mapping.while_reading,
        "input_source": mapping.source,
    }


def merge_metadata(entity: Entity, merge: MergeOutcome, schema: dg.TableSchema | None) -> dict[str, Any]:
    """``core_<entity>``: the table as it is after the merge and what this merge changed."""
    counts = merge.counts
    out: dict[str, Any] = {
        "dagster/row_count": counts.rows_in_table,
        "dagster/table_name": entity.table,
        "live_rows": counts.live_rows,
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "removed": counts.removed,
        "full": merge.full,
        "removal_skipped": merge.removal_skipped or "",
        "merge_seconds": round(merge.merge_seconds, 3),
        "sync_log_id": merge.sync_id,
        "checks_seconds": round(merge.checks_seconds, 3),
        "sync_log_seconds": round(merge.sync_log_seconds, 3),
    }
    if schema is not None:
        out["dagster/column_schema"] = schema
    return out


def check_result(
    entity_key: str, outcome: CheckOutcome, who: dict[str, Any], partition: str
) -> dg.AssetCheckResult:
    """A plain check outcome as Dagster's, naming the partition and account it checked."""
    return dg.AssetCheckResult(
        asset_key=entity_key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.WARN if outcome.severity == "warn" else dg.AssetCheckSeverity.ERROR,
        metadata={"partition": partition, **who, **outcome.metadata},
    )
