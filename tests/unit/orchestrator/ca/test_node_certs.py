"""A node's key, request, certificate facts, renewal time and chain check."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.ca import authority, certinfo, node_certs, pem
from orchestrator.ca.certinfo import CertInfo
from orchestrator.ca.roles import NodeRole
from tests.unit.orchestrator.ca.conftest import CLUSTER, NOW


def test_a_node_key_is_p256_and_its_request_names_no_one():
    key = pem.load_key(node_certs.new_key())
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    csr = x509.load_pem_x509_csr(node_certs.make_csr(node_certs.new_key()))
    assert csr.is_signature_valid
    assert len(csr.subject) == 0


def test_cert_info_reads_the_subject_from_pem_and_der_alike(issue):
    _, cert_pem = issue("manager1-id", "manager")
    info = node_certs.cert_info(cert_pem)
    assert (info.node_id, info.role, info.cluster_id) == ("manager1-id", NodeRole.MANAGER, CLUSTER)
    assert info.not_after - NOW == timedelta(days=90)
    der = pem.load_cert(cert_pem).public_bytes(Encoding.DER)
    assert node_certs.cert_info(der) == info


def test_cert_info_refuses_a_certificate_that_is_no_node_certificate(root):
    with pytest.raises(InvalidArgument, match="unknown certificate OU ''"):
        node_certs.cert_info(root.cert_pem)


def _info(days: float = 90) -> CertInfo:
    """A certificate issued at NOW for `days` (valid from a backdated not_before)."""
    return CertInfo(
        "n", NodeRole.WORKER, CLUSTER, NOW - certinfo.CERT_BACKDATE, NOW + timedelta(days=days)
    )


def test_renewal_is_always_between_half_and_four_fifths_of_the_life():
    info = _info()
    rng = random.Random(7)
    draws = [certinfo.renew_at(info, rng) for _ in range(20_000)]
    life = timedelta(days=90)  # counted from the issue, not from the backdated start
    low, high = NOW + life * 0.5, NOW + life * 0.8
    assert all(low <= d <= high for d in draws)
    # Spread over the window, not bunched at one end.
    assert min(draws) - low < timedelta(hours=1) and high - max(draws) < timedelta(hours=1)
    assert all(low <= certinfo.renew_at(info) <= high for _ in range(1000))


def test_a_certificate_needs_renewal_once_past_four_fifths_of_its_life():
    info = _info(days=10)
    assert not certinfo.needs_renewal(info, NOW + timedelta(days=7, hours=23))
    assert certinfo.needs_renewal(info, NOW + timedelta(days=8))
    assert certinfo.needs_renewal(info, NOW + timedelta(days=11))


def test_a_certificate_of_this_swarm_passes_the_chain_check(issue, root):
    _, cert = issue()
    info = node_certs.check_chain(cert, authority.bundle_pem(root), now=NOW)
    assert info.node_id == "worker1-id"


def test_a_certificate_from_another_swarms_root_fails_the_chain_check(issue, root):
    other = authority.new_root("cluster2", now=NOW)
    _, cert = issue(signer=other, cluster_id="cluster2")
    with pytest.raises(PermissionDenied) as err:
        node_certs.check_chain(cert, authority.bundle_pem(root), now=NOW)
    assert str(err.value).startswith(
        "certificate O=cluster2,OU=swarm-worker,CN=worker1-id does not chain to the swarm's root CA"
    )
    assert len(str(err.value).splitlines()) == 1


def test_a_bundle_of_two_roots_accepts_leaves_of_either(issue, root):
    new = authority.new_root(CLUSTER, now=NOW)
    _, old_leaf = issue()
    _, new_leaf = issue(signer=new)
    bundle = authority.bundle_pem(new, root)
    node_certs.check_chain(old_leaf, bundle, now=NOW)
    node_certs.check_chain(new_leaf, bundle, now=NOW)


@pytest.mark.parametrize(
    ("at", "message"),
    [
        (NOW + timedelta(days=90), "expired at 2030-04-02T03:04:05+00:00"),
        (NOW - timedelta(hours=2), "is not valid before 2030-01-02T03:03:05+00:00"),
    ],
)
def test_a_certificate_outside_its_validity_fails_the_chain_check(issue, root, at, message):
    _, cert = issue()
    with pytest.raises(PermissionDenied, match=re.escape(message)):
        node_certs.check_chain(cert, authority.bundle_pem(root), now=at)


def test_the_chain_check_refuses_a_bundle_that_is_no_pem(issue):
    _, cert = issue()
    with pytest.raises(InvalidArgument, match="^invalid certificate bundle b'nope'"):
        node_certs.check_chain(cert, b"nope", now=NOW)
