"""Fixtures shared by the unit tests.

The objects behind them live in importable modules, so a test can also name their types:
`tests.unit.orchestrator.harness` (the `Swarm` around a real Manager) and
`tests.factories` (desired-state builders, shared with the integration tests).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.orchestrator.harness import Swarm


@pytest.fixture
def swarm(tmp_path) -> Iterator[Swarm]:
    """manager1 + worker1 + worker2 and an overlay "webnet", on an explicit clock."""
    s = Swarm(tmp_path)
    yield s
    s.close()
