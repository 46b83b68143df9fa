"""Checks the load-balancing parts of a NodeDesiredState before any kernel change.

Adds to netagent.network.checks (networks, tasks) what the nft rulesets need: service ids
usable as chain names, names that go into rule comments without quoting, VIPs and
backends inside their network's subnet, an ingress state pointing at a listed
ingress network, and each protocol/published port used once per node (ingress and
host mode share the node's ports). The first problem is raised as one
InvalidArgument line naming the bad value and what was expected.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network

from netagent.contract.desired import NetworkState, NodeDesiredState, ServiceEndpoint, service_key
from netagent.contract.errors import InvalidArgument
from netagent.ledger.memo import IdentityMemo

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


def _bad(message: str, obj: str) -> InvalidArgument:
    return InvalidArgument(message, obj=obj, op="apply")


def _check_name(value: str, what: str, pattern: re.Pattern[str] = NAME_RE) -> None:
    if not pattern.match(value):
        limit = 64 if pattern is ID_RE else 128
        raise _bad(
            f"invalid {what} {value!r}: expected up to {limit} letters, digits, '.', '_' or '-'",
            value,
        )


def _check_in(ip: IPv4Address, net: NetworkState, what: str) -> None:
    if ip not in net.subnet or ip in (net.gateway, net.subnet.network_address,
                                      net.subnet.broadcast_address):  # fmt: skip
        raise _bad(
            f"invalid address {ip} for {what} on network {net.name!r}: expected a host "
            f"address in {net.subnet} other than the gateway {net.gateway}",
            str(ip),
        )


def check_services(net: NetworkState) -> None:
    def check(svc: ServiceEndpoint) -> int | None:
        """The service's VIP as an int (None: no VIP), once it is found valid."""
        _check_name(svc.service_id, "service id", ID_RE)
        _check_name(svc.name, "service name")
        if svc.vip is not None:
            _check_in(svc.vip, net, f"the VIP of service {svc.name}")
        key = (service_key(svc), str(net.subnet), int(net.gateway))
        if key not in _valid_backends:
            _check_backends(svc, net.subnet, net.gateway, net.name)
            if len(_valid_backends) > 8192:
                _valid_backends.clear()
            _valid_backends.add(key)
        return int(svc.vip) if svc.vip is not None else None

    memo = _checked.setdefault((net.id, net.subnet, net.gateway), IdentityMemo())
    vips: dict[int, str] = {}
    for svc, vip in zip(net.services, memo.values(net.services, check), strict=True):
        if vip is None:
            continue
        if vip in vips:
            raise _bad(
                f"VIP {svc.vip} is given to services {vips[vip]} and {svc.name} on "
                f"network {net.name!r}: expected one service per VIP",
                str(svc.vip),
            )
        vips[vip] = svc.name


#: Per network, the services checked at the last apply, by object (netagent.ledger.memo).
_checked: dict[tuple[str, IPv4Network, IPv4Address], IdentityMemo[ServiceEndpoint, int | None]] = {}


#: Services whose backends were found valid (by service_key and network): only a
#: service whose backends changed is checked again.
_valid_backends: set[tuple] = set()


def _check_backends(
    svc: ServiceEndpoint, subnet: IPv4Network, gateway: IPv4Address, network: str
) -> None:
    for b in svc.backends:
        _check_name(b.task_name, f"task name of a {svc.name} backend")
        if b.ip not in subnet or b.ip in (gateway, subnet.network_address,
                                          subnet.broadcast_address):  # fmt: skip
            raise _bad(
                f"invalid address {b.ip} for backend {b.task_name} of service {svc.name} on "
                f"network {network!r}: expected a host address in {subnet} other than the "
                f"gateway {gateway}",
                str(b.ip),
            )


def check_lb(desired: NodeDesiredState) -> None:
    """Raise InvalidArgument for the first load-balancing problem in `desired`."""
    networks = {n.id: n for n in desired.networks}
    for net in desired.networks:
        check_services(net)
    for key in [k for k in _checked if k[0] not in networks]:
        del _checked[key]  # a network gone from this node: let its services go
    used: dict[tuple[str, int], str] = {}

    def claim(protocol: str, published: int, who: str) -> None:
        key = (protocol, published)
        if key in used:
            raise _bad(
                f"port {published}/{protocol} is published by {used[key]} and {who}: "
                "expected each published port once per node",
                f"{published}/{protocol}",
            )
        used[key] = who

    ingress = desired.ingress
    if ingress is not None:
        net = networks.get(ingress.network_id)
        if net is None or not net.ingress:
            listed = ", ".join(sorted(n.id for n in desired.networks if n.ingress)) or "none"
            raise _bad(
                f"unknown ingress network {ingress.network_id!r}: expected the id of a listed "
                f"network with ingress=True (listed: {listed})",
                ingress.network_id,
            )
        _check_in(ingress.sandbox_address.ip, net, "the ingress sandbox")
        if ingress.sandbox_address.network != net.subnet:
            raise _bad(
                f"invalid ingress sandbox address {ingress.sandbox_address}: expected prefix "
                f"length /{net.subnet.prefixlen} of {net.subnet}",
                str(ingress.sandbox_address),
            )
        for p in ingress.ports:
            _check_name(p.service_name, "service name")
            claim(p.protocol.value, p.published, f"service {p.service_name} (ingress)")
            for ip in p.backends:
                _check_in(ip, net, f"an ingress backend of service {p.service_name}")
    tasks = {t.id for t in desired.tasks}
    for h in desired.host_ports:
        _check_name(h.service_name, "service name")
        if h.task_id not in tasks:
            raise _bad(
                f"host port {h.published}/{h.protocol.value} names task {h.task_id!r}: "
                "expected a task listed for this node",
                h.task_id,
            )
        claim(h.protocol.value, h.published, f"service {h.service_name} (host)")
