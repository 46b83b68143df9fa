"""Swarm join tokens: `SWMTKN-1-<digest>-<secret>`.

The digest (50 base36 characters) stands for Swarm's root CA fingerprint: the
sha256 of a random cluster root key, so a token names the swarm it belongs to.
The secret (25 base36 characters, 128 random bits) says which role the holder
joins as; worker and manager secrets differ and rotating one role replaces only
its secret, so old tokens of that role stop working at once.

Node secrets (what a joined node heartbeats with) live here too: an HMAC of the
node id under a cluster key, so the store holds no per-node credential.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.cluster.objects import Cluster, NodeRole, new_id

PREFIX = "SWMTKN"
VERSION = "1"
DIGEST_LEN = 50
SECRET_LEN = 25
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_TOKEN_RE = re.compile(
    rf"^{PREFIX}-{VERSION}-([0-9a-z]{{{DIGEST_LEN}}})-([0-9a-z]{{{SECRET_LEN}}})$"
)


def base36(value: int, width: int) -> str:
    """`value` in lower-case base36, zero-padded to `width` characters."""
    if value < 0:
        raise ValueError("base36 of a negative number")
    out = []
    rest = value
    while rest:
        rest, rem = divmod(rest, 36)
        out.append(_ALPHABET[rem])
    text = "".join(reversed(out)).rjust(width, "0")
    if len(text) > width:
        raise ValueError(f"{value} does not fit in {width} base36 characters")
    return text


def make_digest(root_key: bytes) -> str:
    """The swarm's identity in its tokens: sha256 of the root key, in base36."""
    # 36**50 > 2**256, so every sha256 fits in 50 characters.
    return base36(int.from_bytes(hashlib.sha256(root_key).digest(), "big"), DIGEST_LEN)


def make_secret() -> str:
    """128 random bits as 25 base36 characters (36**25 > 2**128)."""
    return base36(secrets.randbits(128), SECRET_LEN)


def new_cluster(*, heartbeat_period: float = 5.0) -> Cluster:
    """A fresh swarm identity with distinct worker and manager secrets."""
    worker = make_secret()
    manager = make_secret()
    while manager == worker:  # practically never; but the roles must not collide
        manager = make_secret()
    return Cluster(
        id=new_id(),
        digest=make_digest(secrets.token_bytes(32)),
        worker_secret=worker,
        manager_secret=manager,
        heartbeat_period=heartbeat_period,
    )


def make_token(digest: str, secret: str) -> str:
    return f"{PREFIX}-{VERSION}-{digest}-{secret}"


def token_for(cluster: Cluster, role: NodeRole) -> str:
    """The current join token of `role`."""
    secret = cluster.manager_secret if role == NodeRole.MANAGER else cluster.worker_secret
    return make_token(cluster.digest, secret)


def parse_token(text: str) -> tuple[str, str]:
    """(digest, secret) of a well-formed token; InvalidArgument otherwise."""
    m = _TOKEN_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidArgument(
            f"invalid join token {text!r}: expected {PREFIX}-{VERSION}-<digest>-<secret>",
            obj="join token",
            op="parse",
        )
    return m.group(1), m.group(2)


def verify(cluster: Cluster, token: str) -> NodeRole:
    """The role `token` joins as; PermissionDenied for another swarm or a stale secret."""
    digest, secret = parse_token(token)
    if not hmac.compare_digest(digest, cluster.digest):
        raise PermissionDenied("join token is for a different swarm", obj="join token", op="join")
    # Compare against both secrets in constant time, whatever the outcome.
    is_manager = hmac.compare_digest(secret, cluster.manager_secret)
    is_worker = hmac.compare_digest(secret, cluster.worker_secret)
    if is_manager:
        return NodeRole.MANAGER
    if is_worker:
        return NodeRole.WORKER
    raise PermissionDenied(
        "invalid join token: the token is not valid for this swarm, or it was rotated",
        obj="join token",
        op="join",
    )


def rotate(cluster: Cluster, role: NodeRole) -> Cluster:
    """A copy of `cluster` with a new secret for `role`; the other role keeps its own."""
    other = cluster.worker_secret if role == NodeRole.MANAGER else cluster.manager_secret
    current = cluster.manager_secret if role == NodeRole.MANAGER else cluster.worker_secret
    fresh = make_secret()
    while fresh in (other, current):
        fresh = make_secret()
    field = "manager_secret" if role == NodeRole.MANAGER else "worker_secret"
    return cluster.model_copy(update={field: fresh})


def node_secret(cluster: Cluster, node_id: str) -> str:
    """The secret node `node_id` authenticates with: HMAC of its id under the cluster key.

    Derived, not stored: the manager can present it to the node's agent (exec) and
    check it on heartbeats, and a removed node's id simply stops being accepted.
    """
    return hmac.new(cluster.node_key.encode(), node_id.encode(), hashlib.sha256).hexdigest()


def check_node_secret(cluster: Cluster, node_id: str, secret: str) -> None:
    """PermissionDenied unless `secret` is the one handed to `node_id` at join."""
    if not isinstance(secret, str) or not hmac.compare_digest(
        node_secret(cluster, node_id).encode(), secret.encode()
    ):
        raise PermissionDenied(
            f"node {node_id} presented an invalid node secret", obj=node_id, op="authenticate"
        )
