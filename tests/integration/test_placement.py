"""Placement on a real 3-node lab: constraints, labels, global mode, drain and pause.

Every test leaves the nodes active and unlabelled and removes its services, even
when it fails, so the tests share one lab (it takes a while to build)."""

from __future__ import annotations

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
SLEEPER = ("alpine", "sleep", "300")
NODES = ("manager1", "worker1", "worker2")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        yield lab


@pytest.fixture
def nodes(lab):
    """The nodes, put back to active and without labels after the test."""
    yield lab
    for n in lab.json("node", "ls"):
        rm = [a for k in n["labels"] for a in ("--label-rm", k)]
        lab.run("node", "update", "--availability", "active", *rm, n["hostname"], check=True)


def service(lab: SwarmLab, name: str, *args: str):
    """A sleeper service for one test; placement is awaited by each test itself."""
    return lab.service(name, *args, *SLEEPER, converge=False)


def running_on(lab: SwarmLab, service_name: str) -> list[str]:
    """Sorted hostnames of the service's running tasks."""
    hosts = lab.hostnames()
    return sorted(hosts[t["node_id"]] for t in lab.running(service_name))


def placed(lab: SwarmLab, service_name: str, hosts: list[str]) -> None:
    wait_for(
        f"{service_name} running on {hosts}",
        lambda: running_on(lab, service_name) == sorted(hosts),
        timeout=45,
    )


def ls_row(lab: SwarmLab, service_name: str) -> list[str]:
    out = lab.run("service", "ls", check=True).out
    return next(ln.split() for ln in out.splitlines() if f" {service_name} " in f" {ln} ")


def test_role_constraint_lands_both_replicas_on_the_manager(lab):
    with service(lab, "mgr", "--replicas", "2", "--constraint", "node.role==manager"):
        placed(lab, "mgr", ["manager1", "manager1"])


def test_a_bad_constraint_is_refused_with_one_line_naming_it(lab):
    res = lab.run(
        "service", "create", "--name", "bad", "--constraint", "node.role=manager", *SLEEPER
    )
    assert res.code == 1
    assert res.err.strip() == (
        "Error: invalid constraints.0 'node.role=manager': expected KEY==VALUE or KEY!=VALUE"
    )
    assert lab.json("service", "ls") == []


def test_label_constraint_waits_with_the_reason_then_lands_on_the_labelled_node(nodes):
    lab = nodes
    with service(lab, "east", "--replicas", "2", "--constraint", "node.labels.zone==East"):
        reason = "no suitable node (3 nodes do not satisfy constraints)"
        wait_for(
            "the pending reason in service ps",
            lambda: f'"{reason}"' in lab.run("service", "ps", "east", check=True).out,
        )
        assert lab.running("east") == []
        lab.run("node", "update", "--label-add", "zone=east", "worker2", check=True)
        assert lab.json("node", "inspect", "worker2")[0]["labels"] == {"zone": "east"}
        placed(lab, "east", ["worker2", "worker2"])


def test_spread_preference_gives_each_label_value_an_equal_share(nodes):
    lab = nodes
    for host, zone in (("manager1", "b"), ("worker1", "a"), ("worker2", "a")):
        lab.run("node", "update", "--label-add", f"zone={zone}", host, check=True)
    pref = ("--placement-pref", "spread=node.labels.zone")
    with service(lab, "zoned", "--replicas", "4", *pref):
        # Zone b (one node) gets half the tasks, like zone a's two nodes together.
        placed(lab, "zoned", ["manager1", "manager1", "worker1", "worker2"])
        pretty = lab.run("service", "inspect", "--pretty", "zoned", check=True).out
        assert "Preferences:\t['spread=node.labels.zone']" in pretty


def test_global_mode_runs_one_task_per_node_and_follows_a_drain(nodes):
    lab = nodes
    with service(lab, "agent", "--mode", "global"):
        placed(lab, "agent", list(NODES))
        assert ls_row(lab, "agent")[2:4] == ["global", "3/3"]

        lab.run("node", "update", "--availability", "drain", "worker2", check=True)
        placed(lab, "agent", ["manager1", "worker1"])
        wait_for("REPLICAS 2/2", lambda: ls_row(lab, "agent")[3] == "2/2")

        lab.run("node", "update", "--availability", "active", "worker2", check=True)
        placed(lab, "agent", list(NODES))


def test_global_mode_follows_a_node_leaving_and_joining(nodes):
    lab = nodes
    token = lab.run("swarm", "join-token", "-q", "worker", check=True).out.strip()
    with service(lab, "everywhere", "--mode", "global"):
        placed(lab, "everywhere", list(NODES))
        lab.run("swarm", "leave", node="worker2", check=True)
        try:
            placed(lab, "everywhere", ["manager1", "worker1"])
        finally:
            lab.run("swarm", "join", "--token", token, "192.168.56.11:2377", node="worker2",
                    check=True)  # fmt: skip
        wait_for("worker2 Ready", lambda: lab.node_states().get("worker2") == "ready")
        placed(lab, "everywhere", list(NODES))


def test_drain_moves_tasks_away_and_pause_does_not(nodes):
    lab = nodes
    with service(lab, "web", "--replicas", "3"):
        placed(lab, "web", list(NODES))
        on_worker1 = [
            t["id"] for t in lab.running("web") if t["node_id"] == node_id(lab, "worker1")
        ]

        lab.run("node", "update", "--availability", "pause", "worker1", check=True)
        assert lab.json("node", "inspect", "worker1")[0]["availability"] == "pause"
        lab.run("service", "scale", "web=5", check=True)
        placed(lab, "web", ["manager1", "manager1", "worker1", "worker2", "worker2"])
        assert [
            t["id"] for t in lab.running("web") if t["node_id"] == node_id(lab, "worker1")
        ] == on_worker1

        lab.run("node", "update", "--availability", "drain", "worker1", check=True)
        placed(lab, "web", ["manager1"] * 3 + ["worker2"] * 2)
        wait_for("worker1's task namespaces gone", lambda: not worker1_tasks(lab))


def test_a_ready_node_is_not_removed_without_force(lab):
    res = lab.run("node", "rm", "worker1")
    assert res.code == 1
    assert res.err.strip() == "Error: node worker1 is not down and can't be removed"


def node_id(lab: SwarmLab, hostname: str) -> str:
    return next(i for i, h in lab.hostnames().items() if h == hostname)


def worker1_tasks(lab: SwarmLab) -> list[str]:
    return [n for n in lab.task_namespaces() if n.startswith(f"{lab.node_ns('worker1')}-t-")]
