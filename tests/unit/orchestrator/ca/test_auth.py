"""Who may call what: O, OU and CN of the caller's certificate (swarmkit ca/auth.go)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from netagent.contract.errors import PermissionDenied
from orchestrator.ca import auth, authority, pem
from orchestrator.ca.auth import Peer
from orchestrator.ca.roles import NodeRole
from tests.unit.orchestrator.ca.conftest import CLUSTER

MANAGERS = {NodeRole.MANAGER}
ANY_NODE = {NodeRole.MANAGER, NodeRole.WORKER}


def _der(cert_pem: bytes) -> bytes:
    return pem.load_cert(cert_pem).public_bytes(Encoding.DER)


def test_a_peer_is_read_from_its_certificate_der(issue):
    _, cert = issue("worker1-id", "worker")
    assert Peer.from_der(_der(cert)) == Peer("worker1-id", NodeRole.WORKER, CLUSTER)
    assert auth.peer_of(None) is None


def test_a_manager_may_call_a_manager_route(issue):
    _, cert = issue("manager1-id", "manager")
    peer = Peer.from_der(_der(cert))
    assert auth.authorize(peer, cluster_id=CLUSTER, roles=MANAGERS) == peer


def test_a_node_may_speak_for_itself(issue):
    peer = Peer.from_der(_der(issue("worker1-id", "worker")[1]))
    auth.authorize(peer, cluster_id=CLUSTER, roles=ANY_NODE, node_id="worker1-id")


def _refusal(peer, **kw) -> str:
    kw.setdefault("cluster_id", CLUSTER)
    kw.setdefault("roles", ANY_NODE)
    with pytest.raises(PermissionDenied) as err:
        auth.authorize(peer, **kw)
    assert len(str(err.value).splitlines()) == 1
    return str(err.value)


def test_a_caller_without_a_certificate_is_refused():
    assert _refusal(None) == (
        "no client certificate: this call needs a swarm node certificate "
        "(only joining and fetching the root CA work without one)"
    )


def test_a_node_of_another_swarm_is_refused():
    peer = Peer("worker1-id", NodeRole.WORKER, "cluster2")
    assert _refusal(peer) == f"node worker1-id belongs to swarm cluster2, not {CLUSTER}"


def test_a_worker_calling_a_manager_only_route_is_refused():
    peer = Peer("worker1-id", NodeRole.WORKER, CLUSTER)
    assert _refusal(peer, roles=MANAGERS) == (
        "node worker1-id is a worker: this call is for a manager"
    )


def test_a_node_cannot_speak_for_another():
    peer = Peer("worker1-id", NodeRole.WORKER, CLUSTER)
    assert _refusal(peer, node_id="worker2-id") == (
        "node worker1-id cannot speak for node worker2-id"
    )


def test_a_removed_node_is_refused_while_its_certificate_is_valid():
    peer = Peer("worker1-id", NodeRole.WORKER, CLUSTER)
    assert _refusal(peer, removed={"worker1-id"}) == "node worker1-id was removed from the swarm"


def test_a_certificate_that_names_no_node_is_refused(root):
    with pytest.raises(PermissionDenied, match="^peer certificate refused: unknown certificate OU"):
        Peer.from_der(_der(authority.bundle_pem(root)))
