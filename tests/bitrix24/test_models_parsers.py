"""The typed views' parsers (``bitrix24.models``): any JSON in, the right type or None out, never an
exception; only ASCII digits are IDs, unknown boolean spellings are unknown, not False."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given

from bitrix24_assets.bitrix24.models import parse_bool, parse_datetime, parse_id
from tests.sync.strategies import json_values


@given(value=json_values)
def test_parse_id_is_an_int_or_none(value: Any) -> None:
    result = parse_id(value)
    assert result is None or type(result) is int
    if isinstance(value, str) and result is not None:
        digits = value.strip().lstrip("UuGg").removeprefix("-")
        assert digits.isascii() and digits.isdigit()


@given(value=json_values)
def test_parse_bool_is_a_bool_or_none(value: Any) -> None:
    assert parse_bool(value) in (True, False, None)


@given(value=json_values)
def test_parse_datetime_is_a_datetime_convertible_when_aware(value: Any) -> None:
    result = parse_datetime(value)
    assert result is None or isinstance(result, datetime)
    if result is not None and result.tzinfo is not None:
        offset = result.utcoffset()
        assert offset is not None and abs(offset) <= timedelta(hours=14)
        assert result.astimezone(UTC).isoformat()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", 12),
        (12, 12),
        ("U12", 12),  # attendee codes
        (" 7 ", 7),
        ("0", 0),
        ("-3", -3),
        ("", None),
        (None, None),
        (True, None),
        ("²", None),  # "²".isdigit() is true and int("²") raised ValueError
        ("٣", None),  # Arabic-Indic three: isdigit() too
        ("U²", None),
        ("12.5", None),
        ({"id": 1}, None),
        ("9" * 5000, None),  # int() refuses more than 4,300 digits
    ],
)
def test_parse_id_table(value: Any, expected: int | None) -> None:
    assert parse_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("Y", True),
        ("y", True),
        ("1", True),
        (1, True),
        ("true", True),
        ("N", False),
        ("0", False),
        (0, False),
        ("", False),
        (False, False),
        ("maybe", None),  # was False: an unknown value hidden as "no"
        (2, None),
        (None, None),
        ({}, None),
        ([], None),
        pytest.param(10**5000, None, id="10**5000"),  # str() of it raised ValueError
    ],
)
def test_parse_bool_table(value: Any, expected: bool | None) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-05T09:00:00+02:00", datetime(2025, 6, 5, 7, tzinfo=UTC)),
        ("1733932740", datetime(2024, 12, 11, 15, 59, tzinfo=UTC)),
        (1733932740, datetime(2024, 12, 11, 15, 59, tzinfo=UTC)),
        ("24.08.2023 13:19:39", datetime(2023, 8, 24, 13, 19, 39)),  # locale: naive, zone unknown here
        ("", None),
        ({}, None),
        ("²", None),  # isdigit() accepted it and int() raised
        ("9" * 30, None),  # fromtimestamp() overflowed
        (1e300, None),
        (float("nan"), None),
        ("0001-01-01T00:00:00+03:00", None),  # year 0 in UTC
        ("2025-06-05T09:00:00+20:00", None),  # no zone is 20 h from UTC
    ],
)
def test_parse_datetime_table(value: Any, expected: datetime | None) -> None:
    assert parse_datetime(value) == expected
