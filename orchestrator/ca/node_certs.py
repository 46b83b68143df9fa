"""A node's side of its certificate: its key, its request, what the certificate says,
when to renew it, and whether a certificate chains to the swarm's roots.

No CA key here. A node makes its own key (ECDSA P-256) and sends only a certificate
request, whose subject may be empty: the CA writes node id, role and cluster id
(`authority.sign_csr`), and `cert_info` reads them back. Renewal follows Swarm:
at a uniformly random point between 50% and 80% of the certificate's life, so that
nodes that joined together do not all ask the CA at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.ca import pem
from orchestrator.ca.roles import NodeRole, role_of_ou

#: The renewal window, as fractions of a certificate's life (Swarm's
#: CertLowerRotationRange and CertUpperRotationRange).
RENEW_FROM = 0.5
RENEW_UNTIL = 0.8
#: How far before its issue a certificate is valid (swarmkit's CertBackdate), so a peer
#: whose clock is a little behind does not refuse it as not yet valid. A minute: the
#: nodes of one swarm share a LAN (and NTP), and a short certificate of a test must not
#: spend its whole life backdated. Renewal counts from the issue, not from not_before.
CERT_BACKDATE = timedelta(minutes=1)
#: Certificates between a leaf and a root: one, the cross-signed root of a rotation.
_MAX_CHAIN_DEPTH = 2


class Uniform(Protocol):
    """What renewal needs of a random source (`random`, or a seeded `random.Random`)."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class CertInfo:
    """Who a node certificate names, and when it is valid (aware UTC datetimes)."""

    node_id: str
    role: NodeRole
    cluster_id: str
    not_before: datetime
    not_after: datetime

    @property
    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before


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
    subject = cert.subject
    node_id = pem.name_attr(subject, NameOID.COMMON_NAME)
    cluster_id = pem.name_attr(subject, NameOID.ORGANIZATION_NAME)
    ou = pem.name_attr(subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not node_id or not cluster_id:
        raise InvalidArgument(
            f"certificate {subject.rfc4514_string()!r} is not a swarm node certificate: "
            "expected one CN (node id), OU (role) and O (cluster id)",
            obj=subject.rfc4514_string(),
            op="parse certificate",
        )
    return CertInfo(
        node_id=node_id,
        role=role_of_ou(ou),
        cluster_id=cluster_id,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def cert_info(cert: bytes) -> CertInfo:
    """What the node certificate `cert` (PEM, leaf first, or DER) says."""
    return _info(pem.load_cert(cert))


def _issued(info: CertInfo) -> tuple[datetime, timedelta]:
    """When the certificate was issued, and the life it was issued for."""
    issued = min(info.not_before + CERT_BACKDATE, info.not_after)
    return issued, info.not_after - issued


def renew_at(info: CertInfo, rng: Uniform = random) -> datetime:
    """When to renew: a uniformly random point between 50% and 80% of the life."""
    issued, life = _issued(info)
    return issued + life * rng.uniform(RENEW_FROM, RENEW_UNTIL)


def needs_renewal(info: CertInfo, now: datetime) -> bool:
    """True once `now` is past the renewal window (80% of the life) or the certificate
    has expired: a node that was down through its window renews at once."""
    issued, life = _issued(info)
    return pem.utc(now) >= issued + life * RENEW_UNTIL


def check_chain(cert_pem: bytes, bundle_pem: bytes, *, now: datetime) -> CertInfo:
    """What `cert_pem` says, once it verifies against one of the roots of `bundle_pem`.

    `cert_pem` is the leaf, then any intermediates (the cross-signed root during a
    rotation). Checked: every signature up to a root and every validity period at
    `now`. PermissionDenied otherwise, naming the certificate."""
    chain = pem.load_certs(cert_pem)
    leaf, intermediates = chain[0], chain[1:]
    roots = pem.load_certs(bundle_pem)
    at = pem.utc(now)
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
