"""Who may call what: O, OU and CN of the caller's certificate (swarmkit ca/auth.go)."""

from __future__ import annotations

import pytest

from netagent.contract.errors import PermissionDenied
from orchestrator.ca import auth, authority, tls
from orchestrator.ca.auth import Peer
from orchestrator.ca.roles import NodeRole
from tests.unit.orchestrator.ca.conftest import CLUSTER

MANAGERS = {NodeRole.MANAGER}
ANY_NODE = {NodeRole.MANAGER, NodeRole.WORKER}


@pytest.fixture
def shown(tmp_path):
    """shown(key, cert, root) -> the certificate as OpenSSL decodes it for its peers."""

    def _shown(key: bytes, cert: bytes, root: authority.RootCA) -> dict:
        paths = [tmp_path / n for n in ("n.key", "n.crt", "ca.crt")]
        for path, data in zip(paths, (key, cert, authority.bundle_pem(root)), strict=True):
            path.write_bytes(data)
        return tls.shown_certificate(paths[1], paths[0], paths[2])

    return _shown


@pytest.fixture
def real_root():
    """A root of the real time: handshakes check validity against the clock."""
    return authority.new_root(CLUSTER)


def test_a_peer_is_read_from_its_verified_certificate(issue, shown, real_root):
    key, cert = issue("worker1-id", "worker", signer=real_root, now=None)
    decoded = shown(key, cert, real_root)
    assert Peer.from_peercert(decoded) == Peer("worker1-id", NodeRole.WORKER, CLUSTER)
    assert auth.peer_of(None) is None


def test_an_unverified_certificate_names_no_peer():
    # What getpeercert() gives for a certificate that was not verified.
    with pytest.raises(PermissionDenied, match="^peer certificate refused: certificate ''"):
        auth.peer_of({})


def test_a_manager_may_call_a_manager_route(issue, shown, real_root):
    key, cert = issue("manager1-id", "manager", signer=real_root, now=None)
    peer = Peer.from_peercert(shown(key, cert, real_root))
    assert auth.authorize(peer, cluster_id=CLUSTER, roles=MANAGERS) == peer


def test_a_node_may_speak_for_itself(issue, shown, real_root):
    key, cert = issue("worker1-id", "worker", signer=real_root, now=None)
    peer = Peer.from_peercert(shown(key, cert, real_root))
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


def test_a_certificate_that_names_no_node_is_refused():
    # As getpeercert() decodes the root's certificate: CN and O, no OU.
    decoded = {
        "subject": ((("commonName", "swarm-ca"),), (("organizationName", CLUSTER),)),
        "notBefore": "Jan  2 03:03:05 2030 GMT",
        "notAfter": "Jan  1 03:04:05 2050 GMT",
    }
    with pytest.raises(PermissionDenied, match="^peer certificate refused: unknown certificate OU"):
        Peer.from_peercert(decoded)


def test_a_certificate_with_two_common_names_is_refused():
    decoded = {
        "subject": (
            (("commonName", "worker1-id"),),
            (("commonName", "worker2-id"),),
            (("organizationalUnitName", "swarm-worker"),),
            (("organizationName", CLUSTER),),
        ),
        "notBefore": "Jan  2 03:03:05 2030 GMT",
        "notAfter": "Jan  1 03:04:05 2031 GMT",
    }
    with pytest.raises(PermissionDenied, match="expected one CN"):
        Peer.from_peercert(decoded)
