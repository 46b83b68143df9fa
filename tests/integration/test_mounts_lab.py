"""`service create --mount` on a real 3-node lab: bind (ro and rw), tmpfs and a named
volume, seen through `vxswarm exec` inside the task and nowhere in the node's mount
table; `--mount-add`/`--mount-rm` roll the task; a bad `--mount` is refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netagent.lab.driver import SwarmLab, running_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.lab]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("labroot")) as lab:
        yield lab


def exec_in(lab: SwarmLab, task: str, script: str):
    return lab.run("exec", task, "sh", "-c", script, timeout=60)


def node_of(lab: SwarmLab, task: dict) -> str:
    return lab.hostnames()[task["node_id"]]


def test_bind_tmpfs_and_volume_mounts_are_seen_only_inside_the_task(lab, tmp_path):
    site, logs = tmp_path / "site", tmp_path / "logs"
    for d in (site, logs):
        d.mkdir()
    (site / "index.html").write_text("hello mounts\n")
    top = f"/vxt{lab.name}"  # no such path on the machine: it must not be made there
    volume = f"vol{lab.name}"
    mounts = (
        "--mount", f"type=bind,source={site},target={top}/www,readonly",
        "--mount", f"type=bind,src={logs},dst={top}/logs",
        "--mount", f"type=tmpfs,target={top}/cache,tmpfs-size=2m",
        "--mount", f"type=volume,source={volume},target={top}/data",
    )  # fmt: skip
    with lab.service("mnt", *mounts, "alpine", "sleep", "1000") as tasks:
        (task,) = tasks
        name = f"mnt.{task['slot']}"
        seen = exec_in(lab, name, f"cat {top}/www/index.html; stat -f -c %T {top}/cache")
        assert (seen.code, seen.out) == (0, "hello mounts\ntmpfs\n"), seen.err
        refused = exec_in(lab, name, f"echo x > {top}/www/new")
        assert refused.code != 0 and "Read-only file system" in refused.err
        assert not (site / "new").exists()
        wrote = exec_in(lab, name, f"echo line > {top}/logs/app.log; echo kept > {top}/data/f")
        assert wrote.code == 0, wrote.err
        assert (logs / "app.log").read_text() == "line\n"
        node = node_of(lab, task)
        volume_dir = lab.root / lab.name / node / "agent" / "volumes" / volume
        assert (volume_dir / "f").read_text() == "kept\n"

        # The machine (and every lab node: they share its mount namespace) has none.
        points = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
        assert not [p for p in points if p == top or p.startswith(f"{top}/")]
        assert not os.path.lexists(top)

        # --mount-rm / --mount-add: a rolling update replaces the task.
        lab.run("service", "update", "--mount-rm", f"{top}/cache",
                "--mount-add", f"type=tmpfs,target={top}/scratch", "mnt", check=True)  # fmt: skip
        new = lab.wait_for(
            "the updated task",
            lambda: [t for t in lab.running("mnt") if t["id"] != task["id"]],
            timeout=60,
        )[0]
        moved = exec_in(
            lab, f"mnt.{new['slot']}", f"stat -f -c %T {top}/scratch; test -e {top}/cache"
        )
        assert moved.out == "tmpfs\n" and moved.code != 0
        spec = lab.json("service", "inspect", "mnt")[0]["spec"]
        assert [m["target"] for m in spec["mounts"]] == [
            f"{top}/www", f"{top}/logs", f"{top}/data", f"{top}/scratch",
        ]  # fmt: skip
    # Kept after the service is gone, as docker keeps volumes.
    assert (volume_dir / "f").read_text() == "kept\n"


def test_a_missing_bind_source_rejects_the_task_with_dockers_message(lab):
    source = f"/nonexistent-{lab.name}"
    with lab.service("nosrc", "--mount", f"type=bind,source={source},target=/x",
                     "alpine", "sleep", "1000", converge=False):  # fmt: skip
        rejected = wait_for(
            "a rejected task",
            lambda: [t for t in lab.tasks("nosrc") if t["status"]["state"] == "rejected"],
            timeout=60,
        )
        assert rejected[0]["status"]["err"] == (
            f'invalid mount config for type "bind": bind source path does not exist: {source}'
        )


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ("type=bind,source=/srv,target=/x,colour=red",
         "Error: Invalid value for '--mount': unexpected key 'colour' in 'colour=red': "
         "expected type, source|src, target|dst|destination, readonly|ro, volume-nocopy, "
         "tmpfs-size, tmpfs-mode (see 'vxswarm service create --help')"),
        ("type=bind,source=srv,target=/x",
         "invalid bind mount source, must be an absolute path: srv"),
        ("type=volume,source=no/slash,target=/x", "invalid volume name 'no/slash'"),
    ],
)  # fmt: skip
def test_a_bad_mount_is_refused_in_one_line_and_nothing_is_made(lab, mount, message):
    res = lab.run("service", "create", "--name", "bad", "--mount", mount, "alpine")
    assert res.code != 0
    assert len(res.err.strip().splitlines()) == 1 and message in res.err, res.err
    assert res.err.startswith("Error: ")
    assert "bad" not in lab.run("service", "ls", check=True).out
