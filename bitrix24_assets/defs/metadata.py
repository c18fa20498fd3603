"""Metadata shown in the UI: table schema, a masked preview, read statistics.

The preview is stored in Dagster's event log for as long as the run history is kept, so it shows
only a few rows, masks e-mail addresses and never includes phone numbers.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import dagster as dg
from pydantic import BaseModel

PREVIEW_ROWS = 5
PREVIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "employees": ("bitrix_id", "full_name", "email", "position", "is_active", "departments"),
    "tasks": (
        "bitrix_id",
        "title",
        "status",
        "priority",
        "responsible_bitrix_id",
        "deadline",
        "changed_at_source",
    ),
    "events": ("bitrix_id", "name", "calendar_type", "owner_bitrix_id", "starts_at", "ends_at", "is_deleted"),
}

_SQL_TYPES = {
    str: "text",
    int: "integer",
    bool: "boolean",
    datetime: "timestamptz",
    date: "date",
    dict: "jsonb",
    list: "jsonb",
}


def _sql_type(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and args:
        return _sql_type(args[0])
    if origin is typing.Literal:
        return "text"
    base = origin or annotation
    for py, sql in _SQL_TYPES.items():
        if isinstance(base, type) and issubclass(base, py):
            return sql
    return "text"


def column_schema(model: type[BaseModel]) -> dg.TableSchema:
    """The row model's columns as a Dagster table schema (what the merge writes)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, _sql_type(field.annotation), description=field.description or "")
            for name, field in model.model_fields.items()
        ]
    )


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


def preview(entity: str, rows: Sequence[BaseModel]) -> dg.MetadataValue:
    """A markdown table of the first rows, e-mails masked."""
    columns = PREVIEW_COLUMNS[entity]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:PREVIEW_ROWS]:
        values = [mask_email(getattr(row, c)) if c == "email" else getattr(row, c) for c in columns]
        lines.append("| " + " | ".join(_cell(v) for v in values) + " |")
    if not rows:
        lines.append("| " + " | ".join("" for _ in columns) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def stats_snapshot(stats: Any) -> dict[str, Any]:
    """The client's cumulative statistics now (``{}`` for a client without them)."""
    as_dict = getattr(stats, "as_dict", None)
    return as_dict() if callable(as_dict) else {}


def stats_metadata(stats: Any, since: dict[str, Any] | None = None) -> dict[str, Any]:
    """Client statistics (requests, retries, rate-limit answers and waits) as metadata; no secrets.

    ``since``: a ``stats_snapshot`` taken before this step's reads; the client is shared by the
    steps of a run, so a step reports only what happened after it.
    """
    raw = stats_snapshot(stats)
    if not raw:
        return {}
    base = since or {}
    keys = {
        "requests": "bitrix24_requests",
        "retries": "bitrix24_retries",
        "rate_limited": "rate_limited_answers",
        "bucket_wait_s": "rate_limit_wait_seconds",
        "budget_wait_s": "operating_budget_wait_seconds",
    }
    numbers = {key: value for key, value in raw.items() if isinstance(value, int | float)}
    return {out: _minus(numbers[key], base.get(key)) for key, out in keys.items() if key in numbers}


def _minus(value: int | float, base: Any) -> int | float:
    if not isinstance(base, int | float):
        return value
    return value - base if isinstance(value, int) else round(value - base, 3)
