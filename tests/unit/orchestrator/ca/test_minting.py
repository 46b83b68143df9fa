"""The mint: keys and certificates made in a process of their own, asked through
`minting` (real processes, real keys; the results read back with the CA's parser)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from netagent.contract.errors import InvalidArgument, PermissionDenied, Unavailable
from orchestrator.ca import minting, node_certs, pem
from orchestrator.ca.roles import NodeRole

CLUSTER = "cluster1"


@pytest.fixture(autouse=True)
def mint_in_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are of the process itself (the other unit tests run the mint here)."""
    monkeypatch.setattr(minting, "TRANSPORT", minting.in_a_process)


@pytest.fixture
def made() -> minting.NewRoot:
    """A new swarm's root, as `swarm init` has it made."""
    return minting.found(CLUSTER, node_id="manager1-id", expiry=timedelta(days=1)).made


def _sign(root: minting.Root, csr: bytes, node_id: str = "worker1-id", **kw) -> bytes:
    kw.setdefault("role", NodeRole.WORKER)
    kw.setdefault("expiry", timedelta(days=1))
    return minting.sign(root, csr, node_id=node_id, cluster_id=CLUSTER, **kw)


def test_a_node_key_and_its_request_come_from_the_mint():
    key, csr = minting.node_key()
    loaded = pem.load_key(key)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name == "secp256r1"
    assert pem.load_csr(csr).public_key() == loaded.public_key()
    assert pem.load_csr(minting.csr_for(key)).public_key() == loaded.public_key()


def test_the_mint_signs_what_the_manager_decides_and_it_chains(made):
    key, csr = minting.node_key()
    cert = _sign(made.root, csr, "manager1-id", role=NodeRole.MANAGER, ip_sans=["10.0.0.1"])
    info = node_certs.check_chain(cert, made.bundle_pem, now=datetime.now(UTC))
    assert (info.node_id, info.role, info.cluster_id) == ("manager1-id", "manager", CLUSTER)
    assert minting.cert_info(cert) == info
    assert pem.load_cert(cert).public_key() == pem.load_key(key).public_key()


def test_a_rotation_signs_with_a_new_root_that_the_old_bundle_still_verifies(made):
    rotated = minting.rotate(made.root, CLUSTER)
    assert rotated.bundle_pem.startswith(rotated.root.cert_pem)
    assert made.root.cert_pem in rotated.bundle_pem
    cert = _sign(rotated.root, minting.node_key()[1])
    now = datetime.now(UTC)
    node_certs.check_chain(cert, made.bundle_pem, now=now)  # through the cross-signed root
    node_certs.check_chain(cert, rotated.root.cert_pem, now=now)


def test_renewal_needs_a_certificate_of_the_swarm_and_its_key(made):
    key, csr = minting.node_key()
    cert = _sign(made.root, csr)
    assert minting.renewal_info(cert, minting.csr_for(key), made.bundle_pem).node_id == "worker1-id"
    other_key, other_csr = minting.node_key()
    with pytest.raises(PermissionDenied, match="the CSR is not signed by the certificate's key"):
        minting.renewal_info(cert, other_csr, made.bundle_pem)
    foreign = minting.found(CLUSTER, node_id="m", expiry=timedelta(days=1)).made
    with pytest.raises(PermissionDenied, match="does not chain to the swarm's root CA"):
        minting.renewal_info(cert, minting.csr_for(key), foreign.bundle_pem)


def test_bad_input_comes_back_as_the_error_the_mint_raised(made):
    with pytest.raises(InvalidArgument, match=r"^invalid certificate request b'junk'"):
        _sign(made.root, b"junk")
    with pytest.raises(InvalidArgument, match="invalid node id"):
        _sign(made.root, minting.node_key()[1], "no spaces allowed")
    with pytest.raises(InvalidArgument, match="invalid certificate expiry"):
        _sign(made.root, minting.node_key()[1], expiry=timedelta(seconds=1))


def test_a_mint_that_does_not_answer_is_unavailable(monkeypatch):
    monkeypatch.setattr(minting, "MINT", (sys.executable, "-c", "import sys; sys.exit(3)"))
    with pytest.raises(Unavailable, match=r"^the certificate mint failed \(exit 3\)"):
        minting.node_key()


def test_swarm_init_gets_its_root_and_first_manager_from_one_mint():
    first = minting.found(CLUSTER, node_id="manager1-id", expiry=timedelta(hours=2))
    info = node_certs.check_chain(first.node_cert_pem, first.made.bundle_pem, now=datetime.now(UTC))
    assert (info.node_id, info.role, info.cluster_id) == ("manager1-id", "manager", CLUSTER)
    assert info.lifetime == timedelta(hours=2, minutes=1)  # backdated a minute
    key = pem.load_key(first.node_key_pem)
    assert pem.load_cert(first.node_cert_pem).public_key() == key.public_key()
    assert "PRIVATE" not in repr(first)
