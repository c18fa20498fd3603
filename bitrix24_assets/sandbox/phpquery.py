"""PHP request parsing and PHP-array helpers, as the Bitrix24 REST server sees its input.

Bitrix24 is PHP, so request parameters follow PHP rules (docs/bitrix24-rest-api.md §1.2,
``CRestUtil::getRequestData``):

1. query string and form fields are PHP request arrays (``filter[>ID]=5&select[]=ID``);
2. a POST without parsed form fields has its raw body read: JSON if the media type is exactly
   ``application/json`` (invalid JSON -> empty params, never an error), otherwise ``parse_str``;
3. body params replace same-named query params (``array_replace``, top level only).

PHP arrays are represented as ``dict[str, Any]`` (insertion ordered, keys as strings); JSON bodies
keep lists, so handlers read arrays through :func:`php_values`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

PhpArray = dict[str, Any]


def _split_key(raw_key: str) -> tuple[str, list[str | None]] | None:
    """Split ``a[b][]`` into ``("a", ["b", None])`` the way PHP's ``php_register_variable`` does.

    ``None`` marks an append segment (``[]``). A key with an unclosed ``[`` keeps the rest literally
    (PHP turns that first ``[`` into ``_``). Spaces and dots in the base name become ``_``.
    """
    key = raw_key.lstrip(" ")
    if not key:
        return None
    bracket = key.find("[")
    if bracket <= 0:
        if bracket == 0:
            return None  # PHP ignores variables whose name starts with "["
        return key.replace(" ", "_").replace(".", "_"), []
    base = key[:bracket].replace(" ", "_").replace(".", "_")
    rest = key[bracket:]
    if "]" not in rest:
        return base + "_" + rest[1:], []
    segments: list[str | None] = []
    while rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            break
        inner = rest[1:close]
        segments.append(inner if inner != "" else None)
        rest = rest[close + 1 :]
    return base, segments


def _next_index(array: PhpArray) -> str:
    ints = [int(k) for k in array if _is_int_key(k)]
    return str(max(ints) + 1 if ints else 0)


def _is_int_key(key: str) -> bool:
    return key == "0" or (key[:1] != "0" and key.lstrip("-").isdigit() and key != "-0")


def assign(target: PhpArray, raw_key: str, value: Any) -> None:
    """Store ``value`` under a PHP bracket key such as ``fields[PHONE][0][VALUE]``."""
    parsed = _split_key(raw_key)
    if parsed is None:
        return
    base, segments = parsed
    if not segments:
        target[base] = value
        return
    node = target.get(base)
    if not isinstance(node, dict):
        node = {}
        target[base] = node
    for i, seg in enumerate(segments):
        key = _next_index(node) if seg is None else seg
        if i == len(segments) - 1:
            node[key] = value
        else:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child


def parse_str(query: str) -> PhpArray:
    """PHP ``parse_str``: ``a=1&b[]=2&b[]=3&c[x][y]=4`` -> nested dicts (values are strings)."""
    result: PhpArray = {}
    for pair in query.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        assign(result, unquote_plus(raw_key), unquote_plus(raw_value))
    return result


def from_pairs(pairs: list[tuple[str, Any]]) -> PhpArray:
    """Build a PHP array from already-decoded form pairs (multipart bodies)."""
    result: PhpArray = {}
    for key, value in pairs:
        assign(result, key, value)
    return result


def json_params(body: bytes) -> PhpArray:
    """Decode a JSON body as PHP ``json_decode($body, true)``; anything unusable gives ``{}``."""
    try:
        decoded = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return {}
    if isinstance(decoded, dict):
        return decoded
    if isinstance(decoded, list):
        return {str(i): v for i, v in enumerate(decoded)}
    return {}


def request_params(
    query: str, content_type: str, body: bytes, form_pairs: list[tuple[str, Any]] | None, is_post: bool
) -> PhpArray:
    """Merge query and body params exactly as ``CRestUtil::getRequestData``
    (docs/bitrix24-rest-api.md §1.2)."""
    params = parse_str(query)
    media_type = content_type.split(";", 1)[0].strip().lower()
    body_params: PhpArray = {}
    if form_pairs:
        body_params = from_pairs(form_pairs)
    elif is_post and body:
        body_params = (
            json_params(body)
            if media_type == "application/json"
            else parse_str(body.decode("utf-8", errors="replace"))
        )
    params.update(body_params)  # array_replace: body wins at top level
    return params


# ---- reading PHP values -------------------------------------------------------------------------


def php_values(value: Any) -> list[Any]:
    """An array parameter as a list: JSON list as is, PHP array's values, scalar as one item."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def intval(value: Any) -> int:
    """PHP ``intval``: leading integer of a string, 0 when there is none; bools as 0/1."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        sign = 1
        if text[:1] in "+-" and text:
            sign = -1 if text[0] == "-" else 1
            text = text[1:]
        digits = ""
        for ch in text:
            if not ch.isdigit():
                break
            digits += ch
        return sign * int(digits) if digits else 0
    if isinstance(value, (list, dict)):
        return 1 if value else 0
    return 0


def truthy(value: Any) -> bool:
    """PHP truthiness (``"0"`` and ``""`` are false, the string ``"false"`` is true)."""
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def upper_keys(params: PhpArray) -> PhpArray:
    """Upper-case top-level keys the way classic handlers do (``filter`` -> ``FILTER``)."""
    return {str(k).upper(): v for k, v in params.items()}


# ---- writing PHP values -------------------------------------------------------------------------


def php_map(mapping: dict[str, Any]) -> Any:
    """Serialize like PHP ``json_encode``: empty -> ``[]``, keys 0..n-1 in order -> list, else object."""
    if not mapping:
        return []
    if all(str(k) == str(i) for i, k in enumerate(mapping)):
        return list(mapping.values())
    return {str(k): v for k, v in mapping.items()}


def http_build_query(data: dict[str, Any] | list[Any], prefix: str = "") -> list[tuple[str, str]]:
    """PHP ``http_build_query`` as (key, value) pairs: nested dicts/lists become bracket keys."""
    pairs: list[tuple[str, str]] = []
    items = [(str(i), v) for i, v in enumerate(data)] if isinstance(data, list) else list(data.items())
    for key, value in items:
        full = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list)):
            pairs.extend(http_build_query(value, full))
        elif isinstance(value, bool):
            pairs.append((full, "1" if value else "0"))
        elif value is None:
            pairs.append((full, ""))
        else:
            pairs.append((full, str(value)))
    return pairs
