"""The sandbox's cost model: how much modelled server time each call takes.

Importable on its own (no server needed) so benchmarks can compute a lower bound for a workload
from the same parameters the sandbox uses. All numbers are *modelled seconds*; the sandbox sleeps
``cost * time_scale`` wall seconds per call (``asyncio.sleep``, never blocking the event loop).

Where the numbers come from (docs/bitrix24-rest-api.md §2.1, §4, §6.4 and the JS-SDK maintainers'
measurements):

* ``base`` 0.01 s - every call pays auth, routing and JSON encoding; live envelopes show
  ``processing`` of 0.001-0.02 s for trivial methods (``user.current`` 0.0013, ``department.get``
  0.0018, ``user.get`` 0.0188).
* ``page`` per method - reading and formatting one page of 50 rows. ``tasks.task.list`` 0.06 s
  because the docs' huge-data example returns a keyset page in 0.097 s and says dropping the count
  makes a page cost "a tenth of a second or less"; users/departments are lighter rows.
* ``count_per_row`` - ``start >= 0`` runs a ``COUNT(*)`` over all matching rows. 9 µs per task row
  makes a counted ``tasks.task.list`` page about 1 s on ~100k tasks (the published observation:
  49.9 s with count vs 0.097 s without on 2.39M CRM rows, i.e. ~20 µs/row there; tasks join fewer
  tables on smaller portals, so a bit cheaper).
* ``offset_per_row`` - an ``OFFSET n`` makes the database walk and discard ``n`` rows; 2 µs per
  skipped task row (deep pages get slower, as users report for offset paging on big portals).
* ``per_event`` - ``calendar.event.get`` has no pagination; its cost grows with the events returned.
* writes (``tasks.task.add`` etc.) - live ``tasks.task.add`` envelopes show ``processing`` ~0.93 s;
  we use 0.3 s (a typical small portal) so write-heavy tests stay quick on the cloud profile.
* ``workers`` 4 - a portal serves a bounded number of requests at once (PHP-FPM workers per
  portal). With 4, parallel lanes help up to 4x and no further, which gives benchmarks a real lower
  bound instead of "infinitely parallel". Requests beyond that queue (their ``duration`` grows,
  their ``processing`` does not).
* ``batch_overhead`` 0.005 s - unpacking a batch; its sub-commands run one after another, so a
  batch costs the sum of its parts plus this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any


def _frozen(d: dict[str, float]) -> Mapping[str, float]:
    return MappingProxyType(d)


DEFAULT_PAGE: Mapping[str, float] = _frozen(
    {
        "tasks.task.list": 0.06,
        "user.get": 0.03,
        "department.get": 0.01,
        "calendar.event.get": 0.04,
        "calendar.section.get": 0.01,
    }
)
DEFAULT_COUNT_PER_ROW: Mapping[str, float] = _frozen(
    {
        "tasks.task.list": 9e-6,
        "user.get": 4e-6,
        "department.get": 1e-6,
    }
)
DEFAULT_OFFSET_PER_ROW: Mapping[str, float] = _frozen(
    {
        "tasks.task.list": 2e-6,
        "user.get": 1e-6,
        "department.get": 0.5e-6,
    }
)
DEFAULT_WRITE: Mapping[str, float] = _frozen(
    {
        "tasks.task.add": 0.3,
        "tasks.task.update": 0.25,
        "tasks.task.delete": 0.2,
        "tasks.task.get": 0.03,
        "calendar.event.add": 0.15,
        "calendar.event.update": 0.12,
        "calendar.event.delete": 0.1,
        "im.notify": 0.05,
        "im.notify.system.add": 0.05,
        "im.notify.personal.add": 0.05,
    }
)


@dataclass(frozen=True)
class Work:
    """What a call did, as reported by its handler; the cost model prices it."""

    list_page: bool = False  # read one page of a list method
    counted_rows: int = 0  # rows the COUNT(*) had to visit (0 with start=-1)
    offset: int = 0  # rows skipped by OFFSET
    returned_rows: int = 0  # rows in the result (calendar: no pagination)


@dataclass(frozen=True)
class CostModel:
    """Modelled seconds per call. ``CostModel.zero()`` is the instant profile."""

    base: float = 0.01
    batch_overhead: float = 0.005
    default_page: float = 0.02
    per_event: float = 0.0005
    workers: int = 4
    page: Mapping[str, float] = field(default_factory=lambda: DEFAULT_PAGE)
    count_per_row: Mapping[str, float] = field(default_factory=lambda: DEFAULT_COUNT_PER_ROW)
    offset_per_row: Mapping[str, float] = field(default_factory=lambda: DEFAULT_OFFSET_PER_ROW)
    write: Mapping[str, float] = field(default_factory=lambda: DEFAULT_WRITE)

    @classmethod
    def zero(cls, workers: int = 64) -> CostModel:
        """No modelled cost at all (instant profile); many workers so nothing queues."""
        empty: Mapping[str, float] = _frozen({})
        return cls(
            base=0.0,
            batch_overhead=0.0,
            default_page=0.0,
            per_event=0.0,
            workers=workers,
            page=empty,
            count_per_row=empty,
            offset_per_row=empty,
            write=empty,
        )

    def with_(self, **changes: Any) -> CostModel:
        """A copy with some parameters changed (``CostModel().with_(base=100)``)."""
        return replace(self, **changes)

    @property
    def is_zero(self) -> bool:
        return (
            self.base == 0
            and not any(self.page.values())
            and not any(self.write.values())
            and (not any(self.count_per_row.values()) and self.default_page == 0)
        )

    def call_cost(self, method: str, work: Work) -> float:
        """Modelled seconds for one call of ``method`` (without batch overhead)."""
        cost = self.base + self.write.get(method, 0.0)
        if work.list_page:
            cost += self.page.get(method, self.default_page)
            cost += work.counted_rows * self.count_per_row.get(method, 0.0)
            cost += work.offset * self.offset_per_row.get(method, 0.0)
        if method == "calendar.event.get":
            cost += work.returned_rows * self.per_event
        return cost

    def list_page_cost(
        self, method: str, *, matching_rows: int, offset: int = 0, counted: bool = True
    ) -> float:
        """Cost of one page: ``counted=False`` is ``start=-1`` (keyset pages pass ``offset=0``)."""
        return self.call_cost(
            method,
            Work(
                list_page=True, counted_rows=matching_rows if counted else 0, offset=offset if counted else 0
            ),
        )

    # ---- lower bounds for benchmarks --------------------------------------------------------

    def keyset_enumeration_cost(self, method: str, rows: int, *, per_batch: int = 1) -> float:
        """Total modelled work to read ``rows`` with ``start=-1`` keyset pages (+ batch overheads)."""
        pages = max(1, math.ceil(rows / 50) + (1 if rows % 50 == 0 else 0))
        page = self.list_page_cost(method, matching_rows=0, counted=False)
        batches = math.ceil(pages / per_batch) if per_batch > 1 else 0
        return pages * page + batches * self.batch_overhead

    def offset_enumeration_cost(self, method: str, rows: int) -> float:
        """Total modelled work to read ``rows`` with counted offset pages (``start=0,50,...``)."""
        total = 0.0
        for start in range(0, max(rows, 1), 50):
            total += self.list_page_cost(method, matching_rows=rows, offset=start, counted=True)
        return total


@dataclass(frozen=True)
class Limits:
    """Per-portal limits of a profile (docs/bitrix24-rest-api.md §4)."""

    bucket_size: int | None = 50  # leaky bucket capacity X (None = no rate limit)
    drain_per_second: float = 2.0  # leaky bucket drain Y
    operating_limit: float | None = 480.0  # seconds per window per (webhook, method); None = off
    operating_window: float = 600.0  # 10 minutes ...
    operating_bucket: float = 60.0  # ... in 1-minute buckets
    operating_floor: float = 0.0  # calls cheaper than this are not billed (JS-SDK: 0.1)


def lower_bound_seconds(
    total_work: float,
    requests: int,
    costs: CostModel,
    limits: Limits,
    *,
    billed_per_method: Mapping[str, float] | None = None,
) -> float:
    """A wall-clock-free lower bound (modelled seconds) for a workload on one portal.

    * the worker pool: ``total_work / workers`` (perfect parallelism);
    * the leaky bucket: requests beyond the bucket drain at ``drain_per_second``;
    * the operating budget: a (webhook, method) billed ``T`` seconds needs at least
      ``ceil(T / limit) - 1`` full windows of waiting.
    """
    bound = total_work / max(costs.workers, 1)
    if limits.bucket_size is not None and requests > limits.bucket_size:
        bound = max(bound, (requests - limits.bucket_size) / limits.drain_per_second)
    if limits.operating_limit and billed_per_method:
        for billed in billed_per_method.values():
            windows = math.ceil(billed / limits.operating_limit) - 1
            if windows > 0:
                bound = max(bound, windows * limits.operating_window)
    return bound
