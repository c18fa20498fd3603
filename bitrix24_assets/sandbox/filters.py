"""Bitrix24 list filters: prefix operators on field names, compiled to a row predicate.

A filter key is ``<prefix><FIELD>`` with the prefixes of docs/bitrix24-rest-api.md §6.1/§6.4: ``=`` (default),
``!``/``!=``, ``>``, ``>=``, ``<``, ``<=``, ``@`` (IN), ``!@`` (NOT IN), ``%`` (substring),
``=%``/``%=`` (LIKE with ``%``/``_`` wildcards), ``!%``, ``!=%``/``!%=``. Values may be arrays
(``=`` with an array means IN). Unknown fields and prefixes are dropped silently, as Bitrix does.

An array given to an ordered comparison (``>``, ``>=``, ``<``, ``<=``) - typically a batch
``$result[page][tasks][49][id]`` whose path stopped at the whole (short or empty) page - follows the
tasks module's ``CTasks::FilterCreate``: one condition per value, ORed; an **empty** array yields no
SQL, so the condition is dropped; values that are themselves arrays (task rows) cannot be compared
(PHP 8's ``strlen()`` refuses an array) and match nothing, where the portal would fail the call.

Conditions on ``ID`` also yield an id range so keyset pages bisect to their first row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from .dates import parse_datetime
from .phpquery import intval, php_values, truthy

_KEY = re.compile(r"^([!=<>@%]{0,3})(.+)$")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
OPERATORS = {"", "=", "!", "!=", ">", ">=", "<", "<=", "@", "!@", "%", "=%", "%=", "!%", "!=%", "!%="}


def normalize_field(name: str) -> str:
    """``responsibleId`` / ``responsible_id`` / ``RESPONSIBLE_ID`` -> ``RESPONSIBLE_ID``."""
    return _CAMEL.sub(r"_\1", name.strip()).upper()


@dataclass(frozen=True)
class Field:
    """How to read one filterable field from a row and how to compare it."""

    get: Callable[[Any], Any]
    kind: str = "str"  # int | str | date | bool | ints (multi-valued) | like (pattern match)


Predicate = Callable[[Any], bool]


@dataclass
class CompiledFilter:
    predicate: Predicate | None
    id_low: int | None = None  # inclusive
    id_high: int | None = None  # inclusive
    impossible: bool = False

    def matches(self, row: Any) -> bool:
        return self.predicate is None or self.predicate(row)


def _like(pattern: str) -> re.Pattern[str]:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL)


def _convert(kind: str, value: Any, tz: tzinfo) -> Any:
    if kind in ("int", "ints"):
        return intval(value)
    if kind == "date":
        return parse_datetime(value, tz)
    if kind == "bool":
        return truthy(value) and value != "N"
    return "" if value is None else str(value)


def _condition(op: str, field: Field, raw: Any, tz: tzinfo) -> Predicate | None:
    kind = field.kind
    get = field.get
    values = php_values(raw) if isinstance(raw, (list, dict)) else [raw]
    if op in ("%", "!%", "=%", "%=", "!=%", "!%="):
        needles = [str(v) for v in values]
        if op in ("%", "!%"):
            lowered = [n.casefold() for n in needles]

            def test(row: Any) -> bool:
                text = str(get(row) or "").casefold()
                return any(n in text for n in lowered)
        else:
            patterns = [_like(n) for n in needles]

            def test(row: Any) -> bool:
                text = str(get(row) or "")
                return any(p.match(text) for p in patterns)

        return (lambda row: not test(row)) if op.startswith("!") else test

    if kind == "like" and op in ("", "="):
        patterns = [_like(str(v)) for v in values]
        return lambda row: any(p.match(str(get(row) or "")) for p in patterns)

    empty = all(v in ("", None) for v in values) and kind in ("date", "str", "like")
    converted = [_convert("str" if kind == "like" else kind, v, tz) for v in values]
    if kind == "date" and not empty and any(c is None for c in converted):
        return lambda row: False  # unparseable date -> condition matches nothing
    if kind in ("str", "like"):
        converted = [c.casefold() for c in converted]

    def value_of(row: Any) -> Any:
        v = get(row)
        if kind in ("str", "like"):
            return str(v or "").casefold()
        return v

    if op in ("", "=", "@"):
        if empty:
            return lambda row: get(row) in (None, "", [])
        wanted = set(converted)
        if kind == "ints":
            return lambda row: any(x in wanted for x in (get(row) or []))
        return lambda row: value_of(row) in wanted
    if op in ("!", "!=", "!@"):
        if empty:
            return lambda row: get(row) not in (None, "", [])
        unwanted = set(converted)
        if kind == "ints":
            return lambda row: not any(x in unwanted for x in (get(row) or []))
        return lambda row: value_of(row) not in unwanted
    if not values:
        return None  # an empty array: FilterCreate builds no SQL, the condition is dropped
    scalars = [c for v, c in zip(values, converted, strict=True) if not isinstance(v, (list, dict))]
    refs = [c for c in scalars if c is not None]
    if not refs:
        return lambda row: False
    compare: Callable[[Any, Any], bool] = {
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }[op]

    def ordered(row: Any) -> bool:
        v = value_of(row)
        if v is None or v == "":
            return False
        if kind == "ints":
            return any(compare(x, ref) for x in v for ref in refs)
        return any(compare(v, ref) for ref in refs)

    return ordered


def compile_filter(
    filter_params: dict[str, Any] | None,
    fields: dict[str, Field],
    tz: tzinfo,
    *,
    allowed: Iterable[str] = OPERATORS,
) -> CompiledFilter:
    """Compile a filter map; conditions are ANDed."""
    allowed_ops = set(allowed)
    predicates: list[Predicate] = []
    low: int | None = None
    high: int | None = None
    impossible = False
    for raw_key, raw_value in (filter_params or {}).items():
        key = str(raw_key)
        if key.startswith("::"):
            continue
        m = _KEY.match(key)
        if not m:
            continue
        op, name = m.group(1), normalize_field(m.group(2))
        if op not in allowed_ops or name not in fields:
            continue
        field = fields[name]
        if name == "ID" and not isinstance(raw_value, (list, dict)) and op in (">", ">=", "<", "<=", "", "="):
            bound = intval(raw_value)
            if op in (">", ">="):
                candidate = bound + 1 if op == ">" else bound
                low = candidate if low is None else max(low, candidate)
            elif op in ("<", "<="):
                candidate = bound - 1 if op == "<" else bound
                high = candidate if high is None else min(high, candidate)
            else:
                low = bound if low is None else max(low, bound)
                high = bound if high is None else min(high, bound)
            continue
        predicate = _condition(op, field, raw_value, tz)
        if predicate is not None:
            predicates.append(predicate)
    if low is not None and high is not None and low > high:
        impossible = True
    if not predicates:
        return CompiledFilter(None, low, high, impossible)
    if len(predicates) == 1:
        return CompiledFilter(predicates[0], low, high, impossible)
    return CompiledFilter(lambda row: all(p(row) for p in predicates), low, high, impossible)
