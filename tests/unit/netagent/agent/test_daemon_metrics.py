"""The daemon's metrics: one registry per daemon, the series a scrape shows, the
resolver's counters folded into bounded labels, and the API's /metrics and request
counting served by a real aiohttp app on 127.0.0.1 (no root, no kernel objects)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from pathlib import Path

import prometheus_client
import pytest
from aiohttp.test_utils import TestClient, TestServer
from dnslib import QTYPE, RCODE, DNSRecord
from prometheus_client.parser import text_string_to_metric_families

from netagent.agent.metrics import ClusterSummary, Metrics, dns_qtype, dns_rcode
from netagent.contract.desired import TaskState, TaskStatus
from netagent.contract.errors import InvalidArgument
from netagent.dns import wire
from orchestrator.cluster.objects import NetworkAttachmentSpec, NetworkSpec, NodeRole, ServiceSpec
from orchestrator.node.api.listeners import local_app
from orchestrator.node.api.metrics_routes import cluster_summary
from orchestrator.node.daemon import Daemon, DaemonConfig
from tests.factories import csr
from tests.unit.orchestrator.harness import found


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


class FakeResolverCounters:
    """Pure-logic stand-in exposing the two read-only views the scrape reads."""

    def __init__(self, stats: dict[str, int], answered: dict[tuple[int, int], int]):
        self.stats = stats
        self.answered = answered


def test_two_daemons_metrics_are_independent_and_stay_out_of_the_global_registry():
    a, b = Metrics(), Metrics()
    a.repaired("fdb", 2)
    assert value(a, "vxswarm_repairs_total", kind="fdb") == 2
    assert value(b, "vxswarm_repairs_total", kind="fdb") is None
    global_names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(n.startswith("vxswarm") for n in global_names)


def test_every_defined_metric_is_in_a_scrape():
    m = Metrics()
    m.heartbeat_sent("ok")
    m.heartbeat_received()
    m.rule_synced(0.002, "delta")
    m.api_request("GET", "/v1/info", 200)
    with m.reconcile_seconds.time():
        pass
    m.timed_apply(lambda desired: desired)("state")
    s = samples(m)
    names = {name for name, _ in s}
    for expected in (
        "vxswarm_apply_seconds_count",
        "vxswarm_reconcile_seconds_count",
        "vxswarm_rule_sync_seconds_count",
        "vxswarm_heartbeats_sent_total",
        "vxswarm_heartbeats_received_total",
        "vxswarm_api_requests_total",
    ):
        assert expected in names, expected
    assert s[("vxswarm_rule_sync_seconds_count", (("mode", "delta"),))] == 1
    assert s[("vxswarm_apply_seconds_count", ())] == 1
    assert s[("vxswarm_heartbeats_sent_total", (("result", "ok"),))] == 1


def test_a_failed_apply_is_timed_and_still_raises():
    m = Metrics()

    def apply(_desired: object) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        m.timed_apply(apply)("state")
    assert value(m, "vxswarm_apply_seconds_count") == 1


@pytest.mark.parametrize(
    ("kind", "count", "named"),
    [
        ("FDB", 1, "'FDB'"),
        ("", 1, "''"),
        ("fdb entries", 1, "'fdb entries'"),
        ("x" * 40, 1, "'" + "x" * 40 + "'"),
        ("fdb", 0, "count 0"),
        ("fdb", -3, "count -3"),
    ],
)
def test_a_bad_repair_is_refused_naming_the_value(kind, count, named):
    m = Metrics()
    with pytest.raises(InvalidArgument, match="expected") as err:
        m.repaired(kind, count)
    assert named in str(err.value)
    assert "\n" not in str(err.value)
    assert not any(n == "vxswarm_repairs_total" for n, _ in samples(m))


def test_node_tasks_gauge_has_every_state_and_counts_each():
    m = Metrics()
    statuses = [
        TaskStatus(task_id="a", state=TaskState.RUNNING),
        TaskStatus(task_id="b", state=TaskState.RUNNING),
        TaskStatus(task_id="c", state=TaskState.FAILED),
    ]
    m.watch(node_tasks=lambda: statuses)
    s = samples(m)
    for state in TaskState:
        want = {"running": 2, "failed": 1}.get(str(state), 0)
        assert s[("vxswarm_tasks", (("state", str(state)),))] == want


def test_cluster_series_come_from_the_summary_and_vanish_without_a_manager():
    m = Metrics()
    summary: list[ClusterSummary | None] = [
        ClusterSummary(
            tasks={("web", "running"): 3, ("web", "shutdown"): 1},
            nodes={("manager", "ready", "active"): 1, ("worker", "down", "active"): 2},
        )
    ]
    m.watch(cluster=lambda: summary[0])
    assert value(m, "vxswarm_cluster_tasks", service="web", state="running") == 3
    assert value(m, "vxswarm_cluster_tasks", service="web", state="shutdown") == 1
    assert (
        value(m, "vxswarm_cluster_nodes", role="worker", status="down", availability="active") == 2
    )
    summary[0] = None  # this daemon left the swarm, or is not the leader
    assert not any(n.startswith("vxswarm_cluster") for n, _ in samples(m))


def test_dns_counters_fold_unknown_types_and_codes_into_other():
    m = Metrics()
    counters = FakeResolverCounters(
        stats={
            "queries": 9,
            "forwarded": 2,
            "malformed": 1,
            "tasks": 3,
            "qtype_A": 5,
            "qtype_AAAA": 1,
            "qtype_65280": 2,
        },  # fmt: skip
        answered={(1, 0): 4, (1, 3): 1, (28, 0): 1, (65280, 2): 1, (65281, 2): 1, (1, 15): 1},
    )
    m.watch(dns=lambda: counters)
    s = samples(m)
    assert s[("vxswarm_dns_queries_total", (("qtype", "A"),))] == 5
    assert s[("vxswarm_dns_queries_total", (("qtype", "other"),))] == 2
    assert s[("vxswarm_dns_answers_total", (("qtype", "A"), ("rcode", "NOERROR")))] == 4
    assert s[("vxswarm_dns_answers_total", (("qtype", "A"), ("rcode", "NXDOMAIN")))] == 1
    assert s[("vxswarm_dns_answers_total", (("qtype", "A"), ("rcode", "other")))] == 1
    assert s[("vxswarm_dns_answers_total", (("qtype", "other"), ("rcode", "SERVFAIL")))] == 2
    assert s[("vxswarm_dns_forwarded_total", ())] == 2
    assert s[("vxswarm_dns_errors_total", (("kind", "malformed"),))] == 1
    assert s[("vxswarm_dns_errors_total", (("kind", "tcp_refused"),))] == 0
    assert s[("vxswarm_dns_tasks", ())] == 3


@pytest.mark.parametrize("qtype", [1, 12, 28, 255, 65280])
@pytest.mark.parametrize("rcode", [0, 2, 3])
def test_a_responses_qtype_and_rcode_are_read_back(qtype, rcode):
    q = DNSRecord.question("web.example", QTYPE.get(qtype, None) if qtype != 65280 else "A")
    q.q.qtype = qtype
    r = q.reply()
    r.header.rcode = rcode
    data = r.pack()
    assert wire.qtype_of(data) == qtype
    assert wire.rcode_of(data) == rcode
    assert dns_rcode(rcode) == RCODE.get(rcode)


def test_qtype_of_a_packet_without_a_question_is_minus_one():
    assert wire.qtype_of(b"\x00" * 11) == -1
    assert wire.qtype_of(b"\x12\x34\x81\x80" + b"\x00" * 14) == -1  # qdcount 0
    truncated = DNSRecord.question("web").pack()[:-3]
    assert wire.qtype_of(truncated) == -1
    assert dns_qtype(-1) == "other"


# -- the API: /metrics on a real listener ----------------------------------------------


def scrape_app(state_dir: Path, calls: list[tuple[str, str]]) -> str:
    """Serve one daemon's app on 127.0.0.1, make `calls`, then scrape /metrics."""

    async def run() -> str:
        daemon = Daemon(DaemonConfig(state_dir=state_dir, hostname="unit"))
        client = TestClient(TestServer(local_app(daemon), host="127.0.0.1"))
        await client.start_server()
        try:
            for method, path in calls:
                await client.request(method, path)
            resp = await client.get("/metrics")
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            return await resp.text()
        finally:
            await client.close()

    return asyncio.run(run())


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_api_counts_requests_by_route_and_the_status_the_error_middleware_chose(tmp_path):
    s = parse(
        scrape_app(
            tmp_path,
            [("GET", "/v1/info"), ("GET", "/v1/info"), ("GET", "/v1/nodes"), ("GET", "/nope")],
        )
    )

    def count(method: str, route: str, code: str) -> float:
        return s[
            ("vxswarm_api_requests_total", (("code", code), ("method", method), ("route", route)))
        ]

    assert count("GET", "/v1/info", "200") == 2
    assert count("GET", "/v1/nodes", "503") == 1  # not in a swarm: Unavailable
    assert count("GET", "unmatched", "404") == 1
    # A daemon outside a swarm has no data plane: no task states yet, no cluster series.
    assert not any(name.startswith("vxswarm_cluster") for name, _ in s)


def test_cluster_summary_counts_the_stores_tasks_and_nodes(seat):
    manager, _node = found(seat)
    token = manager.join_token(NodeRole.WORKER)
    manager.join(token, hostname="worker1", addr=IPv4Address("192.168.56.12"),
                 engine_version="0.1.0", csr=csr())  # fmt: skip
    manager.create_network(NetworkSpec(name="webnet"))
    manager.create_service(
        ServiceSpec(name="web", image="whoami", replicas=3,
                    networks=[NetworkAttachmentSpec(target="webnet")])
    )  # fmt: skip
    manager.tick()
    summary = cluster_summary(manager)
    assert sum(n for (svc, _), n in summary.tasks.items() if svc == "web") == 3
    assert summary.nodes == {
        ("manager", "ready", "active"): 1,
        ("worker", "ready", "active"): 1,
    }
