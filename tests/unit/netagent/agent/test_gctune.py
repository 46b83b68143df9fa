"""The daemon's collector settings (netagent.agent.gctune)."""

import gc

from netagent.agent import gctune


def test_tune_freezes_what_is_loaded_and_raises_only_the_young_threshold():
    before = gc.get_threshold()
    try:
        gctune.tune()
        assert gc.get_freeze_count() > 1000  # the modules and classes loaded so far
        assert gc.get_threshold() == (gctune.YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
