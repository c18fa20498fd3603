"""The two limits of a Bitrix24 portal, enforced on our side so the portal never has to.

1. **Request rate** (Bitrix24 docs, "Limits"): every HTTP request (a batch is one) adds 1 to a per-portal
   counter that drains Y per second; above X the portal answers 503 ``QUERY_LIMIT_EXCEEDED``.
   :class:`LeakyBucket` is that exact model (X=50, Y=2 by default; 250/5 on Enterprise), shared by
   every client of the same portal in the process through :func:`shared_bucket`. It is hand-written
   (30 lines) because aiolimiter, which implements the same algorithm, is asyncio-only and this
   client sends from worker threads; pyrate-limiter counts in sliding windows, which would not mirror
   the portal's drain and would either waste throughput or overflow the real bucket.
   The bucket exists in the cloud only (self-hosted portals have none), so with ``plan="auto"`` the
   client paces as the cloud does until the first answer tells it otherwise: a cloud portal reports
   ``time.operating`` in every successful answer (its load limiter is on); an answer without it
   means an unmetered portal, and pacing it at 2 requests/s would only waste time (a 10k-user
   calendar read took 77 s instead of 2.5 s against such a portal). Any ``operating`` figure or
   ``QUERY_LIMIT_EXCEEDED`` later switches pacing back on for good.
2. **Operating time** (same page): each method may use 480 s of server time per 10 minutes per webhook,
   reported in ``time.operating`` with ``operating_reset_at``. :class:`OperatingBudget` remembers the
   latest figures per method, keeps the in-flight calls' likely cost in reserve, and makes callers
   wait for the next bucket reset *before* the portal would block. Reset times are taken relative to
   the portal's own clock (``operating_reset_at - time.finish``), never our wall clock, because the two
   clocks differ (and run at different speeds against the sandbox).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .clock import Clock

__all__ = ["LeakyBucket", "MethodBudget", "OperatingBudget", "shared_bucket"]


class LeakyBucket:
    """Thread-safe leaky bucket in modelled time: ``acquire()`` blocks until a request may go out."""

    def __init__(self, capacity: int, drain_per_second: float, clock: Clock) -> None:
        if capacity < 1 or drain_per_second <= 0:
            raise ValueError("bucket capacity must be >= 1 and drain > 0")
        self.capacity = capacity
        self.drain = drain_per_second
        self.clock = clock
        self._level = 0.0
        self._last = clock.now()
        self._lock = threading.Lock()
        self.waited = 0.0
        self.metered: bool | None = None  # None: not known yet, so pace as the cloud does

    def _drain(self, now: float) -> None:
        self._level = max(0.0, self._level - (now - self._last) * self.drain)
        self._last = now

    def acquire(self) -> float:
        """Take one slot; returns the modelled seconds waited (always 0 on an unmetered portal)."""
        with self._lock:
            self._drain(self.clock.now())
            if self.metered is False:
                # Keep the level (capped) so that pacing is exact from the first request if the
                # portal turns out to be metered after all.
                self._level = min(self._level + 1, float(self.capacity))
                return 0.0
            wait = max(0.0, (self._level + 1 - self.capacity) / self.drain)
            self._level += 1  # reserved now, so concurrent callers queue behind us
            self.waited += wait
        self.clock.sleep(wait)
        return wait

    def observe(self, metered: bool) -> None:
        """What an answer showed: metered (``time.operating`` present) is final; unmetered only
        applies while nothing has shown the opposite."""
        with self._lock:
            if metered:
                self.metered = True
            elif self.metered is None:
                self.metered = False

    def fill(self) -> None:
        """The portal said the bucket is full (503): pace the next requests at the drain rate."""
        with self._lock:
            self.metered = True
            self._drain(self.clock.now())
            self._level = max(self._level, float(self.capacity))

    @property
    def level(self) -> float:
        with self._lock:
            self._drain(self.clock.now())
            return self._level


_BUCKETS: dict[tuple[str, int, float, float], LeakyBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def shared_bucket(portal_key: str, capacity: int, drain_per_second: float, clock: Clock) -> LeakyBucket:
    """The process-wide bucket of one portal (the portal counts per portal and IP, not per client)."""
    key = (portal_key, capacity, drain_per_second, clock.time_scale)
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None:
            bucket = _BUCKETS[key] = LeakyBucket(capacity, drain_per_second, clock)
        return bucket


@dataclass
class MethodBudget:
    """What the portal last told us about one method's operating time."""

    operating: float = 0.0  # seconds used in the current 10-minute window
    server_time: float = 0.0  # portal clock (time.finish) of that report
    reset_in: float | None = None  # operating_reset_at - time.finish: modelled seconds to the next reset
    seen_at: float = 0.0  # our modelled clock when it was reported
    max_step: float = 0.0  # the largest increase one request caused (reserve per in-flight call)
    in_flight: int = 0
    blocked_until: float = 0.0  # our modelled clock; set after a 429 OPERATION_TIME_LIMIT


class OperatingBudget:
    """Per-method operating-time budget of one webhook/app (``limit`` seconds per ``window``)."""

    def __init__(
        self,
        clock: Clock,
        limit: float = 480.0,
        *,
        window: float = 600.0,
        bucket: float = 60.0,
        safety: float = 0.9,
    ) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.bucket = bucket
        self.safety = safety
        self._methods: dict[str, MethodBudget] = {}
        self._cond = threading.Condition()
        self.waited = 0.0

    def _get(self, method: str) -> MethodBudget:
        return self._methods.setdefault(method, MethodBudget())

    def snapshot(self) -> dict[str, float]:
        """Latest reported operating seconds per method."""
        with self._cond:
            return {m: b.operating for m, b in self._methods.items()}

    def _wait_needed(self, b: MethodBudget, now: float) -> float:
        if b.blocked_until > now:
            return b.blocked_until - now
        projected = b.operating + (b.in_flight + 1) * b.max_step
        if projected < self.limit * self.safety:
            return 0.0
        # Wait until the oldest one-minute bucket expires on the portal's clock.
        reset_in = b.reset_in if b.reset_in is not None else self.bucket
        remaining = reset_in - (now - b.seen_at)
        if remaining > 0:
            return remaining
        # The reset has passed but we have no fresh figure yet: let one call through to learn it.
        return 0.0 if b.in_flight == 0 else min(self.bucket, max(b.max_step, 1.0))

    def acquire(self, methods: Iterable[str]) -> float:
        """Wait until every method in ``methods`` may run one more call; returns modelled seconds waited."""
        methods = sorted(set(methods))
        waited = 0.0
        while True:
            with self._cond:
                now = self.clock.now()
                wait = max((self._wait_needed(self._get(m), now) for m in methods), default=0.0)
                if wait <= 0:
                    for m in methods:
                        self._get(m).in_flight += 1
                    self.waited += waited
                    return waited
            self.clock.sleep(wait)
            waited += wait

    def release(self, methods: Iterable[str]) -> None:
        with self._cond:
            for m in set(methods):
                b = self._get(m)
                b.in_flight = max(0, b.in_flight - 1)

    def observe(
        self,
        method: str,
        operating: float | None,
        reset_at: float | None,
        server_finish: float | None,
        processing: float | None = None,
    ) -> None:
        """Record ``time.operating``/``operating_reset_at`` of a successful response for ``method``."""
        if operating is None:
            return
        with self._cond:
            b = self._get(method)
            finish = server_finish if server_finish is not None else b.server_time
            if finish < b.server_time:  # an older response overtaken by a newer one
                return
            step = operating - b.operating if b.server_time else 0.0  # first report: no previous figure
            if 0 < step < self.limit:
                b.max_step = max(b.max_step, step)
            if processing is not None and 0 < processing < self.limit:
                b.max_step = max(b.max_step, processing)
            b.operating = operating
            b.server_time = finish
            b.seen_at = self.clock.now()
            b.reset_in = (reset_at - finish) if reset_at and finish else None
            b.blocked_until = 0.0

    def blocked(self, method: str) -> float:
        """The portal answered 429 for ``method``: block it until the next reset; returns the wait."""
        with self._cond:
            b = self._get(method)
            now = self.clock.now()
            remaining = (b.reset_in - (now - b.seen_at)) if b.reset_in is not None else 0.0
            wait = remaining if remaining > 0 else self.bucket
            b.blocked_until = max(b.blocked_until, now + wait)
            return wait
