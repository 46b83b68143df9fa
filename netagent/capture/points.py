"""Where on a node a debugging tool looks: the node's own view of its namespaces.

A `Point` is what a client asks for, in cluster terms ("the sandbox of VNI 4097",
"task <id>", "the underlay"); `NodeContext.resolve` turns it into a namespace and
interface on this node, using the same names the agent built them with
(netagent.kernel.naming) and the agent's own task records. So the client never needs to
know namespace names, and a request can only reach what this node's agent made.

Kinds:
  underlay  the node namespace, bound to the interface holding the node's address
  node      the node namespace, every interface (eth0, vx_gwbridge, veths)
  sandbox   the overlay sandbox of `vni`: br0, vx-<vni>, the tasks' veths
  ingress   the ingress sandbox (routing mesh): eth0 on the ingress network, eth1
  task      a task's namespace: its eth<n> (and lo)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address

from pydantic import BaseModel, ConfigDict, Field

from netagent.capture.sniffer import Tap
from netagent.contract.errors import InvalidArgument, NotFound
from netagent.kernel import netns
from netagent.kernel.hostaddr import local_addresses
from netagent.kernel.naming import Names
from netagent.kernel.netns import kernel_errors


class PointKind(StrEnum):
    UNDERLAY = "underlay"
    NODE = "node"
    SANDBOX = "sandbox"
    INGRESS = "ingress"
    TASK = "task"


class Point(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: PointKind
    vni: int | None = Field(default=None, ge=1, le=16777215)
    task_id: str = ""
    #: One interface of the namespace; None: all of them (the underlay's is found).
    iface: str | None = None


class CaptureRequest(BaseModel):
    """What `POST .../capture` takes: where, which frames, until when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    points: tuple[Point, ...] = Field(min_length=1, max_length=32)
    filter: str = ""
    count: int = Field(default=0, ge=0)
    #: Seconds; 0 = until the client goes away.
    timeout: float = Field(default=0.0, ge=0, le=86400)
    #: Capture at the points that exist and report the others (a trace looking for a
    #: broken path), instead of refusing the whole request.
    skip_missing: bool = False


@dataclass(frozen=True)
class NodeContext:
    """What a node knows to resolve points: its names, namespace, address and tasks."""

    names: Names
    #: The node namespace when the agent does not run inside it (tests); None otherwise.
    node_ns: str | None
    underlay_ip: IPv4Address
    #: task id -> its namespace on this node (NotFound / Conflict when not running here).
    task_netns: Callable[[str], str]

    def netns_of(self, point: Point) -> str | None:
        """The namespace `point` is in (None: the node's own); NotFound if it is not here."""
        if point.kind in (PointKind.UNDERLAY, PointKind.NODE):
            return self.node_ns
        if point.kind == PointKind.TASK:
            if not point.task_id:
                raise InvalidArgument("a task point needs task_id: expected a task id")
            return self.task_netns(point.task_id)
        if point.kind == PointKind.SANDBOX:
            if point.vni is None:
                raise InvalidArgument("a sandbox point needs vni: expected a VNI like 4097")
            ns = self.names.overlay_ns(point.vni)
            what = f"no sandbox for VNI {point.vni} on this node (no task or peer of that network)"
        else:
            ns = self.names.ingress_ns()
            what = "no ingress sandbox on this node (nothing published in ingress mode)"
        if not netns.exists(ns):
            raise NotFound(what, obj=ns, op="resolve")
        return ns

    def tap(self, point: Point) -> Tap:
        ns = self.netns_of(point)
        iface = point.iface
        if point.kind == PointKind.UNDERLAY and iface is None:
            iface = underlay_iface(self.node_ns, self.underlay_ip)
        return Tap(ns, iface, f"{ns or 'node'}/{iface or 'any'}")


def underlay_iface(node_ns: str | None, ip: IPv4Address) -> str:
    """The interface holding the node's underlay address (eth0 in the lab)."""
    with kernel_errors(node_ns or "node ns", "find underlay interface"):
        found = netns.in_ns_thread(node_ns, local_addresses)
    name = next((ifname for ifname, addr in found if addr.ip == ip), None)
    if name is None:
        raise NotFound(
            f"no interface holds the node address {ip} in {node_ns or 'the node namespace'}",
            obj=str(ip),
            op="capture",
        )
    return name
