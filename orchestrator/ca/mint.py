"""The mint: the short-lived process in which vxswarm's keys and certificates are made
(`python -m orchestrator.ca.mint`, run by `orchestrator.ca.minting`).

`cryptography` costs a daemon about 11 MB for as long as it runs (its Rust module's
pages and 50 Python modules), yet a node uses it for a moment at join, at renewal and
at `swarm init` or a root rotation. So it is imported here only: one request, a JSON
object `{"op": ..., ...}`, on stdin; one answer on stdout, the operation's result or
`{"error": {"kind": ..., "message": ...}}` with the class of `netagent.contract.errors`
the caller raises again. PEM travels as text. Nothing is written to disk here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from netagent.contract.errors import InvalidArgument, PermissionDenied, VxswarmError
from orchestrator.ca import authority, boxes, node_certs, pem

Request = dict[str, Any]


def _b(request: Request, name: str) -> bytes:
    value = request.get(name)
    if not isinstance(value, str):
        raise InvalidArgument(f"mint request field {name!r}: expected PEM text", op="mint")
    return value.encode()


def _root(request: Request) -> authority.RootCA:
    root = request.get("root")
    if not isinstance(root, dict):
        raise InvalidArgument("mint request field 'root': expected an object", op="mint")
    return authority.RootCA(
        cert_pem=_b(root, "cert"),
        key_pem=_b(root, "key"),
        intermediates_pem=_b(root, "intermediates"),
    )


def node_key(_: Request) -> dict[str, str]:
    key = node_certs.new_key()
    return {"key": key.decode(), "csr": node_certs.make_csr(key).decode()}


def csr(request: Request) -> dict[str, str]:
    return {"csr": node_certs.make_csr(_b(request, "key")).decode()}


def sign(request: Request) -> dict[str, str]:
    cert = authority.sign_csr(
        _root(request),
        _b(request, "csr"),
        node_id=request["node_id"],
        role=request["role"],
        cluster_id=request["cluster_id"],
        expiry=timedelta(seconds=float(request["expiry"])),
        ip_sans=request.get("ip_sans", ()),
    )
    return {"cert": cert.decode()}


def new_root(request: Request) -> dict[str, str]:
    root = authority.new_root(request["cluster_id"])
    return {
        "cert": root.cert_pem.decode(),
        "key": (root.key_pem or b"").decode(),
        "intermediates": "",
        "bundle": authority.bundle_pem(root).decode(),
    }


def found(request: Request) -> dict[str, str]:
    """A new swarm's root, and its first manager's key and certificate: `swarm init`
    in one process start."""
    made = new_root(request)
    key = node_certs.new_key()
    signed = sign(
        {
            **request,
            "root": {"cert": made["cert"], "key": made["key"], "intermediates": ""},
            "csr": node_certs.make_csr(key).decode(),
            "role": "manager",
        }
    )
    return {**made, "node_key": key.decode(), "node_cert": signed["cert"]}


def rotate(request: Request) -> dict[str, str]:
    """A new root that signs from now on, cross-signed by the current one; the bundle
    trusts both."""
    old = _root(request)
    new = authority.new_root(request["cluster_id"])
    return {
        "cert": new.cert_pem.decode(),
        "key": (new.key_pem or b"").decode(),
        "intermediates": authority.cross_sign(old, new).decode(),
        "bundle": authority.bundle_pem(new, old).decode(),
    }


def cert_info(request: Request) -> dict[str, str]:
    return node_certs.cert_info(_b(request, "cert")).to_json()


def renewal_info(request: Request) -> dict[str, str]:
    """What a certificate presented for renewal says, once it chains to the bundle at a
    moment it was valid (renewal is what expiry is for) and `csr` carries its key;
    PermissionDenied otherwise."""
    cert, request_pem = _b(request, "cert"), _b(request, "csr")
    info = node_certs.cert_info(cert)
    node_certs.check_chain(cert, _b(request, "bundle"), now=info.not_before)
    if pem.load_csr(request_pem).public_key() != pem.load_cert(cert).public_key():
        raise PermissionDenied(
            f"renewal for node {info.node_id} refused: the CSR is not signed by the "
            "certificate's key",
            obj=info.node_id,
            op="renew certificate",
        )
    return info.to_json()


OPS: dict[str, Callable[[Request], dict[str, Any]]] = {
    **{f.__name__: f for f in (node_key, csr, sign, found, rotate, cert_info, renewal_info)},
    "seal": boxes.seal,
    "open": boxes.open_boxes,
}


def answer(request: object) -> dict[str, Any]:
    """The answer to one request (an error answer for a bad one)."""
    try:
        if not isinstance(request, dict) or request.get("op") not in OPS:
            op = request.get("op") if isinstance(request, dict) else request
            raise InvalidArgument(
                f"unknown mint operation {op!r}: expected one of {', '.join(OPS)}", op="mint"
            )
        return OPS[request["op"]](request)
    except VxswarmError as err:
        return {"error": {"kind": type(err).__name__, "message": str(err)}}
    except (KeyError, TypeError, ValueError) as err:
        return {"error": {"kind": "InvalidArgument", "message": f"bad mint request: {err!r}"}}


def main() -> int:
    try:
        reply = answer(json.loads(sys.stdin.buffer.read()))
    except ValueError as err:
        reply = {"error": {"kind": "InvalidArgument", "message": f"mint request not JSON: {err}"}}
    json.dump(reply, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
