"""The TLS contexts, by real handshakes over memory buffers (no sockets)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.ca import auth, authority, node_certs, tls, tokens
from orchestrator.ca.auth import Peer
from orchestrator.ca.roles import NodeRole
from tests.unit.orchestrator.ca.conftest import CLUSTER


def _write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


@pytest.fixture
def root():
    """A root of the real time: handshakes check validity against the clock."""
    return authority.new_root(CLUSTER)


@pytest.fixture
def files(tmp_path, root, issue):
    """Bundle, manager certificate and key, worker certificate and key, as files."""
    mkey, mcert = issue("manager1-id", "manager", now=None, ip_sans=["127.0.0.1"])
    wkey, wcert = issue("worker1-id", "worker", now=None)
    fresh_root = authority.new_root(CLUSTER)
    return {
        "bundle": _write(tmp_path, "bundle.crt", authority.bundle_pem(root)),
        "manager": (_write(tmp_path, "m.crt", mcert), _write(tmp_path, "m.key", mkey)),
        "worker": (_write(tmp_path, "w.crt", wcert), _write(tmp_path, "w.key", wkey)),
        "other_bundle": _write(tmp_path, "other.crt", authority.bundle_pem(fresh_root)),
    }


def _handshake(
    client: ssl.SSLContext, server: ssl.SSLContext, expect: str = tls.MANAGER_NAME
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Both ends of one TLS handshake; the client expects the server to be `expect`
    (a manager, by default)."""
    return tls.memory_handshake(client, server, server_hostname=expect)


def _server(files) -> ssl.SSLContext:
    return tls.server_context(*files["manager"], files["bundle"])


def test_a_node_with_a_certificate_is_known_to_the_server_by_it(files):
    client = tls.client_context(files["bundle"], *files["worker"])
    _, s = _handshake(client, _server(files))
    peer = auth.peer_of(s.getpeercert())
    assert peer == Peer("worker1-id", NodeRole.WORKER, CLUSTER)
    auth.authorize(peer, cluster_id=CLUSTER, roles={NodeRole.WORKER}, node_id="worker1-id")


def test_a_joiner_without_a_certificate_connects_but_is_refused_by_auth(files):
    client = tls.client_context(files["bundle"])
    _, s = _handshake(client, _server(files))
    assert s.getpeercert() is None
    with pytest.raises(PermissionDenied, match="^no client certificate"):
        auth.authorize(auth.peer_of(None), cluster_id=CLUSTER, roles={NodeRole.MANAGER})


def test_a_client_refuses_a_server_of_another_swarm(files):
    client = tls.client_context(files["other_bundle"])
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(client, _server(files))


def test_the_server_refuses_a_client_certificate_of_another_swarm(files, issue, tmp_path):
    other = authority.new_root("cluster2")
    key, cert = issue("x", "manager", signer=other, cluster_id="cluster2", now=None)
    client = tls.client_context(
        files["bundle"], _write(tmp_path, "x.crt", cert), _write(tmp_path, "x.key", key)
    )
    # The server fails the handshake (CERT_OPTIONAL still verifies what is presented).
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(client, _server(files))


def test_a_client_expecting_a_manager_refuses_a_worker_and_one_node_another(files, tmp_path):
    worker_as_server = tls.server_context(*files["worker"], files["bundle"])
    client = tls.client_context(files["bundle"])
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(client, worker_as_server)  # a worker posing as "swarm-manager"
    _handshake(client, worker_as_server, expect="worker1-id")  # the node it is
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(client, _server(files), expect="worker1-id")  # another node


def test_the_pinning_context_fetches_from_an_unknown_server_then_the_token_decides(files, root):
    c, _ = _handshake(tls.pin_context(), _server(files))
    assert c.getpeercert(binary_form=True)  # the server's, unverified
    cluster_digest = tokens.bundle_digest(authority.bundle_pem(root))
    token = tokens.make_token(cluster_digest, tokens.make_secret())
    tokens.check_bundle(files["bundle"].read_bytes(), token)
    with pytest.raises(PermissionDenied):
        tokens.check_bundle(files["other_bundle"].read_bytes(), token)


def test_every_context_refuses_tls_below_1_2(files):
    for ctx in (_server(files), tls.client_context(files["bundle"]), tls.pin_context()):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert _server(files).verify_mode == ssl.CERT_OPTIONAL
    assert tls.client_context(files["bundle"]).verify_mode == ssl.CERT_REQUIRED
    assert tls.client_context(files["bundle"]).check_hostname is True
    assert tls.pin_context().verify_mode == ssl.CERT_NONE


def test_a_client_certificate_without_its_key_is_refused(files):
    with pytest.raises(InvalidArgument, match="expected both or neither"):
        tls.client_context(files["bundle"], files["worker"][0])


def test_a_node_reads_its_own_certificate_as_its_peers_do(files):
    """The daemon's reading (a handshake in memory, OpenSSL's decoding) says what the
    CA's own parser says, to the second."""
    cert, key = files["manager"]
    shown = tls.shown_identity(cert, key, files["bundle"])
    assert shown == node_certs.cert_info(cert.read_bytes())
    assert (shown.node_id, shown.role, shown.cluster_id) == (
        "manager1-id",
        NodeRole.MANAGER,
        CLUSTER,
    )


def test_an_expired_or_foreign_certificate_does_not_verify_on_reading_back(
    files, issue, root, tmp_path
):
    key, cert = issue("worker1-id", "worker", now=datetime.now(UTC) - timedelta(days=400))
    paths = (_write(tmp_path, "old.crt", cert), _write(tmp_path, "old.key", key))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
        tls.shown_identity(*paths, files["bundle"])
    with pytest.raises(ssl.SSLCertVerificationError):
        tls.shown_identity(*files["worker"], files["other_bundle"])
