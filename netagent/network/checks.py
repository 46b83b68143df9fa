"""Checks a NodeDesiredState before the data plane touches the kernel.

Pydantic already guarantees types; this adds what the kernel model needs: ids
and names that make valid namespace/link names, unique VNIs and task ids,
attachments that point at a listed network with an address inside its subnet,
well-formed MACs. The first problem found is raised as one InvalidArgument line
naming the bad value and what was expected; nothing has been changed then.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network

from netagent.contract.desired import (
    NetworkState,
    NodeDesiredState,
    RemoteEndpoint,
    TaskAssignment,
    peer_key,
)
from netagent.contract.errors import InvalidArgument
from netagent.ledger.memo import IdentityMemo

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
TASK_ID_RE = re.compile(r"^[a-z0-9]{12,64}\Z")
TASK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


def _bad(message: str, obj: str) -> InvalidArgument:
    return InvalidArgument(message, obj=obj, op="apply")


def check_mac(mac: str, what: str) -> None:
    if not MAC_RE.match(mac):
        raise _bad(
            f"invalid MAC {mac!r} for {what}: expected six lower-case hex pairs like "
            "02:42:0a:00:00:03",
            mac,
        )


#: Peers already found valid, per subnet: an apply checks only the endpoints that are new.
_valid_peers: dict[IPv4Network, set[tuple[int, str, int]]] = {}
#: Per network, the peers checked at the last apply, by object (netagent.ledger.memo).
_checked_peers: dict[tuple[str, IPv4Network], IdentityMemo[RemoteEndpoint, None]] = {}


def check_network(net: NetworkState) -> None:
    if net.gateway not in net.subnet:
        raise _bad(
            f"invalid gateway {net.gateway} for network {net.name!r}: expected an address "
            f"inside {net.subnet}",
            str(net.gateway),
        )
    if not 68 <= net.mtu <= 9000:
        raise _bad(f"invalid mtu {net.mtu} for network {net.name!r}: expected 68-9000", net.name)
    known = _valid_peers.setdefault(net.subnet, set())
    if len(known) > 100_000:  # bounded: a long-lived agent sees many endpoints come and go
        known.clear()

    def check(peer: RemoteEndpoint) -> None:
        key = peer_key(peer)
        if key in known:
            return
        check_mac(peer.mac, f"peer {peer.ip} on network {net.name!r}")
        if peer.ip not in net.subnet:
            raise _bad(
                f"invalid peer address {peer.ip} on network {net.name!r}: expected an address "
                f"inside {net.subnet}",
                str(peer.ip),
            )
        known.add(key)

    _checked_peers.setdefault((net.id, net.subnet), IdentityMemo()).values(net.peers, check)


def check_task(task: TaskAssignment, networks: dict[str, NetworkState]) -> None:
    if not TASK_ID_RE.match(task.id):
        raise _bad(
            f"invalid task id {task.id!r}: expected 12-64 lower-case letters or digits", task.id
        )
    if not TASK_NAME_RE.match(task.name):
        raise _bad(
            f"invalid task name {task.name!r}: expected letters, digits, '.', '_' or '-'",
            task.name,
        )
    if task.spec.stop_grace_period < 0:
        raise _bad(
            f"invalid stop grace period {task.spec.stop_grace_period} for task {task.name}: "
            "expected a number of seconds >= 0",
            task.id,
        )
    seen: set[str] = set()
    for att in task.attachments:
        net = networks.get(att.network_id)
        if net is None:
            raise _bad(
                f"unknown network {att.network_id!r} in task {task.name}: expected one of "
                f"{', '.join(sorted(networks)) or '(no networks listed)'}",
                att.network_id,
            )
        if att.network_id in seen:
            raise _bad(
                f"task {task.name} is attached twice to network {net.name!r}: expected one "
                "attachment per network",
                att.network_id,
            )
        seen.add(att.network_id)
        if att.address.network != net.subnet or att.address.ip == net.gateway:
            raise _bad(
                f"invalid address {att.address} for task {task.name} on network {net.name!r}: "
                f"expected a host address in {net.subnet} other than the gateway {net.gateway}",
                str(att.address),
            )
        check_mac(att.mac, f"task {task.name} on network {net.name!r}")


def check_desired(desired: NodeDesiredState) -> None:
    """Raise InvalidArgument for the first problem in `desired`."""
    networks: dict[str, NetworkState] = {}
    vnis: dict[int, str] = {}
    for net in desired.networks:
        if net.id in networks:
            raise _bad(f"duplicate network id {net.id!r}: expected each network once", net.id)
        if net.vni in vnis:
            raise _bad(
                f"duplicate vni {net.vni} (networks {vnis[net.vni]!r} and {net.name!r}): "
                "expected one network per vni",
                str(net.vni),
            )
        check_network(net)
        networks[net.id] = net
        vnis[net.vni] = net.name
    for key in [k for k in _checked_peers if k[0] not in networks]:
        del _checked_peers[key]  # a network gone from this node: let its peers go
    ids: set[str] = set()
    addresses: dict[tuple[str, str], str] = {}
    for task in desired.tasks:
        if task.id in ids:
            raise _bad(f"duplicate task id {task.id!r}: expected each task once", task.id)
        ids.add(task.id)
        check_task(task, networks)
        for att in task.attachments:
            key = (att.network_id, str(att.address.ip))
            if key in addresses:
                raise _bad(
                    f"address {att.address.ip} is given to tasks {addresses[key]} and "
                    f"{task.name}: expected one task per address",
                    str(att.address.ip),
                )
            addresses[key] = task.name
