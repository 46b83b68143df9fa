"""A node's certificate as the CA's tools see it: its key, its request, what the
certificate says and whether it chains to the swarm's roots (with `cryptography`; run
in the mint process, see `orchestrator.ca.minting`).

No CA key here. A node makes its own key (ECDSA P-256) and sends only a certificate
request, whose subject may be empty: the CA writes node id, role and cluster id
(`authority.sign_csr`), and `cert_info` reads them back. When to renew is
`orchestrator.ca.certinfo`'s, which needs no X.509 library.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from netagent.contract.errors import PermissionDenied
from orchestrator.ca import pem
from orchestrator.ca.certinfo import CertInfo, utc

#: Certificates between a leaf and a root: one, the cross-signed root of a rotation.
_MAX_CHAIN_DEPTH = 2
_FIELDS = {
    NameOID.COMMON_NAME: "commonName",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnitName",
    NameOID.ORGANIZATION_NAME: "organizationName",
}


def new_key() -> bytes:
    """A fresh node key: ECDSA P-256, PKCS#8 PEM."""
    return pem.key_pem(ec.generate_private_key(ec.SECP256R1()))


def make_csr(key_pem: bytes) -> bytes:
    """A certificate request (PEM) for the key in `key_pem`, with an empty subject:
    the CA sets the subject itself."""
    key = pem.load_key(key_pem)
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    return csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _info(cert: x509.Certificate) -> CertInfo:
    fields = {
        name: [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]
        for oid, name in _FIELDS.items()
    }
    return CertInfo.of_subject(
        cert.subject.rfc4514_string(),
        fields,
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )


def cert_info(cert: bytes) -> CertInfo:
    """What the node certificate `cert` (PEM, leaf first, or DER) says."""
    return _info(pem.load_cert(cert))


def check_chain(cert_pem: bytes, bundle_pem: bytes, *, now: datetime) -> CertInfo:
    """What `cert_pem` says, once it verifies against one of the roots of `bundle_pem`.

    `cert_pem` is the leaf, then any intermediates (the cross-signed root during a
    rotation). Checked: every signature up to a root and every validity period at
    `now`. PermissionDenied otherwise, naming the certificate."""
    chain = pem.load_certs(cert_pem)
    leaf, intermediates = chain[0], chain[1:]
    roots = pem.load_certs(bundle_pem)
    at = utc(now)
    name = leaf.subject.rfc4514_string()
    if at < leaf.not_valid_before_utc:
        raise PermissionDenied(
            f"certificate {name} is not valid before {leaf.not_valid_before_utc.isoformat()}",
            obj=name,
            op="verify certificate",
        )
    if at >= leaf.not_valid_after_utc:
        raise PermissionDenied(
            f"certificate {name} expired at {leaf.not_valid_after_utc.isoformat()}",
            obj=name,
            op="verify certificate",
        )
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(at)
        .max_chain_depth(_MAX_CHAIN_DEPTH)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as err:
        why = str(err).splitlines()[0] if str(err) else "no path to a trusted root"
        raise PermissionDenied(
            f"certificate {name} does not chain to the swarm's root CA: {why}",
            obj=name,
            op="verify certificate",
        ) from None
    return _info(leaf)
