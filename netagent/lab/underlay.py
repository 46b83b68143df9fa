"""The lab's wire: one switch namespace with a bridge, one namespace per machine.

Kernel objects (all named by netagent.lab.topology; none in the host's root ns):
  netns vx-<lab>-switch   bridge `underlay` (up, no address: a dumb L2 switch), lo up
  netns vx-<lab>-<node>   lo up; `eth0` with 192.168.56.x/24 and a MAC derived from it
                          (stable across stop/start, so no neighbour cache goes stale), up
  veth <node> <-> eth0    created in the switch ns with its peer born directly inside the
                          node ns, so no half-made link ever shows up in the root ns

Build order per machine: netns, lo, veth pair, port on the bridge and up, then the
address and eth0 up last, so the node starts talking only once its cable is plugged.
Every `ensure_*` is idempotent: it looks up, adds what is missing, fixes what drifted
(state, master, address), and returns whether it created something, so the caller
can register an undo step.

Removing a machine deletes its netns: the veth pair dies with it (like pulling the
power of a VM takes its NIC down). A port left behind because something still pins
the old namespace is deleted explicitly, so `ensure_machine` can plug in again.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from netagent.contract.errors import KernelError
from netagent.kernel.pyroute import NetlinkError, NetNS, netns
from netagent.lab.topology import NODE_IFNAME, SWITCH_BRIDGE, LabNode, Topology

log = logging.getLogger(__name__)

#: RTNL changes are not synchronous with their visibility; poll this long for them.
_SETTLE_SECONDS = 5.0
T = TypeVar("T")


def _kernel(obj: str, op: str, fn: Callable[[], T]) -> T:
    """Run one netlink call, turning its error into a KernelError naming obj and op."""
    try:
        return fn()
    except NetlinkError as err:
        raise KernelError(
            f"{op} {obj}: {err.args[1] if len(err.args) > 1 else err}",
            obj=obj,
            op=op,
            errno=err.code,
        ) from err
    except OSError as err:
        raise KernelError(f"{op} {obj}: {err.strerror}", obj=obj, op=op, errno=err.errno) from err


def netns_exists(name: str) -> bool:
    return name in netns.listnetns()


def ensure_netns(name: str) -> bool:
    """Create the named namespace with lo up; True if it was created now."""
    created = False
    if not netns_exists(name):
        _kernel(name, "create netns", lambda: netns.create(name))
        created = True
        log.info("created netns %s", name)
    with _ns(name) as ns:
        lo = ns.link_lookup(ifname="lo")
        _kernel(f"{name}/lo", "set up", lambda: ns.link("set", index=lo[0], state="up"))
    return created


def remove_netns(name: str) -> bool:
    """Delete the named namespace; True if it existed. Links inside die with it."""
    if not netns_exists(name):
        return False
    try:
        netns.remove(name)
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise KernelError(
                f"remove netns {name}: {err.strerror}", obj=name, op="remove netns", errno=err.errno
            ) from err
        return False
    log.info("removed netns %s", name)
    return True


@contextmanager
def _ns(name: str) -> Iterator[NetNS]:
    # flags=0: never create a namespace by opening it (NetNS's default is O_CREAT);
    # creation is ensure_netns's job, so a typo cannot conjure a stray namespace.
    ns = _kernel(name, "open netns", lambda: NetNS(name, flags=0))
    try:
        yield ns
    finally:
        ns.close()


def _index(ns: NetNS, ifname: str) -> int | None:
    found = ns.link_lookup(ifname=ifname)
    return found[0] if found else None


def _wait_for(ns: NetNS, ifname: str, where: str) -> int:
    """Poll until `ifname` is visible in `ns`; its index."""
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        index = _index(ns, ifname)
        if index is not None:
            return index
        if time.monotonic() > deadline:
            raise KernelError(f"link {ifname} did not appear in {where}", obj=ifname, op="add link")
        time.sleep(0.02)


def ensure_switch(topo: Topology) -> bool:
    """The switch namespace and its bridge, up; True if the namespace was created now."""
    created = ensure_netns(topo.switch_netns)
    with _ns(topo.switch_netns) as ns:
        if _index(ns, SWITCH_BRIDGE) is None:
            _kernel(
                SWITCH_BRIDGE,
                "add bridge",
                lambda: ns.link("add", ifname=SWITCH_BRIDGE, kind="bridge"),
            )
        index = _wait_for(ns, SWITCH_BRIDGE, topo.switch_netns)
        _kernel(SWITCH_BRIDGE, "set up", lambda: ns.link("set", index=index, state="up"))
    return created


def ensure_machine(topo: Topology, node: LabNode) -> bool:
    """Node namespace, cable to the switch and address; True if the namespace was created now."""
    created = ensure_netns(node.netns)
    with _ns(topo.switch_netns) as switch, _ns(node.netns) as inside:
        port = _index(switch, node.port)
        eth = _index(inside, NODE_IFNAME)
        if port is not None and eth is None:
            # The node's end died with an older namespace; a new cable replaces the orphan.
            log.info("replacing orphan switch port %s (its node end is gone)", node.port)
            _kernel(node.port, "delete link", lambda: switch.link("del", index=port))
            port = None
        if port is None:
            if eth is not None:
                _kernel(
                    f"{node.netns}/{NODE_IFNAME}",
                    "delete link",
                    lambda: inside.link("del", index=eth),
                )
            _kernel(
                node.port,
                "add veth",
                lambda: switch.link(
                    "add",
                    ifname=node.port,
                    kind="veth",
                    peer={"ifname": NODE_IFNAME, "net_ns_fd": node.netns, "address": node.mac},
                ),
            )
        port = _wait_for(switch, node.port, topo.switch_netns)
        bridge = _wait_for(switch, SWITCH_BRIDGE, topo.switch_netns)
        _kernel(
            node.port,
            "plug into switch",
            lambda: switch.link("set", index=port, master=bridge, state="up"),
        )
        eth = _wait_for(inside, NODE_IFNAME, node.netns)
        _ensure_address(inside, eth, node)
        _kernel(
            f"{node.netns}/{NODE_IFNAME}",
            "set up",
            lambda: inside.link("set", index=eth, address=node.mac, state="up"),
        )
    return created


def _ensure_address(ns: NetNS, index: int, node: LabNode) -> None:
    """Exactly the node's underlay address on eth0 (replace drifted ones)."""
    want = (str(node.ip), node.address.network.prefixlen)
    have = {(a.get("address"), a["prefixlen"]) for a in ns.get_addr(index=index, family=2)}
    for address, prefixlen in have - {want}:
        log.info("removing stray address %s/%s from %s", address, prefixlen, node.netns)
        _kernel(
            f"{node.netns}/{NODE_IFNAME}",
            "delete address",
            lambda a=address, p=prefixlen: ns.addr("del", index=index, address=a, prefixlen=p),
        )
    if want not in have:
        _kernel(
            f"{node.netns}/{NODE_IFNAME}",
            f"add address {node.address}",
            lambda: ns.addr("add", index=index, address=want[0], prefixlen=want[1]),
        )


def unplug(topo: Topology, node: LabNode) -> None:
    """Cut the machine's cable at the switch (its port down): from this instant the
    network hears nothing from it, as when a machine loses power."""
    if not netns_exists(topo.switch_netns):
        return
    with _ns(topo.switch_netns) as switch:
        port = _index(switch, node.port)
        if port is not None:
            _kernel(node.port, "unplug", lambda: switch.link("set", index=port, state="down"))


def remove_machine(topo: Topology, node: LabNode) -> None:
    """Pull the machine's power: delete its namespace, and its switch port if left behind."""
    remove_netns(node.netns)
    if not netns_exists(topo.switch_netns):
        return
    with _ns(topo.switch_netns) as switch:
        port = _index(switch, node.port)
        if port is not None:
            try:
                _kernel(node.port, "delete link", lambda: switch.link("del", index=port))
            except KernelError as err:
                # Gone between lookup and delete: its namespace took it, which is the goal.
                if err.errno != errno.ENODEV:
                    raise


def destroy(topo: Topology) -> None:
    """Delete every machine, then the switch; tolerant of anything already gone."""
    for node in reversed(topo.machines):
        remove_machine(topo, node)
    remove_netns(topo.switch_netns)


def machine_up(node: LabNode) -> bool:
    """True if the machine's namespace exists with eth0 up (its cable is plugged)."""
    if not netns_exists(node.netns):
        return False
    with _ns(node.netns) as ns:
        links = ns.get_links(ifname=NODE_IFNAME)
        return bool(links) and links[0].get("state") == "up"
