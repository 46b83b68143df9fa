"""Service endpoints in the manager: ingress network, VIPs, published ports, drains."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest

from netagent.contract.desired import EndpointMode, PortProtocol, PublishedPort, PublishMode
from netagent.contract.errors import Conflict, InvalidArgument
from orchestrator.cluster.objects import NetworkAttachmentSpec, ServiceSpec
from tests.unit.orchestrator.harness import Swarm


def svc(name: str, *ports: PublishedPort, replicas: int = 3, **kw) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        image="whoami",
        replicas=replicas,
        ports=list(ports),
        networks=[NetworkAttachmentSpec(target="webnet")],
        **kw,
    )


def running(swarm: Swarm) -> None:
    swarm.tick()
    swarm.run_all()
    swarm.tick()


def test_swarm_init_makes_the_ingress_network_and_every_node_an_ingress_address(swarm):
    ingress = next(n for n in swarm.m.list_networks() if n.spec.name == "ingress")
    assert (ingress.vni, str(ingress.subnet), ingress.spec.ingress) == (4096, "10.255.0.0/16", True)
    addrs = sorted(str(n.ingress_addr) for n in swarm.m.list_nodes())
    assert addrs == ["10.255.0.2/16", "10.255.0.3/16", "10.255.0.4/16"]


def test_a_published_port_held_by_another_service_is_refused_naming_it(swarm):
    swarm.m.create_service(svc("web", PublishedPort(published=8080, target=80)))
    with pytest.raises(Conflict, match=r"^port 8080/tcp is already in use by service web \("):
        swarm.m.create_service(svc("api", PublishedPort(published=8080, target=90)))
    # Same number, other protocol: fine, as in Docker.
    swarm.m.create_service(
        svc("dns", PublishedPort(published=8080, target=53, protocol=PortProtocol.UDP))
    )


def test_ingress_publish_with_dnsrr_is_refused():
    with pytest.raises(ValueError, match="can't be used with endpoint mode dnsrr"):
        svc("x", PublishedPort(published=80, target=80), endpoint_mode=EndpointMode.DNSRR)


def test_dnsrr_service_gets_no_vip_and_answers_with_task_ips(swarm):
    service = swarm.m.create_service(svc("rr", endpoint_mode=EndpointMode.DNSRR, replicas=2))
    assert service.vips == {}
    running(swarm)
    (net,) = [n for n in swarm.m.desired_state(swarm.id("manager1")).networks if not n.ingress]
    (ep,) = net.services
    assert ep.vip is None and ep.mode == EndpointMode.DNSRR
    assert [str(b.ip) for b in ep.backends] == ["10.0.0.2", "10.0.0.3"]


def test_every_node_of_the_mesh_gets_the_ingress_ports_with_all_backends(swarm):
    swarm.m.create_service(svc("web", PublishedPort(published=8080, target=80), replicas=2))
    running(swarm)
    tasks = swarm.current()
    ingress_ips = sorted(
        a.address.ip for t in tasks for a in t.attachments if str(a.address).startswith("10.255.")
    )
    assert len(ingress_ips) == 2
    for host in ("manager1", "worker1", "worker2"):  # worker2 runs no task of web
        state = swarm.m.desired_state(swarm.id(host))
        assert state.ingress is not None
        (port,) = state.ingress.ports
        assert (port.published, port.target, port.service_name) == (8080, 80, "web")
        assert list(port.backends) == ingress_ips
        ingress_net = next(n for n in state.networks if n.ingress)
        sandboxes = [p for p in ingress_net.peers if p.task_name.startswith("ingress-sbox.")]
        assert len(sandboxes) == 2  # the other two nodes


def test_host_mode_ports_go_only_to_the_node_running_the_task(swarm):
    swarm.m.create_service(
        svc("h", PublishedPort(published=9000, target=80, mode=PublishMode.HOST), replicas=1)
    )
    running(swarm)
    (task,) = swarm.current()
    for host in ("manager1", "worker1", "worker2"):
        ports = swarm.m.desired_state(swarm.id(host)).host_ports
        if swarm.id(host) == task.node_id:
            assert [(p.published, p.target, p.task_id) for p in ports] == [(9000, 80, task.id)]
        else:
            assert ports == ()


def test_a_draining_task_leaves_the_backends_before_it_is_told_to_stop(swarm):
    swarm.m.create_service(svc("web", replicas=3))
    running(swarm)
    swarm.m.scale("web", 2)
    swarm.tick()
    state = swarm.m.desired_state(swarm.id("worker1"))
    (ep,) = next(n for n in state.networks if not n.ingress).services
    assert [b.task_name for b in ep.backends] == ["web.1", "web.2"]
    web3 = next(t for t in swarm.m.list_tasks() if t.slot == 3)
    assert web3.draining_since and web3.desired_state == "running"


def test_publishing_into_the_mesh_replaces_the_tasks(swarm):
    swarm.m.create_service(svc("web", replicas=2))
    running(swarm)
    before = {t.id for t in swarm.current()}
    spec = swarm.m.get_service("web").spec.model_copy(
        update={"ports": [PublishedPort(published=80, target=80)]}
    )
    service = swarm.m.update_service("web", spec)
    assert service.update_status and service.update_status.state == "updating"
    for _ in range(8):
        swarm.run_all()
        swarm.tick()
    after = swarm.current()
    assert before.isdisjoint({t.id for t in after})
    assert all(any(str(a.address).startswith("10.255.") for a in t.attachments) for t in after)


def test_vip_and_ingress_addresses_are_never_given_to_tasks(swarm):
    swarm.m.create_service(svc("web", PublishedPort(published=80, target=80), replicas=3))
    running(swarm)
    vip = swarm.m.get_service("web").vips
    taken = {a.address.ip for t in swarm.current() for a in t.attachments}
    assert not taken & {v.ip for v in vip.values()}
    assert not taken & {n.ingress_addr.ip for n in swarm.m.list_nodes()}
    assert IPv4Interface("10.0.0.2/24") in vip.values()
    assert IPv4Address("10.255.0.5") in taken  # tasks start after the 3 node sandboxes


def test_attaching_the_ingress_network_by_hand_is_refused(swarm):
    with pytest.raises(InvalidArgument, match="routing mesh"):
        swarm.m.create_service(
            ServiceSpec(
                name="x", image="whoami", networks=[NetworkAttachmentSpec(target="ingress")]
            )
        )


@pytest.mark.parametrize(("port", "proto"), [(2377, "tcp"), (4789, "udp")])
def test_the_swarms_own_ports_cannot_be_published(swarm, port, proto):
    p = PublishedPort(published=port, target=80, protocol=proto)
    with pytest.raises(InvalidArgument, match=f"port {port}/{proto} is reserved"):
        swarm.m.create_service(svc("web", p))
    assert swarm.m.list_services() == []
