"""The visualizer's model (`visualizer_state`) from a real Manager store, no kernel:
nodes as columns with their tasks, tasks not placed, networks with VNIs and VIPs."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from netagent.contract.desired import TaskState, TaskStatus
from orchestrator.cluster.objects import (
    ManagerStatus,
    NetworkAttachmentSpec,
    NetworkSpec,
    NodeRole,
    ServiceSpec,
)
from orchestrator.dispatch.assignments import digest
from orchestrator.manager import Manager
from orchestrator.node.api.visualizer_routes import STATIC_FILES, forwarder_app, state_of
from tests.factories import csr
from tests.unit.orchestrator.harness import applied, found


@pytest.fixture
def two_nodes(seat):
    """manager1 + worker1, an overlay webnet; (manager, {hostname: node id})."""
    manager, m1 = found(seat)
    token = manager.join_token(NodeRole.WORKER)
    w1, _cert = manager.join(
        token,
        hostname="worker1",
        addr=IPv4Address("192.168.56.12"),
        engine_version="0.1.0",
        csr=csr(),
    )
    manager.create_network(NetworkSpec(name="webnet"))
    return manager, {"manager1": m1.id, "worker1": w1.id}


def agents_apply(manager: Manager, nodes: dict, rounds: int = 3) -> None:
    """Every node's agent applies its desired state and reports: tasks to run run, tasks
    to stop stopped (several rounds: a removed task drains before it is stopped)."""
    for _ in range(rounds):
        for node_id in nodes.values():
            ds = manager.desired_state(node_id)
            manager.heartbeat(node_id, applied(ds), digest(ds))
        manager.tick()


def web(replicas: int, **kw) -> ServiceSpec:
    nets = [NetworkAttachmentSpec(target="webnet")]
    return ServiceSpec(name="web", image="whoami", replicas=replicas, networks=nets, **kw)


def test_nodes_are_columns_holding_their_tasks_with_ips(two_nodes):
    manager, nodes = two_nodes
    manager.create_service(web(3))
    manager.tick()
    agents_apply(manager, nodes)
    leading = ManagerStatus(leader=True, reachability="reachable", addr="192.168.56.11:2377")

    def show(listed):  # what the daemon fills in: manager1 leads
        return [n.model_copy(update={"manager_status": leading}) for n in listed]

    state = state_of(manager, show)
    columns = {n["hostname"]: n for n in state["nodes"]}
    assert set(columns) == {"manager1", "worker1"}
    assert columns["manager1"]["role"] == "manager" and columns["manager1"]["leader"]
    assert not state_of(manager)["nodes"][0]["leader"]  # nobody leads what nobody filled
    assert columns["worker1"]["availability"] == "active"
    assert columns["worker1"]["status"] == "ready"
    cards = [t for n in state["nodes"] for t in n["tasks"]]
    assert sorted(t["name"] for t in cards) == ["web.1", "web.2", "web.3"]
    assert {t["state"] for t in cards} == {"running"}
    for t in cards:
        assert t["image"] == "whoami"
        ((ip),) = t["ips"]
        assert ip["network"] == "webnet"
        assert IPv4Interface(ip["address"]).network == IPv4Network("10.0.0.0/24")
    assert state["unassigned"] == []
    (svc,) = state["services"]
    assert (svc["name"], svc["running"], svc["desired"]) == ("web", 3, 3)


def test_networks_show_their_vni_subnet_and_service_vips(two_nodes):
    manager, _ = two_nodes
    service = manager.create_service(web(1))
    state = state_of(manager)
    nets = {n["name"]: n for n in state["networks"]}
    assert nets["ingress"]["vni"] == 4096 and nets["ingress"]["ingress"]
    assert nets["webnet"]["vni"] == 4097 and nets["webnet"]["subnet"] == "10.0.0.0/24"
    (vip,) = service.vips.values()
    assert nets["webnet"]["vips"] == [{"service": "web", "vip": str(vip)}]


def test_tasks_no_node_can_take_are_listed_as_not_placed(two_nodes):
    manager, _ = two_nodes
    manager.create_service(web(2, constraints=["node.labels.zone==nowhere"]))
    manager.tick()
    state = state_of(manager)
    assert all(n["tasks"] == [] for n in state["nodes"])
    assert sorted(t["name"] for t in state["unassigned"]) == ["web.1", "web.2"]
    assert {t["state"] for t in state["unassigned"]} == {"pending"}


def test_scaling_down_removes_the_card_and_moves_the_revision(two_nodes):
    manager, nodes = two_nodes
    manager.create_service(web(2))
    manager.tick()
    agents_apply(manager, nodes)
    revision = state_of(manager)["revision"]
    manager.scale("web", 1)
    manager.tick()
    agents_apply(manager, nodes)
    state = state_of(manager)
    assert state["revision"] > revision
    assert [t["name"] for n in state["nodes"] for t in n["tasks"]] == ["web.1"]


def test_a_failed_task_in_the_history_is_not_drawn_beside_its_replacement(two_nodes):
    manager, nodes = two_nodes
    manager.create_service(web(1, restart_delay=0))
    manager.tick()
    agents_apply(manager, nodes)
    (failed,) = manager.list_tasks()
    node_id = next(v for v in nodes.values() if v == failed.node_id)
    manager.heartbeat(node_id, [TaskStatus(task_id=failed.id, state=TaskState.FAILED)])
    manager.tick()
    agents_apply(manager, nodes)
    history = {t.id: t.status.state for t in manager.list_tasks()}
    assert history[failed.id] == TaskState.FAILED and len(history) == 2
    cards = [t for n in state_of(manager)["nodes"] for t in n["tasks"]]
    assert [(t["name"], t["state"]) for t in cards] == [("web.1", "running")]
    assert cards[0]["id"] != failed.id


def test_the_page_is_packaged_and_links_only_its_own_files():
    from importlib import resources

    static = resources.files("orchestrator.node.api").joinpath("static")
    for name in STATIC_FILES:
        assert static.joinpath(name).read_bytes(), name
    html = static.joinpath("visualizer.html").read_text()
    assert "http://" not in html and "https://" not in html  # no CDN: CI has no network
    assert "/visualizer/static/visualizer.js" in html


def test_the_local_forwarder_serves_only_the_visualizer_paths():
    app = forwarder_app("http://192.0.2.1:2377")
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert paths == {"/", "/visualizer{tail}"}
    assert {r.method for r in app.router.routes()} <= {"GET", "HEAD"}
