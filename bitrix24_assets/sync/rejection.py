"""Why a raw record did not become a Core row.

A bad record never fails a run (design.md, "mapped_*"): the mapper returns a ``Rejection`` and
the mapped asset reports the count per reason in its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record the mapper refused, with a short reason that groups well in metadata.

    ``reason`` is a fixed phrase (no record values in it), so reasons can be counted and shown
    without leaking personal data; ``bitrix_id`` is the record's ID when it had a usable one.
    """

    reason: str
    bitrix_id: str | None = None
