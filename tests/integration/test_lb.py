"""Service VIPs, the ingress routing mesh and host-mode ports on three fake nodes.

Topology (all namespaces of this run, named vxt<run_id>-*): a switch namespace with a
bridge, three nodes n1..n3 and a `client` (the user's laptop) each with eth0 on it
(192.168.78.0/24). Every node has its own DataPlane with the real workloads (whoami
answers "I am <hostname>", hostname = the task id's first 12 characters). Desired
states are built by hand, as the manager would: services with VIP and backends per
network, the ingress network (VNI 4096) with an ingress sandbox per node, host ports.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections import Counter
from ipaddress import IPv4Address, IPv4Interface

import pytest

from netagent.agent.dataplane import DataPlane, wipe_node
from netagent.contract.desired import (
    HostPort,
    IngressPort,
    IngressState,
    NodeDesiredState,
    RemoteEndpoint,
    TaskAssignment,
    TaskState,
)
from netagent.kernel import netns
from netagent.kernel.naming import Names
from netagent.lb import nft
from tests import factories
from tests.integration.conftest import FakeNode, run_in, run_netns, wait_for

pytestmark = pytest.mark.root
workloads = pytest.importorskip("netagent.tasks.workloads")

WEB_VIP = IPv4Address("10.0.0.2")
ECHO_VIP = IPv4Address("10.0.0.100")
INGRESS_PORT = 8080
HOST_PORT = 8081
UDP_ECHO = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',5353))\n"
    "name=socket.gethostname().encode()\n"
    "while True:\n"
    "    data,peer=s.recvfrom(2048); s.sendto(name+b' '+data,peer)\n"
)


class Mesh:
    """Three nodes with a DataPlane each, and the desired states of one swarm."""

    def __init__(self, run_id: str, nodes: list[FakeNode], client: str, root) -> None:
        self.run_id = run_id
        self.nodes = nodes
        self.client = client
        self.root = root
        self.names = [Names(prefix=f"vxt{run_id}-{n.label}") for n in nodes]
        self.dps = [
            DataPlane(self.names[i], root / n.label, n.ip, node_ns=n.ns, workloads=workloads)
            for i, n in enumerate(nodes)
        ]
        self.version = 0
        #: node index -> tasks; service name -> tasks in its backends.
        self.layout: dict[int, list[TaskAssignment]] = {}
        self.host_ports: dict[int, list[HostPort]] = {}
        self.hidden: set[str] = set()  # task ids left out of their service's backends

    def task(self, service: str, slot: int, ip: int, image="whoami", cmd=()) -> TaskAssignment:
        """Task <service>.<slot> at 10.0.0.<ip> and, on the ingress network, 10.255.0.<ip>."""
        tid = (self.run_id + f"{ip:04d}" + secrets.token_hex(13))[:25]
        return factories.task(
            tid, f"{service}.{slot}", service_id=f"{service}{self.run_id}", image=image,
            command=cmd, grace=1, ip=f"10.0.0.{ip}", network_id="net1",
            attachments=[factories.attachment(f"10.255.0.{ip}", "ingress", prefix=16)],
        )  # fmt: skip

    @staticmethod
    def sandbox_ip(i: int) -> IPv4Address:
        return IPv4Address(f"10.255.0.{250 + i}")

    def _all_tasks(self) -> list[TaskAssignment]:
        return [t for tasks in self.layout.values() for t in tasks]

    def _backends(self, service: str) -> list[TaskAssignment]:
        return sorted(
            (t for t in self._all_tasks() if t.service_name == service and t.id not in self.hidden),
            key=lambda t: t.name,
        )

    def _peers(self, i: int, network: str) -> tuple[RemoteEndpoint, ...]:
        out = []
        for j, tasks in self.layout.items():
            if j == i:
                continue
            for t in tasks:
                a = next(a for a in t.attachments if a.network_id == network)
                out.append(RemoteEndpoint(ip=a.address.ip, mac=a.mac, vtep=self.nodes[j].ip))
        if network == "ingress":
            for j in range(len(self.nodes)):
                if j != i:
                    ip = self.sandbox_ip(j)
                    out.append(factories.peer(ip, self.nodes[j].ip))
        return tuple(out)

    def desired(self, i: int) -> NodeDesiredState:
        services = [
            factories.service(
                name, service_id=f"{name}{self.run_id}", vip=vip,
                backends=[factories.backend_of(t) for t in self._backends(name)],
            )
            for name, vip in (("web", WEB_VIP), ("echo", ECHO_VIP))
        ]  # fmt: skip
        net1 = factories.network("net1", peers=self._peers(i, "net1"), services=services)
        ingress_net = factories.ingress_network(peers=self._peers(i, "ingress"))
        web_ingress = tuple(t.attachments[1].address.ip for t in self._backends("web"))
        ingress = IngressState(
            network_id="ingress",
            sandbox_address=IPv4Interface(f"{self.sandbox_ip(i)}/16"),
            ports=(IngressPort(published=INGRESS_PORT, target=80, service_id="web" + self.run_id,
                               service_name="web", backends=web_ingress),),
        )  # fmt: skip
        self.version += 1
        return factories.state(
            self.nodes[i].label, self.version, networks=(ingress_net, net1),
            tasks=self.layout.get(i, ()), ingress=ingress, host_ports=self.host_ports.get(i, ()),
        )  # fmt: skip

    def apply(self) -> None:
        for i, dp in enumerate(self.dps):
            result = dp.apply(self.desired(i))
            assert not result.errors, str(result)
        for i, tasks in self.layout.items():
            for t in tasks:
                wait_for(f"{t.name} running", lambda i=i, t=t: self._running(i, t.id), 20)

    def _running(self, i: int, task_id: str) -> bool:
        return any(s.task_id == task_id and s.state == TaskState.RUNNING
                   for s in self.dps[i].statuses())  # fmt: skip

    def task_ns(self, i: int, task: TaskAssignment) -> str:
        return self.names[i].task_ns(task.name, task.id)

    def teardown(self) -> None:
        for i, dp in enumerate(self.dps):
            with contextlib.suppress(Exception):  # still wiped from the records below
                dp.teardown()
            wipe_node(self.root / self.nodes[i].label, self.names[i], self.nodes[i].ns)


@pytest.fixture
def mesh(run_id, netns_factory, tmp_path):
    """Switch + n1..n3 + client on 192.168.78.0/24, a DataPlane per node."""
    switch = netns_factory("sw")
    run_in(switch, "ip", "link", "add", "sw0", "type", "bridge")
    run_in(switch, "ip", "link", "set", "sw0", "up")
    members = []
    for n, label in enumerate(["n1", "n2", "n3", "client"]):
        ns = netns_factory(label)
        with netns.ipr(switch) as ipr, netns.open_ns_fd(ns) as fd:
            ipr.link("add", ifname=f"p{n}", kind="veth",
                     peer={"ifname": "eth0", "net_ns_fd": fd})  # fmt: skip
        run_in(switch, "ip", "link", "set", f"p{n}", "master", "sw0", "up")
        address = IPv4Interface(f"192.168.78.{n + 11 if label != 'client' else 1}/24")
        run_in(ns, "ip", "addr", "add", str(address), "dev", "eth0")
        run_in(ns, "ip", "link", "set", "eth0", "up")
        members.append(FakeNode(label, ns, address))
    m = Mesh(run_id, members[:3], members[3].ns, tmp_path)
    try:
        yield m
    finally:
        m.teardown()


def curl(ns: str, url: str) -> str:
    """The whoami hostname answering `url` from namespace `ns` ('' on failure)."""
    res = run_in(ns, "curl", "-s", "--max-time", "2", url, check=False)
    for line in res.stdout.splitlines():
        if line.startswith("I am "):
            return line.removeprefix("I am ").strip()
    return ""


def spread(ns: str, url: str, n: int = 30) -> Counter:
    return Counter(curl(ns, url) for _ in range(n))


def wait_answers(ns: str, url: str, hostnames: set[str]) -> None:
    """Poll until every hostname has answered `url` at least once."""
    seen: set[str] = set()

    def all_seen() -> bool:
        seen.add(curl(ns, url))
        return hostnames <= seen

    wait_for(f"{sorted(hostnames)} to answer {url} (seen {seen})", all_seen, 30)


def udp_ask(ns: str, ip: IPv4Address, message: str) -> str:
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(2)\n"
        f"s.sendto(b'{message}',('{ip}',5353))\n"
        "print(s.recvfrom(2048)[0].decode())\n"
    )
    res = run_in(ns, sys.executable, "-c", code, check=False)
    return res.stdout.strip() if res.returncode == 0 else ""


@pytest.fixture
def web(mesh):
    """web.1 on n1, web.2 on n2 (whoami), a client task on n1; n3 runs nothing."""
    w1, w2 = mesh.task("web", 1, 3), mesh.task("web", 2, 4)
    client = mesh.task("client", 1, 10, image="alpine", cmd=("sleep", "1000"))
    mesh.layout = {0: [w1, client], 1: [w2]}
    mesh.apply()
    return w1, w2, client


def test_vip_spreads_connections_over_backends_on_both_nodes(mesh, web):
    w1, w2, client = web
    ns = mesh.task_ns(0, client)
    wait_answers(ns, f"http://{WEB_VIP}/", {w1.hostname, w2.hostname})
    counts = spread(ns, f"http://{WEB_VIP}/")
    assert set(counts) == {w1.hostname, w2.hostname}, counts


def test_vip_stops_sending_to_a_removed_backend(mesh, web):
    w1, w2, client = web
    ns = mesh.task_ns(0, client)
    wait_answers(ns, f"http://{WEB_VIP}/", {w1.hostname, w2.hostname})
    mesh.hidden = {w2.id}
    mesh.apply()
    assert spread(ns, f"http://{WEB_VIP}/", 20) == Counter({w1.hostname: 20})


def test_vip_without_backends_refuses_at_once(mesh, web):
    _w1, _w2, client = web
    res = run_in(mesh.task_ns(0, client), "curl", "-sS", "--max-time", "5",
                 f"http://{ECHO_VIP}/", check=False)  # fmt: skip
    assert res.returncode == 7, res  # "Failed to connect": rejected, not timed out (28)


def test_udp_through_the_vip_reaches_every_backend(mesh, web):
    *_, client = web
    echo = [mesh.task("echo", k, 20 + k, image="alpine",
                      cmd=(sys.executable, "-c", UDP_ECHO)) for k in (1, 2)]  # fmt: skip
    mesh.layout[0].append(echo[0])
    mesh.layout[1] = [*mesh.layout[1], echo[1]]
    mesh.apply()
    ns = mesh.task_ns(0, client)
    want = {e.hostname for e in echo}
    seen: set[str] = set()

    def both() -> bool:
        answer = udp_ask(ns, ECHO_VIP, "ping")
        if answer.endswith(" ping"):
            seen.add(answer.split()[0])
        return want <= seen

    wait_for(f"UDP echo from {want} through {ECHO_VIP} (seen {seen})", both, 30)


def test_ingress_answers_on_every_node_spread_over_all_tasks(mesh, web):
    w1, w2, _client = web
    both = {w1.hostname, w2.hostname}
    for node in mesh.nodes:  # n3 runs no task and still answers
        url = f"http://{node.ip}:{INGRESS_PORT}/"
        wait_answers(mesh.client, url, both)
        counts = spread(mesh.client, url)
        assert set(counts) == both, (node.label, counts)


def test_ingress_port_answers_from_the_node_itself(mesh, web):
    w1, w2, _client = web
    n3 = mesh.nodes[2]
    wait_answers(n3.ns, f"http://{n3.ip}:{INGRESS_PORT}/", {w1.hostname, w2.hostname})


def test_host_mode_port_answers_only_on_the_node_running_the_task(mesh, web):
    api = mesh.task("api", 1, 30)
    mesh.layout[1] = [*mesh.layout[1], api]
    mesh.host_ports = {1: [HostPort(published=HOST_PORT, target=80, task_id=api.id,
                                    service_name="api")]}  # fmt: skip
    mesh.apply()
    n1, n2, _n3 = mesh.nodes
    wait_answers(mesh.client, f"http://{n2.ip}:{HOST_PORT}/", {api.hostname})
    assert spread(mesh.client, f"http://{n2.ip}:{HOST_PORT}/", 5) == Counter({api.hostname: 5})
    res = run_in(mesh.client, "curl", "-sS", "--max-time", "2",
                 f"http://{n1.ip}:{HOST_PORT}/", check=False)  # fmt: skip
    assert res.returncode != 0


def test_rules_carry_comments_naming_services_and_tasks(mesh, web):
    w1, w2, _client = web
    sandbox = nft.list_table(mesh.names[0].overlay_ns(4097))
    assert f'comment "vxswarm: web VIP {WEB_VIP}"' in sandbox
    assert f'comment "vxswarm: web VIP {WEB_VIP} -> {w1.name}, {w2.name}"' in sandbox
    assert f'comment "vxswarm: web VIP {WEB_VIP} -> {w2.name}" : 10.0.0.4' in sandbox
    assert f'comment "vxswarm: echo VIP {ECHO_VIP} has no running task"' in sandbox
    node = nft.list_table(mesh.nodes[2].ns)
    assert f'comment "vxswarm: web ingress *:{INGRESS_PORT}->80/tcp"' in node
    ingress = nft.list_table(mesh.names[2].ingress_ns())
    assert f'comment "vxswarm: web ingress *:{INGRESS_PORT}->80/tcp -> 10.255.0.3"' in ingress
    assert "replies come back through this ingress sandbox" in ingress


def test_unchanged_desired_state_reloads_no_ruleset(mesh, web):
    result = mesh.dps[0].apply(mesh.desired(0))
    assert not result.touching("nft"), str(result)


def test_leaving_the_mesh_removes_ingress_sandbox_and_node_rules(mesh, web):
    n3 = mesh.nodes[2]
    assert mesh.names[2].ingress_ns() in run_netns(mesh.run_id)
    desired = mesh.desired(2).model_copy(update={"ingress": None, "networks": ()})
    mesh.dps[2].apply(desired)
    assert mesh.names[2].ingress_ns() not in run_netns(mesh.run_id)
    assert nft.list_table(n3.ns) == ""
    assert "vi-eth1" not in run_in(n3.ns, "ip", "-o", "link").stdout


@pytest.mark.parametrize("how", ["teardown", "wipe"])
def test_teardown_and_wipe_leave_no_table_or_ingress_sandbox(mesh, web, how):
    for i, node in enumerate(mesh.nodes):
        if how == "teardown":
            mesh.dps[i].teardown()
        else:
            mesh.dps[i].close()
            wipe_node(mesh.root / node.label, mesh.names[i], node.ns)
        assert nft.list_table(node.ns) == ""
        assert "vi-eth1" not in run_in(node.ns, "ip", "-o", "link").stdout
    prefixes = tuple(f"{n.prefix}-" for n in mesh.names)
    left = {n for n in run_netns(mesh.run_id) if n.startswith(prefixes)}
    assert left == set(), left
