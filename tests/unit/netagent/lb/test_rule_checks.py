"""Bad load-balancing input is refused with one line naming the value, before any change."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest

from netagent.contract.desired import (
    HostPort,
    IngressPort,
    IngressState,
    NodeDesiredState,
    ServiceEndpoint,
)
from netagent.contract.errors import InvalidArgument
from netagent.lb.rule_checks import check_lb
from tests import factories

TASK = factories.task("abcdef0123456789", service_id="s1", ip="10.0.0.3", network_id="net1")
INGRESS_NET = factories.ingress_network("ing")


def state(services=(), ingress=None, host_ports=(), ingress_net=INGRESS_NET) -> NodeDesiredState:
    net = factories.network("net1", services=services)
    nets = (net, ingress_net) if ingress_net is not None else (net,)
    return factories.state(networks=nets, tasks=(TASK,), ingress=ingress, host_ports=host_ports)


def web(vip="10.0.0.2", backend_ip="10.0.0.3", sid="s1", name="web") -> ServiceEndpoint:
    backend = factories.backend("web.1", backend_ip, task_id="t")
    return factories.service(name, service_id=sid, vip=vip, backends=(backend,))


def ingress(port=8080, backends=("10.255.0.3",)) -> IngressState:
    return IngressState(
        network_id="ing", sandbox_address=IPv4Interface("10.255.0.250/16"),
        ports=(IngressPort(published=port, target=80, service_id="s1", service_name="web",
                           backends=tuple(IPv4Address(b) for b in backends)),),
    )  # fmt: skip


def test_a_consistent_state_passes():
    check_lb(state([web()], ingress(), [HostPort(published=9000, target=80, task_id=TASK.id,
                                                 service_name="web")]))  # fmt: skip


@pytest.mark.parametrize(
    ("desired", "message"),
    [
        (state([web(vip="10.0.1.2")]),
         "invalid address 10.0.1.2 for the VIP of service web on network 'webnet': expected "
         "a host address in 10.0.0.0/24 other than the gateway 10.0.0.1"),
        (state([web(backend_ip="10.0.0.1")]),
         "invalid address 10.0.0.1 for backend web.1 of service web on network 'webnet'"),
        (state([web(), web(sid="s2", name="api")]),
         "VIP 10.0.0.2 is given to services web and api on network 'webnet': expected one "
         "service per VIP"),
        (state([web(sid='s"1')]),
         "invalid service id 's\"1': expected up to 64 letters, digits, '.', '_' or '-'"),
        (state(ingress=ingress(), ingress_net=None),
         "unknown ingress network 'ing': expected the id of a listed network with "
         "ingress=True (listed: none)"),
        (state(ingress=ingress(backends=("10.0.0.3",))),
         "invalid address 10.0.0.3 for an ingress backend of service web on network "
         "'ingress'"),
        (state(ingress=ingress(), host_ports=[HostPort(published=8080, target=80,
                                                       task_id=TASK.id, service_name="api")]),
         "port 8080/tcp is published by service web (ingress) and service api (host): "
         "expected each published port once per node"),
        (state(host_ports=[HostPort(published=9000, target=80, task_id="nosuchtask",
                                    service_name="api")]),
         "host port 9000/tcp names task 'nosuchtask': expected a task listed for this node"),
    ],
)  # fmt: skip
def test_bad_values_are_named_in_one_line(desired, message):
    with pytest.raises(InvalidArgument) as err:
        check_lb(desired)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
