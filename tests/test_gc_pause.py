"""``cyclic_gc_paused``: no collection inside, survivors promoted to the oldest generation after
(so the next young collection does not walk them), cyclic garbage still collectable."""

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


def test_survivors_are_promoted_to_the_oldest_generation_without_a_walk() -> None:
    with cyclic_gc_paused():
        kept = [{"n": i} for i in range(50_000)]
        young_inside = gc.get_count()[0]
    assert young_inside >= 40_000  # allocations less deallocations since the last collection
    assert gc.get_count()[0] < 1_000  # the young generation was emptied by the splice
    assert gc.get_freeze_count() == 0  # nothing left frozen
    del kept


def test_cyclic_garbage_made_inside_is_still_collected() -> None:
    with cyclic_gc_paused():
        node = Node()
        ref = weakref.ref(node)
        del node
        assert ref() is not None  # a cycle: reference counting alone does not free it
    gc.collect()
    assert ref() is None


def test_a_collector_that_was_off_stays_off_and_others_frozen_objects_stay_frozen() -> None:
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        with cyclic_gc_paused():
            [{"n": i} for i in range(1_000)]
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()
