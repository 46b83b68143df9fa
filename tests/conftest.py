"""Fixtures for every test: the shared etcd member behind cluster stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.etcd import Seat, SharedEtcd


@pytest.fixture(scope="session")
def etcd(tmp_path_factory) -> Iterator[SharedEtcd]:
    """One real etcd member for the session (each test roots its objects apart)."""
    shared = SharedEtcd(tmp_path_factory.mktemp("etcd"))
    yield shared
    shared.stop()


@pytest.fixture
def seat(etcd: SharedEtcd) -> Iterator[Seat]:
    """A leading manager's election and an empty store, under a root of its own."""
    s = etcd.seat()
    yield s
    s.close()
