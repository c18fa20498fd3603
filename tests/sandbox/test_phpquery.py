"""PHP request parsing (docs/bitrix24-rest-api.md §1.2): parse_str bracket rules and json_encode array
shapes."""

from __future__ import annotations

import pytest

from bitrix24_assets.sandbox.phpquery import http_build_query, intval, parse_str, php_map, truthy


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a=1&b=2", {"a": "1", "b": "2"}),
        ("select[]=ID&select[]=NAME", {"select": {"0": "ID", "1": "NAME"}}),
        ("filter[>ID]=5&order[ID]=ASC", {"filter": {">ID": "5"}, "order": {"ID": "ASC"}}),
        ("filter%5B%3EID%5D=5", {"filter": {">ID": "5"}}),  # percent-encoded brackets
        ("fields[PHONE][0][VALUE]=112233", {"fields": {"PHONE": {"0": {"VALUE": "112233"}}}}),
        ("a+b.c=1", {"a_b_c": "1"}),  # spaces and dots in the base name become "_"
        ("msg=a%26b+c", {"msg": "a&b c"}),
        ("x[=1", {"x_": "1"}),  # an unclosed bracket is kept literally
        ("a=1&a=2", {"a": "2"}),
        ("", {}),
    ],
)
def test_parse_str(query, expected):
    assert parse_str(query) == expected


def test_php_map_list_vs_object():
    assert php_map({}) == []
    assert php_map({"0": "a", "1": "b"}) == ["a", "b"]
    assert php_map({"1": "a", "3": "b"}) == {"1": "a", "3": "b"}
    assert php_map({"x": 1}) == {"x": 1}


def test_intval_and_truthiness_follow_php():
    assert [intval(v) for v in ("12abc", "", "-3", True, None, 4.9)] == [12, 0, -3, 1, 0, 4]
    assert truthy("false") and not truthy("0") and not truthy("")


def test_http_build_query_round_trips_through_parse_str():
    pairs = http_build_query({"filter": {">ID": 5}, "select": ["ID", "TITLE"], "flag": True})
    query = "&".join(f"{k}={v}" for k, v in pairs)
    assert parse_str(query) == {"filter": {">ID": "5"}, "select": {"0": "ID", "1": "TITLE"}, "flag": "1"}
