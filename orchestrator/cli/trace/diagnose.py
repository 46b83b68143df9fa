"""Why a packet vanished at a hop: the kernel state there compared with the desired state.

Pure: each check takes the facts one node read from one namespace (netagent.capture.
facts) and that node's `NodeDesiredState` (what its agent was told to build), and
returns one line naming the missing or wrong object, or None when it is in place:

    no FDB entry for 02:42:0a:00:00:05 on vx-4097 in worker1 (desired: dst 192.168.56.13, web.3)
    no DNAT rule for VIP 10.0.0.2:80 in vx-lab-worker1-ov-4097 (worker1)

When the desired state itself lacks the object, the line says so: then the agent is
right and the manager never asked for it.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from netagent.capture.facts import NftTable, NsFacts
from netagent.contract.desired import NodeDesiredState
from netagent.kernel.naming import SANDBOX_BRIDGE, Names


def _missing(f: NsFacts | None, what: str, node: str) -> str | None:
    if f is None:
        return f"{what} on {node} was not read"
    if not f.exists:
        return f.error or f"no {what} on {node}"
    if f.error:
        return f"reading {what} on {node} failed: {f.error}"
    return None


def check_link(f: NsFacts | None, name: str, node: str, owner: str = "") -> str | None:
    """A link that must exist, be up and (a sandbox port) sit on br0."""
    if (gone := _missing(f, "namespace", node)) is not None:
        return gone
    assert f is not None
    link = f.link(name)
    whose = f" ({owner})" if owner else ""
    if link is None:
        return f"no link {name}{whose} in {f.label} ({node})"
    if not link.up:
        return f"link {name}{whose} is down in {f.label} ({node})"
    if name.startswith(("vt", "vi-eth0", "vx-")) and link.master != SANDBOX_BRIDGE:
        return f"link {name}{whose} is not on {SANDBOX_BRIDGE} in {f.label} ({node})"
    return None


def desired_vtep(desired: NodeDesiredState | None, vni: int, mac: str) -> IPv4Address | None:
    if desired is None:
        return None
    for net in desired.networks:
        if net.vni == vni:
            return next((p.vtep for p in net.peers if p.mac == mac), None)
    return None


def check_fdb(
    f: NsFacts | None, desired: NodeDesiredState | None, node: str, vni: int, mac: str,
    owner: str,
) -> str | None:  # fmt: skip
    """The VXLAN device's static FDB entry sending `mac` to its node's VTEP."""
    vx = Names.vxlan(vni)
    if (bad := check_link(f, vx, node)) is not None:
        return bad
    assert f is not None
    want = desired_vtep(desired, vni, mac)
    have = f.fdb.get(vx, {}).get(mac)
    if want is None:
        if have is None:
            return (
                f"no FDB entry for {mac} on {vx} in {node}, and none desired: the manager "
                f"does not list {owner} as a peer of {node}"
            )
        return None
    if have is None:
        return f"no FDB entry for {mac} on {vx} in {node} (desired: dst {want}, {owner})"
    if have != str(want):
        return f"FDB entry for {mac} on {vx} in {node} points to {have} (desired: dst {want})"
    return None


def check_neigh(
    f: NsFacts | None, link: str, ip: IPv4Address, mac: str, node: str, owner: str
) -> str | None:
    """A neighbour entry (static, proxy-ARP or the VIP's) mapping `ip` to `mac` on `link`."""
    if (bad := check_link(f, link, node)) is not None:
        return bad
    assert f is not None
    have = f.neigh.get(link, {}).get(str(ip))
    if have is None:
        return f"no neighbour entry for {ip} ({owner}) on {link} in {f.label} ({node})"
    if have != mac:
        return f"neighbour {ip} ({owner}) on {link} in {node} is {have}, expected {mac}"
    return None


def _dnat_chain(table: NftTable, map_name: str, key: str) -> tuple[str, str] | None:
    """(chain, problem) of a map element: '' problem when its chain DNATs."""
    verdict = table.maps.get(map_name, {}).get(key)
    if verdict is None:
        return None
    chain = verdict.split()[-1]
    rules = table.chains.get(chain, ())
    if any(r.reject for r in rules):
        return chain, "rejects: the service has no running task"
    if not any(r.dnat for r in rules):
        return chain, f"its chain {chain} has no dnat rule"
    return chain, ""


def check_vip(
    f: NsFacts | None, desired: NodeDesiredState | None, node: str, vni: int,
    vip: IPv4Address, port: int | None, service: str,
) -> str | None:  # fmt: skip
    """The sandbox's DNAT of a VIP to the service's backends."""
    if (gone := _missing(f, f"sandbox of VNI {vni}", node)) is not None:
        return gone
    assert f is not None
    what = f"VIP {vip}:{port}" if port is not None else f"VIP {vip}"
    net = next((n for n in desired.networks if n.vni == vni), None) if desired else None
    wanted = net is not None and any(s.vip == vip for s in net.services)
    if desired is not None and not wanted:
        return f"no DNAT rule for {what} in {f.label} ({node}): none desired for {service}"
    if f.nft is None:
        return f"no DNAT rule for {what} in {f.label} ({node}): no table ip vxswarm there"
    found = _dnat_chain(f.nft, "vips", str(vip))
    if found is None:
        return f"no DNAT rule for {what} in {f.label} ({node})"
    chain, problem = found
    return f"{what} in {f.label} ({node}) {problem}" if problem else None


def check_published(f: NsFacts | None, node: str, proto: str, port: int) -> str | None:
    """The node namespace's DNAT of a published port to the ingress sandbox."""
    if (gone := _missing(f, "node namespace", node)) is not None:
        return gone
    assert f is not None
    key = f"{proto} . {port}"
    if f.nft is None or key not in f.nft.maps.get("published", {}):
        return f"no DNAT rule for published port {port}/{proto} in the node namespace of {node}"
    return None


def check_ingress(f: NsFacts | None, node: str, proto: str, port: int) -> str | None:
    """The ingress sandbox's DNAT of a published port to the service's tasks."""
    if (gone := _missing(f, "ingress sandbox", node)) is not None:
        return gone
    assert f is not None
    what = f"published port {port}/{proto}"
    found = _dnat_chain(f.nft, "ports", f"{proto} . {port}") if f.nft is not None else None
    if found is None:
        return f"no DNAT rule for {what} in {f.label} ({node})"
    chain, problem = found
    return f"{what} in {f.label} ({node}) {problem}" if problem else None
