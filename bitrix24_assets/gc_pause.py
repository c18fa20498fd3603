"""Pause Python's cyclic garbage collector around loops over a whole sync's records.

Shared by the layers that loop over 100k records while all of them are alive: mapping
(``sync``), the Core merges (``core``) and the entity sync that reads, maps and merges one entity
(``pipeline``). Imports nothing of the project, so any layer may use it.

Such a loop allocates a few objects per record, so the generational collector runs again and
again, and now and then a full (oldest-generation) collection walks every live record, landing at
an unpredictable point of a merge. Records, rows and COPY tuples hold no reference cycles
(reference counting frees them), so pausing the collector for the loop loses nothing; it is
switched back on right after, and a collector that was already off stays off.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["cyclic_gc_paused"]


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the ``with`` block (reference counting still frees)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
