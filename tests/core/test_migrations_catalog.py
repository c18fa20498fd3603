"""The migrated tables as the catalogue describes them (what Dagster's column schema shows)."""

from __future__ import annotations

import psycopg
import pytest

from bitrix24_assets.core import CoreConfigurationError, PostgresStore


def test_table_columns_are_the_catalogues(core_store: PostgresStore, db: psycopg.Connection) -> None:
    columns = core_store.table_columns("core.tasks")
    expected = db.execute(
        "select column_name, udt_name from information_schema.columns"
        " where table_schema = 'core' and table_name = 'tasks' order by ordinal_position"
    ).fetchall()
    assert columns == [tuple(c) for c in expected]
    types = dict(columns)
    assert types["deadline"] == "timestamptz" and types["metadata"] == "jsonb" and types["id"] == "uuid"
    assert types["status_code"] == "int4" and types["is_deleted"] == "bool"
    assert len(columns) >= 25  # every column, not a hand-kept subset (the issue saw 16 of 25)
    assert core_store.table_columns("tasks") == columns


def test_table_columns_follow_the_table(core_store: PostgresStore, db: psycopg.Connection) -> None:
    db.execute("alter table core.calendar_events add column platform_tags text[], drop column location")
    columns = core_store.table_columns("core.calendar_events")
    assert columns[-1] == ("platform_tags", "text[]")
    assert "location" not in dict(columns)


def test_table_columns_of_a_table_outside_core_is_an_error(core_store: PostgresStore) -> None:
    for table in ("core.nope", "pg_catalog.pg_class"):
        with pytest.raises(CoreConfigurationError, match=f"table {table} does not exist in schema core"):
            core_store.table_columns(table)
