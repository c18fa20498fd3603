"""The value readers: any JSON in, a value of the right type or None out, never an exception; a
present value that cannot be read is noted with a fixed reason, a blank one is not."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bitrix24_assets.sync.values import (
    MAX_DEPTH,
    bitrix_id,
    clean_json,
    flag,
    int_list,
    is_blank,
    iso_datetime,
    local_datetime,
    small_int,
    text,
    text_list,
    unix_seconds,
    zone,
)
from tests.sync.strategies import DEEP, ID_PATTERN, ISSUE_REASONS, json_values

FIELD = "F"


def _noted(issues: dict[str, str]) -> str | None:
    assert set(issues) <= {FIELD}
    reason = issues.get(FIELD)
    assert reason is None or reason in ISSUE_REASONS
    return reason


def _utc(value: Any) -> None:
    assert isinstance(value, datetime)
    assert value.utcoffset() == timedelta(0)
    assert value.astimezone(UTC).isoformat()


# ---- properties -------------------------------------------------------------------------------


@given(value=json_values)
@example(0.0)
@example(" 000 ")
def test_bitrix_id_is_canonical_ascii_digits_or_none_and_noted(value: Any) -> None:
    issues: dict[str, str] = {}
    result = bitrix_id(value, issues, FIELD)
    reason = _noted(issues)
    if result is None:
        assert (reason is None) == _nobody(value), (value, reason)
    else:
        assert ID_PATTERN.fullmatch(result) and reason is None


def _nobody(value: Any) -> bool:
    """The spellings of "no ID": blank, false, 0 and "0" (any number of zeros)."""
    if type(value) is str:
        return set(value.strip()) <= {"0"}
    if type(value) is int or type(value) is float:
        return type(value) is int and value == 0
    return value is None or value is False or value == [] or value == {}


@given(number=st.integers(min_value=1, max_value=10**18 - 1))
def test_bitrix_id_reads_every_spelling_of_one_id_the_same(number: int) -> None:
    spellings = (number, str(number), f" {number} ", f"00{number}")
    assert {bitrix_id(s) for s in spellings} == {str(number)}


@given(value=json_values)
def test_text_has_no_nul_and_is_stripped(value: Any) -> None:
    issues: dict[str, str] = {}
    result = text(value, issues, FIELD)
    reason = _noted(issues)
    if result is not None:
        assert "\x00" not in result and result == result.strip() and result
    if isinstance(value, str) and "\x00" in value:
        assert reason == "NUL bytes removed"


@given(value=json_values)
def test_text_list_gives_texts_without_nul(value: Any) -> None:
    issues: dict[str, str] = {}
    result = text_list(value, issues, FIELD)
    _noted(issues)
    assert all(isinstance(t, str) and t and "\x00" not in t for t in result)


@given(value=json_values)
def test_flag_is_a_bool_or_none_when_noted(value: Any) -> None:
    issues: dict[str, str] = {}
    result = flag(value, issues, FIELD, default=True)
    reason = _noted(issues)
    assert result in (True, False, None)
    assert (result is None) == (reason == "not a boolean")


@given(value=json_values)
def test_small_int_is_bounded(value: Any) -> None:
    issues: dict[str, str] = {}
    result = small_int(value, issues, FIELD)
    reason = _noted(issues)
    assert result is None or (type(result) is int and abs(result) < 10**9 and reason is None)


@given(value=json_values)
def test_int_list_holds_ids_only(value: Any) -> None:
    issues: dict[str, str] = {}
    result = int_list(value, issues, FIELD)
    _noted(issues)
    assert all(type(i) is int and 0 < i < 10**18 for i in result)


@given(value=json_values)
def test_iso_datetime_is_aware_utc_or_none(value: Any) -> None:
    issues: dict[str, str] = {}
    result = iso_datetime(value, issues, FIELD)
    reason = _noted(issues)
    if result is not None:
        _utc(result)
        assert reason is None
    elif reason is None:
        assert is_blank(value)


@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        # whole minutes: ISO 8601 offsets (Python 3.11 drops an offset's microseconds when parsing)
        timezones=st.integers(min_value=-14 * 60, max_value=14 * 60).map(
            lambda m: timezone(timedelta(minutes=m))
        ),
    )
)
def test_iso_datetime_round_trips_every_representable_instant(moment: datetime) -> None:
    assert iso_datetime(moment.isoformat()) == moment


@given(value=json_values)
def test_unix_seconds_is_aware_utc_or_none(value: Any) -> None:
    issues: dict[str, str] = {}
    result = unix_seconds(value, issues, FIELD)
    reason = _noted(issues)
    if result is not None:
        _utc(result)
        assert reason is None


@given(seconds=st.integers(min_value=-62135596800, max_value=253402300799))
def test_unix_seconds_reads_text_and_numbers_alike(seconds: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    assert unix_seconds(seconds) == unix_seconds(str(seconds)) == expected


@given(name=json_values, offset=json_values)
def test_zone_is_a_zone_within_14_hours_or_none(name: Any, offset: Any) -> None:
    issues: dict[str, str] = {}
    result = zone(name, offset, issues, "TZ", "OFFSET")
    assert set(issues) <= {"TZ", "OFFSET"} and set(issues.values()) <= ISSUE_REASONS
    if isinstance(result, timezone):
        shift = result.utcoffset(None)
        assert abs(shift) <= timedelta(hours=14)
    else:
        assert result is None or isinstance(result, ZoneInfo)


@given(value=json_values, name=json_values, offset=json_values)
def test_local_datetime_is_aware_utc_or_none(value: Any, name: Any, offset: Any) -> None:
    issues: dict[str, str] = {}
    result = local_datetime(value, zone(name, offset), issues, FIELD)
    _noted(issues)
    if result is not None:
        _utc(result)


@given(value=json_values)
def test_clean_json_is_storable_in_jsonb(value: Any) -> None:
    issues: dict[str, str] = {}
    cleaned = clean_json(value, issues, FIELD)
    _noted(issues)
    dumped = json.dumps(cleaned, allow_nan=False)
    assert "\\u0000" not in dumped


# ---- tables -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "reason"),
    [
        ("17", "17", None),  # the common case, already canonical
        (17, "17", None),  # ints are the same ID
        (" 017 ", "17", None),  # whitespace and leading zeros are spelling, not identity
        ("0", None, None),  # "0": nobody (groupId of a task without a group)
        (0, None, None),
        ("", None, None),  # PHP's empty text
        (None, None, None),
        (False, None, None),  # PHP's false for "no value"
        ([], None, None),  # PHP's empty array
        ({}, None, None),
        ("²", None, "not an ID"),  # "²".isdigit() is true; int("²") raises
        ("٣", None, "not an ID"),  # Arabic-Indic three: isdigit() too
        ("-5", None, "not an ID"),
        ("17.0", None, "not an ID"),
        (17.0, None, "not an ID"),
        (True, None, "not an ID"),
        ({"id": "5"}, None, "not an ID"),
        ("1" * 19, None, "not an ID"),  # beyond 64-bit: no Bitrix24 ID
        pytest.param(10**5000, None, "not an ID", id="10**5000"),  # str() of it raises
    ],
)
def test_bitrix_id_table(value: Any, expected: str | None, reason: str | None) -> None:
    issues: dict[str, str] = {}
    assert bitrix_id(value, issues, FIELD) == expected
    assert issues.get(FIELD) == reason


@pytest.mark.parametrize(
    ("value", "expected", "reason"),
    [
        (True, True, None),  # user.get's ACTIVE on current portals
        ("Y", True, None),  # older portals and calendar flags
        ("N", False, None),
        (" y ", True, None),
        ("1", True, None),
        (0, False, None),
        ("false", False, None),
        ("TRUE", True, None),
        ("", "default", None),  # blank: the caller's default
        (None, "default", None),
        ([], "default", None),
        ("maybe", None, "not a boolean"),  # was read as False: a silent deactivation
        ("yes", None, "not a boolean"),  # not a Bitrix24 spelling
        (2, None, "not a boolean"),
        (1.0, None, "not a boolean"),
        (["Y"], None, "not a boolean"),
    ],
)
def test_flag_table(value: Any, expected: Any, reason: str | None) -> None:
    issues: dict[str, str] = {}
    result = flag(value, issues, FIELD, default=True)
    assert result == (True if expected == "default" else expected)
    assert issues.get(FIELD) == reason


@pytest.mark.parametrize(
    ("value", "expected", "reason"),
    [
        ("2025-06-05T09:00:00+02:00", datetime(2025, 6, 5, 7, tzinfo=UTC), None),
        ("2025-06-05T09:00:00Z", datetime(2025, 6, 5, 9, tzinfo=UTC), None),
        (" 2025-06-05T09:00:00+02:00 ", datetime(2025, 6, 5, 7, tzinfo=UTC), None),
        ("2025-06-05T09:00:00", datetime(2025, 6, 5, 9, tzinfo=UTC), None),  # no offset: UTC
        (None, None, None),  # tasks' empty date
        ("", None, None),
        ("0000-00-00 00:00:00", None, None),  # MySQL's zero date
        ({}, None, None),
        ("yesterday", None, "unparseable date"),
        (1733932740, None, "unparseable date"),  # a task date is ISO text, not Unix seconds
        ("0001-01-01T00:00:00+03:00", None, "date out of range"),  # year 0 in UTC: OverflowError before
        ("9999-12-31T23:00:00-02:00", None, "date out of range"),  # year 10000 in UTC
        ("0001-01-01T03:00:00+03:00", datetime(1, 1, 1, tzinfo=UTC), None),  # the first instant
        ("2025-06-05T09:00:00+14:00", datetime(2025, 6, 4, 19, tzinfo=UTC), None),  # Kiribati
        ("2025-06-05T09:00:00+14:01", None, "UTC offset out of range"),
        ("2025-06-05T09:00:00-23:59", None, "UTC offset out of range"),  # Python accepts < 24 h
    ],
)
def test_iso_datetime_table(value: Any, expected: datetime | None, reason: str | None) -> None:
    issues: dict[str, str] = {}
    assert iso_datetime(value, issues, FIELD) == expected
    assert issues.get(FIELD) == reason


@pytest.mark.parametrize(
    ("value", "expected", "reason"),
    [
        ("1733932740", datetime(2024, 12, 11, 15, 59, tzinfo=UTC), None),
        (1733932740, datetime(2024, 12, 11, 15, 59, tzinfo=UTC), None),
        ("", None, None),
        ({}, None, None),
        ("abc", None, "unparseable date"),
        ("nan", None, "unparseable date"),
        ("١٧٣٣٩٣٢٧٤٠", None, "unparseable date"),  # float() reads Arabic-Indic digits
        ("1e20", None, "date out of range"),
        ("inf", None, "date out of range"),
        (10**400, None, "date out of range"),  # float() of it overflows
        ("253402300800", None, "date out of range"),  # 10000-01-01
    ],
)
def test_unix_seconds_table(value: Any, expected: datetime | None, reason: str | None) -> None:
    issues: dict[str, str] = {}
    assert unix_seconds(value, issues, FIELD) == expected
    assert issues.get(FIELD) == reason


@pytest.mark.parametrize(
    ("name", "offset", "expected", "issues"),
    [
        ("Europe/Berlin", "7200", ZoneInfo("Europe/Berlin"), {}),  # the IANA name wins
        ("", "7200", timezone(timedelta(hours=2)), {}),
        ("", -50400, timezone(timedelta(hours=-14)), {}),
        ("", "999999", None, {"OFFSET": "UTC offset out of range"}),  # timezone() raised ValueError
        ("", "9" * 30, None, {"OFFSET": "UTC offset out of range"}),
        ("", "²", None, {"OFFSET": "not a number"}),
        ("Mars/Olympus", "", None, {"TZ": "unknown time zone"}),
        ("America", "3600", timezone(timedelta(hours=1)), {"TZ": "unknown time zone"}),  # a directory
        ("x" * 300, None, None, {"TZ": "unknown time zone"}),  # a name too long for a path
        ("../../etc/passwd", None, None, {"TZ": "unknown time zone"}),
    ],
)
def test_zone_table(name: Any, offset: Any, expected: Any, issues: dict[str, str]) -> None:
    noted: dict[str, str] = {}
    assert zone(name, offset, noted, "TZ", "OFFSET") == expected
    assert noted == issues


@pytest.mark.parametrize(
    ("value", "tz", "expected", "reason"),
    [
        (
            "11.12.2024 17:59:00",
            timezone(timedelta(hours=2)),
            datetime(2024, 12, 11, 15, 59, tzinfo=UTC),
            None,
        ),
        ("2024-12-11", UTC, datetime(2024, 12, 11, tzinfo=UTC), None),
        ("11.12.2024 17:59:00", None, None, None),  # no zone: not placed, the caller decides
        ("12/11/2024 05:59:00 pm", UTC, None, "unparseable date"),  # MM/DD or DD/MM?
        ("01.01.0001 00:30:00", timezone(timedelta(hours=2)), None, "date out of range"),
        ("31.12.9999 23:30:00", timezone(timedelta(hours=-2)), None, "date out of range"),
    ],
)
def test_local_datetime_table(value: Any, tz: Any, expected: datetime | None, reason: str | None) -> None:
    issues: dict[str, str] = {}
    assert local_datetime(value, tz, issues, FIELD) == expected
    assert issues.get(FIELD) == reason


@pytest.mark.parametrize(
    ("value", "expected", "reason"),
    [
        ("Task", "Task", None),
        ("  Task ", "Task", None),
        ("Ta\x00sk", "Task", "NUL bytes removed"),  # Postgres refuses NUL: the whole merge failed
        ("\x00", None, "NUL bytes removed"),
        (123, "123", None),
        (False, None, None),
        (True, None, "not a text"),
        (["a"], None, "not a text"),
        pytest.param(10**5000, None, "not a text", id="10**5000"),  # no decimal text for it in Python
        ("0000-00-00 review", "0000-00-00 review", None),  # a title, not a zero date
    ],
)
def test_text_table(value: Any, expected: str | None, reason: str | None) -> None:
    issues: dict[str, str] = {}
    assert text(value, issues, FIELD) == expected
    assert issues.get(FIELD) == reason


@pytest.mark.parametrize(
    ("value", "expected", "reason"),
    [
        ({"FREQ": "WEEKLY", "COUNT": 3}, {"FREQ": "WEEKLY", "COUNT": 3}, None),
        ({"FR\x00EQ": "WEE\x00KLY"}, {"FREQ": "WEEKLY"}, "NUL bytes removed"),  # keys too
        ({"A": [math.nan, math.inf]}, {"A": [None, None]}, "number out of range"),  # jsonb refuses NaN
        ({"A": 2**64}, {"A": None}, "number out of range"),  # the row files hold 64-bit ints
    ],
)
def test_clean_json_table(value: Any, expected: Any, reason: str | None) -> None:
    issues: dict[str, str] = {}
    assert clean_json(value, issues, FIELD) == expected
    assert issues.get(FIELD) == reason


def test_clean_json_cuts_nesting_deeper_than_any_bitrix24_value() -> None:
    # 3,000 levels: a walk without a bound raised RecursionError
    issues: dict[str, str] = {}
    node, depth = clean_json({"A": DEEP}, issues, FIELD), 0
    while isinstance(node, dict | list) and node:
        node, depth = (node["A"] if isinstance(node, dict) else node[0]), depth + 1
    assert node is None and depth == MAX_DEPTH
    assert issues == {FIELD: "nested too deeply"}
