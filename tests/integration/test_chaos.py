"""The chaos soak of bench/chaos.py with a smaller budget: a 5-node lab, 45 s of
random faults and changes (seeded, so a failure can be replayed with
`python -m bench.chaos --seed 7 --seconds 45 --nodes 5`) under continuous ab.

Nothing may be lost but requests in flight to a cut node; every service converges;
`vxswarm verify` is clean on every node; nothing of the lab is left after it."""

from __future__ import annotations

import pytest

from netagent.lab.chaos import soak

pytestmark = [pytest.mark.root, pytest.mark.lab]


def test_a_short_chaos_soak_loses_nothing_it_may_not(tmp_path):
    outcome = soak(tmp_path, seconds=45, seed=7, nodes=5)
    kinds = {f.kind for f in outcome.faults}
    assert len(outcome.faults) >= 5, outcome.faults
    assert kinds & {"kill", "cut"} and kinds & {"update", "scale", "drain"}, kinds
    assert outcome.ab.complete > 100, outcome.ab.lines
    assert outcome.unexplained == 0, (outcome.ab.lines, outcome.faults)
    assert outcome.verify_failures == []
    assert outcome.left_behind == []
