"""Healthchecks on a real 3-node lab: checks run inside each task's namespaces, a task
serves (DNS, VIP) only while healthy, an unhealthy one leaves every backend and is
replaced, and a rolling update counts a new task as running only once it is healthy.

The test's own temporary directory decides what the checks see: a task is sick once a
file named after its hostname (its id's first 12 characters) exists there."""

from __future__ import annotations

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]
SLEEPER = ("alpine", "sleep", "600")
UNHEALTHY = "dockerexec: unhealthy container"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot"), networks=["webnet"]) as lab:
        yield lab


def dig(lab: SwarmLab, task: str, name: str) -> list[str]:
    res = lab.run("exec", task, "dig", "+short", "+tries=1", "+time=3", name)
    assert res.code == 0, res.out + res.err
    return sorted(ln for ln in res.out.split() if ln)


def ids_behind_vip(lab: SwarmLab, task: str, service: str, times: int = 20) -> set[str]:
    """The hostnames answering `times` requests to the service's VIP (by name)."""
    script = f"for i in $(seq {times}); do curl -s -m2 http://{service}/id; echo; done"
    out = lab.run("exec", task, "sh", "-c", script, check=True).out
    return {ln.strip() for ln in out.splitlines() if ln.strip()}


def ip_of(task: dict) -> str:
    (attachment,) = [a for a in task["attachments"] if not a["address"].startswith("10.255.")]
    return attachment["address"].split("/")[0]


def row_of(lab: SwarmLab, service: str, task_id: str) -> str:
    out = lab.run("service", "ps", service, check=True).out
    return next(ln for ln in out.splitlines() if ln.startswith(task_id[:12]))


def by_id(lab: SwarmLab, service: str, task_id: str) -> dict:
    return next(t for t in lab.tasks(service) if t["id"] == task_id)


def test_an_unhealthy_task_leaves_dns_and_the_vip_and_is_replaced(lab, tmp_path):
    www = tmp_path
    # An HTTP server that ignores SIGTERM: once unhealthy it keeps running through its
    # stop grace period, long enough to see it out of every answer while still up.
    serve = (
        f"trap '' TERM; mkdir -p {www}/$(hostname) && cd {www}/$(hostname) && "
        "hostname > id && exec python3 -m http.server 80"
    )
    check = (
        f"test ! -f {www}/sick-$(hostname) && python3 -c "
        "'import socket; socket.create_connection((\"127.0.0.1\", 80), 1)'"
    )
    health = ("--health-cmd", check, "--health-interval", "1s", "--health-retries", "2")
    with (
        lab.service("cli", "--network", "webnet", *SLEEPER),
        lab.service(
            "hc", "--network", "webnet", *health, "--stop-grace-period", "20s",
            "alpine", "sh", "-c", serve, replicas=2,
        ) as tasks,
    ):  # fmt: skip
        assert tasks is not None
        assert [t["status"]["health"] for t in tasks] == ["healthy", "healthy"]
        for t in tasks:
            row = row_of(lab, "hc", t["id"])
            assert " Running " in row and " ago (healthy)" in row, row
        assert dig(lab, "cli.1", "tasks.hc") == sorted(ip_of(t) for t in tasks)
        assert ids_behind_vip(lab, "cli.1", "hc") == {t["id"][:12] for t in tasks}
        pretty = lab.run("service", "inspect", "--pretty", "hc", check=True).out
        assert " Healthcheck:\n  Interval = 1s\n  Retries = 2\n" in pretty
        assert "\t Test = CMD-SHELL\n" in pretty

        sick, well = sorted(tasks, key=lambda t: t["slot"])
        (www / f"sick-{sick['id'][:12]}").touch()
        lab.wait_for(
            "the sick task to be unhealthy",
            lambda: by_id(lab, "hc", sick["id"])["status"]["health"] == "unhealthy",
            timeout=20,
        )
        # Still running (it ignores SIGTERM), but out of DNS and the VIP already.
        assert by_id(lab, "hc", sick["id"])["status"]["state"] == "running"
        assert " ago (unhealthy)" in row_of(lab, "hc", sick["id"])
        wait_for("tasks.hc without it", lambda: dig(lab, "cli.1", "tasks.hc") == [ip_of(well)])
        assert ids_behind_vip(lab, "cli.1", "hc") == {well["id"][:12]}

        ended = lab.wait_for(
            "the sick task to fail",
            lambda: (t := by_id(lab, "hc", sick["id"]))["status"]["state"] == "failed" and t,
            timeout=40,
        )
        assert ended["status"]["err"] == f"task: non-zero exit (137): {UNHEALTHY}"
        assert ended["desired_state"] == "shutdown"
        replaced = lab.converge("hc", 2, timeout=60)
        new = next(t for t in replaced if t["slot"] == sick["slot"])
        assert new["id"] != sick["id"] and new["status"]["health"] == "healthy"
        assert dig(lab, "cli.1", "tasks.hc") == sorted(ip_of(t) for t in replaced)


def test_a_rolling_update_to_a_check_that_never_passes_pauses(lab):
    health = ("--health-cmd", "true", "--health-interval", "500ms")
    with lab.service("upd", "--network", "webnet", *health, "whoami", replicas=2) as old:
        assert old is not None
        lab.run(
            "service", "update", "--health-cmd", "false", "--health-retries", "2",
            "--update-failure-action", "pause", "upd", check=True,
        )  # fmt: skip
        lab.wait_for(
            "the update to pause",
            lambda: (
                (lab.json("service", "inspect", "upd")[0].get("update_status") or {}).get("state")
                == "paused"
            ),
            timeout=60,
        )
        status = lab.json("service", "inspect", "upd")[0]["update_status"]
        assert status["message"].startswith("update paused due to failure")
        new = [t for t in lab.tasks("upd") if t["healthcheck"]["test"][-1] == "false"]
        assert new
        # Never healthy, so never counted as running: the monitor never started.
        assert all(not t["started_at"] for t in new)
        failed = [t for t in new if t["status"]["state"] == "failed"]
        assert failed and all(t["status"]["err"].endswith(UNHEALTHY) for t in failed)
        # The slot the update did not reach still runs its old, healthy task.
        (left,) = lab.running("upd")
        assert left["id"] in {t["id"] for t in old}
        assert left["status"]["health"] == "healthy"


def test_bad_healthcheck_flags_are_refused_before_anything_is_made(lab):
    res = lab.run("service", "create", "--name", "bad", "--health-retries", "2", "whoami")
    assert res.code != 0 and "needs --health-cmd" in res.err
    res = lab.run(
        "service", "create", "--name", "bad", "--no-healthcheck", "--health-cmd", "true", "whoami"
    )
    assert res.code != 0 and "--no-healthcheck conflicts with --health-* options" in res.err
    assert not [s for s in lab.json("service", "ls") if s["spec"]["name"] == "bad"]
