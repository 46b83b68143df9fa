"""This node's TLS identity: its key and certificate files, and the contexts made of them.

Owns `<state dir>/certificates/` (orchestrator.ca.files: 0700, every file 0600) and
three SSL contexts, remade whenever the files change (join, renewal, a CA rotation):
- `server`: port 2377's side. The listening socket keeps one stub context whose SNI
  callback (`listening_context`) hands each new handshake the current server context,
  so a renewed certificate or new roots apply to the next connection without closing
  the port, and a node not in a swarm fails every handshake (it has nothing to show).
- `client`: this node calling another (the agent's session, a manager's relays to
  agents, a manager forwarding to the leader): verifies the peer against the roots
  and presents this node's certificate.
- `info`: what the certificate says (node id, role, cluster, validity), for renewal,
  read through a handshake in memory (`tls.shown_identity`), or by the mint when the
  certificate no longer verifies (it expired while the node was down).
"""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.ca import minting, tls, tokens
from orchestrator.ca.certinfo import CertInfo
from orchestrator.ca.files import Credentials, NodeCredentials

log = logging.getLogger(__name__)


class NodeTLS:
    """The credentials of the node whose state dir is `state_dir`."""

    def __init__(self, state_dir: Path):
        self.files = NodeCredentials.under(state_dir)
        self.server: ssl.SSLContext | None = None
        self.client: ssl.SSLContext | None = None
        self.info: CertInfo | None = None
        self._bundle_digest = ""

    def load(self) -> bool:
        """Read the files back (daemon start); False when the node has none."""
        if not self.files.exists():
            return False
        self._contexts(self.files.load())
        return True

    def install(self, creds: Credentials) -> None:
        """Keep new credentials (join, renewal): files first, then the contexts."""
        self.files.save(creds)
        self._contexts(creds)

    def forget(self) -> None:
        """Leaving the swarm: no context, no files."""
        self.server = self.client = None
        self.info = None
        self._bundle_digest = ""
        self.files.remove()

    def bundle_digest(self) -> str:
        """The digest of the roots this node trusts (as join tokens carry it)."""
        return self._bundle_digest

    def expired(self, now: datetime | None = None) -> bool:
        return self.info is not None and (now or datetime.now(UTC)) >= self.info.not_after

    def listening_context(self) -> ssl.SSLContext:
        """The context port 2377 listens with: each handshake gets the current `server`."""
        stub = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        stub.minimum_version = ssl.TLSVersion.TLSv1_2
        # The per-connection verify mode is the stub's: the same as `server`'s.
        stub.verify_mode = ssl.CERT_OPTIONAL

        def pick(sslobj: ssl.SSLObject, _name: str | None, _stub: ssl.SSLContext) -> int | None:
            if self.server is None:
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            sslobj.context = self.server
            return None

        stub.sni_callback = pick  # type: ignore[assignment]
        return stub

    def _contexts(self, creds: Credentials) -> None:
        f = self.files
        server = tls.identity_context(f.cert_path, f.key_path, f.root_ca_path)
        try:
            self.info = tls.shown_identity(f.cert_path, f.key_path, f.root_ca_path, server)
        except ssl.SSLCertVerificationError as err:
            log.warning("this node's certificate does not verify: %s", err.verify_message)
            self.info = minting.cert_info(creds.cert_pem)
        self._bundle_digest = tokens.bundle_digest(creds.bundle_pem)
        self.server = server
        self.client = tls.client_context(f.root_ca_path, f.cert_path, f.key_path)
