"""The data plane with the real built-in workloads (netagent.tasks.workloads), over the overlay."""

from __future__ import annotations

import pytest

from netagent.contract.desired import TaskState
from tests.integration.conftest import DataPlaneCluster, run_in, wait_for

pytestmark = pytest.mark.root
workloads = pytest.importorskip("netagent.tasks.workloads")


@pytest.fixture
def real_cluster(run_id, node_pair, tmp_path):
    cluster = DataPlaneCluster(run_id, node_pair, tmp_path, workloads=workloads)
    try:
        yield cluster
    finally:
        cluster.teardown()


def test_whoami_on_one_node_answers_a_task_on_the_other_over_the_overlay(real_cluster):
    c = real_cluster
    web = c.task(1, cmd=(), image="whoami")
    client = c.task(2, cmd=("sleep", "1000"), image="alpine", service="client")
    c.apply({0: [web], 1: [client]})
    c.wait_state(0, web.id, TaskState.RUNNING)
    ns = c.names[1].task_ns(client.name, client.id)

    def answer() -> str:
        res = run_in(ns, "curl", "-s", "--max-time", "2", "http://10.0.0.3/", check=False)
        return res.stdout if res.returncode == 0 else ""

    body = wait_for("whoami to answer", answer, timeout=20)
    assert f"I am {web.hostname}" in body
    assert "IP: 10.0.0.3" in body and "RemoteAddr: 10.0.0.4:" in body


def test_whoami_stops_gracefully_with_exit_code_zero_on_shutdown(real_cluster):
    c = real_cluster
    web = c.task(1, cmd=(), image="whoami", grace=10)
    c.apply({0: [web]}, only=0)
    c.wait_state(0, web.id, TaskState.RUNNING)
    # Serving (its SIGTERM handler is in place) once it answers on its gateway address,
    # which the node reaches through vx_gwbridge.
    wait_for(
        "whoami to answer on 172.18.0.2",
        lambda: run_in(c.nodes[0].ns, "curl", "-s", "--max-time", "2", "http://172.18.0.2/",
                       check=False).returncode == 0,
        timeout=20,
    )  # fmt: skip
    c.apply({0: [web.model_copy(update={"desired_state": "shutdown"})]}, only=0)
    final = c.wait_state(0, web.id, TaskState.SHUTDOWN)
    assert final.exit_code == 0
