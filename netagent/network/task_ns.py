"""A task's network namespace and interfaces (the "container" side of networking).

Owns, per task (names from netagent.kernel.naming):
  netns        <prefix>-t-<task name>-<id12>; lo up, IPv6 off
  eth<n>       one per attachment, in attachment order: the task's MAC
               (02:42:+IP) and address, MTU of the network; its veth peer
               vt<id8>-<n> sits in the network's sandbox, on br0, up
  eth<N>       last: on the gateway bridge (peer vg<id8> on vx_gwbridge in the
               node ns), a node-local 172.18.x.y/16 and the default route

Each veth is created from the namespace of its host side with the peer made
directly inside the task namespace (IFLA_NET_NS_FD in the peer), so nothing is
ever moved and the task side never appears in a shared namespace. Addresses
and the default route come last, after every link exists.

`build` is a transaction: on any failure it undoes its completed steps in
reverse and re-raises the first error. `remove` deletes the host-side veths
explicitly (the pair goes at once, instead of whenever the kernel frees the
namespace) and then the namespace.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from ipaddress import IPv4Interface

from netagent.contract.desired import NetworkState, TaskAssignment
from netagent.kernel import links, netns
from netagent.kernel.naming import GW_BRIDGE, SANDBOX_BRIDGE, Names
from netagent.kernel.netns import kernel_errors
from netagent.kernel.pyroute import IPRoute, NetlinkError
from netagent.ledger.changes import Change
from netagent.ledger.inventory import TaskRecord, VethRecord
from netagent.network.gwbridge import GW_GATEWAY, GW_MTU
from netagent.network.overlay import IPV6_OFF

log = logging.getLogger(__name__)


def plan_record(
    names: Names,
    task: TaskAssignment,
    networks: dict[str, NetworkState],
    gw_address: IPv4Interface,
) -> TaskRecord:
    """The record of everything `build` will make, written before it starts."""
    vnis = [networks[a.network_id].vni for a in task.attachments]
    veths = [
        VethRecord(netns=names.overlay_ns(vni), link=names.task_overlay_veth(task.id, n))
        for n, vni in enumerate(vnis)
    ]
    # netns None = the node namespace: a daemon running inside its node's namespace does
    # not know that namespace's name, and wipe_node() is told it.
    veths.append(VethRecord(netns=None, link=names.task_gw_veth(task.id)))
    return TaskRecord(
        task_id=task.id,
        task_name=task.name,
        netns=names.task_ns(task.name, task.id),
        vnis=vnis,
        veths=veths,
        gw_address=gw_address,
        stop_grace_period=task.spec.stop_grace_period,
    )


def add_veth(
    ipr: IPRoute,
    where: str,
    host: str,
    bridge: str,
    task_ns: str,
    peer: dict[str, object],
    hairpin: bool = False,
) -> list[Change]:
    """veth `host` (in the namespace of `ipr`, enslaved to `bridge`, up) + peer in task_ns.

    `hairpin`: the bridge may send a frame back out of the port it came in on, which a
    task needs when its own service's VIP picks the task itself (see lb.rules.vip_table)."""
    changes: list[Change] = []
    with kernel_errors(f"{where}/{host}", "create veth"):
        bridge_index = links.index_of(ipr, bridge, where)
        with netns.open_ns_fd(task_ns) as fd:
            spec = {
                "ifname": host,
                "kind": "veth",
                "mtu": peer["mtu"],
                "peer": {**peer, "net_ns_fd": fd},
            }
            try:
                ipr.link("add", **spec)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
                # Same name = same task id: left over by an interrupted build of this task.
                links.delete_link(ipr, host, where)
                ipr.link("add", **spec)
                changes.append(Change("recreate", f"veth {host} in {where}", "leftover"))
        index = links.wait_link(ipr, host, where)
        ipr.link("set", index=index, master=bridge_index, state="up")
        if hairpin:
            ipr.brport("set", index=index, mode=1)
    return changes


def build(
    names: Names, pool: netns.IprPool, node_ns: str | None, node_label: str,
    task: TaskAssignment, networks: dict[str, NetworkState], record: TaskRecord,
) -> list[Change]:  # fmt: skip
    """Make the task's netns and interfaces as `record` plans them."""
    undo: list[Callable[[], None]] = []
    changes: list[Change] = []
    ns = record.netns
    try:
        if netns.create(ns, sysctls=IPV6_OFF):
            undo.append(lambda: netns.remove(ns))
        changes.append(Change("add", f"netns {ns}", f"task {task.name}"))
        addresses: dict[str, IPv4Interface] = {}
        for n, att in enumerate(task.attachments):
            net = networks[att.network_id]
            veth = record.veths[n]
            assert veth.netns is not None
            ifname = names.task_ifname(n)
            changes += add_veth(
                pool.get(veth.netns),
                veth.netns,
                veth.link,
                SANDBOX_BRIDGE,
                ns,
                {"ifname": ifname, "mtu": net.mtu, "address": att.mac},
                hairpin=True,
            )
            undo.append(lambda v=veth: _delete_veth(v, node_ns))
            addresses[ifname] = att.address
            changes.append(
                Change(
                    "add",
                    f"veth {veth.link}/{ifname} {att.address}",
                    f"task {task.name} on {net.name}",
                )
            )
        gw_veth = record.veths[-1]
        gw_ifname = names.task_ifname(len(task.attachments))
        changes += add_veth(
            pool.get(node_ns),
            node_label,
            gw_veth.link,
            GW_BRIDGE,
            ns,
            {"ifname": gw_ifname, "mtu": GW_MTU},
        )
        undo.append(lambda: _delete_veth(gw_veth, node_ns))
        assert record.gw_address is not None
        addresses[gw_ifname] = record.gw_address
        changes.append(
            Change(
                "add",
                f"veth {gw_veth.link}/{gw_ifname} {record.gw_address}",
                f"task {task.name} egress",
            )
        )
        with netns.ipr(ns) as tn:
            links.ensure_up(tn, links.index_of(tn, "lo", ns), f"{ns}/lo")
            for ifname, address in addresses.items():
                index = links.index_of(tn, ifname, ns)
                links.ensure_addresses(tn, index, [address], f"{ns}/{ifname}")
                links.ensure_up(tn, index, f"{ns}/{ifname}")
            # Route last: the gateway is reachable only once eth<N> is up with its address.
            links.ensure_default_route(tn, GW_GATEWAY, ns)
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except Exception:  # keep undoing; the first error is the one to report
                log.exception("undo step of task %s failed", task.id)
        raise
    return changes


def _delete_veth(veth: VethRecord, node_ns: str | None) -> bool:
    """Delete one recorded veth (None in its record = the node namespace, `node_ns`)."""
    ns = veth.netns if veth.netns is not None else node_ns
    if ns is not None and not netns.exists(ns):
        return False  # its namespace is gone, and the veth with it
    with netns.ipr(ns) as ipr:
        return links.delete_link(ipr, veth.link, ns or "node ns")


def remove(record: TaskRecord, node_ns: str | None) -> list[Change]:
    """Delete the task's veths and netns (tolerates any of them being gone already).

    `node_ns` is where the node-side veth lives: None = this process's namespace
    (the daemon runs inside its node's), a name when acting "as if" in a node."""
    changes: list[Change] = []
    for veth in record.veths:
        if _delete_veth(veth, node_ns):
            changes.append(Change("remove", f"veth {veth.link} in {veth.netns or 'node ns'}"))
    if netns.remove(record.netns):
        changes.append(Change("remove", f"netns {record.netns}", f"task {record.task_name}"))
    return changes
