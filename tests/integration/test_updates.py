"""Rolling updates, rollbacks, failure and return, and rebalancing on a real 3-node lab.

The tests share one lab; each removes its service even when it fails and leaves
every node Ready."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
NODES = ("manager1", "worker1", "worker2")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet"]) as lab:
        yield lab


@pytest.fixture
def web(lab):
    """A 3-replica whoami service `web` on webnet, removed afterwards."""
    with lab.service("web", "--network", "webnet", "whoami", replicas=3) as tasks:
        yield tasks
    wait_for("web gone", lambda: not lab.task_namespaces(), timeout=30)


def inspect(lab: SwarmLab, name: str = "web") -> dict:
    return lab.json("service", "inspect", name)[0]


def update_state(lab: SwarmLab, name: str = "web") -> str:
    return (inspect(lab, name).get("update_status") or {}).get("state", "")


def live(lab: SwarmLab, name: str = "web") -> list[dict]:
    return [t for t in lab.tasks(name) if t["desired_state"] == "running"]


def images(lab: SwarmLab, name: str = "web") -> list[str]:
    return sorted(t["image"] for t in lab.running(name))


def kill_daemon(lab: SwarmLab, node: str) -> None:
    info = json.loads((lab.root / lab.name / "lab.json").read_text())
    machine = next(n for n in info["machines"] if n["name"] == node)
    os.kill(machine["daemon"]["pid"], signal.SIGKILL)


def test_rolling_update_follows_parallelism_and_delay(lab, web):
    lab.run(
        "service", "update", "--image", "whoami:2", "--update-parallelism", "2",
        "--update-delay", "3s", "web", check=True,
    )  # fmt: skip
    wait_for("web on whoami:2", lambda: images(lab) == ["whoami:2"] * 3, timeout=60)
    started = sorted(t["started_at"] for t in lab.running("web"))
    # Two slots went together; the third waited for the delay after they ran.
    assert started[1] - started[0] < 3
    assert started[2] - started[1] >= 3
    wait_for("update completed", lambda: update_state(lab) == "completed", timeout=30)
    history = [t for t in lab.tasks("web") if t["desired_state"] == "shutdown"]
    assert sorted(t["image"] for t in history) == ["whoami"] * 3


def test_only_tasks_whose_spec_changed_are_replaced(lab, web):
    before = {t["id"] for t in web}
    lab.run("service", "update", "--replicas", "4", "web", check=True)
    lab.converge("web", 4)
    assert before < {t["id"] for t in lab.running("web")}
    assert update_state(lab) == ""


def test_detach_false_shows_progress_until_converged(lab, web):
    res = lab.run("service", "update", "--detach=false", "--env-add", "A=1", "web", check=True)
    lines = res.out.splitlines()
    assert lines[0] == "web"
    assert "overall progress: 3 out of 3 tasks" in lines
    assert lines[-1] == "verify: Service converged"
    assert all("A=1" in t["env"] for t in lab.running("web"))
    pretty = lab.run("service", "inspect", "--pretty", "web", check=True).out
    assert "UpdateStatus:\n State:\t\tcompleted" in pretty
    assert "UpdateConfig:\n Parallelism:\t1" in pretty


def test_a_task_that_exits_at_once_pauses_the_update(lab, web):
    # `alpine` with no command exits at once (as in Docker).
    lab.run("service", "update", "--image", "alpine", "web", check=True)
    wait_for("update paused", lambda: update_state(lab) == "paused", timeout=30)
    status = inspect(lab)["update_status"]
    assert status["message"].startswith("update paused due to failure or early termination")
    # The update stops where it is: the slots it did not reach keep the old image.
    left = images(lab).count("whoami")
    assert left >= 1
    time.sleep(3)
    assert images(lab).count("whoami") == left


def test_failure_action_rollback_returns_to_the_previous_image(lab, web):
    lab.run(
        "service", "update", "--image", "alpine", "--update-failure-action", "rollback", "web",
        check=True,
    )  # fmt: skip
    wait_for("rollback", lambda: update_state(lab) == "rollback_completed", timeout=60)
    assert inspect(lab)["spec"]["image"] == "whoami"
    wait_for("3 whoami tasks", lambda: images(lab) == ["whoami"] * 3, timeout=30)


def test_service_rollback_goes_back_to_the_previous_spec(lab, web):
    res = lab.run("service", "rollback", "web")
    assert res.code != 0 and "does not have a previous spec" in res.err
    lab.run("service", "update", "--image", "whoami:2", "web", check=True)
    wait_for("web on whoami:2", lambda: images(lab) == ["whoami:2"] * 3, timeout=60)
    lab.run("service", "rollback", "web", check=True)
    wait_for("web on whoami", lambda: images(lab) == ["whoami"] * 3, timeout=60)
    status = inspect(lab)["update_status"]
    assert status["state"] in ("rollback_started", "rollback_completed")
    wait_for("rollback done", lambda: update_state(lab) == "rollback_completed", timeout=30)


def on_networks(lab: SwarmLab, count: int) -> None:
    """Wait until web's 3 running tasks each have `count` network attachments."""
    wait_for(
        f"3 tasks on {count} network(s)",
        lambda: (r := lab.running("web")) and len(r) == 3
        and all(len(t["attachments"]) == count for t in r),
        timeout=60,
    )  # fmt: skip


def test_network_add_is_a_rolling_update_onto_both_networks(lab, web):
    lab.run("network", "create", "-d", "overlay", "backnet", check=True)
    try:
        lab.run("service", "update", "--network-add", "backnet", "web", check=True)
        on_networks(lab, 2)
        assert len(inspect(lab)["vips"]) == 2
        lab.run("service", "update", "--network-rm", "backnet", "web", check=True)
        on_networks(lab, 1)
    finally:
        wait_for(
            "backnet removable",
            lambda: lab.run("network", "rm", "backnet").code == 0,
            timeout=30,
        )


def spread(lab: SwarmLab, name: str = "web") -> list[str]:
    hosts = lab.hostnames()
    return sorted(hosts[t["node_id"]] for t in lab.running(name))


def test_down_node_returning_shuts_its_replaced_tasks_and_force_spreads_again(lab, web):
    assert spread(lab) == list(NODES)
    old = next(t for t in web if lab.hostnames()[t["node_id"]] == "worker2")
    kill_daemon(lab, "worker2")  # the machine stays up: its task keeps running
    wait_for("worker2 Down", lambda: lab.node_states()["worker2"] == "down", timeout=20)
    wait_for("3 tasks off worker2", lambda: "worker2" not in spread(lab) and len(spread(lab)) == 3)
    lab.lab("start", "worker2", check=True)
    wait_for("worker2 Ready", lambda: lab.node_states()["worker2"] == "ready", timeout=15)
    # Its old task was replaced while it was away: it is shut down there, not resumed.
    wait_for(
        "old task shut down",
        lambda: (
            next(t for t in lab.tasks("web") if t["id"] == old["id"])["status"]["state"]
            in ("shutdown", "complete", "failed", "orphaned")
        ),
        timeout=30,
    )
    wait_for("old pid gone", lambda: not os.path.exists(f"/proc/{old['status']['pid']}"))
    assert len(lab.running("web")) == 3 and len(lab.task_namespaces()) == 3
    # Swarm never rebalances by itself: --force spreads the tasks again.
    assert "worker2" not in spread(lab)
    lab.run("service", "update", "--force", "web", check=True)
    wait_for("one task per node", lambda: spread(lab) == list(NODES), timeout=60)


def test_rebalance_moves_tasks_to_a_node_that_returns(lab):
    with lab.service("rb", "--network", "webnet", "--rebalance", "whoami", replicas=3):
        lab.lab("stop", "worker1", check=True)
        wait_for("3 tasks off worker1", lambda: len(spread(lab, "rb")) == 3
                 and "worker1" not in spread(lab, "rb"), timeout=30)  # fmt: skip
        lab.lab("start", "worker1", check=True)
        wait_for("worker1 Ready", lambda: lab.node_states()["worker1"] == "ready", timeout=15)
        wait_for("rb spread again", lambda: spread(lab, "rb") == list(NODES), timeout=60)
