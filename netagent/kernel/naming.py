"""The one place that names every kernel object vxswarm makes.

Names show what a thing is in `ip netns` and `ip -d link`, and a restarted
daemon finds its own objects by deriving the same names again; cleanup deletes
exactly these names, never by pattern.

Namespaces (global, so they carry the node prefix):
  <prefix>-ov-<vni>              overlay sandbox: br0 + vx-<vni>, one per network
  <prefix>-t-<task name>-<id12>  a task: eth0.. on overlays, last on the gw bridge
  <prefix>-ingress_sbox          the routing mesh's ingress sandbox (Docker's name)

Links (IFNAMSIZ = 15; each lives in one node's namespaces, so the node is not
in the name):
  vx-<vni>        VXLAN device, made in the node ns, moved into the sandbox
  br0             the sandbox bridge
  vt<id8>-<n>     host side of a task's n-th overlay veth, in the sandbox on br0
  vg<id8>         host side of a task's gateway veth, on vx_gwbridge
  vx_gwbridge     the node's gateway bridge (docker_gwbridge's role)
  eth<n>          task side, inside the task namespace
  vi-eth0         host side of the ingress sandbox's eth0, in the ingress
                  network's sandbox on br0
  vi-eth1         host side of the ingress sandbox's eth1, on vx_gwbridge

Cgroups (netagent.tasks.cgroups): <prefix>-tasks/<task name>-<id12>, per hierarchy.

The node prefix is `vx` on a VM; in the lab it is `vx-<lab>-<node>` so that
two nodes, or two labs, on one box never collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IFNAMSIZ = 15
GW_BRIDGE = "vx_gwbridge"
SANDBOX_BRIDGE = "br0"
_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,47}\Z")


@dataclass(frozen=True)
class Names:
    """Derives namespace and link names for one node."""

    prefix: str = "vx"

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise ValueError(
                f"invalid namespace prefix {self.prefix!r}: expected lower-case letters, "
                "digits, '.' and '-', at most 48 characters"
            )

    def overlay_ns(self, vni: int) -> str:
        return f"{self.prefix}-ov-{vni}"

    def task_ns(self, task_name: str, task_id: str) -> str:
        return f"{self.prefix}-t-{task_name}-{task_id[:12]}"

    def ingress_ns(self) -> str:
        return f"{self.prefix}-ingress_sbox"

    def cgroup_dir(self) -> str:
        """The node's directory of task cgroups (netagent.tasks.cgroups)."""
        return f"{self.prefix}-tasks"

    @staticmethod
    def task_cgroup(task_name: str, task_id: str) -> str:
        """A task's cgroup, inside the node's directory."""
        return f"{task_name}-{task_id[:12]}"

    def owns_ns(self, ns: str) -> bool:
        """True for namespaces this node's agent made (its own prefix)."""
        return ns.startswith(f"{self.prefix}-ov-") or ns.startswith(f"{self.prefix}-t-")

    @staticmethod
    def vxlan(vni: int) -> str:
        return _link(f"vx-{vni}")

    @staticmethod
    def task_overlay_veth(task_id: str, index: int) -> str:
        return _link(f"vt{task_id[:8]}-{index}")

    @staticmethod
    def task_gw_veth(task_id: str) -> str:
        return _link(f"vg{task_id[:8]}")

    @staticmethod
    def ingress_veth(index: int) -> str:
        """Host side of the ingress sandbox's eth<index> (0: ingress overlay, 1: gw bridge)."""
        return _link(f"vi-eth{index}")

    @staticmethod
    def task_ifname(index: int) -> str:
        return f"eth{index}"


def _link(name: str) -> str:
    if len(name) > IFNAMSIZ:
        raise ValueError(f"link name {name!r} is longer than {IFNAMSIZ} characters")
    return name
