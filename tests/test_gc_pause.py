"""``cyclic_gc_paused``: no collection inside, the collector back on after, cyclic garbage made
inside still collectable."""

from __future__ import annotations

import gc
import weakref

from bitrix24_assets.gc_pause import cyclic_gc_paused


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_no_collection_inside_and_the_collector_is_back_on_after() -> None:
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with cyclic_gc_paused():
            kept = [{"n": i} for i in range(50_000)]  # would trigger dozens of young collections
            assert not gc.isenabled() and collections == []
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(count)
    assert len(kept) == 50_000


def test_cyclic_garbage_made_inside_is_collected_by_the_next_young_collection() -> None:
    """No explicit gc.collect(): what the collector does on its own once back on (a block that
    moved its survivors past the young generation would keep such garbage until a full one)."""
    with cyclic_gc_paused():
        node = Node()
        ref = weakref.ref(node)
        del node
        assert ref() is not None  # a cycle: reference counting alone does not free it
    threshold = gc.get_threshold()[0]
    allocated = [[] for _ in range(threshold * 3)]  # enough allocations for young collections
    assert ref() is None and len(allocated) == threshold * 3


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
