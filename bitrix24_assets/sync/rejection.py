"""Why a raw record did not become a Core row.

A bad record never fails a run and never becomes a deletion: the mapper returns a ``Rejection``,
the mapped asset reports the count per reason in its metadata, and the record's ID (when it has a
readable one) still counts as seen, so the row Core already has keeps its last good values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record the mapper refused, with a short reason that groups well in metadata.

    ``reason`` is a fixed phrase (no record values in it), so reasons can be counted and shown
    without leaking personal data. ``bitrix_id`` is the record's ID as canonical ASCII-digit text
    when it had a readable one (the record was seen: a full merge keeps its Core row), else None.
    """

    reason: str
    bitrix_id: str | None = None
