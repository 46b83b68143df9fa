"""Swarm join tokens: `SWMTKN-1-<digest>-<secret>`.

The digest (50 base36 characters, zero-padded) is the sha256 of the root CA bundle,
the PEM bytes a joiner fetches from a manager (`authority.bundle_pem`), as in Swarm.
So a token names the swarm it belongs to, and it is also how a joiner trusts a
manager it has never met: it fetches the bundle over an unverified connection
(`tls.pin_context`), checks it with `check_bundle`, and only then sends its secret.
The secret (25 base36 characters, 128 random bits) says which role the holder joins
as; worker and manager secrets differ and rotating one role replaces only its
secret, so old tokens of that role stop working at once. A root CA rotation changes
the bundle, hence the digest of both tokens.

A joined node has no secret: its certificate is its credential (auth.py).

The functions that read a cluster take anything with its fields (`JoinSecrets`):
this package sits below `orchestrator.cluster` and imports none of it.
Every comparison of a secret or a digest is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any, Protocol, Self, TypeVar

from netagent.contract.errors import InvalidArgument, PermissionDenied
from orchestrator.ca.roles import NodeRole

PREFIX = "SWMTKN"
VERSION = "1"
DIGEST_LEN = 50  # ceil(log36(2**256)): a sha256 always fits
SECRET_LEN = 25  # ceil(log36(2**128))
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_TOKEN_RE = re.compile(rf"{PREFIX}-{VERSION}-([0-9a-z]{{{DIGEST_LEN}}})-([0-9a-z]{{{SECRET_LEN}}})")


class JoinSecrets(Protocol):
    """What tokens need of the cluster object: its digest and the two role secrets."""

    @property
    def digest(self) -> str: ...
    @property
    def worker_secret(self) -> str: ...
    @property
    def manager_secret(self) -> str: ...


class _CopyableSecrets(JoinSecrets, Protocol):
    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self: ...


C = TypeVar("C", bound=_CopyableSecrets)


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


def bundle_digest(bundle_pem: bytes) -> str:
    """The swarm's identity in its tokens: sha256 of the root CA bundle, in base36."""
    return base36(int.from_bytes(hashlib.sha256(bundle_pem).digest(), "big"), DIGEST_LEN)


def make_secret() -> str:
    """128 random bits as 25 base36 characters."""
    return base36(secrets.randbits(128), SECRET_LEN)


def new_secrets() -> tuple[str, str]:
    """(worker secret, manager secret) of a new swarm: never equal."""
    worker = make_secret()
    manager = make_secret()
    while manager == worker:  # practically never; but the roles must not collide
        manager = make_secret()
    return worker, manager


def make_token(digest: str, secret: str) -> str:
    return f"{PREFIX}-{VERSION}-{digest}-{secret}"


def parse_token(text: str) -> tuple[str, str]:
    """(digest, secret) of a well-formed token; InvalidArgument otherwise."""
    m = _TOKEN_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidArgument(
            f"invalid join token {text!r}: expected {PREFIX}-{VERSION}-<digest>-<secret>",
            obj="join token",
            op="parse",
        )
    return m.group(1), m.group(2)


def check_bundle(bundle_pem: bytes, token: str) -> None:
    """The joiner's check of a fetched root CA bundle: PermissionDenied unless its
    digest is the token's. Call it before sending the token to anyone."""
    digest, _ = parse_token(token)
    got = bundle_digest(bundle_pem)
    if not hmac.compare_digest(got, digest):
        raise PermissionDenied(
            f"root CA bundle with digest {got} does not match the join token's {digest}: "
            "not the swarm of this token (or someone in between)",
            obj="root CA",
            op="join",
        )


def token_for(cluster: JoinSecrets, role: NodeRole) -> str:
    """The current join token of `role`."""
    secret = cluster.manager_secret if role == NodeRole.MANAGER else cluster.worker_secret
    return make_token(cluster.digest, secret)


def verify(cluster: JoinSecrets, token: str) -> NodeRole:
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


def rotate(cluster: C, role: NodeRole) -> C:
    """A copy of `cluster` with a new secret for `role`; the other role keeps its own."""
    other = cluster.worker_secret if role == NodeRole.MANAGER else cluster.manager_secret
    current = cluster.manager_secret if role == NodeRole.MANAGER else cluster.worker_secret
    fresh = make_secret()
    while fresh in (other, current):
        fresh = make_secret()
    field = "manager_secret" if role == NodeRole.MANAGER else "worker_secret"
    return cluster.model_copy(update={field: fresh})
