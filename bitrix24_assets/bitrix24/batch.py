"""``batch``: up to 50 sub-commands in one request (Bitrix24 docs, "batch"), with nothing swallowed.

The response distributes each sub-response into maps::

    {"result": {"result": {"a": ..., "b": ...},
                "result_error": {"c": {"error": "...", "error_description": ""}},
                "result_total": {"a": 1570}, "result_next": {"a": 50}, "result_time": {"a": {...}}}}

PHP's ``json_encode`` turns an empty map into ``[]`` and a map with keys ``0..n-1`` into a list, so
every map is read through :func:`as_map`. Failed sub-commands become typed errors (the same classes
as a direct call would raise) wrapped in :class:`~.errors.BatchCommandError`.

A command that is in neither ``result`` nor ``result_error`` did not come back at all (the portal
puts every command it ran in one of the two; only ``halt`` legitimately stops early): that answer
is broken, never an empty page or an empty calendar. :meth:`BatchResult.missing` names such keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors

__all__ = ["MAX_COMMANDS", "BatchResult", "as_map", "command_method", "parse_batch"]

MAX_COMMANDS = 50


def as_map(value: Any) -> dict[str, Any]:
    """A PHP array as a dict: ``[]`` -> ``{}``, ``[a, b]`` -> ``{"0": a, "1": b}``, objects unchanged."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def command_method(command: str) -> str:
    """``"tasks.task.list?order[ID]=asc"`` -> ``"tasks.task.list"``."""
    return command.split("?", 1)[0].strip().lower()


@dataclass
class BatchResult:
    """Sub-results by key. Reading a failed key raises its :class:`~.errors.BatchCommandError`."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, errors.BatchCommandError] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)
    time: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key in self.errors:
            raise self.errors[key]
        return self.results[key]

    def __contains__(self, key: object) -> bool:
        return key in self.results or key in self.errors

    @property
    def ok(self) -> bool:
        return not self.errors

    def missing(self, commands: Mapping[str, str], *, halt: bool = False) -> list[str]:
        """Keys of ``commands`` in neither ``result`` nor ``result_error``: a broken answer.

        With ``halt`` the portal stops at the first failed command, so only the keys before it
        (in the order sent) must be there.
        """
        absent: list[str] = []
        for key in commands:
            if key in self.errors:
                if halt:
                    break
                continue
            if key not in self.results:
                absent.append(key)
        return absent

    def raise_for_errors(self) -> None:
        """Raise the first failed sub-command's error (``.errors`` on it lists all of them)."""
        if self.errors:
            raise next(iter(self.errors.values()))


def parse_batch(result: Any, commands: Mapping[str, str], *, portal: str, scrub: Any = str) -> BatchResult:
    """Read the outer ``result`` of a batch call into a :class:`BatchResult`."""
    body = result if isinstance(result, dict) else {}
    out = BatchResult(results=as_map(body.get("result")), time=as_map(body.get("result_time")))
    out.total = {k: int(v) for k, v in as_map(body.get("result_total")).items() if _is_int(v)}
    out.next = {k: int(v) for k, v in as_map(body.get("result_next")).items() if _is_int(v)}
    typed: dict[str, errors.ApiError] = {}
    for key, raw in as_map(body.get("result_error")).items():
        raw_d = raw if isinstance(raw, dict) else {"error": str(raw)}
        method = command_method(commands.get(key, "batch"))
        code = raw_d.get("error")
        typed[key] = errors.error_from_response(
            None if code is None else str(code),
            scrub(str(raw_d.get("error_description") or "")),
            _status_for(str(code)),
            method=method,
            portal=portal,
        )
    for key, err in typed.items():
        out.errors[key] = errors.BatchCommandError(
            err.description, key=key, error=err, errors=typed, method=err.method, portal=portal
        )
    return out


def _is_int(v: Any) -> bool:
    try:
        int(v)
    except (TypeError, ValueError):
        return False
    return True


def _status_for(code: str) -> int | None:
    """Sub-errors carry no HTTP status; use the one the portal would have sent for a direct call."""
    return {
        "QUERY_LIMIT_EXCEEDED": 503,
        "OPERATION_TIME_LIMIT": 429,
        "insufficient_scope": 403,
        "ERROR_METHOD_NOT_FOUND": 404,
        "NO_AUTH_FOUND": 401,
    }.get(code, 400)
