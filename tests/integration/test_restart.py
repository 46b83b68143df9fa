"""Restart policies on a real 3-node lab: real task processes that exit 1 or 0.

`alpine sh -c "exit 1"` under on-failure with 2 max attempts fails three times (the
first run and two restarts) and then its slot stays empty; `exit 0` under on-failure
completes once and is never restarted."""

from __future__ import annotations

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
ON_FAILURE = ("--restart-condition", "on-failure", "--restart-delay", "100ms")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        yield lab


def states(lab: SwarmLab, name: str) -> list[str]:
    return [t["status"]["state"] for t in lab.tasks(name)]


def settled(lab: SwarmLab, name: str) -> bool:
    """The slot's last task ended and the policy refused it a replacement."""
    tasks = lab.tasks(name)
    return (
        bool(tasks)
        and all(t["desired_state"] == "shutdown" for t in tasks)
        and any(t["restart_refused"] for t in tasks)
    )


def ls_replicas(lab: SwarmLab, name: str) -> str:
    out = lab.run("service", "ls", check=True).out
    return next(ln.split()[3] for ln in out.splitlines() if f" {name} " in f" {ln} ")


def test_on_failure_restarts_a_failing_task_twice_and_never_a_completed_one(lab):
    fails = ("--restart-max-attempts", "2", "alpine", "sh", "-c", "exit 1")
    with (
        lab.service("fails", *ON_FAILURE, *fails, converge=False),
        lab.service("done", *ON_FAILURE, "alpine", "sh", "-c", "exit 0", converge=False),
    ):
        wait_for("fails to be refused a 3rd restart", lambda: settled(lab, "fails"), timeout=60)
        wait_for("done to complete unrestarted", lambda: settled(lab, "done"), timeout=60)

        assert states(lab, "fails") == ["failed"] * 3
        assert [t["status"]["exit_code"] for t in lab.tasks("fails")] == [1, 1, 1]
        table = lab.run("service", "ps", "fails", check=True).out.splitlines()[1:]
        assert [" Failed " in row for row in table] == [True] * 3
        assert states(lab, "done") == ["complete"]
        assert ls_replicas(lab, "fails") == "0/1"
        assert ls_replicas(lab, "done") == "0/1"

        # Both decisions were made; more reconciler passes (the second service's
        # events came after the first's refusal) changed nothing.
        assert states(lab, "fails") == ["failed"] * 3
        pretty = lab.run("service", "inspect", "--pretty", "fails", check=True).out
        assert "RestartPolicy:\n Condition:\ton-failure\n Delay:\t\t100ms\n" in pretty
        assert " Max Attempts:\t2\n" in pretty
