"""Pause Python's cyclic garbage collector around loops over a whole sync's records.

Shared by the layers that loop over 100k records while all of them are alive: mapping
(``sync``) and the Core merges (``core``). Imports nothing of the project, so any layer may use it.

Such a loop allocates a few objects per record, so the generational collector runs again and
again, and now and then a full (oldest-generation) collection walks every live record: 0.2-0.3 s
landing at an unpredictable point of a 100k-row merge, a third of its time. Records, rows and
COPY tuples hold no reference cycles (reference counting frees them), so pausing the collector
for the loop loses nothing; it is switched back on right after, and a collector that was already
off stays off.
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
            if gc.get_freeze_count() == 0:  # (nobody else's frozen objects to thaw by accident)
                # Survivors of the block go straight to the oldest generation: freeze + unfreeze
                # splices the young lists onto it without walking them. Switched on as it was,
                # the collector's next young collection walked every record still referenced
                # (~1 s after a step of 100k tasks, 0.2-0.3 s after a mapping), then again in
                # the middle generation. The oldest generation is walked only by a full
                # collection, which comes when it has grown by a quarter, as it would anyway.
                gc.freeze()
                gc.unfreeze()
            gc.enable()
