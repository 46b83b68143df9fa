"""The root CA: made once at `swarm init`, it signs every node's certificate.

As in Swarm: an ECDSA P-256 key and a self-signed certificate, CN `swarm-ca`,
O = the cluster id, valid 20 years, a CA that may sign one level of CA below it
(pathlen 1: the cross-signed root of a rotation). The managers keep the key; what a
joiner fetches is the *bundle* (`bundle_pem`), the PEM certificates of the roots
nodes must trust, whose sha256 is the digest in the join tokens (`tokens.py`).

Node certificates (`sign_csr`): the node sends only a public key, in a certificate
request; the CA writes the subject itself, CN = node id, OU = `swarm-manager` or
`swarm-worker`, O = cluster id, so the role a node acts as is the one the manager
gave it, whatever the request asked for. `auth.py` reads these three fields back.

Root rotation (`swarm ca --rotate`), Swarm's scheme in three states:

- before: bundle = [old]; leaves signed by old.
- during: the signer is `RootCA(new.cert_pem, new.key_pem, intermediates_pem=
  cross_sign(old, new))`, so every issued certificate carries the new root signed by
  the old one and still verifies for nodes that trust only the old root; the bundle
  is `bundle_pem(new, old)` for nodes that already renewed.
- after every node renewed: bundle = [new], no intermediates.

Each bundle change changes the token digest, so join tokens change with it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from netagent.contract.errors import InvalidArgument
from orchestrator.ca import pem
from orchestrator.ca.certinfo import CERT_BACKDATE, min_node_cert_expiry, utc
from orchestrator.ca.roles import OU_BY_ROLE, ROOT_CN, NodeRole, check_role

#: Validity of a root CA (Swarm's RootCAExpiration, 630720000 s).
ROOT_EXPIRY = timedelta(seconds=630_720_000)
#: Validity of a node certificate unless the cluster says otherwise (Swarm: 2160 h).
DEFAULT_NODE_CERT_EXPIRY = timedelta(days=90)
#: Ids that go into a certificate subject and a DNS SAN: one DNS label's characters.
_ID_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_CURVES = (ec.SECP256R1, ec.SECP384R1)
_MIN_RSA_BITS = 2048

_KEY_USAGE_FLAGS = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)  # fmt: skip


def _key_usage(*on: str) -> x509.KeyUsage:
    """A keyUsage extension with exactly the flags `on` set."""
    return x509.KeyUsage(**{flag: flag in on for flag in _KEY_USAGE_FLAGS})


_CA_KEY_USAGE = _key_usage("key_cert_sign", "crl_sign")
_NODE_KEY_USAGE = _key_usage("digital_signature", "key_encipherment")


@dataclass(frozen=True)
class RootCA:
    """A root certificate and, on the managers, its key (None: a verifying-only copy).

    `intermediates_pem` is appended to every certificate this root issues: during a
    rotation, this root cross-signed by the previous one (see the module docstring).
    """

    cert_pem: bytes
    key_pem: bytes | None = field(default=None, repr=False)
    intermediates_pem: bytes = b""

    def __post_init__(self) -> None:
        cert = self.cert
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise InvalidArgument(
                f"certificate {cert.subject.rfc4514_string()} is not a CA", op="load root CA"
            )
        if self.key_pem is not None and self.key.public_key() != cert.public_key():
            raise InvalidArgument(
                f"root CA key does not match certificate {cert.subject.rfc4514_string()}",
                op="load root CA",
            )
        if self.intermediates_pem:
            pem.load_certs(self.intermediates_pem)

    @cached_property
    def cert(self) -> x509.Certificate:
        return pem.load_cert(self.cert_pem)

    @cached_property
    def key(self) -> pem.PrivateKey:
        if self.key_pem is None:
            raise InvalidArgument(
                f"root CA {self.cluster_id} has no key here: this copy can only verify",
                obj=self.cluster_id,
                op="sign",
            )
        return pem.load_key(self.key_pem)

    @property
    def cluster_id(self) -> str:
        """The swarm this root was made for: its subject O."""
        return pem.name_attr(self.cert.subject, NameOID.ORGANIZATION_NAME)

    def verifying_only(self) -> RootCA:
        """The same root without its key: what a worker may hold."""
        return RootCA(self.cert_pem, None, self.intermediates_pem)


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidArgument(
            f"invalid {what} {value!r}: expected letters, digits and '-' (a DNS label)",
            obj=str(value),
            op="sign",
        )
    return value


def new_root(cluster_id: str, *, now: datetime | None = None) -> RootCA:
    """A fresh root CA for swarm `cluster_id`: ECDSA P-256, self-signed, 20 years."""
    _check_id(cluster_id, "cluster id")
    start = utc(now) - CERT_BACKDATE
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, ROOT_CN),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + ROOT_EXPIRY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return RootCA(pem.cert_pem(cert), pem.key_pem(key))


def bundle_pem(root: RootCA, *others: RootCA) -> bytes:
    """The roots a node must trust, as served to joiners: `root` first, then `others`
    (the previous root during a rotation), each once, in canonical PEM."""
    out: list[bytes] = []
    for r in (root, *others):
        text = pem.cert_pem(r.cert)
        if text not in out:
            out.append(text)
    return b"".join(out)


def _check_public_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _CURVES):
        return
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
        return
    raise InvalidArgument(
        f"certificate request key {type(key).__name__}: expected ECDSA P-256/P-384 "
        f"or RSA of at least {_MIN_RSA_BITS} bits",
        op="sign",
    )


def _ips(values: Iterable[object]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_address(v))  # type: ignore[arg-type]
        except ValueError:
            raise InvalidArgument(
                f"invalid IP address {v!r} for a certificate", obj=str(v), op="sign"
            ) from None
    return out


def sign_csr(
    root: RootCA,
    csr_pem: bytes,
    *,
    node_id: str,
    role: NodeRole | str,
    cluster_id: str,
    expiry: timedelta = DEFAULT_NODE_CERT_EXPIRY,
    ip_sans: Iterable[object] = (),
    now: datetime | None = None,
) -> bytes:
    """The node certificate (PEM, then the root's intermediates) for the key in `csr_pem`.

    Only the request's public key is used: the subject is set here (CN node id, OU
    role, O cluster id), with serverAuth and clientAuth, and SANs DNS:<node id>,
    DNS:<role OU> (what a node calling "a manager" verifies, as swarmkit's ServerName
    `swarm-manager`) and the `ip_sans`, valid from now - CERT_BACKDATE to now + `expiry`."""
    node_id = _check_id(node_id, "node id")
    cluster_id = _check_id(cluster_id, "cluster id")
    ou = OU_BY_ROLE[check_role(role)]
    if not isinstance(expiry, timedelta) or expiry < min_node_cert_expiry():
        raise InvalidArgument(
            f"invalid certificate expiry {expiry}: expected at least {min_node_cert_expiry()}",
            obj=str(expiry),
            op="sign",
        )
    sans: list[x509.GeneralName] = [x509.DNSName(node_id), x509.DNSName(ou)]
    sans += [x509.IPAddress(ip) for ip in _ips(ip_sans)]
    csr = pem.load_csr(csr_pem)
    if not csr.is_signature_valid:
        raise InvalidArgument(
            f"certificate request for node {node_id} has an invalid signature",
            obj=node_id,
            op="sign",
        )
    public_key = csr.public_key()
    _check_public_key(public_key)
    start = utc(now)
    issuer = root.cert
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, node_id),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id),
                ]
            )
        )
        .issuer_name(issuer.subject)
        .public_key(public_key)  # type: ignore[arg-type]  # checked by _check_public_key
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CERT_BACKDATE)
        .not_valid_after(start + expiry)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_NODE_KEY_USAGE, critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(issuer), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    return pem.cert_pem(cert) + root.intermediates_pem


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI naming `issuer`: its SKI when it has one, else one from its public key."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def cross_sign(old: RootCA, new: RootCA) -> bytes:
    """`new`'s certificate re-issued by `old` (PEM): same subject, public key, validity
    and extensions, signed with the old key. Appended to the leaves the new root signs
    during a rotation, it lets nodes that trust only `old` verify them."""
    cert = new.cert
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(old.cert.subject)
        .public_key(cert.public_key())  # type: ignore[arg-type]  # a root we loaded
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    for ext in cert.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(ext.value, critical=ext.critical)
    builder = builder.add_extension(_authority_key_id(old.cert), critical=False)
    return pem.cert_pem(builder.sign(old.key, hashes.SHA256()))
