"""Hypothesis strategies for the mapping tests: arbitrary JSON, and realistic records with fields
replaced by arbitrary JSON; plus the checks every mapped result must pass.

The scalars mix hypothesis' own values with the ones that crashed or fooled the mappers before:
non-ASCII digits (``"²".isdigit()`` is true), NUL bytes, dates that overflow when converted to
UTC, offsets beyond ±14 h, integers Python cannot turn into text (more than 4,300 digits).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import strategies as st
from pydantic import BaseModel

from bitrix24_assets.core.rows import CalendarEventRow, EmployeeRow, TaskRow
from bitrix24_assets.sync import Rejection
from bitrix24_assets.sync.employees import NON_EMPLOYEE_TYPES

TRICKY_TEXTS = (
    "²",
    "٣",
    "１２",
    "\x00",
    "a\x00b",
    "17\x00",
    "",
    " ",
    "0",
    "00",
    "007",
    "-1",
    "+5",
    "1e3",
    "nan",
    "inf",
    "-inf",
    "maybe",
    "Y",
    "n",
    "TRUE",
    "1" * 19,
    "9" * 5000,
    "0000-00-00 00:00:00",
    "0001-01-01T00:00:00+03:00",
    "0001-01-01T03:00:00+03:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59+00:00",
    "2025-06-05T09:00:00+23:59",
    "2025-06-05T09:00:00-14:00",
    "2025-06-05T09:00:00",
    "2025-06-05T09:00:00Z",
    "12/11/2024 05:59:00 pm",
    "11.12.2024 17:59:00",
    "01.01.0001 00:30:00",
    "31.12.9999 23:59:59",
    "1733932740",
    "-62135596801",
    "253402300800",
    "99999999999999999999",
    "999999",
    "-999999",
    "50400",
    "Europe/Berlin",
    "America",
    "../../etc/passwd",
    "x" * 300,
    "user",
    "group",
    "company_calendar",
    "extranet",
    "email",
)
HUGE_INTS = (10**30, -(10**30), 2**63, 2**64, 10**400)
# Beyond 4,300 digits an int has no repr(): built by a strategy so hypothesis can still describe it.
huge_ints = st.sampled_from(HUGE_INTS) | st.builds(lambda sign: sign * 10**5000, st.sampled_from((1, -1)))

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_ints
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(TRICKY_TEXTS)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=6) | st.sampled_from(("\x00", "FREQ", "id", "title")), children, max_size=4
        )
    ),
    max_leaves=10,
)
# A nested value deeper than anything Bitrix24 sends (RRULE walks must not recurse without end).
DEEP: Any = [0]
for _ in range(3000):
    DEEP = [DEEP]

TASK: dict[str, Any] = {
    "id": "8017",
    "title": "Prepare счёт №1",
    "description": "Повестка в файле",
    "status": "2",
    "subStatus": "-1",
    "priority": "2",
    "deadline": "2025-10-24T19:00:00+02:00",
    "startDatePlan": None,
    "endDatePlan": None,
    "closedDate": None,
    "createdDate": "2025-06-04T16:15:55+02:00",
    "changedDate": "2025-06-05T09:00:00+02:00",
    "responsibleId": "547",
    "createdBy": "503",
    "groupId": "0",
    "parentId": None,
    "tags": ["urgent"],
    "group": [],
    "responsible": {"id": "547", "name": "Maria"},
}
USER: dict[str, Any] = {
    "ID": "1",
    "ACTIVE": True,
    "NAME": "Laura",
    "LAST_NAME": "Clark",
    "SECOND_NAME": "",
    "EMAIL": "laura.clark@example.com",
    "WORK_POSITION": "Software Engineer",
    "PERSONAL_MOBILE": "+7 960 507-61-60",
    "WORK_PHONE": "+7 495 991-97-81",
    "PERSONAL_PHONE": "",
    "UF_DEPARTMENT": [1, 76],
    "USER_TYPE": "employee",
    "XML_ID": "emp-000001",
    "TIME_ZONE": "",
    "DATE_REGISTER": "2025-04-24T03:00:00+03:00",
    "TIMESTAMP_X": {},
}
EVENT: dict[str, Any] = {
    "ID": "1265",
    "PARENT_ID": "1265",
    "DELETED": "N",
    "CAL_TYPE": "user",
    "OWNER_ID": "1",
    "NAME": "Board meeting",
    "DESCRIPTION": "Повестка в файле",
    "DATE_FROM": "11.12.2024 17:59:00",
    "DATE_TO": "11.12.2024 18:59:00",
    "TZ_FROM": "Europe/Berlin",
    "TZ_TO": "Europe/Berlin",
    "TZ_OFFSET_FROM": "3600",
    "TZ_OFFSET_TO": "3600",
    "DATE_FROM_TS_UTC": "1733936340",
    "DATE_TO_TS_UTC": "1733939940",
    "DT_SKIP_TIME": "N",
    "DT_LENGTH": 3600,
    "CREATED_BY": "1",
    "TIMESTAMP_X": "2024-12-05T13:48:41+00:00",
    "LOCATION": "Room 3.14",
    "IS_MEETING": False,
    "SECTION_ID": "4",
    "RRULE": {"FREQ": "WEEKLY", "BYDAY": ["MO"], "INTERVAL": 1, "UNTIL": "01.01.2038"},
}

# Without the UTC stamps the mapper falls back to the locale date in TZ_FROM / TZ_OFFSET_FROM.
EVENT_LOCAL: dict[str, Any] = {k: v for k, v in EVENT.items() if not k.endswith("_TS_UTC")}


def _upper_snake(camel: str) -> str:
    return "".join(f"_{c}" if c.isupper() else c for c in camel).upper()


# tasks.task.get with some selects answers in UPPER_SNAKE; the mapper falls back to that spelling.
TASK_UPPER: dict[str, Any] = {_upper_snake(k): v for k, v in TASK.items()}
TASK_FIELDS = sorted(TASK)
TASK_UPPER_FIELDS = sorted(TASK_UPPER)
USER_FIELDS = sorted(USER)
EVENT_FIELDS = sorted(EVENT)
EVENT_LOCAL_FIELDS = sorted(EVENT_LOCAL)


def mutated(base: dict[str, Any], fields: list[str], changes: int = 6) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with up to ``changes`` fields replaced by arbitrary JSON and up to 3 removed."""
    return st.builds(
        lambda replaced, removed: {k: v for k, v in {**base, **replaced}.items() if k not in removed},
        st.dictionaries(st.sampled_from(fields), json_values, max_size=changes),
        st.sets(st.sampled_from(fields), max_size=3),
    )


ID_PATTERN = re.compile(r"[1-9][0-9]{0,17}")
ISSUE_REASONS = {
    "not an ID",
    "not a boolean",
    "not a number",
    "not a text",
    "not a list",
    "unparseable date",
    "date out of range",
    "UTC offset out of range",
    "unknown time zone",
    "NUL bytes removed",
    "number out of range",
    "nested too deeply",
    "not an e-mail",
    "unknown priority code",
    "before the start",
}
_DATE_REASONS = ("unparseable date", "date out of range", "UTC offset out of range")
REJECTION_REASONS = {
    "record is not an object",
    "missing or invalid ID",
    "missing or invalid id",
    "unknown status code",
    "missing changedDate",
    *(f"changedDate: {reason}" for reason in _DATE_REASONS),
    "unknown calendar type",
    "start time missing or ambiguous",
    "start time: date out of range",
    "start time: UTC offset out of range",
    "DELETED: not a boolean",
    "ACTIVE: not a boolean",
    "USER_TYPE: not a text",
    *(f"{kind} user is not an employee" for kind in NON_EMPLOYEE_TYPES),
}
ROW_MODELS: dict[str, type[BaseModel]] = {"task": TaskRow, "employee": EmployeeRow, "event": CalendarEventRow}


def _walk(value: Any) -> Any:
    """Every nested value, keys included."""
    yield value
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)


def assert_row_or_rejection(result: Any, model: type[BaseModel]) -> None:
    """A Core-ready row of ``model``, or a rejection with a fixed reason and a canonical ID."""
    if isinstance(result, Rejection):
        assert result.reason in REJECTION_REASONS, result.reason
        assert result.bitrix_id is None or ID_PATTERN.fullmatch(result.bitrix_id), result.bitrix_id
        return
    assert type(result) is model
    model.model_validate(result.model_dump())  # validates as its row model
    assert ID_PATTERN.fullmatch(result.bitrix_id)  # type: ignore[attr-defined]
    dumped = result.model_dump()
    for value in _walk(dumped):
        if isinstance(value, str):
            assert "\x00" not in value  # Postgres refuses NUL in text and jsonb
        elif isinstance(value, datetime):
            assert value.tzinfo is not None
            assert value.astimezone(UTC).isoformat()
        elif isinstance(value, float):
            assert math.isfinite(value)
    json.dumps(dumped, default=str, allow_nan=False)  # what jsonb accepts
    orjson.dumps(dumped)  # the row files: 64-bit integers only
    issues = result.metadata.get("field_issues")  # type: ignore[attr-defined]
    if issues is not None:
        assert issues and all(reason in ISSUE_REASONS for reason in issues.values()), issues
