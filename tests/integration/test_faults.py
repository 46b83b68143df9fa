"""Faults the control plane must not make worse, on a real 3-node lab.

Addresses come back: on a /28 (12 task addresses once the gateway and the VIP are out),
a 5-replica service replaced three times over needs 20 addresses; only the tasks that
may still run hold theirs, so every round converges. (Most nodes silent at once, held
Unknown, is tested on the dispatcher: `lab stop` run twice at once races on the lab's
record, so a lab test of it waits for a lab verb that cuts several nodes.)
"""

from __future__ import annotations

import pytest

from netagent.lab.driver import running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        lab.run("network", "create", "-d", "overlay", "--subnet", "10.9.0.0/28", "tiny",
                check=True)  # fmt: skip
        yield lab


def test_replaced_tasks_give_their_addresses_back_on_a_small_subnet(lab):
    with lab.service("web", "--network", "tiny", "--update-parallelism", "5", "whoami",
                     replicas=5) as first:  # fmt: skip
        seen = {t["id"] for t in first}
        for round_ in range(3):
            lab.run("service", "update", "--force", "web", check=True)
            tasks = wait_for(
                f"round {round_ + 1}: 5 new tasks running",
                lambda old=frozenset(seen): _new_five(lab.running("web"), old),
                timeout=60,
            )
            seen |= {t["id"] for t in tasks}
        stuck = [t for t in lab.tasks("web") if "no free address" in t["status"].get("err", "")]
        assert stuck == []
        addrs = [a["address"] for t in lab.running("web") for a in t["attachments"]]
        assert len(set(addrs)) == 5, addrs  # no address given twice


def _new_five(running: list[dict], old: frozenset[str]) -> list[dict] | None:
    """The running tasks, once they are 5 and none is one of `old`."""
    fresh = len(running) == 5 and not old & {t["id"] for t in running}
    return running if fresh else None
