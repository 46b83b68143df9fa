"""The root CA and the certificates it signs."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.ca import authority, node_certs, pem
from orchestrator.ca.authority import RootCA
from tests.unit.orchestrator.ca.conftest import CLUSTER, NOW


def _ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


def _subject(cert: x509.Certificate, oid) -> list[str]:
    return [a.value for a in cert.subject.get_attributes_for_oid(oid)]


def test_root_is_a_p256_ca_of_one_level_named_for_its_swarm(root):
    cert = root.cert
    assert isinstance(root.key, ec.EllipticCurvePrivateKey)
    assert isinstance(cert.public_key().curve, ec.SECP256R1)
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 1
    usage = _ext(cert, x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert _subject(cert, NameOID.COMMON_NAME) == ["swarm-ca"]
    assert _subject(cert, NameOID.ORGANIZATION_NAME) == [CLUSTER]
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert root.cluster_id == CLUSTER


def test_root_is_valid_twenty_years(root):
    cert = root.cert
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=7300)
    assert cert.not_valid_before_utc == NOW - authority.CERT_BACKDATE


def test_root_repr_never_shows_its_key(root):
    assert b"PRIVATE KEY" in root.key_pem
    assert "PRIVATE" not in repr(root)


def test_a_verifying_only_copy_cannot_sign(root, issue):
    with pytest.raises(InvalidArgument, match=f"^root CA {CLUSTER} has no key here"):
        issue(signer=root.verifying_only())


def test_a_root_refuses_a_key_that_is_not_its_own(root):
    other = authority.new_root(CLUSTER)
    with pytest.raises(InvalidArgument, match="^root CA key does not match certificate"):
        RootCA(root.cert_pem, other.key_pem)


def test_a_node_certificate_is_not_a_root(issue):
    _, cert = issue()
    with pytest.raises(InvalidArgument, match="is not a CA$"):
        RootCA(cert)


def _csr_asking_for(key_pem: bytes, *, cn: str, ou: str, o: str) -> bytes:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, o),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(name)
    return csr.sign(pem.load_key(key_pem), hashes.SHA256()).public_bytes(Encoding.PEM)


def test_the_subject_is_the_cas_whatever_the_request_asks(root):
    csr = _csr_asking_for(node_certs.new_key(), cn="manager1-id", ou="swarm-manager", o="evil")
    cert = pem.load_cert(
        authority.sign_csr(root, csr, node_id="worker1-id", role="worker", cluster_id=CLUSTER)
    )
    assert _subject(cert, NameOID.COMMON_NAME) == ["worker1-id"]
    assert _subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-worker"]
    assert _subject(cert, NameOID.ORGANIZATION_NAME) == [CLUSTER]
    assert cert.issuer == root.cert.subject


def test_a_node_certificate_names_the_node_and_its_addresses(issue):
    _, cert_pem = issue("manager1-id", "manager", ip_sans=["192.168.56.11", "fd00::11"])
    sans = _ext(pem.load_cert(cert_pem), x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["manager1-id", "swarm-manager"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.168.56.11"),
        ipaddress.ip_address("fd00::11"),
    ]


def test_a_node_certificate_is_for_servers_and_clients_signed_ecdsa_sha256(issue, root):
    _, cert_pem = issue()
    cert = pem.load_cert(cert_pem)
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert _ext(cert, x509.BasicConstraints).value.ca is False
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    cert.verify_directly_issued_by(root.cert)


def test_a_node_certificate_lasts_90_days_by_default(issue):
    _, cert_pem = issue()
    cert = pem.load_cert(cert_pem)
    assert cert.not_valid_before_utc == NOW - authority.CERT_BACKDATE
    assert cert.not_valid_after_utc == NOW + timedelta(days=90)


def test_an_expiry_of_one_hour_is_the_shortest_accepted(issue):
    _, cert_pem = issue(expiry=timedelta(hours=1))
    assert pem.load_cert(cert_pem).not_valid_after_utc == NOW + timedelta(hours=1)
    with pytest.raises(InvalidArgument) as err:
        issue(expiry=timedelta(minutes=59))
    assert str(err.value) == "invalid certificate expiry 0:59:00: expected at least 1:00:00"


def test_a_request_with_a_bad_signature_is_refused(root):
    csr = x509.load_pem_x509_csr(node_certs.make_csr(node_certs.new_key()))
    der = bytearray(csr.public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the ECDSA signature's s
    csr_pem = x509.load_der_x509_csr(bytes(der)).public_bytes(Encoding.PEM)
    with pytest.raises(InvalidArgument) as err:
        authority.sign_csr(root, csr_pem, node_id="worker1-id", role="worker", cluster_id=CLUSTER)
    assert str(err.value) == "certificate request for node worker1-id has an invalid signature"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"role": "admin"}, "unknown role 'admin': expected 'manager' or 'worker'"),
        ({"node_id": "a b"}, "invalid node id 'a b': expected letters, digits and '-'"),
        ({"node_id": ""}, "invalid node id '': expected"),
        ({"cluster_id": "x/y"}, "invalid cluster id 'x/y': expected"),
        ({"ip_sans": ["10.0.0.300"]}, "invalid IP address '10.0.0.300' for a certificate"),
    ],
)
def test_bad_identities_are_refused_naming_them(issue, kw, message):
    kw.setdefault("node_id", "worker1-id")
    kw.setdefault("role", "worker")
    node_id, role = kw.pop("node_id"), kw.pop("role")
    with pytest.raises(InvalidArgument) as err:
        issue(node_id, role, **kw)
    assert str(err.value).startswith(message)


def test_a_request_that_is_not_pem_is_refused(root):
    with pytest.raises(InvalidArgument, match="^invalid certificate request b'garbage'"):
        authority.sign_csr(root, b"garbage", node_id="w", role="worker", cluster_id=CLUSTER)


def test_the_bundle_holds_each_root_once_the_current_first(root):
    new = authority.new_root(CLUSTER)
    bundle = authority.bundle_pem(new, root, new)
    assert [c.fingerprint(hashes.SHA256()) for c in pem.load_certs(bundle)] == [
        new.cert.fingerprint(hashes.SHA256()),
        root.cert.fingerprint(hashes.SHA256()),
    ]
    assert authority.bundle_pem(root) == pem.cert_pem(root.cert)


def test_a_cross_signed_new_root_lets_old_trust_verify_new_leaves(root, issue):
    new = authority.new_root(CLUSTER, now=NOW)
    crossed = authority.cross_sign(root, new)
    rotating = RootCA(new.cert_pem, new.key_pem, intermediates_pem=crossed)
    _, leaf = issue("worker1-id", "worker", signer=rotating)
    old_bundle = authority.bundle_pem(root)
    info = node_certs.check_chain(leaf, old_bundle, now=NOW)
    assert info.node_id == "worker1-id"
    node_certs.check_chain(leaf, authority.bundle_pem(new), now=NOW)
    # Without the cross-signed certificate, the old root alone cannot verify the leaf.
    _, bare = issue("worker1-id", "worker", signer=new)
    with pytest.raises(PermissionDenied, match="does not chain to the swarm's root CA"):
        node_certs.check_chain(bare, old_bundle, now=NOW)


def test_a_cross_signed_root_keeps_the_new_roots_key_subject_and_validity(root):
    new = authority.new_root(CLUSTER, now=NOW)
    crossed = pem.load_cert(authority.cross_sign(root, new))
    assert crossed.subject == new.cert.subject
    assert crossed.public_key() == new.cert.public_key()
    assert crossed.issuer == root.cert.subject
    assert crossed.not_valid_after_utc == new.cert.not_valid_after_utc
    crossed.verify_directly_issued_by(root.cert)
