"""Certificates the manager issues: expiry settings, renewal, and a root CA rotation."""

from datetime import UTC, datetime, timedelta

import pytest

from netagent.contract.errors import Conflict, InvalidArgument, PermissionDenied
from orchestrator.ca.node_certs import cert_info, check_chain
from orchestrator.ca.pem import load_certs
from orchestrator.cluster.objects import NodeRole
from tests.factories import csr


def renew_all(swarm) -> dict[str, bytes]:
    """Every node renews its certificate, as its daemon does on a new CA digest."""
    swarm.certs = {
        name: swarm.m.renew_certificate(cert, csr()) for name, cert in swarm.certs.items()
    }
    return swarm.certs


def test_cert_expiry_is_at_least_an_hour_and_applies_to_new_certificates(swarm):
    with pytest.raises(InvalidArgument, match="invalid --cert-expiry 1800.0: expected a duration"):
        swarm.m.update_swarm(cert_expiry=1800.0)
    swarm.m.update_swarm(cert_expiry=7200.0)
    info = cert_info(swarm.m.renew_certificate(swarm.certs["worker1"], csr()))
    issued = info.not_after - timedelta(hours=2)
    assert abs((issued - datetime.now(UTC)).total_seconds()) < 60


def test_a_rotation_trusts_both_roots_until_every_node_renewed_then_the_new_only(swarm):
    old_bundle = swarm.m.ca_bundle()
    old_token = swarm.m.join_token(NodeRole.WORKER)
    swarm.m.rotate_ca()
    assert swarm.m.ca_status()["rotating"]
    during = swarm.m.ca_bundle()
    assert len(load_certs(during)) == 2
    # The tokens name the new bundle: an old token is refused at once.
    assert swarm.m.join_token(NodeRole.WORKER) != old_token
    with pytest.raises(PermissionDenied, match="different swarm"):
        swarm.m.join(old_token, hostname="w9", addr="192.168.56.40", engine_version="", csr=csr())
    with pytest.raises(Conflict, match="already in progress"):
        swarm.m.rotate_ca()
    swarm.tick()
    assert swarm.m.ca_status()["rotating"]  # nobody renewed yet

    certs = renew_all(swarm)
    now = datetime.now(UTC)
    for cert in certs.values():
        # A node that still trusts only the old root verifies the new certificates
        # through the cross-signed root they carry.
        check_chain(cert, old_bundle, now=now)
    status = swarm.m.ca_status()
    assert (status["renewed"], status["nodes"]) == (3, 3)
    swarm.tick()
    after = swarm.m.ca_bundle()
    assert not swarm.m.ca_status()["rotating"]
    assert load_certs(after) == load_certs(during)[:1]
    for cert in renew_all(swarm).values():
        check_chain(cert, after, now=now)
        assert len(load_certs(cert)) == 1  # no cross-signed root any more
