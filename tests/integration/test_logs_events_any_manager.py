"""`service logs` and `events` asked of a manager that is not the leader, on a real lab of
three managers: each answers from its own store and etcd member, as docker's managers do."""

from __future__ import annotations

import time

import pytest

from netagent.lab.driver import SwarmLab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = SwarmLab.create(tmp_path_factory.mktemp("labroot"), nodes=3, managers=3)
    try:
        lab.wait_ready(timeout=60)
        yield lab
    finally:
        lab.down()


def follower(lab: SwarmLab) -> str:
    nodes = lab.json("node", "ls")
    return next(n["hostname"] for n in nodes if not n["manager_status"]["leader"])


def test_a_follower_manager_serves_logs_and_events(lab):
    began = time.time()
    script = "echo hi from $(hostname); sleep 1000"
    args = ("--replicas-max-per-node", "1", "alpine", "sh", "-c", script)
    with lab.service("both", *args, replicas=3) as tasks:
        asked = follower(lab)
        ids = {t["id"][:12] for t in tasks}

        def lines() -> list[str]:
            return lab.run(
                "service", "logs", "--no-trunc", "both", node=asked, check=True
            ).out.splitlines()

        out = wait_for("every task's line via a follower", lambda: len(lines()) == 3 and lines())
        assert {ln.rsplit("hi from ", 1)[1] for ln in out} == ids
        assert {ln.split("@", 1)[1].split()[0] for ln in out} == {
            "manager1",
            "manager2",
            "manager3",
        }

        until = f"{time.time():.6f}"
        res = lab.run(
            "events",
            "--since",
            f"{began:.6f}",
            "--until",
            until,
            "--filter",
            "type=service",
            node=asked,
            check=True,
        )
        assert [ln.split()[1:3] for ln in res.out.splitlines()] == [["service", "create"]]
        assert "(name=both)" in res.out
