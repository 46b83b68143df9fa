"""The three TLS contexts of the swarm's API, as Swarm sets them up.

- `server_context` (a manager's API): TLS 1.2 or later, the node's certificate, and
  client certificates OPTIONAL, verified against the bundle when presented. Optional
  because a joiner has none yet: joining and fetching the root CA must work without
  one. Every other handler refuses a caller without a certificate through
  `auth.authorize`, which also checks O, OU and CN. (swarmkit: VerifyClientCertIfGiven.)
- `client_context` (a node calling another): the server must present a certificate
  that chains to the bundle *and names whom the caller expects*. Nodes are addressed
  by IP, so the expected name travels as the TLS server name (SNI), as swarmkit's
  ServerName does: `MANAGER_NAME` ("swarm-manager", a DNS SAN of every manager
  certificate) when any manager will do (the agent's session, join, renewal, a
  forward to the leader), the node id (a DNS SAN of its certificate) for one node (a
  manager's relay to that node's agent). `expect(name)` is the httpx request
  extension that sets it. So a worker's certificate cannot pose as a manager, nor
  one node as another.
- `pin_context` (a joiner's very first call, the CA fetch): NO verification at all.
  The joiner has nothing to verify against yet; what it gets is checked afterwards:
  `tokens.check_bundle` compares the sha256 of the fetched bundle with the digest in
  its join token, and only if they match does it use the bundle (with
  `client_context`) and send the token's secret. A man in the middle can serve the
  first fetch but cannot produce a bundle with the token's digest. This is Swarm's
  model (the token pins the root CA); never send anything secret over this context.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from typing import Any

from netagent.contract.errors import InvalidArgument
from orchestrator.ca.certinfo import CertInfo
from orchestrator.ca.roles import OU_BY_ROLE, NodeRole

StrPath = str | os.PathLike[str]
#: The name every manager's certificate carries (its OU, as a DNS SAN).
MANAGER_NAME = OU_BY_ROLE[NodeRole.MANAGER]
#: Round trips of an in-memory handshake (TLS 1.3 needs two; room for 1.2's).
_HANDSHAKE_LEGS = 4


def _base(*, server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def server_context(cert_path: StrPath, key_path: StrPath, bundle_path: StrPath) -> ssl.SSLContext:
    """A manager's server side: its certificate; client certificates optional, verified."""
    ctx = _base(server=True)
    ctx.load_cert_chain(cert_path, key_path)
    ctx.load_verify_locations(cafile=bundle_path)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(
    bundle_path: StrPath, cert_path: StrPath | None = None, key_path: StrPath | None = None
) -> ssl.SSLContext:
    """A node's client side: the server must chain to the bundle (no host name check,
    see the module docstring); presents the node's certificate when given."""
    if (cert_path is None) != (key_path is None):
        raise InvalidArgument(
            f"client certificate {cert_path} and key {key_path}: expected both or neither",
            op="tls",
        )
    ctx = _base(server=False)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True  # against the name the caller expects (`expect`)
    ctx.load_verify_locations(cafile=bundle_path)
    if cert_path is not None:
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


def expect(name: str) -> dict[str, str]:
    """httpx request extensions that make the server prove it is `name`: MANAGER_NAME,
    or a node id."""
    return {"sni_hostname": name}


def pin_context() -> ssl.SSLContext:
    """A joiner's first CA fetch: encrypted, unverified; check the result with
    `tokens.check_bundle` before sending anything (see the module docstring)."""
    ctx = _base(server=False)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def identity_context(cert_path: StrPath, key_path: StrPath, bundle_path: StrPath) -> ssl.SSLContext:
    """`server_context` of a node's own credentials; InvalidArgument when the key is not
    the certificate's."""
    try:
        return server_context(cert_path, key_path, bundle_path)
    except ssl.SSLError as err:
        raise InvalidArgument(
            f"node key {key_path} and certificate {cert_path} do not make a TLS identity: "
            f"{err.reason or err}",
            obj=str(cert_path),
            op="load credentials",
        ) from None


def memory_handshake(
    client: ssl.SSLContext, server: ssl.SSLContext, server_hostname: str | None = None
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """The client's and the server's end of one TLS handshake run in memory, bytes
    passed between two pairs of memory BIOs; raises what either end raises
    (ssl.SSLCertVerificationError: the server's certificate does not verify)."""
    wires = [ssl.MemoryBIO() for _ in range(4)]
    ends = (
        client.wrap_bio(wires[0], wires[1], server_side=False, server_hostname=server_hostname),
        server.wrap_bio(wires[2], wires[3], server_side=True),
    )
    pending = list(ends)
    for _ in range(_HANDSHAKE_LEGS):
        for end in list(pending):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
                pending.remove(end)
        wires[2].write(wires[1].read())
        wires[0].write(wires[3].read())
        if not pending:
            return ends
    raise InvalidArgument("the TLS handshake in memory did not complete", op="tls")


def shown_certificate(
    cert_path: StrPath,
    key_path: StrPath,
    bundle_path: StrPath,
    server: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """The certificate at `cert_path` as a peer sees it, decoded and verified by OpenSSL
    (`SSLSocket.getpeercert()`'s dict): a handshake in memory between a server holding
    the credentials (`server`, if already made of them) and a client that trusts the
    bundle.

    InvalidArgument when the key is not the certificate's; ssl.SSLCertVerificationError
    when the certificate does not verify now (expired, or not of these roots)."""
    if server is None:
        server = identity_context(cert_path, key_path, bundle_path)
    client = _base(server=False)
    client.check_hostname = False  # the name is what we are reading
    client.load_verify_locations(cafile=bundle_path)
    client_end, _ = memory_handshake(client, server)
    return client_end.getpeercert() or {}


def shown_identity(
    cert_path: StrPath,
    key_path: StrPath,
    bundle_path: StrPath,
    server: ssl.SSLContext | None = None,
) -> CertInfo:
    """What this node's certificate says, read the way its peers read it
    (`shown_certificate`), so a daemon needs no X.509 library of its own. Raises as
    `shown_certificate`: the caller reads a certificate that no longer verifies with
    the mint (`minting.cert_info`)."""
    return CertInfo.from_peercert(shown_certificate(cert_path, key_path, bundle_path, server))
