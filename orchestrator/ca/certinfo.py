"""What a node certificate says, and when to renew it: the half of the CA's knowledge
that needs no X.509 library.

A node daemon only *reads* certificates, and OpenSSL (through `ssl`) already parses
every certificate a handshake shows: `from_peercert` reads the subject and validity
of `SSLSocket.getpeercert()`'s verified dict. Making keys, requests and certificates
is `orchestrator.ca.mint`'s, in a process of its own (see `orchestrator.ca.minting`).

Renewal follows Swarm: at a uniformly random point between 50% and 80% of the
certificate's life, so that nodes that joined together do not all ask the CA at once.
"""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from netagent.contract.errors import InvalidArgument
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
#: The shortest node certificate validity the CA accepts (Swarm's MinNodeCertExpiration).
MIN_NODE_CERT_EXPIRY = timedelta(hours=1)
#: Lowers that floor (seconds) for labs and tests that watch certificates expire and
#: renew; it can only shorten certificate lives, never lengthen them.
MIN_EXPIRY_ENV = "VXSWARM_MIN_CERT_EXPIRY"

# The attribute names of `ssl`'s decoded subjects.
_CN, _OU, _O = "commonName", "organizationalUnitName", "organizationName"


class Uniform(Protocol):
    """What renewal needs of a random source (`random`, or a seeded `random.Random`)."""

    def uniform(self, a: float, b: float) -> float: ...


def utc(now: datetime | None) -> datetime:
    """`now` (default: the current time) as an aware UTC datetime; naive ones are refused."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise InvalidArgument(
            f"naive time {now.isoformat()}: expected a timezone-aware datetime", op="time"
        )
    return now.astimezone(UTC)


def min_node_cert_expiry() -> timedelta:
    """MIN_NODE_CERT_EXPIRY, or the lower floor VXSWARM_MIN_CERT_EXPIRY sets."""
    raw = os.environ.get(MIN_EXPIRY_ENV, "")
    try:
        floor = timedelta(seconds=float(raw)) if raw else MIN_NODE_CERT_EXPIRY
    except ValueError:
        raise InvalidArgument(
            f"invalid {MIN_EXPIRY_ENV} {raw!r}: expected seconds", obj=raw, op="sign"
        ) from None
    return min(floor, MIN_NODE_CERT_EXPIRY)


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

    @classmethod
    def of_subject(
        cls,
        subject: str,
        fields: Mapping[str, list[str]],
        not_before: datetime,
        not_after: datetime,
    ) -> CertInfo:
        """From a subject's attributes (name → every value it has); InvalidArgument
        unless it has exactly one CN (node id), OU (role) and O (cluster id)."""
        one = {k: v[0] for k, v in fields.items() if len(v) == 1}
        if not one.get(_CN) or not one.get(_O):
            raise InvalidArgument(
                f"certificate {subject!r} is not a swarm node certificate: "
                "expected one CN (node id), OU (role) and O (cluster id)",
                obj=subject,
                op="parse certificate",
            )
        return cls(
            node_id=one[_CN],
            role=role_of_ou(one.get(_OU, "")),
            cluster_id=one[_O],
            not_before=not_before,
            not_after=not_after,
        )

    @classmethod
    def from_peercert(cls, decoded: Mapping[str, Any]) -> CertInfo:
        """From the dict `SSLSocket.getpeercert()` gives for a verified certificate."""
        fields: dict[str, list[str]] = {}
        for rdn in decoded.get("subject", ()):
            for name, value in rdn:
                fields.setdefault(name, []).append(value)
        subject = ",".join(f"{k}={v}" for k, vs in fields.items() for v in vs)
        try:
            start, end = (
                datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded[k]), UTC)
                for k in ("notBefore", "notAfter")
            )
        except (KeyError, ValueError):
            raise InvalidArgument(
                f"certificate {subject!r} has no readable validity", obj=subject, op="parse"
            ) from None
        return cls.of_subject(subject, fields, start, end)

    def to_json(self) -> dict[str, str]:
        return {
            "node_id": self.node_id,
            "role": str(self.role),
            "cluster_id": self.cluster_id,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> CertInfo:
        return cls(
            node_id=data["node_id"],
            role=NodeRole(data["role"]),
            cluster_id=data["cluster_id"],
            not_before=datetime.fromisoformat(data["not_before"]),
            not_after=datetime.fromisoformat(data["not_after"]),
        )


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
    return utc(now) >= issued + life * RENEW_UNTIL
