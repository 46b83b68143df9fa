"""Builders of desired states (netagent.contract.desired) for unit and integration tests.

One builder per object, keyword arguments with the defaults most tests share: network
"n1" named webnet (VNI 4097, 10.0.0.0/24, gateway its first host), task web.1 of service
"s" running whoami, node "n1" at version 1. A test passes only what it cares about:

    state(networks=[network(services=[service("web", vip="10.0.0.2")])],
          tasks=[task(ip="10.0.0.3")])

Addresses may be given as text or as ipaddress objects, collections as lists or tuples
(the models validate and freeze them).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from netagent.contract.desired import (
    INGRESS_SUBNET,
    INGRESS_VNI,
    Attachment,
    Backend,
    DesiredTaskState,
    EndpointMode,
    HostPort,
    IngressState,
    NetworkState,
    NodeDesiredState,
    RemoteEndpoint,
    ServiceEndpoint,
    TaskAssignment,
    TaskSpec,
    network_gateway,
    task_mac,
)

#: The task id `task()` and `backend()` use unless told otherwise.
TASK_ID = "a" * 25

Address = IPv4Address | str


def network(
    id: str = "n1",
    name: str = "webnet",
    *,
    vni: int = 4097,
    subnet: IPv4Network | str = "10.0.0.0/24",
    gateway: Address | None = None,
    peers: Iterable[RemoteEndpoint] = (),
    services: Iterable[ServiceEndpoint] = (),
    ingress: bool = False,
) -> NetworkState:
    """An overlay network; its gateway is the subnet's first host unless given."""
    subnet = IPv4Network(subnet)
    return NetworkState(
        id=id,
        name=name,
        vni=vni,
        subnet=subnet,
        gateway=network_gateway(subnet) if gateway is None else gateway,
        peers=tuple(peers),
        services=tuple(services),
        ingress=ingress,
    )


def ingress_network(id: str = "ingress", **kw) -> NetworkState:
    """The routing mesh's network: `ingress`, VNI 4096, 10.255.0.0/16."""
    return network(id, "ingress", vni=INGRESS_VNI, subnet=INGRESS_SUBNET, ingress=True, **kw)


def peer(ip: Address, vtep: Address, *, mac: str | None = None, **kw) -> RemoteEndpoint:
    """A task address on another node (behind `vtep`), with Swarm's MAC for it."""
    ip = IPv4Address(ip)
    return RemoteEndpoint(ip=ip, mac=mac or task_mac(ip), vtep=vtep, **kw)


def attachment(
    ip: Address, network_id: str = "n1", *, prefix: int = 24, mac: str | None = None
) -> Attachment:
    """A task's interface `ip/prefix` on `network_id`, with Swarm's MAC for `ip` unless given."""
    ip = IPv4Address(ip)
    return Attachment(
        network_id=network_id, address=IPv4Interface(f"{ip}/{prefix}"), mac=mac or task_mac(ip)
    )


def task(
    id: str = TASK_ID,
    name: str = "web.1",
    *,
    service_id: str = "s",
    service_name: str | None = None,
    slot: int | None = None,
    image: str = "whoami",
    command: Iterable[str] = (),
    env: Iterable[tuple[str, str]] = (),
    grace: float = 10.0,
    desired: DesiredTaskState | str = DesiredTaskState.RUNNING,
    ip: Address | None = None,
    network_id: str = "n1",
    mac: str | None = None,
    attachments: Iterable[Attachment] = (),
) -> TaskAssignment:
    """Task `name` ("<service>.<slot>": the service name and slot default to its parts).

    With `ip`, one attachment to `network_id` (a /24, Swarm's MAC unless `mac`); other
    interfaces are given whole as `attachments` (see `attachment`)."""
    service, _, number = name.rpartition(".")
    links = (attachment(ip, network_id, mac=mac),) if ip is not None else ()
    return TaskAssignment(
        id=id,
        name=name,
        service_id=service_id,
        service_name=service if service_name is None else service_name,
        slot=int(number) if slot is None else slot,
        spec=TaskSpec(image=image, command=tuple(command), env=tuple(env), stop_grace_period=grace),
        desired_state=desired,
        attachments=links + tuple(attachments),
    )


def backend(
    task_name: str = "web.1",
    ip: Address = "10.0.0.3",
    *,
    task_id: str = TASK_ID,
    aliases: Iterable[str] = (),
) -> Backend:
    """A running task of a service as one network sees it."""
    return Backend(task_id=task_id, task_name=task_name, ip=ip, aliases=tuple(aliases))


def backend_of(t: TaskAssignment) -> Backend:
    """`t` as a backend, at the address of its first attachment."""
    return Backend(task_id=t.id, task_name=t.name, ip=t.attachments[0].address.ip)


def service(
    name: str = "web",
    *,
    service_id: str = "s1",
    vip: Address | None = None,
    mode: EndpointMode | str = EndpointMode.VIP,
    backends: Iterable[Backend] = (),
) -> ServiceEndpoint:
    """A service attached to a network (give `vip` for a VIP service that has one)."""
    return ServiceEndpoint(
        service_id=service_id, name=name, mode=mode, vip=vip, backends=tuple(backends)
    )


def state(
    node_id: str = "n1",
    version: int = 1,
    *,
    networks: Iterable[NetworkState] = (),
    tasks: Iterable[TaskAssignment] = (),
    ingress: IngressState | None = None,
    host_ports: Iterable[HostPort] = (),
) -> NodeDesiredState:
    """One node's desired state."""
    return NodeDesiredState(
        node_id=node_id,
        version=version,
        networks=tuple(networks),
        tasks=tuple(tasks),
        ingress=ingress,
        host_ports=tuple(host_ports),
    )


@functools.cache
def csr() -> bytes:
    """A certificate signing request (one key for the whole test run: keys are not what
    these tests are about), for joins and renewals of unit tests."""
    from orchestrator.ca import node_certs

    return node_certs.make_csr(node_certs.new_key())
