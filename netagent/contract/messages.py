"""The dispatcher protocol's messages: join, heartbeat, assignments, and the identity a
node keeps from its join.

Pydantic models with `extra="forbid"`: a field one side does not know is an error, not
silently dropped. The agent's session (netagent.agent.session) sends and reads them;
the manager's API (orchestrator.node.api.routes) and dispatcher answer with them. No
message carries a credential: the caller is the client certificate of the mutual TLS
connection on port 2377 (orchestrator.ca.auth).
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from netagent.contract.desired import NodeDesiredState, Resources, TaskStatus
from netagent.contract.patch import StatePatch


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JoinRequest(_Wire):
    """Sent by a joiner once the CA it fetched matched its token's digest."""

    token: str
    hostname: str
    addr: IPv4Address
    engine_version: str
    #: PEM certificate signing request for a key the joiner made and keeps.
    csr: str


class JoinResponse(_Wire):
    """Who the joiner now is, and its certificate (CN node id, OU role, O cluster)."""

    node_id: str
    role: str
    cluster_id: str
    heartbeat_period: float
    certificate: str


class RenewRequest(_Wire):
    """A node's current certificate (expired or not) and a CSR signed by the same key."""

    certificate: str
    csr: str


class RenewResponse(_Wire):
    certificate: str
    #: The roots to trust from now on (more than one during a CA rotation).
    ca_bundle: str


class NodeIdentity(_Wire):
    """Who this node is in its swarm; persisted so a restarted daemon rejoins alone.

    No credential: the node's key and certificate are files of their own (0600)."""

    node_id: str
    role: str
    cluster_id: str
    manager_addr: str  # "ip:port" of the manager this node's session talks to
    addr: IPv4Address
    heartbeat_period: float
    #: "ip:port" of every manager, the leader first, as the last heartbeat answer said:
    #: where the session goes when its manager stops answering.
    managers: list[str] = []
    #: The node's role_epoch (orchestrator.cluster.objects.Node) this node last followed.
    role_epoch: int = 0

    def follows(self, role: str, epoch: int) -> bool:
        """Whether a heartbeat answer's role is a change to follow: a newer epoch (even
        with the same role: a demotion and promotion came between two answers), or a
        different role (a swarm from before epochs). An older epoch is a stale answer."""
        if epoch != self.role_epoch:
            return epoch > self.role_epoch
        return role != self.role

    @classmethod
    def load(cls, path: Path) -> NodeIdentity | None:
        return cls.model_validate_json(path.read_text()) if path.exists() else None

    def save(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.model_dump_json(indent=2))
        tmp.replace(path)


class HeartbeatRequest(_Wire):
    node_id: str
    statuses: list[TaskStatus] = []
    #: Digest of the last desired state this node applied: the manager waits on it
    #: before it stops a task that is leaving the load balancers.
    applied_digest: str = ""
    #: The node's CPUs and memory (None: an agent that does not tell): what the
    #: scheduler places reservations against and `node inspect` shows.
    resources: Resources | None = None


class HeartbeatResponse(_Wire):
    heartbeat_period: float
    #: Digest of the roots the swarm trusts now (as in join tokens): a node whose own
    #: bundle differs renews its certificate, which brings the new bundle (CA rotation).
    ca_digest: str = ""
    #: "ip:port" of every reachable manager, the leader first (empty: unknown).
    managers: list[str] = []
    #: The node's role as the swarm now has it: a node sees here that it was promoted
    #: or demoted.
    role: str = ""
    #: How many times the swarm changed that role (NodeIdentity.follows).
    role_epoch: int = 0


class Assignments(_Wire):
    """The node's desired state (digest `digest`): whole in `state`, or in `patch` as a
    change to the state of digest `base`, the one the node said it applied."""

    digest: str
    state: NodeDesiredState | None = None
    base: str = ""
    patch: StatePatch | None = None
