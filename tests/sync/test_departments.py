"""``to_department``: real ``department.get`` payload variants, and the property that any JSON in
any field maps to a Core-ready row or a rejection with a fixed reason, never an exception."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitrix24_assets.core.rows import DepartmentRow
from bitrix24_assets.sync import Rejection, map_records
from bitrix24_assets.sync.departments import OWN_PARENT, to_department
from tests.sync.strategies import ID_PATTERN, ISSUE_REASONS, json_values, mutated

# docs/bitrix24-rest-api.md §6.3: the root has no PARENT, a department without a head no UF_HEAD
ROOT: dict[str, Any] = {"ID": "1", "NAME": "Company", "SORT": 500, "UF_HEAD": "1"}
CHILD: dict[str, Any] = {"ID": "2", "NAME": "Accounting", "SORT": 500, "PARENT": "1"}
FIELDS = ["ID", "NAME", "SORT", "PARENT", "UF_HEAD"]
REASONS = {"record is not an object", "missing or invalid ID"}
KNOWN_BAD = ("²", "٣", "a\x00b", "007", " 7 ", "-1", "1e3", "9" * 19, 10**30, True, [], {}, [1], {"a": 1})


def assert_row_or_rejection(result: Any) -> None:
    """A Core-ready ``DepartmentRow`` (canonical IDs, no NUL, JSON- and jsonb-safe), or a rejection
    with a fixed reason and a canonical ID."""
    if isinstance(result, Rejection):
        assert result.reason in REASONS, result.reason
        assert result.bitrix_id is None or ID_PATTERN.fullmatch(result.bitrix_id)
        return
    assert type(result) is DepartmentRow
    DepartmentRow.model_validate(result.model_dump())
    assert ID_PATTERN.fullmatch(result.bitrix_id)
    for value in (result.parent_bitrix_id, result.head_bitrix_id):
        assert value is None or ID_PATTERN.fullmatch(value), value
    assert result.parent_bitrix_id != result.bitrix_id
    assert result.name is None or "\x00" not in result.name
    assert result.sort is None or -(2**31) < result.sort < 2**31  # Postgres integer
    dumped = result.merge_json(0)
    json.dumps(dumped, allow_nan=False)
    orjson.dumps(dumped)
    issues = result.metadata.get("field_issues")
    if issues is not None:
        assert issues and all(r in ISSUE_REASONS or r == OWN_PARENT for r in issues.values()), issues


def test_documented_records_map_to_a_tree() -> None:
    root, child = to_department(ROOT), to_department(CHILD)
    assert root == DepartmentRow(
        bitrix_id="1", name="Company", sort=500, head_bitrix_id="1", metadata={"bitrix_id": "1"}
    )
    assert isinstance(child, DepartmentRow)
    assert (child.parent_bitrix_id, child.head_bitrix_id) == ("1", None)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({**CHILD, "ID": 2, "PARENT": 1, "SORT": "100"}, ("2", "1", None, 100)),  # ints and digit text
        ({**CHILD, "PARENT": "0", "UF_HEAD": ""}, ("2", None, None, 500)),  # "0" / "" mean none
        ({**CHILD, "PARENT": [], "UF_HEAD": False}, ("2", None, None, 500)),  # PHP empties
        ({**CHILD, "ID": "002"}, ("2", "1", None, 500)),  # canonical ID text
    ],
)
def test_php_spellings_are_read(record: dict[str, Any], expected: tuple[Any, ...]) -> None:
    row = to_department(record)
    assert isinstance(row, DepartmentRow)
    assert (row.bitrix_id, row.parent_bitrix_id, row.head_bitrix_id, row.sort) == expected
    assert "field_issues" not in row.metadata


@pytest.mark.parametrize(
    ("record", "issues"),
    [
        ({**CHILD, "PARENT": "²"}, {"PARENT": "not an ID"}),
        ({**CHILD, "PARENT": "2"}, {"PARENT": OWN_PARENT}),  # its own parent: a loop, stored as a root
        ({**CHILD, "UF_HEAD": {"ID": 5}}, {"UF_HEAD": "not an ID"}),
        ({**CHILD, "SORT": "high"}, {"SORT": "not a number"}),
        ({**CHILD, "SORT": 10**12}, {"SORT": "number out of range"}),
        ({**CHILD, "NAME": "Acc\x00ounting"}, {"NAME": "NUL bytes removed"}),
        ({**CHILD, "NAME": ["x"]}, {"NAME": "not a text"}),
    ],
)
def test_unreadable_fields_are_field_issues_not_rejections(
    record: dict[str, Any], issues: dict[str, str]
) -> None:
    """A department with a bad PARENT is still a department: rejecting it would not remove it
    (its ID counts as seen) but would leave its row stale, so it is kept with NULL there, noted."""
    row = to_department(record)
    assert isinstance(row, DepartmentRow)
    assert row.metadata["field_issues"] == issues
    assert_row_or_rejection(row)


@pytest.mark.parametrize(
    ("record", "rejection"),
    [
        ("not a record", Rejection("record is not an object")),
        ([CHILD], Rejection("record is not an object")),
        ({**CHILD, "ID": "²"}, Rejection("missing or invalid ID")),
        ({**CHILD, "ID": "0"}, Rejection("missing or invalid ID")),
        ({k: v for k, v in CHILD.items() if k != "ID"}, Rejection("missing or invalid ID")),
    ],
)
def test_only_records_without_a_readable_id_are_rejected(record: Any, rejection: Rejection) -> None:
    assert to_department(record) == rejection


@pytest.mark.parametrize("bad", KNOWN_BAD, ids=repr)
@pytest.mark.parametrize("field", FIELDS)
def test_known_bad_values_in_every_field(field: str, bad: Any) -> None:
    assert_row_or_rejection(to_department({**CHILD, field: bad}))


@given(mutated(CHILD, FIELDS) | mutated(ROOT, FIELDS) | json_values)
def test_any_json_maps_to_a_row_or_a_rejection(record: Any) -> None:
    assert_row_or_rejection(to_department(record))


@settings(max_examples=max(20, settings.default.max_examples // 3))
@given(st.lists(mutated(CHILD, FIELDS, changes=2) | json_values, max_size=8))
def test_a_batch_keeps_one_row_per_id_and_counts_the_rest(records: list[Any]) -> None:
    result = map_records(records, to_department)
    ids = [row.bitrix_id for row in result.rows]
    assert len(ids) == len(set(ids))
    assert result.records_read == len(records) == len(result.rows) + result.rejected_total
    assert result.unidentified <= result.rejected_total
    assert all(isinstance(n, int) and not math.isnan(n) for n in result.field_issues.values())
