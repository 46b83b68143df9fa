"""Asking the mint (`orchestrator.ca.mint`) for keys and certificates: one short-lived
process per request, so `cryptography` is never imported by a long-running daemon.

A request costs a process start (about 0.2 s), paid at join, renewal, `swarm init`
and a root rotation only. Errors come back as the class the mint raised (an
InvalidArgument for a bad request, a PermissionDenied for a refused renewal); a mint
that fails to answer is Unavailable, with its last line of stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from netagent.contract.errors import ERRORS_BY_NAME, Unavailable
from orchestrator.ca.certinfo import CertInfo
from orchestrator.ca.roles import NodeRole

#: Longest a mint may take (a key and a signature take milliseconds; the rest is
#: the interpreter's start on a busy machine).
TIMEOUT = 30.0
MINT = (sys.executable, "-m", "orchestrator.ca.mint")


@dataclass(frozen=True)
class Root:
    """A root CA as the store keeps it: PEM certificate and key, and during a rotation
    the cross-signed copy appended to what it signs."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    intermediates_pem: bytes = b""

    def to_json(self) -> dict[str, str]:
        return {
            "cert": self.cert_pem.decode(),
            "key": self.key_pem.decode(),
            "intermediates": self.intermediates_pem.decode(),
        }


@dataclass(frozen=True)
class NewRoot:
    """A root just made, and the bundle nodes must trust from now on."""

    root: Root
    bundle_pem: bytes


def in_a_process(request: dict[str, Any]) -> dict[str, Any]:
    """The mint's answer to `request`, from a process of its own."""
    op = str(request.get("op"))
    try:
        proc = subprocess.run(
            MINT,
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unavailable(f"the certificate mint did not answer: {err}", op=op) from None
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise Unavailable(
            f"the certificate mint failed (exit {proc.returncode}): {last}", op=op
        ) from None
    if not isinstance(answer, dict):
        raise Unavailable(f"the certificate mint answered {answer!r}", op=op)
    return answer


#: How requests reach the mint. The unit tests, which make hundreds of certificates,
#: put `orchestrator.ca.mint.answer` here: the same operations, minus the process start.
TRANSPORT: Callable[[dict[str, Any]], dict[str, Any]] = in_a_process


def _ask(op: str, **fields: Any) -> dict[str, Any]:
    answer = TRANSPORT({"op": op, **fields})
    error = answer.get("error")
    if error is not None:
        cls = ERRORS_BY_NAME.get(error.get("kind"), Unavailable)
        raise cls(error.get("message", "the certificate mint failed"), op=op)
    return answer


#: The same, for the other clients of the mint (orchestrator.ca.sealing).
ask = _ask


def _new_root(answer: dict[str, str]) -> NewRoot:
    root = Root(answer["cert"].encode(), answer["key"].encode(), answer["intermediates"].encode())
    return NewRoot(root, answer["bundle"].encode())


def node_key() -> tuple[bytes, bytes]:
    """A fresh node key (ECDSA P-256, PKCS#8 PEM) and a certificate request for it."""
    got = _ask("node_key")
    return got["key"].encode(), got["csr"].encode()


def csr_for(key_pem: bytes) -> bytes:
    """A certificate request for the key this node holds (renewal keeps the key)."""
    return _ask("csr", key=key_pem.decode())["csr"].encode()


def sign(
    root: Root,
    csr_pem: bytes,
    *,
    node_id: str,
    role: NodeRole,
    cluster_id: str,
    expiry: timedelta,
    ip_sans: Iterable[object] = (),
) -> bytes:
    """The node certificate `root` issues for the key of `csr_pem` (authority.sign_csr)."""
    got = _ask(
        "sign",
        root=root.to_json(),
        csr=csr_pem.decode(errors="replace"),
        node_id=node_id,
        role=str(role),
        cluster_id=cluster_id,
        expiry=expiry.total_seconds(),
        ip_sans=[str(ip) for ip in ip_sans],
    )
    return got["cert"].encode()


@dataclass(frozen=True)
class Founded:
    """A new swarm's root, and its first manager's key and certificate."""

    made: NewRoot
    node_key_pem: bytes = field(repr=False)
    node_cert_pem: bytes


def found(
    cluster_id: str, *, node_id: str, expiry: timedelta, ip_sans: Iterable[object] = ()
) -> Founded:
    """A new swarm's root CA, and a manager certificate for node `node_id` signed by it."""
    got = _ask(
        "found",
        cluster_id=cluster_id,
        node_id=node_id,
        expiry=expiry.total_seconds(),
        ip_sans=[str(ip) for ip in ip_sans],
    )
    return Founded(_new_root(got), got["node_key"].encode(), got["node_cert"].encode())


def rotate(current: Root, cluster_id: str) -> NewRoot:
    """A new signing root cross-signed by `current`; the bundle trusts both."""
    return _new_root(_ask("rotate", root=current.to_json(), cluster_id=cluster_id))


def cert_info(cert_pem: bytes) -> CertInfo:
    """What a certificate says, whatever its validity (an expired one included)."""
    return CertInfo.from_json(_ask("cert_info", cert=cert_pem.decode(errors="replace")))


def renewal_info(cert_pem: bytes, csr_pem: bytes, bundle_pem: bytes) -> CertInfo:
    """What a certificate presented for renewal says, once it chains to `bundle_pem`
    and `csr_pem` carries its key; PermissionDenied otherwise."""
    got = _ask(
        "renewal_info",
        cert=cert_pem.decode(errors="replace"),
        csr=csr_pem.decode(errors="replace"),
        bundle=bundle_pem.decode(errors="replace"),
    )
    return CertInfo.from_json(got)
