"""The VM lab's host-only network: one namespace with a bridge, the client and a tap per VM.

The namespace plays the laptop: its bridge holds 192.168.56.1 (the `client`), and each VM's
second NIC is a persistent tap on that bridge. QEMU runs in the host's root namespace (its
user-mode NAT opens ordinary sockets there: the VMs' way to the package registries, as
VirtualBox's NAT is), but its tap is opened inside the lab's namespace and handed over as
a file descriptor: a tap belongs to the namespace it was made in, so nothing of the lab
ever shows up in the root namespace, and deleting the namespace removes every link.
"""

from __future__ import annotations

import fcntl
import os
import struct

from netagent.kernel import netns
from netagent.lab.vms.plan import BRIDGE, VmLab, VmNode

_TUNSETIFF = 0x400454CA
_TUNSETPERSIST = 0x400454CB
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_IFF_VNET_HDR = 0x4000
_TUN = "/dev/net/tun"


def _attach(ifname: str) -> int:
    """An fd on tap `ifname` of the calling thread's namespace (made if missing).
    IFF_VNET_HDR: QEMU then hands checksum and segmentation offloads to the kernel."""
    fd = os.open(_TUN, os.O_RDWR | os.O_CLOEXEC)
    try:
        ifreq = struct.pack("16sH", ifname.encode(), _IFF_TAP | _IFF_NO_PI | _IFF_VNET_HDR)
        fcntl.ioctl(fd, _TUNSETIFF, ifreq)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_tap(lab: VmLab, node: VmNode) -> int:
    """An fd on the VM's tap, opened inside the lab's namespace, for QEMU's `fd=`."""
    with netns.kernel_errors(f"{lab.netns}/{node.tap}", "open tap"):
        return netns.in_ns_thread(lab.netns, lambda: _attach(node.tap))


def _make_persistent(ifname: str) -> None:
    fd = _attach(ifname)
    try:
        fcntl.ioctl(fd, _TUNSETPERSIST, 1)
    finally:
        os.close(fd)


def build(lab: VmLab) -> bool:
    """Namespace, bridge with the client's address, a tap per VM on it, all up.
    Idempotent; True if the namespace was created now."""
    created = netns.create(lab.netns)
    with netns.ipr(lab.netns) as ipr:
        with netns.kernel_errors(f"{lab.netns}/lo", "set up"):
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        if not ipr.link_lookup(ifname=BRIDGE):
            with netns.kernel_errors(f"{lab.netns}/{BRIDGE}", "add bridge"):
                ipr.link("add", ifname=BRIDGE, kind="bridge")
        netns.wait_until(f"bridge {BRIDGE}", lambda: bool(ipr.link_lookup(ifname=BRIDGE)))
        bridge = ipr.link_lookup(ifname=BRIDGE)[0]
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=bridge)}
        client = lab.client_address
        if (str(client.ip), client.network.prefixlen) not in have:
            with netns.kernel_errors(f"{lab.netns}/{BRIDGE}", "add address"):
                ipr.addr(
                    "add", index=bridge, address=str(client.ip), prefixlen=client.network.prefixlen
                )
        with netns.kernel_errors(f"{lab.netns}/{BRIDGE}", "set up"):
            ipr.link("set", index=bridge, state="up")
        for node in lab.nodes:
            if not ipr.link_lookup(ifname=node.tap):
                with netns.kernel_errors(f"{lab.netns}/{node.tap}", "add tap"):
                    netns.in_ns_thread(lab.netns, lambda n=node: _make_persistent(n.tap))
            netns.wait_until(f"tap {node.tap}", lambda n=node: bool(ipr.link_lookup(ifname=n.tap)))
            tap = ipr.link_lookup(ifname=node.tap)[0]
            with netns.kernel_errors(f"{lab.netns}/{node.tap}", "plug into bridge"):
                ipr.link("set", index=tap, master=bridge, state="up")
    return created


def destroy(lab: VmLab) -> bool:
    """Delete the namespace (its bridge and taps die with it); True if it existed."""
    return netns.remove(lab.netns)
