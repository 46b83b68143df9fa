"""Published ports in the node namespace: where traffic to <node>:<port> goes first.

Owns `table ip vxswarm` in the node namespace (recorded as NodeRecord.lb_node_table so
an offline wipe deletes it). One map keyed by protocol . published port, DNAT on
local destination addresses, from outside (prerouting) and from the node itself
(output) — Docker's DOCKER-INGRESS chain and its host-mode port mappings in one:
  ingress mode  -> the ingress sandbox's gateway-bridge address, same port; the
                   sandbox then picks a task on any node (netagent.lb.ingress)
  host mode     -> the local task's gateway-bridge address:target (Docker publishes
                   host mode on the container's bridge IP); only a node running such
                   a task has the entry, so only it answers
The node must forward (ip_forward=1, set with the gateway bridge).
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address

from netagent.contract.desired import HostPort, IngressState
from netagent.lb import rules


def node_ports(
    ingress: IngressState | None,
    ingress_gw: IPv4Address | None,
    host_ports: tuple[HostPort, ...],
    task_gw: Mapping[str, tuple[str, IPv4Address]],
) -> list[rules.NodePort]:
    """The DNAT entries of the node namespace.

    `task_gw`: task id -> (task name, gateway-bridge address) of the tasks running
    here; a host port of a task not (yet) running here has no entry."""
    out: list[rules.NodePort] = []
    if ingress is not None and ingress_gw is not None:
        for p in ingress.ports:
            why = f"{p.service_name} ingress *:{p.published}->{p.target}/{p.protocol.value}"
            out.append(rules.NodePort(p.protocol, p.published, ingress_gw, p.published, why))
    for h in host_ports:
        if h.task_id not in task_gw:
            continue
        name, ip = task_gw[h.task_id]
        why = f"{h.service_name} host *:{h.published}->{h.target}/{h.protocol.value} -> {name}"
        out.append(rules.NodePort(h.protocol, h.published, ip, h.target, why))
    return out
