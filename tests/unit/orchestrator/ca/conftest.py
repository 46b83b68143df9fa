"""Roots and node certificates for the CA tests: real keys, real signatures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from orchestrator.ca import authority, node_certs
from orchestrator.ca.authority import RootCA

CLUSTER = "cluster1"
#: A fixed "now" with whole seconds: certificate times have no sub-second part.
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

Issue = Callable[..., tuple[bytes, bytes]]


@pytest.fixture
def root() -> RootCA:
    return authority.new_root(CLUSTER, now=NOW)


@pytest.fixture
def issue(root: RootCA) -> Issue:
    """issue(node_id, role, *, signer=root, **sign_csr args) -> (key PEM, certificate PEM)."""

    def _issue(
        node_id: str = "worker1-id", role: str = "worker", *, signer: RootCA | None = None, **kw
    ) -> tuple[bytes, bytes]:
        key = node_certs.new_key()
        kw.setdefault("cluster_id", CLUSTER)
        kw.setdefault("now", NOW)
        cert = authority.sign_csr(
            signer or root, node_certs.make_csr(key), node_id=node_id, role=role, **kw
        )
        return key, cert

    return _issue
