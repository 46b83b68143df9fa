"""Node certificates issued by the swarm's CA: at join, at renewal, their expiry, and
the rotation of the root itself.

The CA itself (keys, signing, chains) is orchestrator.ca, run in the mint process
(`orchestrator.ca.minting`); this module decides *what*
the manager signs, from the store: the subject is the node as stored (CN its id, OU
its current role, O the cluster), the IP SAN its advertise address, the life the
cluster's `cert_expiry`. Nothing a caller writes in a CSR is taken but its key.

Renewal needs no certificate that is still valid: a node presents its current
certificate (expired or not) and a CSR signed by the same key. The certificate must
chain to this swarm's roots, name a node still in the swarm, and carry the CSR's key:
so only the holder of a node's key can renew it, and a removed node cannot. This is
also how a node stopped past its certificate's expiry comes back on its own.

Root rotation (`swarm ca --rotate`), Swarm's three states (orchestrator.ca.authority):
`start_rotation` makes a new root, cross-signed by the current one, the signer, and
trusts both (the bundle, hence the token digest, changes: old tokens stop working).
Nodes see the new digest in their heartbeat answers and renew; each new certificate
carries the cross-signed root, so peers that still trust only the old root verify it.
Once every node holds a certificate of the new root (`Node.cert_root`),
`finish_rotation` drops the old root from the bundle; nodes renew once more to learn it.
"""

from __future__ import annotations

from datetime import timedelta

from netagent.contract.errors import Conflict, InvalidArgument, PermissionDenied
from orchestrator.ca import minting, tokens
from orchestrator.ca.certinfo import min_node_cert_expiry
from orchestrator.cluster.objects import Cluster, Node
from orchestrator.ops.durations import parse_duration


def root_of(cluster: Cluster) -> minting.Root:
    """The signing root, with the cross-signed copy of itself during a rotation."""
    return minting.Root(
        cert_pem=cluster.ca_cert.encode(),
        key_pem=cluster.ca_key.encode(),
        intermediates_pem=cluster.ca_intermediates.encode(),
    )


def signer_digest(cluster: Cluster) -> str:
    """Which root signs now (what `Node.cert_root` is compared with)."""
    return tokens.bundle_digest(cluster.ca_cert.encode())


def issue(cluster: Cluster, node: Node, csr_pem: bytes) -> bytes:
    """A certificate for `node` as the store knows it, for the key of `csr_pem`."""
    return minting.sign(
        root_of(cluster),
        csr_pem,
        node_id=node.id,
        role=node.role,
        cluster_id=cluster.id,
        expiry=timedelta(seconds=cluster.cert_expiry),
        ip_sans=[node.addr],
    )


def renewal_subject(cluster: Cluster, cert_pem: bytes, csr_pem: bytes) -> str:
    """The node id a renewal is for; PermissionDenied unless `cert_pem` is one of this
    swarm's node certificates (expiry aside) and `csr_pem` is signed by its key."""
    # Verified at a moment the certificate was valid: renewal is what expiry is for.
    info = minting.renewal_info(cert_pem, csr_pem, cluster.ca_bundle.encode())
    if info.cluster_id != cluster.id:
        raise PermissionDenied(
            f"certificate of node {info.node_id} is from swarm {info.cluster_id}, not {cluster.id}",
            obj=info.node_id,
            op="renew certificate",
        )
    return info.node_id


def check_expiry(value: str | float) -> float:
    """`--cert-expiry` (seconds, or a Go duration like 2160h) as seconds; at least the
    CA's floor (1 h)."""
    if isinstance(value, str):
        seconds = parse_duration(value, "--cert-expiry")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = -1.0
    floor = min_node_cert_expiry()
    if not seconds >= floor.total_seconds():
        raise InvalidArgument(
            f"invalid --cert-expiry {value!r}: expected a duration of at least {floor}",
            obj=str(value),
            op="cert expiry",
        )
    return seconds


def start_rotation(cluster: Cluster) -> Cluster:
    """A new root signs from now on; both roots are trusted until every node renewed."""
    if cluster.ca_intermediates:
        raise Conflict(
            "a root CA rotation is already in progress: wait for it to finish",
            obj=cluster.id,
            op="rotate CA",
        )
    new = minting.rotate(root_of(cluster), cluster.id)
    return cluster.model_copy(
        update={
            "ca_cert": new.root.cert_pem.decode(),
            "ca_key": new.root.key_pem.decode(),
            "ca_intermediates": new.root.intermediates_pem.decode(),
            "ca_bundle": new.bundle_pem.decode(),
        }
    )


def rotation_done(cluster: Cluster, nodes: list[Node]) -> bool:
    """A rotation whose every node holds a certificate of the new root."""
    signer = signer_digest(cluster)
    return bool(cluster.ca_intermediates) and all(n.cert_root == signer for n in nodes)


def finish_rotation(cluster: Cluster) -> Cluster:
    """Trust the new root only: the old one signed no certificate still in use."""
    bundle = cluster.ca_cert.encode()
    return cluster.model_copy(
        update={
            "ca_intermediates": "",
            "ca_bundle": bundle.decode(),
        }
    )
