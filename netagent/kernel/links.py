"""Idempotent link steps shared by the overlay, gateway bridge and task namespace builders.

Owns no objects itself: each helper takes an open IPRoute (bound to one
namespace, see netagent.kernel.netns.ipr) and a link name, looks the link up, adds or
sets what differs, and polls until the kernel shows the result. Each returns
the `Change`s it made so callers can report them; a call that finds everything
in place returns nothing and sends no write to the kernel.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface

from netagent.contract.errors import KernelError
from netagent.kernel.netns import kernel_errors, wait_until
from netagent.kernel.pyroute import IPRoute, NetlinkError
from netagent.ledger.changes import Change

IFF_UP = 0x1


def get_link(ipr: IPRoute, name: str):
    """The link message for `name`, or None.

    RTM_GETLINK by name asks the kernel for one link; `get_links(ifname=...)`
    would dump and decode every link in the namespace (10x slower)."""
    try:
        found = ipr.link("get", ifname=name)
    except NetlinkError as exc:
        if exc.code in (errno.ENODEV, errno.ENOENT):
            return None
        raise
    return found[0] if found else None


def index_of(ipr: IPRoute, name: str, where: str) -> int:
    """Index of a link that must exist (KernelError ENODEV naming it otherwise)."""
    with kernel_errors(f"{where}/{name}", "lookup link"):
        link = get_link(ipr, name)
    if link is None:
        raise KernelError(
            f"link {name} not found in {where}", obj=f"{where}/{name}", op="lookup link",
            errno=errno.ENODEV,
        )  # fmt: skip
    return link["index"]


def wait_link(ipr: IPRoute, name: str, where: str) -> int:
    """Poll until link `name` is visible; its index."""
    box: dict[str, int] = {}

    def visible() -> bool:
        link = get_link(ipr, name)
        if link is not None:
            box["index"] = link["index"]
        return link is not None

    wait_until(f"link {name} in {where}", visible, obj=f"{where}/{name}")
    return box["index"]


def ensure_bridge(ipr: IPRoute, name: str, mtu: int, where: str) -> tuple[int, list[Change]]:
    """A bridge `name` with `mtu`; created if missing, MTU set if different."""
    changes: list[Change] = []
    with kernel_errors(f"{where}/{name}", "ensure bridge"):
        link = get_link(ipr, name)
        if link is not None and link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "bridge":
            ipr.link("del", index=link["index"])
            changes.append(Change("remove", f"link {name} in {where}", "not a bridge"))
            link = None
        if link is None:
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            changes.append(Change("add", f"bridge {name} in {where}", "missing"))
            index = wait_link(ipr, name, where)
        else:
            index = link["index"]
            if link.get("IFLA_MTU") != mtu:
                ipr.link("set", index=index, mtu=mtu)
                changes.append(
                    Change("update", f"bridge {name} in {where}", f"mtu {link.get('IFLA_MTU')}")
                )
    return index, changes


def ensure_bridge_mac(ipr: IPRoute, index: int, mac: str, label: str) -> list[Change]:
    """Give bridge `index` a MAC of its own (its gateway's, 02:42 + IP, like every task
    interface).

    A bridge without one takes the lowest MAC of its ports, so a task veth coming or
    going changes it: each change flushes the bridge's neighbour table (permanent
    entries too, the VIP backends' with them), and whoever cached the old MAC for the
    bridge's address (the ingress sandbox's way back to the node, the tasks' default
    gateway) sends to a port's MAC instead until its entry is probed again: about 5 s
    of every connection through it stalled. Set by hand, the kernel never changes it."""
    with kernel_errors(label, "set bridge mac"):
        (link,) = ipr.get_links(index)
        if link.get("IFLA_ADDRESS") == mac:
            return []
        ipr.link("set", index=index, address=mac)
    return [Change("update", f"MAC {mac} on {label}", "stable, whatever ports come and go")]


def ensure_up(
    ipr: IPRoute, index: int, label: str, master: int | None = None, mtu: int | None = None
) -> list[Change]:
    """Link `index` up (and enslaved to `master`, with `mtu`) — one write if anything differs."""
    with kernel_errors(label, "set link"):
        (link,) = ipr.get_links(index)
        want: dict[str, object] = {}
        if master is not None and link.get("IFLA_MASTER") != master:
            want["master"] = master
        if mtu is not None and link.get("IFLA_MTU") != mtu:
            want["mtu"] = mtu
        if not link["flags"] & IFF_UP:
            want["state"] = "up"
        if not want:
            return []
        ipr.link("set", index=index, **want)
    return [Change("update", label, ", ".join(sorted(want)))]


def ensure_addresses(
    ipr: IPRoute, index: int, wanted: Iterable[IPv4Interface], label: str
) -> list[Change]:
    """Exactly `wanted` IPv4 addresses on link `index`: add missing, remove others."""
    wanted = set(wanted)
    changes: list[Change] = []
    with kernel_errors(label, "set address"):
        present = {
            IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ipr.get_addr(index=index, family=2)
        }
        for addr in sorted(present - wanted):
            ipr.addr("del", index=index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
            changes.append(Change("remove", f"address {addr} on {label}", "not desired"))
        for addr in sorted(wanted - present):
            ipr.addr("add", index=index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
            changes.append(Change("add", f"address {addr} on {label}", "missing"))
    return changes


def ensure_default_route(ipr: IPRoute, gateway: IPv4Address, label: str) -> list[Change]:
    with kernel_errors(label, "set default route"):
        routes = ipr.get_routes(family=2, dst_len=0, table=254)
        if any(r.get("RTA_GATEWAY") == str(gateway) for r in routes):
            return []
        ipr.route("replace", dst="0.0.0.0/0", gateway=str(gateway))
    return [Change("add", f"default route via {gateway} in {label}", "missing")]


def delete_link(ipr: IPRoute, name: str, where: str) -> bool:
    """Delete link `name` if present (its veth peer goes with it); True if it was there."""
    with kernel_errors(f"{where}/{name}", "delete link"):
        link = get_link(ipr, name)
        if link is None:
            return False
        try:
            ipr.link("del", index=link["index"])
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:  # gone meanwhile (its peer was deleted)
                raise
    return True
