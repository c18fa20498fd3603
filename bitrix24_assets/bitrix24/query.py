"""PHP ``http_build_query`` for ``batch`` sub-commands (Bitrix24 docs, "Data encoding" and "batch").

Batch commands are ``"method?query"`` strings that the portal parses with PHP ``parse_str``, so
nested params need bracket keys: ``{"filter": {">ID": 5}, "select": ["ID"]}`` becomes
``filter[>ID]=5&select[0]=ID``. Keys keep their brackets readable; values are percent-encoded
(``&`` -> ``%26``), which ``parse_str`` decodes. Booleans become ``1``/``0`` (never ``"false"``,
which PHP reads as true). ``$result[...]`` references survive because they are decoded before the
portal substitutes them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["build_command", "http_build_query"]


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        if not value and prefix:
            return
        for k, v in value.items():
            _flatten(f"{prefix}[{k}]" if prefix else str(k), v, out)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)
    elif value is None:
        out.append((prefix, ""))
    elif isinstance(value, bool):
        out.append((prefix, "1" if value else "0"))
    else:
        out.append((prefix, str(value)))


def http_build_query(params: Mapping[str, Any]) -> str:
    """``{"a": {"b": [1, 2]}}`` -> ``a[b][0]=1&a[b][1]=2`` (keys readable, values encoded)."""
    pairs: list[tuple[str, str]] = []
    _flatten("", params, pairs)
    return "&".join(_encoded_pair(k, v) for k, v in pairs)


@functools.lru_cache(maxsize=4096)
def _encoded_pair(key: str, value: str) -> str:
    """One ``key=value``, cached: enumerating 100k tasks builds 2,000 commands that repeat the
    same ``select[i]=FIELD`` and ``order`` pairs, and ``urllib.parse.quote`` is pure Python
    (percent-encoding those pairs again and again was half of the client's CPU)."""
    return f"{quote(key, safe='[]')}={quote(value, safe='$[]')}"


def build_command(method: str, params: Mapping[str, Any] | None = None) -> str:
    """One batch command string: ``method`` or ``method?query``."""
    query = http_build_query(params or {})
    return f"{method}?{query}" if query else method
