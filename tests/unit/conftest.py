"""Fixtures shared by the unit tests.

The objects behind them live in importable modules, so a test can also name their types:
`tests.unit.orchestrator.harness` (the `Swarm` around a real Manager) and
`tests.factories` (desired-state builders, shared with the integration tests).
"""

from __future__ import annotations

import pytest

from tests.etcd import Seat
from tests.unit.orchestrator.harness import Swarm


@pytest.fixture
def swarm(seat: Seat) -> Swarm:
    """manager1 + worker1 + worker2 and an overlay "webnet", on an explicit clock."""
    return Swarm(seat)
