"""Which underlay address this node advertises, chosen the way Docker does.

`swarm init` without --advertise-addr takes the address of the interface that
holds the default route, else the only non-loopback IPv4 address, and refuses
to guess between several. `swarm join` takes the source address the kernel
would use to reach the manager. Reads the current network namespace only.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv4Interface

from netagent.contract.errors import InvalidArgument
from netagent.kernel.pyroute import IPRoute


def local_addresses() -> list[tuple[str, IPv4Interface]]:
    """(ifname, address) of every non-loopback IPv4 address in this netns."""
    out: list[tuple[str, IPv4Interface]] = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.get_links()}
        for addr in ipr.get_addr(family=socket.AF_INET):
            iface = IPv4Interface(f"{addr.get('IFA_ADDRESS')}/{addr['prefixlen']}")
            if not iface.ip.is_loopback:
                out.append((names.get(addr["index"], "?"), iface))
    return out


def default_route_ifindex() -> int | None:
    with IPRoute() as ipr:
        for route in ipr.get_default_routes(family=socket.AF_INET):
            return route.get("RTA_OIF")
    return None


def choose_advertise_addr(explicit: str | None) -> IPv4Address:
    """The address other nodes reach this one at; also its VTEP."""
    addrs = local_addresses()
    if explicit:
        try:
            wanted = IPv4Address(explicit)
        except ValueError:
            by_name = [a.ip for name, a in addrs if name == explicit]
            if not by_name:
                raise InvalidArgument(
                    f"invalid --advertise-addr {explicit!r}: expected an IPv4 address or the "
                    "name of an interface with one"
                ) from None
            return by_name[0]
        if wanted not in {a.ip for _, a in addrs}:
            raise InvalidArgument(
                f"invalid --advertise-addr {explicit}: no interface on this node has that address"
            )
        return wanted
    oif = default_route_ifindex()
    if oif is not None:
        with IPRoute() as ipr:
            for addr in ipr.get_addr(family=socket.AF_INET, index=oif):
                return IPv4Address(addr.get("IFA_ADDRESS"))
    if len(addrs) == 1:
        return addrs[0][1].ip
    if not addrs:
        raise InvalidArgument("no IPv4 address to advertise: configure one or use --advertise-addr")
    listed = ", ".join(f"{a.ip} on {name}" for name, a in addrs)
    raise InvalidArgument(
        f"could not choose an IP address to advertise since this system has multiple addresses "
        f"({listed}): specify one with --advertise-addr"
    )


def source_addr_towards(ip: IPv4Address, port: int) -> IPv4Address:
    """The source address the kernel picks to reach `ip` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((str(ip), port))
        return IPv4Address(s.getsockname()[0])
