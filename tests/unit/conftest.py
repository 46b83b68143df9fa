"""Fixtures shared by the unit tests.

The objects behind them live in importable modules, so a test can also name their types:
`tests.unit.orchestrator.harness` (the `Swarm` around a real Manager) and
`tests.factories` (desired-state builders, shared with the integration tests).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.ca import mint, minting
from tests.etcd import Seat
from tests.unit.orchestrator.harness import Swarm


@pytest.fixture
def swarm(seat: Seat) -> Swarm:
    """manager1 + worker1 + worker2 and an overlay "webnet", on an explicit clock."""
    return Swarm(seat)


def _mint_here(request: dict[str, Any]) -> dict[str, Any]:
    """The mint's operations in this process, through JSON as over its pipe."""
    return json.loads(json.dumps(mint.answer(json.loads(json.dumps(request)))))


@pytest.fixture(autouse=True)
def mint_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests make hundreds of certificates: the mint's code, without a process
    start for each (tests/unit/orchestrator/ca/test_minting.py runs the real process)."""
    monkeypatch.setattr(minting, "TRANSPORT", _mint_here)
