"""Portal limits on the modelled clock: the leaky bucket (§4.1) and the operating budget (§4.2)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .clock import ModelledClock
from .costs import Limits


class LeakyBucket:
    """Each request adds 1; the level drains ``drain`` per modelled second; over ``size`` -> reject."""

    def __init__(self, size: int, drain: float, clock: ModelledClock) -> None:
        self.size = size
        self.drain = drain
        self.clock = clock
        self.level = 0.0
        self._last = clock.now()

    def _leak(self) -> None:
        now = self.clock.now()
        self.level = max(0.0, self.level - (now - self._last) * self.drain)
        self._last = now

    def try_acquire(self) -> bool:
        self._leak()
        if self.level + 1 > self.size + 1e-9:
            return False
        self.level += 1
        return True

    def current(self) -> float:
        self._leak()
        return self.level


@dataclass
class _Minute:
    first_call: float
    seconds: float = 0.0


@dataclass
class OperatingBudget:
    """Accumulated execution time per (auth key, method) over a sliding window of minute buckets.

    ``operating`` is the sum of the live buckets; ``operating_reset_at`` is when the oldest bucket
    expires (``window`` after the first call recorded in it). A call is refused when the sum
    already *exceeds* the limit, so the call that crosses it still runs to the end.
    """

    limits: Limits
    clock: ModelledClock
    _buckets: dict[tuple[str, str], dict[int, _Minute]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.limits.operating_limit is not None

    def _live(self, key: str, method: str) -> dict[int, _Minute]:
        now = self.clock.now()
        buckets = self._buckets.setdefault((key, method), {})
        for minute in [m for m, b in buckets.items() if b.first_call + self.limits.operating_window <= now]:
            del buckets[minute]
        return buckets

    def used(self, key: str, method: str) -> tuple[float, int | None]:
        """(operating seconds, operating_reset_at or None when nothing is recorded)."""
        buckets = self._live(key, method)
        total = sum(b.seconds for b in buckets.values())
        if not buckets or total <= 0:
            return total, None
        oldest = min(b.first_call for b in buckets.values())
        return total, math.ceil(oldest + self.limits.operating_window)

    def blocked(self, key: str, method: str) -> bool:
        if self.limits.operating_limit is None:
            return False
        return self.used(key, method)[0] > self.limits.operating_limit

    def bill(self, key: str, method: str, seconds: float) -> None:
        if not self.enabled or seconds <= 0 or seconds < self.limits.operating_floor:
            return
        now = self.clock.now()
        minute = int(now // self.limits.operating_bucket)
        buckets = self._live(key, method)
        bucket = buckets.setdefault(minute, _Minute(first_call=now))
        bucket.seconds += seconds

    def reset(self) -> None:
        self._buckets.clear()

    def snapshot(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for key, method in list(self._buckets):
            out.setdefault(key, {})[method] = round(self.used(key, method)[0], 6)
        return out
