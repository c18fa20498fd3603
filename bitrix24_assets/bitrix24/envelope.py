"""Reading a Bitrix24 response body (Bitrix24 docs, "How to call the REST API").

Success::

    {"result": ..., "next": 50, "total": 1570,
     "time": {"start": 1724916859.42, "finish": 1724916859.47, "duration": 0.05, "processing": 0.01,
              "date_start": "2024-08-29T10:34:19+03:00", "operating_reset_at": 1724917459, "operating": 0.01}}

Error (non-2xx, and no ``time`` object)::

    {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}

``next``/``total`` appear only for list methods; ``operating``/``operating_reset_at`` only on portals
with the load limiter on (and ``operating_reset_at`` only when there is something to reset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Envelope", "TimeInfo"]


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class TimeInfo:
    """The ``time`` object; every field optional because the set "may vary by method and environment"."""

    start: float | None = None
    finish: float | None = None
    duration: float | None = None
    processing: float | None = None
    operating: float | None = None
    operating_reset_at: float | None = None

    @classmethod
    def parse(cls, raw: Any) -> TimeInfo | None:
        if not isinstance(raw, dict):
            return None
        return cls(**{name: _float(raw.get(name)) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class Envelope:
    """A successful response: the method's ``result`` plus paging and timing."""

    result: Any
    next: int | None = None
    total: int | None = None
    time: TimeInfo | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Envelope:
        def _int(v: Any) -> int | None:
            try:
                return int(v) if v is not None and v != "" else None
            except (TypeError, ValueError):
                return None

        return cls(
            result=body.get("result"),
            next=_int(body.get("next")),
            total=_int(body.get("total")),
            time=TimeInfo.parse(body.get("time")),
        )
