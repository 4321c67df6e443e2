from __future__ import annotations

import gc

from accord.simulation.heap import release_heap, settle_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_heap_is_collected_then_frozen_for_the_run_and_unfrozen_after():
    # Arrange: garbage in a cycle (only the cyclic collector frees it), and a
    # live object
    gc.unfreeze()
    garbage = _Cycle()
    del garbage
    live = [_Cycle()]
    # Act / Assert
    settle_heap()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert not any(
            isinstance(o, _Cycle) and o is not live[0] for o in gc.get_objects()
        )  # the garbage was collected, not frozen
        assert gc.is_tracked(live[0])
    finally:
        release_heap()
    assert gc.get_freeze_count() == 0
    # The live object is an ordinary one again: a later full collection sees it.
    assert any(o is live[0] for o in gc.get_objects(generation=2))
