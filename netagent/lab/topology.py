"""The lab as a pure description: which nodes exist, their roles, addresses and names.

Nothing here touches the kernel or the disk (mininet's `Topo`, kept apart from what
realises it in `underlay.py` and `nodes.py`). Every name a lab gives to a kernel object
or a file is derived here, in one place, so `lab down` deletes exactly what `lab up`
made:

  vx-<lab>-switch      netns holding the underlay bridge `underlay`
  vx-<lab>-client      netns of the user's "laptop", eth0 = 192.168.56.1
  vx-<lab>-<node>      netns of one node, eth0 = 192.168.56.11, .12, ... in creation order
                       (MAC 02:56:c0:a8:38:0b: stable across stop/start, like a VM's NIC);
                       also the node daemon's namespace prefix (netagent.kernel.naming.Names), so
                       the overlay and task namespaces of two nodes or two labs never collide
  <node>               the switch-side veth port of a node (`manager1`, `worker2`, `client`)

Files: <root>/<lab>/lab.json (the record) and <root>/<lab>/<node>/ (the daemon's state
dir, with vxswarm.sock and daemon.log). The root is /var/lib/vxswarm/labs unless
VXSWARM_LAB_ROOT says otherwise (tests use a tmp dir).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from netagent.contract.errors import InvalidArgument, NotFound
from netagent.kernel.naming import IFNAMSIZ

DEFAULT_LAB = "lab"
DEFAULT_NODES = 3
DEFAULT_MANAGERS = 1
DEFAULT_ROOT = Path("/var/lib/vxswarm/labs")
ROOT_ENV = "VXSWARM_LAB_ROOT"

#: Vagrant's host-only range: the lab behaves like a row of VMs on one laptop.
UNDERLAY = IPv4Network("192.168.56.0/24")
CLIENT_IP = IPv4Address("192.168.56.1")
FIRST_NODE_IP = IPv4Address("192.168.56.11")
#: .11 .. .254: every node address must stay inside the /24 and off the broadcast address.
MAX_NODES = int(UNDERLAY.broadcast_address) - int(FIRST_NODE_IP)
SWITCH_BRIDGE = "underlay"
NODE_IFNAME = "eth0"
CLIENT = "client"
SOCKET_NAME = "vxswarm.sock"
#: The daemon keeps its data plane records (netagent.ledger.inventory) in <state dir>/agent
#: (orchestrator/node/daemon.py); `lab stop`/`down` wipe a node offline from there.
AGENT_SUBDIR = "agent"
LOG_NAME = "daemon.log"
RECORD_NAME = "lab.json"
#: sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_LAB_NAME_MAX = 12
_LAB_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")


class Role(StrEnum):
    MANAGER = "manager"
    WORKER = "worker"
    CLIENT = "client"


def check_lab_name(name: str) -> str:
    """Refuse anything but a lower-case DNS label of at most 12 characters."""
    if len(name) > _LAB_NAME_MAX or not _LAB_NAME_RE.match(name):
        raise InvalidArgument(
            f"invalid lab name {name!r}: expected a lower-case DNS label (letters a-z, "
            f"digits and '-', not starting or ending with '-'), at most {_LAB_NAME_MAX} "
            "characters",
            obj=name,
            op="lab",
        )
    return name


def check_counts(nodes: int, managers: int) -> None:
    """--nodes N (1..MAX_NODES) and --managers M (1..N)."""
    if not 1 <= nodes <= MAX_NODES:
        raise InvalidArgument(
            f"invalid --nodes {nodes}: expected a number from 1 to {MAX_NODES}",
            obj=str(nodes),
            op="lab up",
        )
    if not 1 <= managers <= nodes:
        raise InvalidArgument(
            f"invalid --managers {managers}: expected a number from 1 to {nodes} "
            "(the number of nodes)",
            obj=str(managers),
            op="lab up",
        )


def lab_root() -> Path:
    """Where labs live: $VXSWARM_LAB_ROOT or /var/lib/vxswarm/labs."""
    value = os.environ.get(ROOT_ENV)
    if not value:
        return DEFAULT_ROOT
    root = Path(value)
    if not root.is_absolute():
        raise InvalidArgument(
            f"invalid {ROOT_ENV} {value!r}: expected an absolute directory path",
            obj=value,
            op="lab",
        )
    return root


@dataclass(frozen=True)
class LabNode:
    """One machine of the lab (a swarm node, or the client)."""

    lab: str
    name: str
    role: Role
    ip: IPv4Address
    root: Path

    @property
    def netns(self) -> str:
        """The node's namespace, and the daemon's prefix for the namespaces it makes."""
        return f"vx-{self.lab}-{self.name}"

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def port(self) -> str:
        """The switch-side veth: named after the node, so `bridge link` reads like a rack."""
        return self.name

    @property
    def mac(self) -> str:
        """eth0's MAC, fixed like a VM's NIC: 02:56 (locally administered) + the 4 IP bytes.

        A powered-off-and-on node keeps its MAC, so its neighbours' ARP caches stay right.
        """
        return "02:56:" + ":".join(f"{b:02x}" for b in self.ip.packed)

    @property
    def address(self) -> IPv4Interface:
        return IPv4Interface(f"{self.ip}/{UNDERLAY.prefixlen}")

    @property
    def is_swarm_node(self) -> bool:
        return self.role is not Role.CLIENT

    @property
    def state_dir(self) -> Path:
        return self.root / self.lab / self.name

    @property
    def socket(self) -> Path:
        return self.state_dir / SOCKET_NAME

    @property
    def agent_dir(self) -> Path:
        """The data plane's state dir inside the daemon's (what wipe_node reads)."""
        return self.state_dir / AGENT_SUBDIR

    @property
    def log(self) -> Path:
        return self.state_dir / LOG_NAME

    @property
    def host_url(self) -> str:
        """VXSWARM_HOST for this node's daemon."""
        return f"unix://{self.socket}"


@dataclass(frozen=True)
class Topology:
    """A whole lab: the switch, the client and the swarm nodes in creation order."""

    name: str
    managers: int
    nodes: tuple[LabNode, ...]
    client: LabNode
    root: Path

    @classmethod
    def build(
        cls,
        name: str = DEFAULT_LAB,
        nodes: int = DEFAULT_NODES,
        managers: int = DEFAULT_MANAGERS,
        root: Path | None = None,
    ) -> Topology:
        """Validate the request and derive every node, address and name from it."""
        check_lab_name(name)
        check_counts(nodes, managers)
        root = lab_root() if root is None else root
        made = []
        for index in range(nodes):
            is_manager = index < managers
            number = index + 1 if is_manager else index - managers + 1
            role = Role.MANAGER if is_manager else Role.WORKER
            made.append(LabNode(name, f"{role}{number}", role, FIRST_NODE_IP + index, root))
        client = LabNode(name, CLIENT, Role.CLIENT, CLIENT_IP, root)
        topo = cls(name=name, managers=managers, nodes=tuple(made), client=client, root=root)
        topo._check_paths()
        return topo

    def _check_paths(self) -> None:
        longest = max((n.socket for n in self.nodes), key=lambda p: len(str(p)))
        if len(os.fsencode(longest)) > _MAX_SOCKET_PATH:
            raise InvalidArgument(
                f"lab root {str(self.root)!r} is too long: the daemon socket {str(longest)!r} "
                f"must fit in {_MAX_SOCKET_PATH} bytes (a unix socket path limit)",
                obj=str(self.root),
                op="lab",
            )
        for node in self.machines:
            # Node names are ours, but a huge --nodes could make a port name too long.
            if len(node.port) > IFNAMSIZ:
                raise InvalidArgument(
                    f"node name {node.name!r} is longer than {IFNAMSIZ} characters",
                    obj=node.name,
                    op="lab",
                )

    @property
    def machines(self) -> tuple[LabNode, ...]:
        """Everything plugged into the switch: the client first, then the nodes."""
        return (self.client, *self.nodes)

    @property
    def switch_netns(self) -> str:
        return f"vx-{self.name}-switch"

    @property
    def lab_dir(self) -> Path:
        return self.root / self.name

    @property
    def record_path(self) -> Path:
        return self.lab_dir / RECORD_NAME

    @property
    def first_manager(self) -> LabNode:
        return self.nodes[0]

    @property
    def all_netns(self) -> tuple[str, ...]:
        """Every namespace the underlay makes, in build order."""
        return (self.switch_netns, *(m.netns for m in self.machines))

    def node(self, name: str, *, allow_client: bool = False) -> LabNode:
        """The node called `name`, or a NotFound listing the valid names."""
        candidates = self.machines if allow_client else self.nodes
        for node in candidates:
            if node.name == name:
                return node
        expected = ", ".join(n.name for n in candidates)
        raise NotFound(
            f"no such node {name!r} in lab {self.name!r}: expected one of {expected}",
            obj=name,
            op="lab",
        )

    def extends(self, older: Topology) -> bool:
        """True if this topology keeps every node of `older` unchanged (it may add workers)."""
        return self.managers == older.managers and self.nodes[: len(older.nodes)] == older.nodes
