"""The dispatcher protocol's messages: join, heartbeat, assignments, and the identity a
node keeps from its join.

Pydantic models with `extra="forbid"`: a field one side does not know is an error, not
silently dropped. The agent's session (netagent.agent.session) sends and reads them;
the manager's API (orchestrator.node.api.routes) and dispatcher answer with them.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from netagent.contract.desired import NodeDesiredState, TaskStatus
from netagent.contract.patch import StatePatch

SECRET_HEADER = "X-Vxswarm-Secret"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JoinRequest(_Wire):
    token: str
    hostname: str
    addr: IPv4Address
    engine_version: str


class NodeIdentity(_Wire):
    """Who this node is in its swarm; persisted so a restarted daemon rejoins alone."""

    node_id: str
    secret: str
    role: str
    cluster_id: str
    manager_addr: str  # "ip:port" of the leader
    addr: IPv4Address
    heartbeat_period: float

    @classmethod
    def load(cls, path: Path) -> NodeIdentity | None:
        return cls.model_validate_json(path.read_text()) if path.exists() else None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)


class HeartbeatRequest(_Wire):
    node_id: str
    statuses: list[TaskStatus] = []
    #: Digest of the last desired state this node applied: the manager waits on it
    #: before it stops a task that is leaving the load balancers.
    applied_digest: str = ""


class HeartbeatResponse(_Wire):
    heartbeat_period: float


class Assignments(_Wire):
    """The node's desired state (digest `digest`): whole in `state`, or in `patch` as a
    change to the state of digest `base`, the one the node said it applied."""

    digest: str
    state: NodeDesiredState | None = None
    base: str = ""
    patch: StatePatch | None = None
