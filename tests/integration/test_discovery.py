"""Service discovery and load balancing on a real 3-node lab: the embedded DNS resolver,
service VIPs, the ingress routing mesh, host-mode ports, isolation."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
import time
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
SLEEPER = ("alpine", "sleep", "600")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet", "othernet"]) as lab:
        yield lab


def ip_on(task: dict, lab: SwarmLab, network: str) -> str:
    nid = next(n["id"] for n in lab.json("network", "ls") if n["spec"]["name"] == network)
    return str(
        next(IPv4Interface(a["address"]).ip for a in task["attachments"] if a["network_id"] == nid)
    )


def dig(lab: SwarmLab, task: str, *query: str) -> list[str]:
    res = lab.run("exec", task, "dig", "+short", "+tries=1", "+time=3", *query)
    assert res.code == 0, res.out + res.err
    return [ln for ln in res.out.split() if ln]


def hostnames_seen(lines: str) -> collections.Counter:
    return collections.Counter(ln.split()[2] for ln in lines.splitlines() if ln.startswith("I am "))


def test_names_resolve_like_the_swarm_articles(lab):
    with (
        lab.service("web", "--network", "webnet", "whoami", replicas=3) as tasks,
        lab.service("shell", "--network", "webnet", *SLEEPER),
    ):
        vip = lab.json("service", "inspect", "web")[0]["vips"]
        (vip_addr,) = [str(IPv4Interface(v).ip) for v in vip.values()]
        assert IPv4Address(vip_addr) in IPv4Network("10.0.0.0/24")
        assert dig(lab, "shell.1", "web") == [vip_addr]
        task_ips = sorted(ip_on(t, lab, "webnet") for t in tasks)
        assert sorted(dig(lab, "shell.1", "tasks.web")) == task_ips
        orders = {tuple(dig(lab, "shell.1", "tasks.web")) for _ in range(6)}
        assert len(orders) > 1, "tasks.web answers never change order"
        t1 = next(t for t in tasks if t["slot"] == 1)
        ptr = dig(lab, "shell.1", "-x", ip_on(t1, lab, "webnet"))
        assert ptr == [f"web.1.{t1['id']}.webnet."]
        assert dig(lab, "shell.1", f"web.1.{t1['id']}") == [ip_on(t1, lab, "webnet")]


def test_aaaa_for_a_cluster_name_is_an_immediate_empty_answer(lab):
    with lab.service("six", "--network", "webnet", *SLEEPER):
        t0 = time.monotonic()
        res = lab.run("exec", "six.1", "dig", "+tries=1", "+time=2", "AAAA", "six")
        assert res.code == 0 and "status: NOERROR" in res.out and "ANSWER: 0" in res.out
        assert time.monotonic() - t0 < 1.5


def test_vip_spreads_connections_over_every_replica_and_follows_scaling(lab):
    with (
        lab.service("lb", "--network", "webnet", "whoami", replicas=3) as tasks,
        lab.service("cli", "--network", "webnet", *SLEEPER),
    ):
        script = "for i in $(seq 90); do curl -s -m2 http://lb/; done"
        seen = hostnames_seen(lab.run("exec", "cli.1", "sh", "-c", script, check=True).out)
        assert set(seen) == {t["id"][:12] for t in tasks}, seen
        lab.run("service", "scale", "lb=1", check=True)
        (left,) = lab.converge("lb", 1)
        assert len(dig(lab, "cli.1", "tasks.lb")) == 1
        seen = hostnames_seen(
            lab.run(
                "exec", "cli.1", "sh", "-c", "for i in $(seq 20); do curl -s -m2 http://lb/; done"
            ).out
        )
        assert set(seen) == {left["id"][:12]}
        lab.run("service", "scale", "lb=3", check=True)
        tasks = lab.converge("lb", 3)
        seen = hostnames_seen(lab.run("exec", "cli.1", "sh", "-c", script, check=True).out)
        assert set(seen) == {t["id"][:12] for t in tasks}


def test_routing_mesh_answers_on_a_node_without_a_task(lab):
    with lab.service(
        "mesh", "--network", "webnet", "--publish", "8080:80", "whoami", replicas=2
    ) as tasks:
        names = lab.hostnames()
        busy = {names[t["node_id"]] for t in tasks}
        idle = next(n for n in ("manager1", "worker1", "worker2") if n not in busy)
        ip = {"manager1": "192.168.56.11", "worker1": "192.168.56.12", "worker2": "192.168.56.13"}[
            idle
        ]
        script = f"for i in $(seq 90); do curl -s -m2 http://{ip}:8080/; done"
        seen = hostnames_seen(lab.lab("ssh", "client", script).out)
        assert set(seen) == {t["id"][:12] for t in tasks}, seen
        listing = lab.run("service", "ls", check=True).out
        assert "*:8080->80/tcp" in listing


UDP_ECHO = (
    "import socket,os;s=socket.socket(2,2);s.bind(('',5353));"
    "[s.sendto(os.uname().nodename.encode(),a) for _,a in iter(lambda:s.recvfrom(99),0)]"
)
UDP_ASK = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.sendto(b"hi", (sys.argv[1], int(sys.argv[2]))); print(s.recvfrom(99)[0].decode())
""")


def test_udp_is_published_through_the_mesh(lab):
    with lab.service(
        "udp",
        "--network",
        "webnet",
        "--publish",
        "published=5353,target=5353,protocol=udp",
        "alpine",
        "python3",
        "-c",
        UDP_ECHO,
    ) as (task,):
        res = lab.lab("ssh", "client", f"{sys.executable} -c '{UDP_ASK}' 192.168.56.13 5353")
        assert res.out.strip() == task["id"][:12], res.out + res.err


def test_host_mode_port_answers_only_where_a_task_runs(lab):
    with lab.service("hp", "--publish", "published=9090,target=80,mode=host", "whoami") as (task,):
        names = lab.hostnames()
        ips = {"manager1": "192.168.56.11", "worker1": "192.168.56.12", "worker2": "192.168.56.13"}
        for node, ip in ips.items():
            res = lab.lab("ssh", "client", f"curl -s -m2 http://{ip}:9090/")
            if node == names[task["node_id"]]:
                assert f"I am {task['id'][:12]}" in res.out
            else:
                assert res.code != 0 or "I am" not in res.out


def test_dnsrr_and_aliases(lab):
    with (
        lab.service(
            "rr",
            "--endpoint-mode",
            "dnsrr",
            "--network",
            "name=webnet,alias=db",
            *SLEEPER,
            replicas=2,
        ) as tasks,
        lab.service("q", "--network", "webnet", *SLEEPER),
    ):
        ips = sorted(ip_on(t, lab, "webnet") for t in tasks)
        assert sorted(dig(lab, "q.1", "rr")) == ips
        assert sorted(dig(lab, "q.1", "db")) == ips


def test_networks_are_isolated_in_dns_and_packets(lab):
    with (
        lab.service("a", "--network", "webnet", *SLEEPER) as (a,),
        lab.service("b", "--network", "othernet", *SLEEPER),
    ):
        assert dig(lab, "b.1", "a") == []
        res = lab.run("exec", "b.1", "ping", "-c1", "-W1", ip_on(a, lab, "webnet"))
        assert res.code != 0


def test_names_outside_the_cluster_go_to_the_upstream_or_fail_fast(lab):
    with lab.service("up", "--network", "webnet", *SLEEPER):
        t0 = time.monotonic()
        res = lab.run("exec", "up.1", "dig", "+tries=1", "+time=4", "example.org")
        assert "SERVFAIL" in res.out and time.monotonic() - t0 < 3
    upstream = subprocess.Popen(
        ["ip", "netns", "exec", f"vx-{lab.name}-client", sys.executable, "-c", UPSTREAM]
    )
    try:
        for node in ("manager1", "worker1", "worker2"):
            (lab.root / lab.name / node / "resolv.conf").write_text("nameserver 192.168.56.1\n")
        with lab.service("up2", "--network", "webnet", *SLEEPER):
            assert wait_for(
                "forwarded answer",
                lambda: dig(lab, "up2.1", "example.org") == ["192.0.2.7"],
                timeout=10,
            )
    finally:
        upstream.kill()
        for node in ("manager1", "worker1", "worker2"):
            (lab.root / lab.name / node / "resolv.conf").unlink(missing_ok=True)


UPSTREAM = textwrap.dedent("""
    from dnslib import RR, QTYPE, A
    from dnslib.server import DNSServer, BaseResolver
    class R(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.7"), ttl=5))
            return reply
    DNSServer(R(), address="192.168.56.1", port=53).start()
""")


def test_port_conflict_is_refused_naming_the_service(lab):
    with lab.service("p1", "--publish", "7000:80", "whoami"):
        res = lab.run("service", "create", "--name", "p2", "--publish", "7000:80", "whoami")
        assert res.code == 1 and "already in use by service p1" in res.err


def test_nothing_of_a_removed_service_remains_on_any_node(lab):
    with (
        lab.service("gone", "--network", "webnet", "--publish", "7100:80", "whoami", replicas=3),
        lab.service("watch", "--network", "webnet", *SLEEPER),
    ):
        assert dig(lab, "watch.1", "gone")
        lab.run("service", "rm", "gone", check=True)
        assert dig(lab, "watch.1", "gone") == []
        assert dig(lab, "watch.1", "tasks.gone") == []
    for ns in lab.lab_namespaces():
        rules = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True
        ).stdout
        rules += subprocess.run(
            ["ip", "netns", "exec", ns, "iptables-save"], capture_output=True, text=True
        ).stdout
        assert "gone" not in rules and "7100" not in rules, ns


def test_publish_add_and_rm_open_and_close_the_port_on_every_node(lab):
    with lab.service("late", "--network", "webnet", "whoami", replicas=2):
        res = lab.lab("ssh", "client", "curl -s -m2 http://192.168.56.12:7200/")
        assert "I am" not in res.out
        lab.run("service", "update", "--publish-add", "7200:80", "late", check=True)
        tasks = lab.converge("late", 2)  # moved into the mesh: tasks were replaced
        seen = hostnames_seen(
            lab.lab(
                "ssh",
                "client",
                "for i in $(seq 30); do curl -s -m2 http://192.168.56.12:7200/; done",
            ).out
        )
        assert set(seen) == {t["id"][:12] for t in tasks}
        # Docker's --publish-rm names the target port.
        lab.run("service", "update", "--publish-rm", "80", "late", check=True)
        lab.converge("late", 2)
        res = lab.lab("ssh", "client", "curl -s -m2 http://192.168.56.12:7200/")
        assert "I am" not in res.out


def test_network_inspect_shows_endpoints_per_node_and_service_vips(lab):
    with lab.service("seen", "--network", "webnet", *SLEEPER, replicas=3) as tasks:
        (net,) = lab.json("network", "inspect", "webnet")
        assert (net["vni"], net["subnet"], net["gateway"]) == (4097, "10.0.0.0/24", "10.0.0.1")
        endpoints = {
            e["task"]: (node, e) for node, v in net["nodes"].items() for e in v["endpoints"]
        }
        names = lab.hostnames()
        for t in tasks:
            node, e = endpoints[f"seen.{t['slot']}"]
            assert node == names[t["node_id"]]
            assert e["mac"] == t["attachments"][0]["mac"]
        assert {n: v["vtep"] for n, v in net["nodes"].items()} == {
            "manager1": "192.168.56.11",
            "worker1": "192.168.56.12",
            "worker2": "192.168.56.13",
        }
        (svc,) = [s for s in net["services"] if s["service"] == "seen"]
        assert svc["vip"].startswith("10.0.0.")


def test_a_task_reaches_its_own_service_vip_even_when_picked_itself(lab):
    with lab.service("self", "--network", "webnet", "whoami", replicas=2) as tasks:
        me = tasks[0]
        script = "for i in $(seq 30); do curl -s -m2 http://self/; done"
        seen = hostnames_seen(lab.run("exec", f"self.{me['slot']}", "sh", "-c", script).out)
        assert sum(seen.values()) == 30, seen
        assert set(seen) == {t["id"][:12] for t in tasks}  # itself included (hairpin NAT)
