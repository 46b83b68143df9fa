"""Bytes to X.509 objects and back: the one place where PEM and DER are parsed.

Everything that crosses a file, the wire or the store as bytes (certificates,
bundles, keys, certificate requests) is read here, so bad bytes become one
`InvalidArgument` naming what was expected, never a library exception.
Keys are written as unencrypted PKCS#8: the files holding them are 0600 (`files.py`)
and the root key lives in the managers' store, as in Swarm without autolock.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from netagent.contract.errors import InvalidArgument

#: The key types this CA issues for and signs with (what Swarm accepts).
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"


def _bad(what: str, data: object, why: str) -> InvalidArgument:
    """One line naming the bad value: its first 32 bytes, never a whole key."""
    if isinstance(data, bytes | str):
        shown = repr(data[:32]) + ("..." if len(data) > 32 else "")
    else:
        shown = type(data).__name__
    return InvalidArgument(f"invalid {what} {shown}: {why}", obj=what, op="parse")


def load_cert(data: bytes) -> x509.Certificate:
    """The first certificate of `data`, PEM (a chain: the leaf comes first) or DER."""
    if not isinstance(data, bytes):
        raise _bad("certificate", data, "expected bytes")
    try:
        if data.lstrip().startswith(_PEM_CERT):
            return x509.load_pem_x509_certificates(data)[0]
        return x509.load_der_x509_certificate(data)
    except ValueError as err:
        raise _bad("certificate", data, str(err).splitlines()[0]) from None


def load_certs(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, in order; at least one."""
    if not isinstance(data, bytes):
        raise _bad("certificate bundle", data, "expected bytes")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as err:
        raise _bad("certificate bundle", data, str(err).splitlines()[0]) from None


def load_key(data: bytes) -> PrivateKey:
    """An unencrypted ECDSA or RSA private key in PEM."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (TypeError, ValueError) as err:
        raise _bad("private key", data, str(err).splitlines()[0]) from None
    if not isinstance(key, PrivateKey):
        raise _bad("private key", data, f"{type(key).__name__}: expected ECDSA or RSA")
    return key


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """A certificate signing request in PEM."""
    try:
        return x509.load_pem_x509_csr(data)
    except (TypeError, ValueError) as err:
        raise _bad("certificate request", data, str(err).splitlines()[0]) from None


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    """The one value of attribute `oid` in `name` ('' when absent or repeated)."""
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        return ""
    value = values[0].value
    return value if isinstance(value, str) else ""
