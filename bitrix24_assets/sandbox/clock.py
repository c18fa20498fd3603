"""The sandbox's modelled clock.

Every cost, delay and timestamp of the sandbox runs on a *time scale*: one modelled second takes
``time_scale`` wall seconds. Tests run the cloud profile with ``time_scale=0.001`` (a one-second
page costs one millisecond) while benchmarks run close to ``1.0``. The modelled clock is anchored
at the wall-clock time of server start and then runs ``1 / time_scale`` times as fast as the wall
clock, so rate limits, the operating budget and OAuth expiry all see consistent modelled time.

A frozen clock (``frozen=True``) only moves when :meth:`advance` is called. Tests use it to check
the leaky bucket and the operating budget deterministically without sleeping.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone


class ModelledClock:
    """Modelled time = anchor + elapsed wall time / time_scale + manual advances."""

    def __init__(self, time_scale: float, *, frozen: bool = False, utc_offset_hours: int = 3) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale!r}")
        self.time_scale = time_scale
        self.frozen = frozen
        self.tz = timezone(timedelta(hours=utc_offset_hours))
        self._anchor_epoch = time.time()
        self._anchor_mono = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Modelled Unix time in seconds (float)."""
        with self._lock:
            if self.frozen:
                return self._anchor_epoch + self._offset
            elapsed = (time.monotonic() - self._anchor_mono) / self.time_scale
            return self._anchor_epoch + elapsed + self._offset

    def now_dt(self) -> datetime:
        """Modelled now as an aware datetime in the portal's time zone."""
        return datetime.fromtimestamp(self.now(), self.tz)

    def advance(self, seconds: float) -> float:
        """Move modelled time forward (both running and frozen clocks); returns the new now."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    def wall_seconds(self, modelled_seconds: float) -> float:
        """How long ``modelled_seconds`` take on the wall clock."""
        return modelled_seconds * self.time_scale

    async def sleep(self, modelled_seconds: float) -> None:
        """Await ``modelled_seconds`` of modelled time without blocking the event loop."""
        if modelled_seconds > 0:
            await asyncio.sleep(modelled_seconds * self.time_scale)

    def iso(self, ts: float) -> str:
        """PHP ``date('c')`` in the portal zone: ``2024-08-29T10:34:19+03:00`` (no fractions)."""
        return datetime.fromtimestamp(int(ts), self.tz).isoformat()
