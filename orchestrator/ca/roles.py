"""The two node roles and how a certificate spells them.

A node's role is what its certificate says: the CA writes it into the subject's OU
(`swarm-manager` or `swarm-worker`, Swarm's names) and every handler reads it back
from there (`auth.py`). The enum lives here, at the bottom of the orchestrator, so
that the CA needs nothing of the cluster objects; `orchestrator.cluster.objects`
re-exports it.
"""

from __future__ import annotations

from enum import StrEnum

from netagent.contract.errors import InvalidArgument

#: The CN of every root CA this package makes (Swarm's `DefaultRootCN`).
ROOT_CN = "swarm-ca"


class NodeRole(StrEnum):
    MANAGER = "manager"
    WORKER = "worker"


#: The subject OU of a node certificate, per role (Swarm's `ManagerRole`, `WorkerRole`).
OU_BY_ROLE: dict[NodeRole, str] = {
    NodeRole.MANAGER: "swarm-manager",
    NodeRole.WORKER: "swarm-worker",
}
ROLE_BY_OU: dict[str, NodeRole] = {ou: role for role, ou in OU_BY_ROLE.items()}


def check_role(role: object) -> NodeRole:
    """`role` as a NodeRole; InvalidArgument naming it otherwise."""
    try:
        return NodeRole(role)
    except ValueError:
        raise InvalidArgument(
            f"unknown role {role!r}: expected 'manager' or 'worker'", obj=str(role), op="role"
        ) from None


def role_of_ou(ou: str) -> NodeRole:
    """The role a certificate OU stands for; InvalidArgument for any other OU."""
    try:
        return ROLE_BY_OU[ou]
    except KeyError:
        raise InvalidArgument(
            f"unknown certificate OU {ou!r}: expected 'swarm-manager' or 'swarm-worker'",
            obj=ou,
            op="parse certificate",
        ) from None
