"""The contract between the orchestrator and the data plane of one node.

The manager computes one `NodeDesiredState` per node; the node's agent makes the
kernel match it (idempotent, restart-safe) and reports one `TaskStatus` per task
back. Nothing else crosses the boundary. The orchestrator imports this module;
this module imports nothing from the orchestrator.

Addresses use `ipaddress` types; MACs are lower-case colon strings.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

OVERLAY_MTU = 1450
VXLAN_PORT = 4789
MANAGER_PORT = 2377
#: The read-only views (visualizer, Prometheus metrics): Docker's metrics port.
VIEW_PORT = 9323
INGRESS_VNI = 4096
#: The routing mesh's network (Swarm's `ingress`).
INGRESS_SUBNET = IPv4Network("10.255.0.0/16")
FIRST_USER_VNI = 4097


class TaskState(StrEnum):
    """Swarm's task states, in lifecycle order (see swarmkit api/types.proto)."""

    NEW = "new"
    PENDING = "pending"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    PREPARING = "preparing"
    READY = "ready"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    SHUTDOWN = "shutdown"
    FAILED = "failed"
    REJECTED = "rejected"
    REMOVE = "remove"
    ORPHANED = "orphaned"

    @property
    def order(self) -> int:
        # A table, not list(TaskState).index(self): the dispatcher asks this of every
        # task for every node's state (2 µs each, seconds a round at thousands of tasks).
        return _TASK_STATE_ORDER[self]

    @property
    def terminal(self) -> bool:
        return self.order >= TaskState.COMPLETE.order


_TASK_STATE_ORDER = {state: i for i, state in enumerate(TaskState)}


@functools.lru_cache(maxsize=65536)
def _dotted_quad(text: str) -> IPv4Address | str:
    # inet_pton is as strict as ipaddress (four decimal octets, no leading zeros).
    try:
        return IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except OSError:
        return text  # not a dotted quad: pydantic's own validator names the error


@functools.lru_cache(maxsize=65536)
def _interface(text: str) -> IPv4Interface | str:
    try:
        return IPv4Interface(text)
    except ValueError:
        return text  # pydantic's own validator names the error


def _parsed_once(parse: Callable[[str], object]) -> BeforeValidator:
    """A validator that hands pydantic the cached parse of a string (the strings come
    back with every state and every tick; the objects are immutable, so one serves every
    model holding that string). ipaddress parses in Python, ~5 µs an address and ~10 µs
    an interface: a node's desired state carries thousands, and the manager decodes
    every task's attachments on each tick."""
    return BeforeValidator(lambda value: parse(value) if type(value) is str else value)


#: An IPv4Address field, decoded fast.
IPv4 = Annotated[IPv4Address, _parsed_once(_dotted_quad)]
#: An IPv4Interface field ("10.0.0.3/24"), decoded fast.
IPv4If = Annotated[IPv4Interface, _parsed_once(_interface)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@functools.lru_cache(maxsize=65536)
def task_mac(ip: IPv4Address) -> str:
    """Swarm's MAC for a task address: 02:42 followed by the 4 bytes of the IP.

    Cached: an agent derives the MACs of thousands of endpoints on every apply."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


class RemoteEndpoint(_Frozen):
    """A task address on another node: what the FDB and neighbour tables need."""

    ip: IPv4
    mac: str
    vtep: IPv4
    task_id: str = ""
    task_name: str = ""


class PortProtocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"


class PublishMode(StrEnum):
    INGRESS = "ingress"  # every node answers, spread over all tasks (the routing mesh)
    HOST = "host"  # only nodes running a task answer, to their local task


class EndpointMode(StrEnum):
    VIP = "vip"  # the service name resolves to one virtual IP, load-balanced by the kernel
    DNSRR = "dnsrr"  # the service name resolves to the task IPs


class PublishedPort(_Frozen):
    published: int = Field(ge=1, le=65535)
    target: int = Field(ge=1, le=65535)
    protocol: PortProtocol = PortProtocol.TCP
    mode: PublishMode = PublishMode.INGRESS

    def __str__(self) -> str:
        """As `docker service ls` prints it: *:8080->80/tcp."""
        return f"*:{self.published}->{self.target}/{self.protocol}"


class Backend(_Frozen):
    """A running task of a service, as seen on one network."""

    task_id: str
    task_name: str  # "web.1"
    ip: IPv4
    aliases: tuple[str, ...] = ()


class ServiceEndpoint(_Frozen):
    """A service attached to a network: what DNS answers and the VIP balances over there."""

    service_id: str
    name: str
    mode: EndpointMode = EndpointMode.VIP
    vip: IPv4 | None = None  # None with mode dnsrr
    #: Running tasks that are not being stopped, cluster-wide, sorted by task name.
    backends: tuple[Backend, ...] = ()


class NetworkState(_Frozen):
    """An overlay network this node takes part in."""

    id: str
    name: str
    vni: int = Field(ge=1, le=16777215)
    subnet: IPv4Network
    gateway: IPv4
    mtu: int = OVERLAY_MTU
    #: Every endpoint of this network on other nodes (not this node's own tasks).
    peers: tuple[RemoteEndpoint, ...] = ()
    #: Every service attached to this network (for DNS and VIP load balancing).
    services: tuple[ServiceEndpoint, ...] = ()
    #: True for the routing mesh's network (VNI 4096): no DNS, no VIPs on it.
    ingress: bool = False


class Attachment(_Frozen):
    """A task's interface on one overlay network."""

    network_id: str
    address: IPv4If
    mac: str
    aliases: tuple[str, ...] = ()


class DesiredTaskState(StrEnum):
    RUNNING = "running"
    SHUTDOWN = "shutdown"


class MountType(StrEnum):
    BIND = "bind"  # a path of the node's
    VOLUME = "volume"  # a named volume: a directory under the node's state dir
    TMPFS = "tmpfs"  # memory only, gone with the task


class Mount(_Frozen):
    """A mount made in the task's own mount namespace, never in the node's."""

    type: MountType
    #: bind: an absolute path on the node; volume: the volume's name; tmpfs: unused.
    source: str = ""
    #: An absolute path inside the task.
    target: str
    readonly: bool = False
    #: tmpfs only: its size in bytes (0: the kernel's default, half of RAM).
    tmpfs_size: int = 0
    #: tmpfs only: the mode of its root (0: the kernel's default, 1777), docker's tmpfs-mode.
    tmpfs_mode: int = Field(default=0, ge=0, le=0o7777)


class FileKind(StrEnum):
    SECRET = "secret"
    CONFIG = "config"


class TaskFile(_Frozen):
    """A secret's or config's content for one task. It travels in memory only: the agent
    puts it on a tmpfs inside the task's mount namespace and never on the node's disk."""

    kind: FileKind
    id: str
    name: str
    #: An absolute path inside the task (secrets: /run/secrets/<target>).
    target: str
    #: The content, base64.
    data: str = Field(repr=False)
    uid: int = 0
    gid: int = 0
    mode: int = Field(default=0o444, ge=0, le=0o7777)


class HealthCheck(_Frozen):
    """Docker's healthcheck: `test` runs in the task's namespaces every `interval`; after
    `retries` failures in a row (not counted during `start_period`) the task is unhealthy."""

    #: The argv to run (docker's CMD-SHELL form arrives as ("sh", "-c", text)).
    test: tuple[str, ...]
    interval: float = Field(default=30.0, gt=0)
    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=1)
    start_period: float = Field(default=0.0, ge=0)


class Health(StrEnum):
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class Resources(_Frozen):
    """CPU and memory, as docker counts them (NanoCPUs, bytes); 0 is no limit."""

    nano_cpus: int = Field(default=0, ge=0)
    memory_bytes: int = Field(default=0, ge=0)


class TaskSpec(_Frozen):
    """What to run: a built-in image (see netagent.tasks.workloads) and its arguments."""

    image: str
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    stop_grace_period: float = 10.0
    mounts: tuple[Mount, ...] = ()
    #: Secrets and configs, with their content.
    files: tuple[TaskFile, ...] = ()
    healthcheck: HealthCheck | None = None
    #: Enforced through the task's own cgroup.
    limits: Resources = Resources()


class TaskAssignment(_Frozen):
    """A task the manager wants on this node."""

    id: str
    name: str  # "web.1"
    service_id: str
    service_name: str
    slot: int
    spec: TaskSpec
    desired_state: DesiredTaskState
    attachments: tuple[Attachment, ...] = ()

    @property
    def hostname(self) -> str:
        """Like a container's: the first 12 characters of the id."""
        return self.id[:12]


class IngressPort(_Frozen):
    """A port published in ingress mode: every node answers on it."""

    published: int = Field(ge=1, le=65535)
    target: int = Field(ge=1, le=65535)
    protocol: PortProtocol = PortProtocol.TCP
    service_id: str
    service_name: str
    #: Ingress-network addresses of the service's running tasks, cluster-wide, sorted.
    backends: tuple[IPv4, ...] = ()


class IngressState(_Frozen):
    """This node's part of the routing mesh."""

    network_id: str  # the ingress network, also listed in NodeDesiredState.networks
    #: This node's ingress sandbox address on the ingress network (its MAC: task_mac(ip)).
    sandbox_address: IPv4If
    ports: tuple[IngressPort, ...] = ()


class HostPort(_Frozen):
    """A port published in host mode by a task running on this node."""

    published: int = Field(ge=1, le=65535)
    target: int = Field(ge=1, le=65535)
    protocol: PortProtocol = PortProtocol.TCP
    task_id: str
    service_name: str


def peer_key(p: RemoteEndpoint) -> tuple[int, str, int]:
    """A cheap identity for a peer: hashing pydantic models and IPv4Address objects costs
    microseconds each, which adds up to tens of ms per apply with thousands of peers."""
    return (int(p.ip), p.mac, int(p.vtep))


def service_key(s: ServiceEndpoint) -> tuple:
    """A cheap identity for a service as one network sees it (see peer_key)."""
    return (
        s.service_id,
        s.name,
        s.mode.value,
        int(s.vip) if s.vip is not None else None,
        tuple((b.task_id, b.task_name, int(b.ip), b.aliases) for b in s.backends),
    )


class NodeDesiredState(_Frozen):
    """Everything one node must run; `version` grows with every change."""

    node_id: str
    version: int
    networks: tuple[NetworkState, ...] = ()
    tasks: tuple[TaskAssignment, ...] = ()
    ingress: IngressState | None = None
    host_ports: tuple[HostPort, ...] = ()


class TaskStatus(_Frozen):
    """What the agent observed of one task; the manager stores it as the task's status."""

    task_id: str
    state: TaskState
    message: str = ""
    err: str = ""
    pid: int | None = None
    exit_code: int | None = None
    timestamp: float = 0.0
    netns: str = ""
    #: Only for a task with a healthcheck: what its checks say now.
    health: Health | None = None


def network_gateway(subnet: IPv4Network) -> IPv4Address:
    """The first host address, as Docker's IPAM picks for a network gateway."""
    return next(subnet.hosts()) if subnet.num_addresses > 2 else subnet.network_address


__all__ = [
    "Attachment",
    "Backend",
    "EndpointMode",
    "FileKind",
    "Health",
    "HealthCheck",
    "HostPort",
    "IngressPort",
    "IngressState",
    "Mount",
    "MountType",
    "PortProtocol",
    "PublishMode",
    "PublishedPort",
    "ServiceEndpoint",
    "DesiredTaskState",
    "NetworkState",
    "NodeDesiredState",
    "RemoteEndpoint",
    "Resources",
    "TaskAssignment",
    "TaskFile",
    "TaskSpec",
    "TaskState",
    "TaskStatus",
    "network_gateway",
    "task_mac",
]
