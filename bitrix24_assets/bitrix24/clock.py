"""Time for every wait the client makes, on a scale shared with the sandbox portal.

All waits (leaky bucket, operating budget, retry backoff, OAuth expiry) are expressed in *modelled*
seconds - the seconds of the portal's clock - and slept as ``modelled * time_scale`` wall seconds.
Against a real portal ``time_scale`` is 1. Against the sandbox with ``time_scale=0.001`` a ten-minute
operating-budget reset takes 0.6 s of wall time and the client's bucket drains at the same modelled
pace as the sandbox's, so tests exercise the real waiting logic without sleeping for real.
"""

from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """Monotonic modelled time and scaled sleep."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale!r}")
        self.time_scale = time_scale
        self.slept = 0.0  # modelled seconds spent waiting (for stats)

    def now(self) -> float:
        """Modelled seconds on a monotonic clock (only differences are meaningful)."""
        return time.monotonic() / self.time_scale

    def sleep(self, modelled_seconds: float) -> None:
        """Block the calling thread for ``modelled_seconds`` of modelled time."""
        if modelled_seconds > 0:
            self.slept += modelled_seconds
            time.sleep(modelled_seconds * self.time_scale)

    def __repr__(self) -> str:
        return f"Clock(time_scale={self.time_scale})"
