"""The VM lab's shape: the Vagrantfile's three VMs, and the name of everything a VM lab makes.

The nodes, addresses and roles are the Vagrantfile's (a unit test reads it and compares),
so what `vxswarm lab vms up` boots here is what `vagrant up` boots on a laptop:

  manager1  192.168.56.11  swarm init     eth0 NAT 10.0.2.15 (qemu user networking)
  worker1   192.168.56.12  swarm join     eth1 the host-only network, 192.168.56.0/24
  worker2   192.168.56.13  swarm join
  client    192.168.56.1   the laptop: the lab's own network namespace

Kernel objects, none in the host's root namespace:
  netns vxvm-<lab>       lo; bridge `hostonly` with 192.168.56.1/24 (the client);
                         one persistent tap per VM, `tap-<node>`, on the bridge
Files, under <lab root>/vms/<lab>/ (0700): vmlab.json (the record), id_ed25519 (the lab's
SSH key, 0600), known_hosts, and per VM <node>/: disk.qcow2 (copy-on-write over the box),
seed (fw_cfg), console.log, qmp.sock, qemu.pid.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from netagent.contract.errors import NotFound
from netagent.lab.topology import CLIENT, CLIENT_IP, UNDERLAY, Role, check_lab_name

#: The box the Vagrantfile names by default, and the one scripts/build-box.sh makes.
VAGRANT_BOX = "debian/bookworm64"
BOX_ENV = "VXSWARM_BOX_DIR"
DEFAULT_BOX_DIR = Path("/var/cache/vxswarm/box")
BOX_DISK = "bookworm64.qcow2"
#: The Vagrantfile's VM size; under software emulation more memory only feeds TCG's cache.
DEFAULT_MEMORY_MB = 1024
BRIDGE = "hostonly"
GUEST_USER = "vagrant"
GUEST_CHECKOUT = "/vagrant"
PROVISION = f"{GUEST_CHECKOUT}/vagrant/provision.sh"
#: What the Vagrantfile's rsync folder leaves out: host build output (each VM has its venv).
RSYNC_EXCLUDE = (
    ".git/",
    ".venv/",
    ".vagrant/",
    ".hypothesis/",
    ".pytest_cache/",
    ".ruff_cache/",
    "__pycache__/",
    "*.egg-info/",
)
RECORD_NAME = "vmlab.json"
VMS_SUBDIR = "vms"
NETNS_PREFIX = "vxvm-"


@dataclass(frozen=True)
class VmNode:
    name: str
    ip: IPv4Address
    role: Role

    @property
    def address(self) -> IPv4Interface:
        return IPv4Interface(f"{self.ip}/{UNDERLAY.prefixlen}")

    @property
    def tap(self) -> str:
        return f"tap-{self.name}"[:15]

    def macs(self, lab: str) -> tuple[str, str]:
        """(NAT NIC, host-only NIC): QEMU's default MAC is the same for every VM, which
        on one bridge makes them one host; these are per lab and node, and stable."""
        digest = hashlib.sha256(f"{lab}/{self.name}".encode()).digest()
        base = f"52:54:00:{digest[0]:02x}:{digest[1]:02x}"
        return f"{base}:{digest[2] & 0xFE:02x}", f"{base}:{digest[2] | 0x01:02x}"


MANAGER_IP = IPv4Address("192.168.56.11")
VAGRANT_NODES: tuple[VmNode, ...] = (
    VmNode("manager1", MANAGER_IP, Role.MANAGER),
    VmNode("worker1", IPv4Address("192.168.56.12"), Role.WORKER),
    VmNode("worker2", IPv4Address("192.168.56.13"), Role.WORKER),
)


@dataclass(frozen=True)
class VmLab:
    name: str
    root: Path
    nodes: tuple[VmNode, ...] = VAGRANT_NODES

    def __post_init__(self) -> None:
        check_lab_name(self.name)

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.name}"

    @property
    def dir(self) -> Path:
        return self.root / VMS_SUBDIR / self.name

    @property
    def record_path(self) -> Path:
        return self.dir / RECORD_NAME

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def client_address(self) -> IPv4Interface:
        return IPv4Interface(f"{CLIENT_IP}/{UNDERLAY.prefixlen}")

    @property
    def manager(self) -> VmNode:
        return self.nodes[0]

    def node(self, name: str) -> VmNode:
        for node in self.nodes:
            if node.name == name:
                return node
        names = ", ".join(n.name for n in self.nodes)
        raise NotFound(
            f"no VM {name!r} in VM lab {self.name!r}: expected one of {names} (or {CLIENT})",
            obj=name,
            op="lab vms",
        )

    def node_dir(self, node: VmNode) -> Path:
        return self.dir / node.name

    def disk(self, node: VmNode) -> Path:
        return self.node_dir(node) / "disk.qcow2"

    def seed(self, node: VmNode) -> Path:
        return self.node_dir(node) / "seed"

    def console(self, node: VmNode) -> Path:
        return self.node_dir(node) / "console.log"

    def qmp(self, node: VmNode) -> Path:
        return self.node_dir(node) / "qmp.sock"

    def pidfile(self, node: VmNode) -> Path:
        return self.node_dir(node) / "qemu.pid"


def box_disk(box_dir: Path) -> Path:
    return box_dir / BOX_DISK


def render_seed(node: VmNode, public_key: str) -> str:
    """The KEY=VALUE lines vagrant/box/vxswarm-seed reads at boot (qemu fw_cfg)."""
    if "\n" in public_key.strip():
        raise ValueError("expected one public key line")
    return (
        f"VXSWARM_HOSTNAME={node.name}\n"
        f"VXSWARM_ADDR={node.address}\n"
        f"VXSWARM_SSH_KEY={public_key.strip()}\n"
    )
