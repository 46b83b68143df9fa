"""Prometheus metrics on a real 3-node lab: scraped over the underlay from the lab
client (curl to a node's API port) and over a node's unix socket; DNS queries made
from a task and a `service scale` move the matching series by exactly what was done."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address, IPv4Interface

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netagent.contract.desired import VIEW_PORT
from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
#: Families every node exports, with or without samples yet.
FAMILIES = (
    "vxswarm_tasks",
    "vxswarm_apply_seconds",
    "vxswarm_rule_sync_seconds",
    "vxswarm_heartbeats_sent",
    "vxswarm_assignments_received",
    "vxswarm_repairs",
    "vxswarm_dns_answers",
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet"]) as lab:
        yield lab


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def addrs(lab: SwarmLab) -> dict[str, str]:
    return {n["hostname"]: n["addr"] for n in lab.json("node", "ls")}


def scrape_text(lab: SwarmLab, node: str) -> str:
    """GET /metrics on `node`'s read-only view port, from the lab client, over the underlay."""
    url = f"http://{addrs(lab)[node]}:{VIEW_PORT}/metrics"
    res = lab.lab("ssh", "client", f"curl -sS -f -m 5 {url}")
    assert res.code == 0, res.err
    return res.out


def scrape(lab: SwarmLab, node: str) -> Samples:
    return parse(scrape_text(lab, node))


def get(s: Samples, name: str, **labels: str) -> float:
    return s.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return get(after, name, **labels) - get(before, name, **labels)


def node_of(lab: SwarmLab, task: dict) -> str:
    return lab.hostnames()[task["node_id"]]


def test_every_node_serves_metrics_on_its_view_port_and_the_unix_socket_not_on_2377(lab):
    for node in lab.nodes:
        families = {f.name for f in text_string_to_metric_families(scrape_text(lab, node))}
        assert set(FAMILIES) <= families, (node, set(FAMILIES) - families)
        sock = lab.socket(node).removeprefix("unix://")
        res = subprocess.run(
            ["curl", "-sS", "-f", "-m", "5", "--unix-socket", sock, "http://vxswarm/metrics"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert get(parse(res.stdout), "vxswarm_tasks", state="running") == get(
            scrape(lab, node), "vxswarm_tasks", state="running"
        )
        # Port 2377 is node-to-node only: no scrape there, certificate or not.
        tls = lab.lab("ssh", "client", f"curl -sk -m 5 https://{addrs(lab)[node]}:2377/metrics")
        assert "vxswarm_tasks" not in tls.out
    manager = scrape(lab, "manager1")
    assert get(manager, "vxswarm_cluster_nodes", role="worker", status="ready",
               availability="active") == 2  # fmt: skip
    assert get(manager, "vxswarm_heartbeats_received_total") > 0
    # Only the leader holds the cluster's store.
    assert not any(name.startswith("vxswarm_cluster") for name, _ in scrape(lab, "worker1"))


def test_dns_queries_from_a_task_move_its_nodes_resolver_counters_exactly(lab):
    with (
        lab.service("web", "--network", "webnet", "whoami", replicas=1) as (web,),
        lab.service("probe", "--network", "webnet", "alpine", "sleep", "600") as (probe,),
    ):
        node = node_of(lab, probe)
        nid = next(n["id"] for n in lab.json("network", "ls") if n["spec"]["name"] == "webnet")
        web_ip = str(
            next(IPv4Interface(a["address"]).ip for a in web["attachments"]
                 if a["network_id"] == nid)
        )  # fmt: skip
        before = scrape(lab, node)
        queries = [
            ("A", "web"),
            ("A", "tasks.web"),
            ("AAAA", "web"),  # a cluster name without IPv6: NOERROR, no data
            ("PTR", IPv4Address(web_ip).reverse_pointer),
            ("A", "nowhere.example"),  # not the cluster's; the lab has no upstream: SERVFAIL
        ]
        for qtype, name in queries:
            res = lab.run("exec", "probe.1", "dig", "+tries=1", "+time=3", qtype, name)
            assert res.code == 0 and "status:" in res.out, res.out + res.err
        garbage = "import socket; socket.socket(2, 2).sendto(b'xx', ('127.0.0.11', 53))"
        lab.run("exec", "probe.1", "python3", "-c", garbage, check=True)
        after = wait_for(
            "the malformed packet to be counted",
            lambda: (
                (s := scrape(lab, node))
                and delta(before, s, "vxswarm_dns_errors_total", kind="malformed") >= 1
                and s
            ),
        )
        d = lambda name, **kw: delta(before, after, name, **kw)  # noqa: E731
        assert d("vxswarm_dns_queries_total", qtype="A") == 3
        assert d("vxswarm_dns_queries_total", qtype="AAAA") == 1
        assert d("vxswarm_dns_queries_total", qtype="PTR") == 1
        assert d("vxswarm_dns_answers_total", qtype="A", rcode="NOERROR") == 2
        assert d("vxswarm_dns_answers_total", qtype="A", rcode="SERVFAIL") == 1
        assert d("vxswarm_dns_answers_total", qtype="AAAA", rcode="NOERROR") == 1
        assert d("vxswarm_dns_answers_total", qtype="PTR", rcode="NOERROR") == 1
        assert d("vxswarm_dns_errors_total", kind="malformed") == 1
        assert d("vxswarm_dns_forwarded_total") == 0


def test_scale_moves_task_gauges_and_times_applies_ticks_and_rule_loads(lab):
    with lab.service("scaled", "--network", "webnet", "whoami", replicas=2):
        nodes_before = {n: scrape(lab, n) for n in lab.nodes}
        lab.run("service", "scale", "scaled=4", check=True)
        tasks = lab.converge("scaled", 4)
        nodes_after = {n: scrape(lab, n) for n in lab.nodes}
        manager_after = nodes_after["manager1"]
        manager_before = nodes_before["manager1"]
        assert delta(manager_before, manager_after, "vxswarm_cluster_tasks",
                     service="scaled", state="running") == 2  # fmt: skip
        assert get(manager_after, "vxswarm_cluster_tasks", service="scaled", state="running") == 4
        moved = sum(
            delta(nodes_before[n], nodes_after[n], "vxswarm_tasks", state="running")
            for n in lab.nodes
        )
        assert moved == 2
        assert delta(manager_before, manager_after, "vxswarm_reconcile_seconds_count") >= 1
        for node in {node_of(lab, t) for t in tasks}:
            b, a = nodes_before[node], nodes_after[node]
            assert delta(b, a, "vxswarm_apply_seconds_count") >= 1, node
            # New backends behind the service's VIP: that node's nft table was reloaded.
            loads = sum(
                delta(b, a, "vxswarm_rule_sync_seconds_count", mode=m) for m in ("delta", "replace")
            )
            assert loads >= 1, node
            # The change came as a patch of the state the node had applied.
            assert delta(b, a, "vxswarm_assignments_received_total", form="patch") >= 1, node
            assert delta(b, a, "vxswarm_assignments_received_total", form="whole") == 0, node
            assert delta(b, a, "vxswarm_assignments_received_total", form="refused") == 0, node
        wait_for(
            "worker1's heartbeats to be sent and the manager's to be received",
            lambda: (
                (w := scrape(lab, "worker1"))
                and delta(nodes_before["worker1"], w, "vxswarm_heartbeats_sent_total", result="ok")
                >= 1
                and delta(
                    manager_before, scrape(lab, "manager1"), "vxswarm_heartbeats_received_total"
                )
                >= 1
            ),
        )
