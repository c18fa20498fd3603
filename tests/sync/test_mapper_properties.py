"""Property: any JSON in any field of a record maps to a Core-ready row or a rejection with a fixed
reason, never an exception (an exception fails every later run of the account the same way)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bitrix24_assets.core.rows import CalendarEventRow, EmployeeRow, TaskRow
from bitrix24_assets.sync import Rejection, map_records, to_employee, to_event, to_task
from bitrix24_assets.sync.batch import DUPLICATE_REASON
from tests.sync.strategies import (
    DEEP,
    EVENT,
    EVENT_FIELDS,
    EVENT_LOCAL,
    EVENT_LOCAL_FIELDS,
    TASK,
    TASK_FIELDS,
    TASK_UPPER,
    TASK_UPPER_FIELDS,
    USER,
    USER_FIELDS,
    assert_row_or_rejection,
    json_values,
    mutated,
)

MAPPERS: list[tuple[Callable[[Any], Any], type[BaseModel], dict[str, Any], list[str]]] = [
    (to_task, TaskRow, TASK, TASK_FIELDS),
    (to_employee, EmployeeRow, USER, USER_FIELDS),
    (to_event, CalendarEventRow, EVENT, EVENT_FIELDS),
    (to_task, TaskRow, TASK_UPPER, TASK_UPPER_FIELDS),
    (to_event, CalendarEventRow, EVENT_LOCAL, EVENT_LOCAL_FIELDS),
]
IDS = ["task", "user", "event", "task-upper", "event-local"]
PER_FIELD = [(m, model, base, f) for m, model, base, fields in MAPPERS for f in fields]
PER_FIELD_IDS = [f"{name}-{f}" for name, (_, _, _, fields) in zip(IDS, MAPPERS, strict=True) for f in fields]
# The values that crashed a mapper or were read wrongly before: tried in every field on every run,
# whatever hypothesis happens to draw.
KNOWN_BAD = (
    "²",
    "٣",
    "a\x00b",
    "0001-01-01T00:00:00+03:00",
    "2025-01-01T00:00:00+20:00",
    "999999",
    "maybe",
    10**30,
)
# One field at a time is many tests: a sixth of the profile's examples each keeps `make test` fast.
FEWER = settings(max_examples=max(20, settings.default.max_examples // 6))
# Lists of records cost many draws each; a third of the examples still covers every branch of the batch.
BATCHES = settings(max_examples=max(20, settings.default.max_examples // 3))


@pytest.mark.parametrize(("mapper", "model", "base"), [m[:3] for m in MAPPERS], ids=IDS)
def test_realistic_record_maps_to_a_row(
    mapper: Callable[[Any], Any], model: type[BaseModel], base: Any
) -> None:
    row = mapper(base)
    assert type(row) is model
    assert "field_issues" not in row.metadata  # a clean record has nothing to report


@pytest.mark.parametrize(("mapper", "model", "base", "field"), PER_FIELD, ids=PER_FIELD_IDS)
@pytest.mark.parametrize("value", KNOWN_BAD, ids=range(len(KNOWN_BAD)))
def test_known_bad_value_in_every_field(
    mapper: Callable[[Any], Any], model: type[BaseModel], base: dict[str, Any], field: str, value: Any
) -> None:
    assert_row_or_rejection(mapper({**base, field: value}), model)


@pytest.mark.parametrize(("mapper", "model", "base", "field"), PER_FIELD, ids=PER_FIELD_IDS)
@FEWER
@given(value=json_values)
def test_any_json_in_one_field(
    mapper: Callable[[Any], Any], model: type[BaseModel], base: dict[str, Any], field: str, value: Any
) -> None:
    assert_row_or_rejection(mapper({**base, field: value}), model)


@pytest.mark.parametrize(("mapper", "model", "base", "fields"), MAPPERS, ids=IDS)
@given(data=st.data())
def test_any_json_in_many_fields(
    mapper: Callable[[Any], Any], model: type[BaseModel], base: dict[str, Any], fields: list[str], data: Any
) -> None:
    assert_row_or_rejection(mapper(data.draw(mutated(base, fields))), model)


@pytest.mark.parametrize(("mapper", "model"), [m[:2] for m in MAPPERS[:3]], ids=IDS[:3])
@given(record=json_values)
def test_any_json_as_the_record(mapper: Callable[[Any], Any], model: type[BaseModel], record: Any) -> None:
    assert_row_or_rejection(mapper(record), model)


def test_json_nested_deeper_than_the_recursion_limit() -> None:
    # RRULE is copied into metadata: a walk without a depth bound would raise RecursionError
    row = to_event({**EVENT, "RRULE": {"FREQ": DEEP}})
    assert_row_or_rejection(row, CalendarEventRow)
    assert isinstance(row, CalendarEventRow)
    assert row.metadata["field_issues"] == {"RRULE": "nested too deeply"}
    for mapper, model, base, fields in MAPPERS:
        for field in fields:
            assert_row_or_rejection(mapper({**base, field: DEEP}), model)


@pytest.mark.parametrize(("mapper", "base", "fields"), [(m, b, f) for m, _, b, f in MAPPERS], ids=IDS)
@BATCHES
@given(data=st.data())
def test_map_records_accounts_for_every_record(
    mapper: Callable[[Any], Any], base: dict[str, Any], fields: list[str], data: Any
) -> None:
    ids = st.sampled_from(["1", "2", "3", "²", None, "0"])
    record = mutated(base, fields, changes=2) | json_values
    with_ids = st.tuples(record, ids).map(
        lambda pair: {**pair[0], "ID": pair[1], "id": pair[1]} if isinstance(pair[0], dict) else pair[0]
    )
    records = data.draw(st.lists(with_ids, max_size=8))
    mapped = [mapper(r) for r in records]
    result = map_records(records, mapper)

    assert result.records_read == len(records)
    assert len(result.rows) + result.rejected_total == len(records)
    rejections = [m for m in mapped if isinstance(m, Rejection)]
    assert result.unidentified == sum(1 for r in rejections if r.bitrix_id is None)
    assert result.rejected_ids == {r.bitrix_id for r in rejections if r.bitrix_id is not None}
    row_ids = [row.bitrix_id for row in result.rows]
    assert len(row_ids) == len(set(row_ids))  # one row per ID reaches the merge
    good = [m for m in mapped if not isinstance(m, Rejection)]
    assert result.rejected[DUPLICATE_REASON] == len(good) - len(result.rows)
    expected_issues: Counter[str] = Counter()
    for row in result.rows:
        for name, reason in row.metadata.get("field_issues", {}).items():
            expected_issues[f"{name}: {reason}"] += 1
    assert result.field_issues == expected_issues
