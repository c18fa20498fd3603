"""Issue 12, part 2: a bad record is quarantined (rejected with a reason, its ID still seen), a bad
field is reported (``metadata["field_issues"]``), and no value crashes a mapper.

One row per defect the issue names; the comment says what happened before.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bitrix24_assets.core.rows import CalendarEventRow, EmployeeRow, TaskRow
from bitrix24_assets.sync import Rejection, map_records, to_employee, to_event, to_task
from bitrix24_assets.sync.batch import DUPLICATE_REASON
from tests.sync.strategies import EVENT, TASK, USER, assert_row_or_rejection

START = datetime(2024, 12, 11, 16, 59, tzinfo=UTC)  # EVENT's DATE_FROM_TS_UTC


def task(**changes: Any) -> dict[str, Any]:
    return {k: v for k, v in {**TASK, **changes}.items() if v is not ...}


def user(**changes: Any) -> dict[str, Any]:
    return {k: v for k, v in {**USER, **changes}.items() if v is not ...}


def event(**changes: Any) -> dict[str, Any]:
    return {k: v for k, v in {**EVENT, **changes}.items() if v is not ...}


@pytest.mark.parametrize(
    ("mapper", "record", "reason", "bitrix_id"),
    [
        # status "²": str.isdigit() accepted it and int() raised ValueError in the mapper
        (to_task, task(status="²"), "unknown status code", "8017"),
        # status "abc": rejected before too, but its row was then marked deleted by the full merge
        (to_task, task(status="abc"), "unknown status code", "8017"),
        # changedDate in year 0 once in UTC: OverflowError on astimezone
        (to_task, task(changedDate="0001-01-01T00:00:00+03:00"), "changedDate: date out of range", "8017"),
        # an offset Python accepts (< 24 h) but no zone has
        (
            to_task,
            task(changedDate="2025-06-05T09:00:00+20:00"),
            "changedDate: UTC offset out of range",
            "8017",
        ),
        # unreadable changedDate was reported as missing
        (to_task, task(changedDate="yesterday"), "changedDate: unparseable date", "8017"),
        # missing changedDate (the cursor depends on it): rejected, and now its ID is seen
        (to_task, task(changedDate=None), "missing changedDate", "8017"),
        # task id "²": int() raised in the old reader; now an unidentified rejection
        (to_task, task(id="²"), "missing or invalid id", None),
        # event ID "²": the same crash for calendar events
        (to_event, event(ID="²"), "missing or invalid ID", None),
        # TZ_OFFSET_FROM 999999 without the UTC stamp: timezone() raised ValueError
        (
            to_event,
            event(DATE_FROM_TS_UTC=..., TZ_FROM="", TZ_OFFSET_FROM="999999"),
            "start time: UTC offset out of range",
            "1265",
        ),
        # a start stamp beyond year 9999, no usable locale date: rejected, not crashed
        (
            to_event,
            event(DATE_FROM_TS_UTC="99999999999999", DATE_FROM="12/11/2024 05:59:00 pm"),
            "start time: date out of range",
            "1265",
        ),
        # DELETED "maybe": was read as "not deleted"
        (to_event, event(DELETED="maybe"), "DELETED: not a boolean", "1265"),
        # ACTIVE "maybe": was read as False, a silent deactivation of an employee
        (to_employee, user(ACTIVE="maybe"), "ACTIVE: not a boolean", "1"),
        # USER_TYPE as an object: was read as "employee", possibly adding a guest
        (to_employee, user(USER_TYPE={"type": "extranet"}), "USER_TYPE: not a text", "1"),
        # user ID "٣" (Arabic-Indic three): isdigit() accepted it
        (to_employee, user(ID="٣"), "missing or invalid ID", None),
    ],
)
def test_bad_record_is_rejected_with_a_fixed_reason(
    mapper: Any, record: dict[str, Any], reason: str, bitrix_id: str | None
) -> None:
    assert mapper(record) == Rejection(reason, bitrix_id)


@pytest.mark.parametrize(
    ("mapper", "record", "issues", "column", "value"),
    [
        # NUL in a title: Postgres refused the whole merge (retried three times for nothing)
        (
            to_task,
            task(title="Prepare\x00 report"),
            {"title": "NUL bytes removed"},
            "title",
            "Prepare report",
        ),
        # NUL in an employee's name
        (to_employee, user(NAME="La\x00ura"), {"NAME": "NUL bytes removed"}, "first_name", "Laura"),
        # NUL in an event's description
        (to_event, event(DESCRIPTION="\x00"), {"DESCRIPTION": "NUL bytes removed"}, "description", None),
        # NUL inside metadata copied from the record (jsonb refuses \u0000 too)
        (to_task, task(tags=["ur\x00gent"]), {"tags": "NUL bytes removed"}, "metadata.tags", ["urgent"]),
        (
            to_event,
            event(RRULE={"FREQ": "WEE\x00KLY"}),
            {"RRULE": "NUL bytes removed"},
            "metadata.rrule",
            {"FREQ": "WEEKLY"},
        ),
        # responsible "²": was a silent NULL (or a crash through isdigit)
        (to_task, task(responsibleId="²"), {"responsibleId": "not an ID"}, "responsible_bitrix_id", None),
        # creator as an object: a silent NULL before
        (to_task, task(createdBy={"id": "503"}), {"createdBy": "not an ID"}, "created_by_bitrix_id", None),
        # event owner "abc"
        (to_event, event(OWNER_ID="abc"), {"OWNER_ID": "not an ID"}, "owner_bitrix_id", None),
        # an unparseable deadline: a silent NULL before
        (to_task, task(deadline="next Friday"), {"deadline": "unparseable date"}, "deadline", None),
        # an optional date in year 0 once in UTC: OverflowError before
        (
            to_task,
            task(closedDate="0001-01-01T00:00:00+03:00"),
            {"closedDate": "date out of range"},
            "closed_at",
            None,
        ),
        # a huge DT_LENGTH: timedelta overflowed; the end falls back to the start
        (
            to_event,
            event(DATE_TO_TS_UTC=..., DATE_TO="", DT_LENGTH=10**30),
            {"DT_LENGTH": "number out of range"},
            "ends_at",
            START,
        ),
        (
            to_event,
            event(DATE_TO_TS_UTC=..., DATE_TO="", DT_LENGTH="99999999999999"),
            {"DT_LENGTH": "number out of range"},
            "ends_at",
            START,
        ),
        # an unknown priority was stored as "medium"
        (to_task, task(priority="9"), {"priority": "unknown priority code"}, "priority", None),
        # a malformed e-mail was a silent NULL
        (to_employee, user(EMAIL="not an e-mail"), {"EMAIL": "not an e-mail"}, "email", None),
        # a department "²" in UF_DEPARTMENT: the others are kept
        (to_employee, user(UF_DEPARTMENT=[1, "²"]), {"UF_DEPARTMENT": "not an ID"}, "departments", [1]),
        # an end before the start was replaced silently
        (
            to_event,
            event(DATE_TO_TS_UTC="1733936000", DT_LENGTH=60),
            {"DATE_TO": "before the start"},
            "ends_at",
            START + timedelta(seconds=60),
        ),
    ],
)
def test_bad_field_is_reported_not_hidden(
    mapper: Any, record: dict[str, Any], issues: dict[str, str], column: str, value: Any
) -> None:
    row = mapper(record)
    assert not isinstance(row, Rejection), row
    assert row.metadata["field_issues"] == issues
    if column.startswith("metadata."):
        assert row.metadata[column.removeprefix("metadata.")] == value
    else:
        assert getattr(row, column) == value
    assert_row_or_rejection(row, type(row))


@pytest.mark.parametrize(
    ("mapper", "record"),
    [
        # what was correct stays quiet: "0", "" and null mean "nobody"
        (to_task, task(responsibleId="0", createdBy="", groupId="0", parentId=None)),
        # PHP's placeholders for empty values
        (to_task, task(tags=[], deadline=None, closedDate="")),
        (to_employee, user(UF_DEPARTMENT=[], TIMESTAMP_X={}, EMAIL="", PERSONAL_MOBILE="")),
        (to_employee, user(UF_DEPARTMENT=..., ACTIVE=...)),
        # locale dates are the fallback, not an issue, while the UTC stamps are there
        (to_event, event(OWNER_ID="0", CAL_TYPE="company_calendar", DATE_FROM="12/11/2024 05:59:00 pm")),
        # a locale TIMESTAMP_X is kept raw, not parsed
        (to_event, event(TIMESTAMP_X="12/05/2024 01:48:41 pm", RRULE="")),
    ],
)
def test_blank_spellings_are_not_issues(mapper: Any, record: dict[str, Any]) -> None:
    row = mapper(record)
    assert not isinstance(row, Rejection), row
    assert "field_issues" not in row.metadata


def test_rejected_records_are_seen_and_counted() -> None:
    records = [
        task(id="1"),
        task(id="2", status="²"),  # rejected with its ID: seen, the merge keeps its row
        task(id="3", changedDate=None),
        task(id="²"),  # no readable ID: unidentified
        "not a record",
        task(id="1", title="later copy"),  # a repeat: counted as before
        task(id="4", responsibleId="abc", title="x\x00"),
        task(id="5", responsibleId="abc"),
    ]
    result = map_records(records, to_task)
    assert [r.bitrix_id for r in result.rows] == ["1", "4", "5"]
    assert result.records_read == 8
    assert result.rejected_ids == {"2", "3"}
    assert result.unidentified == 2
    assert result.rejected == Counter(
        {
            "unknown status code": 1,
            "missing changedDate": 1,
            "missing or invalid id": 1,
            "record is not an object": 1,
            DUPLICATE_REASON: 1,
        }
    )
    assert result.field_issues == Counter({"responsibleId: not an ID": 2, "title: NUL bytes removed": 1})
    assert result.rejected_total == 5


def test_rows_of_each_kind_are_core_ready() -> None:
    for mapper, record, model in (
        (to_task, TASK, TaskRow),
        (to_employee, USER, EmployeeRow),
        (to_event, EVENT, CalendarEventRow),
    ):
        assert_row_or_rejection(mapper(record), model)
